/**
 * The fault rig's three Kafka brokers (scripts/kafka-cluster.sh) for integration tests: started on
 * first use and left running for the next test file (as scripts/kafka.sh's broker is), with one
 * broker at a time killed, stopped and restarted by its node id.
 */
import { execFile } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { lockDirectory } from "../../src/log/local/dir-lock.js";

const SCRIPT = fileURLToPath(new URL("../../scripts/kafka-cluster.sh", import.meta.url));
const run = promisify(execFile);

export type NodeId = 1 | 2 | 3;

export interface KafkaCluster {
  /** The bootstrap list, `127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3`. */
  readonly brokers: string;
  /** SIGKILL: the broker is lost without a controlled shutdown. */
  kill(node: NodeId): Promise<void>;
  /** SIGTERM: a controlled shutdown. */
  stop(node: NodeId): Promise<void>;
  /** Starts a stopped or killed broker again on its data; resolves once it serves. */
  start(node: NodeId): Promise<void>;
  /** Which nodes are running. */
  running(): Promise<NodeId[]>;
}

async function script(...args: string[]): Promise<string> {
  // The script's progress goes to stderr; only `start` prints (the bootstrap list) on stdout.
  const { stdout } = await run("bash", [SCRIPT, ...args], { encoding: "utf8", timeout: 180_000 });
  return stdout.trim();
}

/** Starts the rig if it is not running (about 20 s on two cores) and returns its handle. */
export async function kafkaCluster(): Promise<KafkaCluster> {
  const brokers = await script("start");
  return {
    brokers,
    kill: async (node) => void (await script("kill", String(node))),
    stop: async (node) => void (await script("stop", String(node))),
    start: async (node) => void (await script("start", String(node))),
    running: async () =>
      (await script("status"))
        .split("\n")
        .map((line) => line.split(" "))
        .filter(([, , state]) => state === "running")
        .map(([id]) => Number(id) as NodeId),
  };
}

/**
 * Holds the rig for one test file until `release()`. Files run in parallel processes, and one
 * that kills brokers (fault-rig) must not run beside another on the same brokers: a kernel lock
 * (the local log's flock, src/log/local/dir-lock.ts) taken before the rig is used, waited for up
 * to 10 minutes.
 */
export async function holdRig(): Promise<{ release(): Promise<void> }> {
  const dir = "/tmp/runnel-kafka-cluster-tests";
  await mkdir(dir, { recursive: true });
  return lockDirectory(dir, { waitMs: 600_000 });
}
