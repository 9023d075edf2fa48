import { spawn } from "node:child_process";

/**
 * Runs a TypeScript script in a child process (stdout dropped, stderr shown) and resolves with the
 * signal that ended it, or its exit code: the crash tests' children kill themselves at a chosen
 * step, and the test checks they did (`"SIGKILL"`) before looking at what they left behind.
 */
export function runKilledChild(
  script: string,
  args: readonly string[],
  env: Readonly<Record<string, string>> = {},
): Promise<NodeJS.Signals | number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", script, ...args], {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, ...env },
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve(signal ?? code));
  });
}
