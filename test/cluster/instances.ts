/**
 * Runnel instances of one installation as real `runnel start` processes (test/helpers/server-process.ts)
 * on the fault rig's brokers and a database of their own, and what they say of their ownership:
 * the JSON log lines of src/cluster/node.ts, read from each process's stdout.
 */
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach } from "node:test";
import { type ArchiveEnv, sharedArchiveEnv } from "../archive/s3-server.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";

/** One archive bucket per installation, shared by its instances (cluster mode refuses one of their own). */
const archives = new Map<string, Promise<ArchiveEnv>>();
function archiveOf(installation: string): Promise<ArchiveEnv> {
  let env = archives.get(installation);
  if (env === undefined) {
    env = sharedArchiveEnv();
    archives.set(installation, env);
  }
  return env;
}

export interface InstanceSettings {
  readonly brokers: string;
  readonly databaseUrl: string;
  readonly topicPrefix: string;
  readonly installation: string;
  readonly slots: number;
  /** More settings of the process (they win over the ones above). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface OwnedAt {
  /** ms since the epoch, from the log line. */
  readonly at: number;
  readonly owned: readonly number[];
}

/** Longer than this from SIGTERM to exit is reported with the shutdown's log lines. */
const SLOW_STOP_MS = 5_000;

/** Every instance this test process made, for reportInstancesOnFailure. */
const made = new Set<Instance>();
/** Log lines of each instance printed when a test fails. */
const LINES_ON_FAILURE = 60;

/**
 * After each test of the calling file that fails, prints the last log lines of every instance
 * (all its processes, killed ones too) to stderr: a timeout in CI says nothing of which task
 * stalled, and CI keeps only what the run printed.
 */
export function reportInstancesOnFailure(): void {
  afterEach((t) => {
    // Node 24 sets `passed` on the context (@types/node of this lockfile does not declare it yet).
    if ((t as { passed?: boolean }).passed !== false) return;
    for (const instance of made) {
      const lines = instance
        .logText()
        .split("\n")
        .filter((l) => l !== "")
        .slice(-LINES_ON_FAILURE);
      process.stderr.write(
        `--- instance ${instance.id}, its last ${lines.length} log lines (test "${t.name}" failed):\n${lines.join("\n")}\n`,
      );
    }
  });
}

export class Instance {
  private server: ServerProcess | undefined;
  private dir: { dir: string; remove(): Promise<void> } | undefined;
  private paused = false;
  /** Being killed or stopped: a load balancer would have taken it out of rotation. */
  private leaving = false;

  /** What the processes before the current one printed. */
  private earlier = "";

  constructor(
    readonly id: string,
    private readonly settings: InstanceSettings,
  ) {
    made.add(this);
  }

  /** Everything its processes printed so far, the current one's last. */
  logText(): string {
    return this.earlier + (this.server?.stdout() ?? "");
  }

  /** Started, not stopped or killed (nor being stopped or killed), not paused. */
  get up(): boolean {
    return this.server !== undefined && !this.paused && !this.leaving;
  }

  get url(): string {
    if (this.server === undefined) throw new Error(`instance ${this.id} is not running`);
    return this.server.url;
  }

  get pid(): number {
    const pid = this.server?.child.pid;
    if (pid === undefined) throw new Error(`instance ${this.id} is not running`);
    return pid;
  }

  /** Starts (or restarts, on the same data directory) `runnel start` as this instance; resolves once it listens. */
  async start(): Promise<void> {
    this.dir ??= await tempDataDir();
    this.leaving = false;
    const { brokers, databaseUrl, topicPrefix, installation, slots } = this.settings;
    this.server = await startServerProcess(
      this.dir.dir,
      {
        RUNNEL_KAFKA_BROKERS: brokers,
        RUNNEL_DATABASE_URL: databaseUrl,
        RUNNEL_KAFKA_TOPIC_PREFIX: topicPrefix,
        RUNNEL_INSTALLATION: installation,
        RUNNEL_INSTANCE_ID: this.id,
        RUNNEL_CLUSTER_SLOTS: String(slots),
        RUNNEL_DEFAULT_PARTITIONS: String(slots),
        RUNNEL_LOG_LEVEL: process.env.RUNNEL_TEST_CLUSTER_LOG_LEVEL ?? "info",
        ...(await archiveOf(installation)),
        ...this.settings.env,
      },
      { captureStdout: true },
    );
  }

  signal(signal: "SIGKILL" | "SIGSTOP" | "SIGCONT"): void {
    process.kill(this.pid, signal);
    if (signal === "SIGSTOP") this.paused = true;
    if (signal === "SIGCONT") this.paused = false;
  }

  /** SIGKILL and wait for the exit; the data directory stays for a restart. */
  async kill9(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.leaving = true;
    await server.kill("SIGKILL");
    await this.keepLog(server);
    this.server = undefined;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.leaving = true;
    if (server.child.signalCode === null && server.child.exitCode === null) server.child.kill("SIGCONT");
    const since = Date.now();
    await server.kill("SIGTERM");
    const ms = Date.now() - since;
    // A slow graceful stop is a finding, not noise: name the steps that held it up.
    if (ms > SLOW_STOP_MS) {
      const held = parseLines(server.stdout()).filter(
        (l) => Date.parse(l.time as string) >= since && (l.component === "shutdown" || Number(l.level) >= 40),
      );
      process.stderr.write(
        `instance ${this.id} took ${ms} ms to stop after SIGTERM; its lines since:\n${held.map((l) => JSON.stringify(l)).join("\n")}\n`,
      );
    }
    await this.keepLog(server);
    this.server = undefined;
  }

  async remove(): Promise<void> {
    await this.stop();
    await this.dir?.remove();
  }

  /** With RUNNEL_TEST_CLUSTER_LOGS=<dir>, each process's log lines are appended to <dir>/<id>.log. */
  private async keepLog(server: ServerProcess): Promise<void> {
    this.earlier += server.stdout();
    const dir = process.env.RUNNEL_TEST_CLUSTER_LOGS;
    if (dir !== undefined && dir !== "") await appendFile(join(dir, `${this.id}.log`), server.stdout());
  }

  /** The JSON log lines of the current process. */
  lines(): Record<string, unknown>[] {
    return parseLines(this.server?.stdout() ?? "");
  }

  /** Every change of owned slots the runners followed, in order (the current process only). */
  ownedHistory(): OwnedAt[] {
    return this.lines()
      .filter((l) => l.msg === "runners follow the owned slots")
      .map((l) => ({ at: Date.parse(l.time as string), owned: l.owned as number[] }));
  }

  /** The slots the runners follow now (empty before the first assignment). */
  owned(): readonly number[] {
    return this.ownedHistory().at(-1)?.owned ?? [];
  }

  /** The slots the group revoked from this process with reason `reason`, with when. */
  revoked(reason: string): { at: number; slots: number[] }[] {
    return this.lines()
      .filter((l) => l.msg === "slots revoked" && l.reason === reason)
      .map((l) => ({ at: Date.parse(l.time as string), slots: l.slots as number[] }));
  }

  async get(path: string, token?: string): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${this.url}${path}`, {
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(5_000),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  async login(): Promise<string> {
    const res = await fetch(`${this.url}/api/v1/auth/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "admin", password: ADMIN_PASSWORD }),
    });
    const body = (await res.json()) as { token?: string };
    if (res.status !== 200 || body.token === undefined) throw new Error(`login failed: ${JSON.stringify(body)}`);
    return body.token;
  }
}

function parseLines(text: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // A line cut by the process's death.
    }
  }
  return out;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 100 ms until it returns a value, for at most `ms`. */
export async function waitFor<T>(
  what: string,
  ms: number,
  check: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}
