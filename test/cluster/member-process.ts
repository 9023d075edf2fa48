/**
 * Group members as real processes (test/cluster/fixtures/member.ts), for the membership tests:
 * each reports its events as JSON lines, which this helper collects; tests make members leave,
 * restart, crash (SIGKILL) and pause (SIGSTOP) and read who owns what.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";

const MEMBER = join(import.meta.dirname, "fixtures", "member.ts");
export const PARTITIONS = 6;
const ALL = Array.from({ length: PARTITIONS }, (_, i) => i);

export interface MemberEvent {
  readonly event: "joined" | "assigned" | "revoked" | "error" | "left";
  readonly at: number;
  readonly partitions?: number[];
  readonly reason?: string;
  readonly message?: string;
  /** Kafka's error code, on "error". */
  readonly code?: number;
}

/** A member process and everything it has reported. */
export class Member {
  readonly events: MemberEvent[] = [];
  readonly exited: Promise<void>;
  private readonly child: ChildProcess;
  private waiters: (() => void)[] = [];

  /** `flags`: the fixture's `--session=<ms>` and `--heartbeat=<ms>`. */
  constructor(brokers: string, group: string, topic: string, instanceId?: string, flags: readonly string[] = []) {
    const args = ["--import", "tsx", MEMBER, brokers, group, topic, ...(instanceId ? [instanceId] : []), ...flags];
    this.child = spawn(process.execPath, args, { stdio: ["pipe", "pipe", "inherit"] });
    this.exited = new Promise((resolve) => this.child.once("exit", () => resolve()));
    let buffer = "";
    this.child.stdout!.on("data", (chunk: Buffer) => {
      buffer += chunk.toString();
      for (let i = buffer.indexOf("\n"); i >= 0; i = buffer.indexOf("\n")) {
        this.events.push(JSON.parse(buffer.slice(0, i)) as MemberEvent);
        buffer = buffer.slice(i + 1);
        for (const w of this.waiters.splice(0)) w();
      }
    });
  }

  /** The partitions this member owns, from its assigned and revoked events. */
  owned(): number[] {
    const owned = new Set<number>();
    for (const e of this.events) {
      if (e.event === "assigned") for (const p of e.partitions!) owned.add(p);
      if (e.event === "revoked") for (const p of e.partitions!) owned.delete(p);
    }
    return [...owned].sort((a, b) => a - b);
  }

  /** Events of one kind since index `from`. */
  since(from: number, kind: MemberEvent["event"]): MemberEvent[] {
    return this.events.slice(from).filter((e) => e.event === kind);
  }

  async until(condition: () => boolean, what: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}: ${JSON.stringify(this.events)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  /** "leave" or "restart" (a static member's temporary leave); resolves once it has exited. */
  async leave(how: "leave" | "restart"): Promise<void> {
    this.child.stdin!.write(`${how}\n`);
    await this.exited;
  }

  /** SIGSTOP: the process stops dead, heartbeats included, until resume(). */
  pause(): void {
    this.child.kill("SIGSTOP");
  }

  resume(): void {
    this.child.kill("SIGCONT");
  }

  async kill9(): Promise<void> {
    this.child.kill("SIGKILL");
    await this.exited;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

/** Every partition owned by exactly one of `members`, and each member owning some. */
export function sharedOut(members: readonly Member[]): boolean {
  if (members.some((m) => m.owned().length === 0)) return false;
  const owned = members.flatMap((m) => m.owned()).sort((a, b) => a - b);
  return owned.length === PARTITIONS && owned.every((p, i) => p === ALL[i]);
}

export async function waitShared(members: readonly Member[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!sharedOut(members)) {
    if (Date.now() > deadline) {
      throw new Error(`partitions not shared out: ${members.map((m) => JSON.stringify(m.owned())).join(" ")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
