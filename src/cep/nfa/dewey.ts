/**
 * Dewey-decimal versions of partial matches (FlinkCEP's DeweyNumber): a run's version grows a stage
 * per taken step and is bumped per branch, so the shared buffer can tell which edges belong to
 * which run. Immutable plain arrays, so they serialise as they are.
 */
export type Dewey = readonly number[];

export function deweyIncrease(d: Dewey, times: number): Dewey {
  // Versions are never mutated, so an unchanged one is shared instead of copied.
  if (times === 0) return d;
  const next = d.slice();
  next[next.length - 1] = (next[next.length - 1] ?? 0) + times;
  return next;
}

export function deweyAddStage(d: Dewey): Dewey {
  const next = d.slice();
  next.push(0);
  return next;
}

/** DeweyNumber.isCompatibleWith: `d` descends from, or is a later sibling of, `other`. */
export function deweyCompatible(d: Dewey, other: Dewey): boolean {
  const n = d.length;
  const m = other.length;
  if (n > m) {
    for (let i = 0; i < m; i++) if (other[i] !== d[i]) return false;
    return true;
  }
  if (n === m) {
    const last = n - 1;
    for (let i = 0; i < last; i++) if (other[i] !== d[i]) return false;
    return (d[last] as number) >= (other[last] as number);
  }
  return false;
}

export function deweyEquals(a: Dewey, b: Dewey): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
