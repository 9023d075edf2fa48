import { RunnelError } from "../../core/errors.js";

/**
 * Window shapes, as Flink's assigners: tumbling and hopping windows are aligned to the epoch
 * (`start = t - t mod slide`), session windows grow while events keep arriving within `gap`.
 * A window is [start, end); its last instant, `end - 1`, is when it fires and the event time of
 * its result.
 */
export type WindowSpec =
  | { readonly kind: "tumble"; readonly size: number }
  | { readonly kind: "hop"; readonly slide: number; readonly size: number }
  | { readonly kind: "session"; readonly gap: number };

export function tumbling(sizeMs: number): WindowSpec {
  return checkWindow({ kind: "tumble", size: sizeMs });
}

/** Hopping (sliding) windows of `sizeMs`, a new one every `slideMs`: each event is in size/slide windows. */
export function hopping(slideMs: number, sizeMs: number): WindowSpec {
  return checkWindow({ kind: "hop", slide: slideMs, size: sizeMs });
}

export function session(gapMs: number): WindowSpec {
  return checkWindow({ kind: "session", gap: gapMs });
}

const MAX_WINDOWS_PER_EVENT = 1000;

export function checkWindow(w: WindowSpec): WindowSpec {
  const positive = (name: string, v: number): void => {
    if (!Number.isSafeInteger(v) || v <= 0) {
      throw new RunnelError("invalid_input", `window ${name} must be a positive whole number of milliseconds`);
    }
  };
  if (w.kind === "tumble") positive("size", w.size);
  else if (w.kind === "session") positive("gap", w.gap);
  else {
    positive("slide", w.slide);
    positive("size", w.size);
    if (w.slide > w.size) throw new RunnelError("invalid_input", "a hopping window's slide must not exceed its size");
    if (w.size / w.slide > MAX_WINDOWS_PER_EVENT) {
      throw new RunnelError("invalid_input", `a hopping window may overlap at most ${MAX_WINDOWS_PER_EVENT} times`);
    }
  }
  return Object.freeze({ ...w });
}

/** Start of the aligned window of length `size` holding `t` (correct for negative t too). */
export function alignedStart(t: number, size: number): number {
  const r = t % size;
  return r < 0 ? t - r - size : t - r;
}
