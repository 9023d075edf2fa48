/**
 * Polls GET /api/v1/stats once a second while any page listens, and keeps the last readings, so
 * the overview and the streams page share one poll and keep their history across navigation.
 */
import { useEffect, useState } from "preact/hooks";
import { ApiError, get } from "./api";
import type { Stats } from "./types";

const PERIOD_MS = 1000;
const KEEP = 180;

const readings: Stats[] = [];
const listeners = new Set<() => void>();
let timer: ReturnType<typeof setInterval> | undefined;
let lastError: unknown;
let inflight = false;

async function poll(): Promise<void> {
  if (inflight) return;
  inflight = true;
  try {
    readings.push(await get<Stats>("/stats"));
    if (readings.length > KEEP) readings.shift();
    lastError = undefined;
  } catch (e) {
    lastError = e;
    // Forbidden or missing: polling again will not change it.
    if (e instanceof ApiError && (e.status === 403 || e.unavailable)) stop();
  } finally {
    inflight = false;
  }
  for (const l of listeners) l();
}

function stop(): void {
  if (timer !== undefined) clearInterval(timer);
  timer = undefined;
}

export function useStats(): { readings: readonly Stats[]; error: unknown; version: number } {
  const [version, setVersion] = useState(0);
  useEffect(() => {
    const listener = () => setVersion((v) => v + 1);
    listeners.add(listener);
    if (timer === undefined) {
      void poll();
      timer = setInterval(() => void poll(), PERIOD_MS);
    }
    return () => {
      listeners.delete(listener);
      if (listeners.size === 0) stop();
    };
  }, []);
  return { readings, error: lastError, version };
}

/** Forget readings (a new session must not see the previous one's numbers). */
export function resetStats(): void {
  readings.length = 0;
  lastError = undefined;
  stop();
}
