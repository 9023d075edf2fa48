/** Human units in configuration: durations like `500ms`, `30s`, `5m`, `1h`, `7d`; sizes like `10MiB`. */

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds for a duration string, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * DURATION_MS[m[2]!]!);
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/;
const SIZE_BYTES: Record<string, number> = {
  B: 1,
  KB: 1000,
  KiB: 1024,
  MB: 1_000_000,
  MiB: 1024 * 1024,
  GB: 1_000_000_000,
  GiB: 1024 * 1024 * 1024,
};

/** Bytes for a size string (`10MiB`, `512KB`, `2048`), or undefined when it is not one. */
export function parseSize(text: string): number | undefined {
  const m = SIZE.exec(text.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * SIZE_BYTES[m[2] ?? "B"]!);
}

/** A byte count in the largest binary unit that divides it: `32 MiB`, `1536 KiB`, `100 B`. */
export function formatSize(bytes: number): string {
  for (const [unit, size] of [
    ["GiB", SIZE_BYTES.GiB!],
    ["MiB", SIZE_BYTES.MiB!],
    ["KiB", SIZE_BYTES.KiB!],
  ] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size} ${unit}`;
  }
  return `${bytes} B`;
}
