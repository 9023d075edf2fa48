/**
 * How compaction cuts a partition's older rows into files by user range (src/archive/relayout.ts):
 * users in DuckDB's order, cut into consecutive ranges of about equal rows, at most `maxRows`
 * each unless one user alone has more. A user's rows are never split, so the ranges are disjoint
 * and a user's query opens exactly one file of the group.
 */

/** One user's rows in the files being re-laid, in DuckDB's order of user_id (NULL last). */
export interface UserCount {
  /** null: rows without a user (never written by ingest or import; kept all the same). */
  readonly userId: string | null;
  readonly rows: number;
  /** Event time of their earliest and latest row, epoch ms. */
  readonly minTime: number;
  readonly maxTime: number;
}

export interface UserRange {
  readonly minUser: string;
  readonly maxUser: string;
  /** The range also takes the rows without a user (the last one, when there are any). */
  readonly withoutUser: boolean;
  readonly rows: number;
  readonly minTime: number;
  readonly maxTime: number;
}

export function userRanges(users: readonly UserCount[], maxRows: number): UserRange[] {
  const named = users.filter((u) => u.userId !== null);
  const total = users.reduce((n, u) => n + u.rows, 0);
  const target = Math.ceil(total / Math.max(1, Math.ceil(total / maxRows)));
  const out: UserRange[] = [];
  let current: UserCount[] = [];
  let rows = 0;
  const close = () => {
    const first = current[0];
    const last = current.at(-1);
    if (first === undefined || last === undefined) return;
    out.push({
      minUser: first.userId as string,
      maxUser: last.userId as string,
      withoutUser: false,
      rows,
      minTime: Math.min(...current.map((u) => u.minTime)),
      maxTime: Math.max(...current.map((u) => u.maxTime)),
    });
    current = [];
    rows = 0;
  };
  for (const u of named) {
    if (rows > 0 && rows + u.rows > target) close();
    current.push(u);
    rows += u.rows;
  }
  close();
  const unnamed = users.find((u) => u.userId === null);
  const last = out.at(-1);
  if (unnamed !== undefined && last !== undefined) {
    out[out.length - 1] = {
      ...last,
      withoutUser: true,
      rows: last.rows + unnamed.rows,
      minTime: Math.min(last.minTime, unnamed.minTime),
      maxTime: Math.max(last.maxTime, unnamed.maxTime),
    };
  }
  return out;
}
