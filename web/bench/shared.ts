/** Data both bench pages draw: a sliding window of 300 points in 4 series, as the overview's live charts hold. */
export const SERIES = ["a", "b", "c", "d"] as const;
export const POINTS = 300;

export interface BenchWindow extends Window {
  update?: (i: number) => Promise<void>;
}

export function frame(i: number): { times: number[]; values: number[][] } {
  const times: number[] = [];
  const values: number[][] = SERIES.map(() => []);
  for (let k = 0; k < POINTS; k++) {
    const t = 1_700_000_000 + i + k;
    times.push(t);
    for (let s = 0; s < SERIES.length; s++) values[s]!.push(100 + 50 * Math.sin((t + s * 17) / 9) + ((t * 7919) % 13));
  }
  return { times, values };
}
