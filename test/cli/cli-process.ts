/** Runs the real `runnel` command line as a child process, the way a user runs it. */
import { type ChildProcess, spawn } from "node:child_process";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  /** stderr, trimmed. */
  readonly stderr: string;
}

export function spawnCli(args: readonly string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", "bin/runnel.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
}

export async function runCli(
  args: readonly string[],
  options: { stdin?: string; env?: Record<string, string> } = {},
): Promise<CliResult> {
  const child = spawnCli(args, options.env);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  child.stdin!.end(options.stdin ?? "");
  const code = await new Promise<number | null>((resolve) => child.once("close", (c) => resolve(c)));
  return { code, stdout, stderr: stderr.trim() };
}
