/**
 * Committed consumer positions of one stream, one small JSON file per group, replaced atomically
 * and durably. Commits of one group are serialised so a slow earlier rename cannot overwrite a
 * later commit.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeFileDurable } from "../../core/durable-file.js";
import { RunnelError } from "../../core/errors.js";
import { KeyedSerialQueue } from "../../core/serial-queue.js";
import { encodeName } from "./fs-util.js";

export class ConsumerOffsets {
  private readonly cache = new Map<string, Map<number, number>>();
  private readonly commits = new KeyedSerialQueue<string>();

  constructor(private readonly dir: string) {}

  /** Merges `offsets` into the group's committed positions (partitions not named keep theirs). */
  commit(group: string, offsets: ReadonlyMap<number, number>): Promise<void> {
    return this.commits.run(group, async () => {
      const merged = new Map(await this.load(group));
      for (const [p, o] of offsets) merged.set(p, o);
      const json = JSON.stringify({ group, offsets: Object.fromEntries([...merged].sort((a, b) => a[0] - b[0])) });
      await mkdir(this.dir, { recursive: true });
      await writeFileDurable(join(this.dir, `${encodeName(group)}.json`), json);
      this.cache.set(group, merged);
    });
  }

  async get(group: string): Promise<Map<number, number>> {
    await this.commits.idle(group);
    return new Map(await this.load(group));
  }

  private async load(group: string): Promise<Map<number, number>> {
    const cached = this.cache.get(group);
    if (cached !== undefined) return cached;
    const path = join(this.dir, `${encodeName(group)}.json`);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return new Map();
      throw e;
    }
    let parsed: { offsets?: Record<string, number> };
    try {
      parsed = JSON.parse(text) as { offsets?: Record<string, number> };
    } catch (e) {
      throw new RunnelError("storage_corrupt", `consumer offsets file ${path} is not valid JSON`, { cause: e });
    }
    const map = new Map<number, number>();
    for (const [p, o] of Object.entries(parsed.offsets ?? {})) map.set(Number(p), o);
    this.cache.set(group, map);
    return map;
  }
}
