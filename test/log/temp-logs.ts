/**
 * Temporary data dirs and opened local logs for one describe block, closed and removed after it.
 * Call inside `describe`, so the cleanup belongs to that suite.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import { LocalEventLog, type LocalEventLogOptions } from "../../src/log/local/index.js";

export function tempLogs(prefix: string): {
  tempDir(): Promise<string>;
  openLog(options: LocalEventLogOptions): Promise<LocalEventLog>;
} {
  const dirs: string[] = [];
  const logs: LocalEventLog[] = [];
  after(async () => {
    for (const l of logs) await l.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  return {
    async tempDir() {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      dirs.push(dir);
      return dir;
    },
    async openLog(options) {
      const log = new LocalEventLog(options);
      await log.open();
      logs.push(log);
      return log;
    },
  };
}
