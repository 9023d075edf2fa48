/**
 * Compaction by user range: which archive files to re-lay. The archiver writes a partition's
 * files by day, each holding every user who wrote that day, so a user's query over all time
 * would open every file. Once a day is complete (older than the hot window's cutoff), its files
 * and the week's files laid out already are re-laid together as files by user range: parts
 * holding the same offset range, each the rows of its users (one user's rows are never split),
 * so the manifest's user ranges let a user's query open one file per partition and week
 * (docs/storage.md). A week is re-laid at most once per day that completes in it, and a
 * partition keeps one set of parts per week (about one per million rows).
 */
import type { ArchiveFileRecord } from "../control/types.js";
import { isUserPartKey } from "./location.js";

const DAY_MS = 86_400_000;

/** Files of one partition and week to re-lay, in offset order, with the offset range they tile. */
export interface RelayoutGroup {
  readonly partition: number;
  /** The week's Monday, `YYYY-MM-DD` (UTC). */
  readonly week: string;
  readonly files: readonly ArchiveFileRecord[];
  readonly offsetStart: number;
  readonly offsetEnd: number;
}

/** The key of a group's files before userPartFile() numbers them: `<stream>/w<monday>/p<partition>/<start>-<end>.parquet`. */
export function relayoutKey(stream: string, group: RelayoutGroup): string {
  return `${stream}/w${group.week}/p${group.partition}/${group.offsetStart}-${group.offsetEnd}.parquet`;
}

/** The Monday (UTC) of the week holding `day` (`YYYY-MM-DD`). */
export function mondayOf(day: string): string {
  const ms = Date.parse(`${day}T00:00:00Z`);
  const weekday = new Date(ms).getUTCDay();
  return new Date(ms - ((weekday + 6) % 7) * DAY_MS).toISOString().slice(0, 10);
}

/** `w2026-03-02` of a part's key, `2026-03-04` of a day file's: the week either belongs to. */
function weekOf(file: ArchiveFileRecord): string {
  const dir = file.path.split("/")[1] ?? "";
  return isUserPartKey(file.path) ? dir.slice(1) : mondayOf(dir);
}

/**
 * The groups to re-lay now: per partition, runs of offset-consecutive files of one week made of
 * its parts and files of complete days (before the UTC day of `cutoffMs`), holding at least one
 * day file and two files. `files` as the manifest lists them (by partition, then offset).
 */
export function relayoutGroups(files: readonly ArchiveFileRecord[], cutoffMs: number): RelayoutGroup[] {
  const today = new Date(cutoffMs).toISOString().slice(0, 10);
  const groups: RelayoutGroup[] = [];
  let run: ArchiveFileRecord[] = [];
  let week = "";
  const flush = () => {
    const first = run[0];
    const last = run.at(-1);
    if (first !== undefined && last !== undefined && run.length >= 2 && run.some((f) => !isUserPartKey(f.path))) {
      groups.push({
        partition: first.partition,
        week,
        files: run,
        offsetStart: first.offsetStart,
        offsetEnd: last.offsetEnd,
      });
    }
    run = [];
  };
  for (const f of files) {
    const part = isUserPartKey(f.path);
    const eligible = part || (f.path.split("/")[1] ?? "") < today;
    if (!eligible) {
      flush();
      continue;
    }
    const prev = run.at(-1);
    const follows =
      prev !== undefined &&
      prev.partition === f.partition &&
      weekOf(f) === week &&
      // The next range, or another part of the same one.
      (prev.offsetEnd === f.offsetStart || (prev.offsetStart === f.offsetStart && part));
    if (!follows) flush();
    if (run.length === 0) week = weekOf(f);
    run.push(f);
  }
  flush();
  return groups;
}
