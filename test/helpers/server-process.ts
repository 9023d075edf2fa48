/**
 * Starts the real Runnel CLI as a child process on a free port with its own data dir, the way a
 * user runs it, so integration tests can crash it (SIGKILL) and start it again on the same data.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { THREAD_POOL_SIZE } from "../../src/core/thread-pool.js";

export const ADMIN_PASSWORD = "admin-password-1";
/**
 * Tests sign up many accounts from one address, far past the production signup and key-creation
 * limits; tests of those limits pass their own RUNNEL_SIGNUP_RATE / RUNNEL_API_KEY_RATE.
 */
export const LOOSE_RATES = { RUNNEL_SIGNUP_RATE: "100000/1s", RUNNEL_API_KEY_RATE: "100000/1s" } as const;
const ROOT = new URL("../..", import.meta.url).pathname;

export interface ServerProcess {
  readonly url: string;
  readonly dataDir: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  /** Its JSON log lines (stdout) so far; empty unless started with `captureStdout`. */
  stdout(): string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export async function tempDataDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "runnel-test-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export async function startServerProcess(
  dataDir: string,
  env: Record<string, string> = {},
  options: { readonly captureStdout?: boolean } = {},
): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bin/runnel.ts"), "start", "--port", "0"], {
    cwd: ROOT,
    env: {
      ...process.env,
      RUNNEL_DATA_DIR: dataDir,
      RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
      RUNNEL_LOG_LEVEL: "warn",
      // What bin/runnel.ts sets itself when run by plain node; under tsx only the environment can
      // (a size given to the tests' own environment wins, as it would for runnel).
      UV_THREADPOOL_SIZE: process.env.UV_THREADPOOL_SIZE ?? String(THREAD_POOL_SIZE),
      ...LOOSE_RATES,
      ...env,
    },
    stdio: ["ignore", options.captureStdout === true ? "pipe" : "ignore", "pipe"],
  });
  let stdout = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const { url, stderr } = await untilListening(child);
  return {
    url,
    dataDir,
    child,
    stderr,
    stdout: () => stdout,
    kill: async (signal: NodeJS.Signals = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      // A graceful stop that hangs must not hang the suite: SIGKILL after 15 s (the test's own
      // assertions have already run; a hung shutdown is reported on stderr for whoever reads the log).
      const timer = setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) {
          process.stderr.write(`server ${signal} did not exit within 15 s; sending SIGKILL\n`);
          child.kill("SIGKILL");
        }
      }, 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Resolves with the URL a starting `runnel start` says it listens on (its stderr line), and a
 * reader of everything it wrote to stderr; rejects if it exits first or takes over 60 s.
 */
export async function untilListening(child: ChildProcess): Promise<{ url: string; stderr: () => string }> {
  let stderr = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 60 s:\n${stderr}`)), 60_000);
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before listening:\n${stderr}`));
    });
  });
  return { url, stderr: () => stderr };
}
