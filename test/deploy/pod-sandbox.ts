/**
 * A StatefulSet pod of the production overlay, run as a process on this machine, which has no
 * cluster or container runtime: test/deploy/fixtures/pod-sandbox.sh gives `runnel start` what the
 * pod's security context imposes (every filesystem read-only but an empty /tmp and the data
 * volume, runAsUser/runAsGroup, no capabilities, no_new_privs) in a mount namespace of its own,
 * and the environment is the rendered ConfigMap and env, with this machine's Kafka and PostgreSQL
 * standing in for the cluster's. Needs root (mount namespaces), as CI has.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { untilListening } from "../helpers/server-process.js";
import { KUBERNETES_DIR, type Manifest, parseManifests, podEnvironment, ROOT, render } from "./kubernetes-manifests.js";

const SANDBOX = join(import.meta.dirname, "fixtures", "pod-sandbox.sh");
/** An empty directory on every Debian machine; `/data` cannot be created on the read-only root, so the volume goes here. */
export const DATA_MOUNT = "/srv";
export const ADMIN_PASSWORD = "change-me-please";
export const NAMESPACE = "runnel";

/** Why the sandbox cannot run here, or undefined when it can. */
export function sandboxUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root for a mount namespace";
  for (const tool of ["unshare", "setpriv"]) {
    if (spawnSync(tool, ["--version"]).status !== 0) return `needs ${tool} (util-linux)`;
  }
  return undefined;
}

/** The fields of the rendered pod template these tests use. */
export interface PodTemplate {
  readonly terminationGracePeriodSeconds: number;
  readonly securityContext: { readonly runAsUser: number; readonly runAsGroup: number };
  readonly containers: readonly {
    readonly volumeMounts: readonly { readonly mountPath: string }[];
    readonly lifecycle: { readonly preStop: { readonly exec: { readonly command: readonly string[] } } };
  }[];
}

export interface ProductionPods {
  readonly docs: Manifest[];
  readonly pod: PodTemplate;
  /** The preStop pause, in seconds. */
  readonly preStopSeconds: number;
}

export function productionPods(): ProductionPods {
  const docs = parseManifests(render(join(KUBERNETES_DIR, "overlays", "production")));
  const sts = docs.find((d) => d.kind === "StatefulSet") as Manifest & { spec: { template: { spec: PodTemplate } } };
  const pod = sts.spec.template.spec;
  return { docs, pod, preStopSeconds: Number(pod.containers[0]!.lifecycle.preStop.exec.command[1]) };
}

/** What stands in for the cluster around the pod. */
export interface Surroundings {
  readonly kafkaBrokers: string;
  readonly databaseUrl: string;
  /** Names this test's topics and installation on the shared broker. */
  readonly unique: string;
  /** The port to listen on (0: any free one), on loopback. */
  readonly port: number;
}

/**
 * The environment of pod `podName`: what the image sets (Dockerfile ENV, and a HOME that is not
 * writable, as the image's is not), the rendered ConfigMap and env, the Secret's keys, and the
 * overrides one shared machine needs: its own Kafka and database, topics and a group of the
 * test's own, loopback, and the data volume on DATA_MOUNT.
 */
export function podEnv(pods: ProductionPods, podName: string, around: Surroundings): Record<string, string> {
  const { env, secrets, unresolved } = podEnvironment(pods.docs, podName, NAMESPACE);
  if (unresolved.length > 0) throw new Error(`unresolved env: ${unresolved.join(", ")}`);
  const secretValues: Record<string, string> = {
    RUNNEL_DATABASE_URL: around.databaseUrl,
    RUNNEL_TOKEN_SECRET: `${around.unique}-token-secret-0123456789abcdef`,
    RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
  };
  for (const name of secrets.keys()) {
    if (secretValues[name] === undefined) throw new Error(`no stand-in for the Secret's ${name}`);
  }
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    NODE_ENV: "production",
    HOME: "/home/node",
    ...env,
    ...secretValues,
    RUNNEL_KAFKA_BROKERS: around.kafkaBrokers,
    RUNNEL_KAFKA_TOPIC_PREFIX: `${around.unique}-`,
    RUNNEL_INSTALLATION: around.unique,
    RUNNEL_HOST: "127.0.0.1",
    RUNNEL_PORT: String(around.port),
    RUNNEL_ADVERTISED_URL: `http://127.0.0.1:${around.port === 0 ? 8080 : around.port}`,
    RUNNEL_DATA_DIR: DATA_MOUNT,
    RUNNEL_LOG_LEVEL: "warn",
  };
}

/** `runnel start` in the sandbox as uid:gid, with exactly `env`. */
export function startInSandbox(uid: number, gid: number, env: Record<string, string>): ChildProcess {
  const sandbox = [SANDBOX, String(uid), String(gid), DATA_MOUNT];
  const runnel = [process.execPath, "--import", "tsx", join(ROOT, "bin", "runnel.ts"), "start"];
  return spawn("unshare", ["--mount", "--propagation", "private", "bash", ...sandbox, ...runnel], {
    cwd: ROOT,
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
}

export interface RunningPod {
  readonly name: string;
  readonly child: ChildProcess;
  readonly url: string;
  readonly exited: Promise<number | null>;
  stderr(): string;
}

/** Starts pod `name` of the production overlay and resolves once it listens. */
export async function startPod(pods: ProductionPods, name: string, around: Surroundings): Promise<RunningPod> {
  const { runAsUser, runAsGroup } = pods.pod.securityContext;
  const child = startInSandbox(runAsUser, runAsGroup, podEnv(pods, name, around));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const { url, stderr } = await untilListening(child);
  return { name, child, url, exited, stderr };
}
