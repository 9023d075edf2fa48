/**
 * Unusual traffic, for operators: per-stream ingest spikes and drops to zero, and consumers whose
 * lag keeps growing. Pure and clock-free: the caller samples cumulative counts at a fixed
 * interval and hands them in with the time, so tests drive it with synthetic traffic.
 *
 * The model, and why:
 * - Per stream, the events counted in each interval are compared with an exponentially weighted
 *   mean and variance of earlier intervals (Finch, "Incremental calculation of weighted mean and
 *   variance", 2009). An EWMA adapts to slow drift without storing history and needs no
 *   seasonality model, which a process without days of data could not fit anyway.
 * - The z-score's standard deviation is floored at sqrt(mean): event counts are roughly Poisson,
 *   so even a perfectly steady stream has that much noise, and a flat baseline (variance ~0)
 *   would otherwise make every small wobble infinitely surprising.
 * - The threshold is z > 5 rather than the textbook 3: the variance is itself estimated from ~20
 *   intervals and wobbles by about a third, and each stream is tested 8,640 times a day.
 * - A spike needs z above the threshold AND at least `spikeRatio` times the baseline AND
 *   `minSpikeEvents` events: the z-score alone fires on tiny streams (0 → 3 events), the ratio
 *   alone fires on noise. It is raised once; it resolves after `clearIntervals` normal intervals.
 *   Anomalous intervals are not learnt, so a spike is measured against the level before it; if
 *   the new level lasts `relearnIntervals`, it is accepted as the new normal and the alert resolves.
 * - A drop is a run of empty intervals that Poisson traffic at the baseline rate λ (events per
 *   interval) would produce with probability below `dropSurprise`: P(k empty) = e^(-λk), so
 *   k = ceil(-ln(dropSurprise) / λ), at least `dropIntervals`. A busy stream (λ = 50) is reported
 *   after 2 silent intervals, one with λ = 2 after 9; below `dropMinEvents` per interval a silence
 *   says nothing and is never reported. Bursty traffic is emptier than Poisson, so the chance of
 *   an empty interval is the larger of e^(-λ) and the normal tail P(X < 0.5) under the learnt
 *   variance. It resolves when events return.
 * - Lag growth: a consumer's lag rose in each of `lagIntervals` consecutive samples, by at least
 *   `lagMinGrowth` records in all. A consumer that keeps up has lag that rises and falls around a
 *   level; one that cannot keep up grows monotonically. It resolves once the lag is back to where
 *   the growth began (or zero).
 */

/**
 * The detector's kinds (spike, drop, lag_growth) and the consumers' (src/monitoring/operator-alerts.ts):
 * `dead_letter`, a consumer moved a record it could never process to the dead-letter stream;
 * `consumer_failing`, a consumer's rounds keep failing (storage or network away).
 */
export type OperatorAlertKind = "spike" | "drop" | "lag_growth" | "dead_letter" | "consumer_failing";

export interface AnomalyOptions {
  /** Sampling interval the caller uses; counts are normalised to it. Default 10 s. */
  readonly intervalMs: number;
  /** EWMA weight of the newest interval; 0.05 ≈ the last 20 intervals. */
  readonly alpha: number;
  /** Intervals learnt before any alert, so a new stream's first bursts are not spikes. */
  readonly warmupIntervals: number;
  readonly zThreshold: number;
  readonly spikeRatio: number;
  readonly minSpikeEvents: number;
  readonly dropMinEvents: number;
  /** Fewest empty intervals that make a drop; slower streams need more (see dropSurprise). */
  readonly dropIntervals: number;
  /** How improbable the silence must be under Poisson traffic at the baseline rate. */
  readonly dropSurprise: number;
  readonly clearIntervals: number;
  readonly relearnIntervals: number;
  readonly lagIntervals: number;
  readonly lagMinGrowth: number;
}

export const DEFAULT_ANOMALY_OPTIONS: AnomalyOptions = {
  intervalMs: 10_000,
  alpha: 0.05,
  warmupIntervals: 6,
  zThreshold: 5,
  spikeRatio: 2,
  minSpikeEvents: 20,
  dropMinEvents: 1,
  dropIntervals: 2,
  dropSurprise: 1e-7,
  clearIntervals: 3,
  relearnIntervals: 30,
  lagIntervals: 6,
  lagMinGrowth: 1000,
};

/** A change of state the detector reports: an alert raised, or one resolved. */
export interface AnomalyEvent {
  readonly type: "raised" | "resolved";
  readonly kind: OperatorAlertKind;
  /** The stream (spike, drop) or consumer (lag_growth) concerned. */
  readonly subject: string;
  /** Events per second (spike, drop) or records of lag (lag_growth) when it happened. */
  readonly value: number;
  /** The baseline rate per second, or the lag when the growth began. */
  readonly baseline: number;
  /** The z-score, for spikes. */
  readonly score?: number;
  readonly at: number;
  readonly message: string;
}

export interface StreamBaseline {
  readonly ratePerSecond: number;
  readonly score: number;
}

interface StreamState {
  total: number;
  mean: number;
  variance: number;
  samples: number;
  score: number;
  spike: boolean;
  drop: boolean;
  zeroRun: number;
  normalRun: number;
  anomalousRun: number;
}

interface LagState {
  last: number;
  growthRun: number;
  runStart: number;
  active: boolean;
}

export class AnomalyDetector {
  private readonly options: AnomalyOptions;
  private readonly streams = new Map<string, StreamState>();
  private readonly lags = new Map<string, LagState>();
  private lastAt: number | undefined;

  constructor(options: Partial<AnomalyOptions> = {}) {
    this.options = { ...DEFAULT_ANOMALY_OPTIONS, ...options };
  }

  get intervalMs(): number {
    return this.options.intervalMs;
  }

  /**
   * One sampling round. `totals`: cumulative events ingested per stream (a counter's values);
   * `lags`: current lag per consumer, in records. Returns the alerts raised and resolved.
   */
  sample(
    now: number,
    totals: ReadonlyMap<string, number>,
    lags: ReadonlyMap<string, number> = new Map(),
  ): AnomalyEvent[] {
    const events: AnomalyEvent[] = [];
    const elapsed = this.lastAt === undefined ? this.options.intervalMs : now - this.lastAt;
    this.lastAt = now;
    if (elapsed > 0) {
      // Timers drift: scale what arrived to one nominal interval, so a late tick is not a spike.
      const scale = this.options.intervalMs / elapsed;
      for (const [stream, total] of totals) this.sampleStream(stream, total, scale, now, events);
    }
    for (const [consumer, lag] of lags) this.sampleLag(consumer, lag, now, events);
    for (const [consumer, s] of this.lags) {
      if (lags.has(consumer)) continue;
      // Gone (deleted, disabled): an alert about it would otherwise stay open for ever.
      if (s.active)
        events.push(resolved("lag_growth", consumer, s.last, s.runStart, now, `${consumer} no longer consumes`));
      this.lags.delete(consumer);
    }
    return events;
  }

  /** Learnt rate and latest score per stream, for metrics. */
  baselines(): Map<string, StreamBaseline> {
    const perSecond = 1000 / this.options.intervalMs;
    const out = new Map<string, StreamBaseline>();
    for (const [stream, s] of this.streams) out.set(stream, { ratePerSecond: s.mean * perSecond, score: s.score });
    return out;
  }

  /** Forget a stream (deleted), so its alerts do not linger. */
  forget(stream: string): void {
    this.streams.delete(stream);
  }

  private sampleStream(stream: string, total: number, scale: number, now: number, events: AnomalyEvent[]): void {
    const o = this.options;
    const s = this.streams.get(stream);
    if (s === undefined) {
      // The first sight of a stream only sets the starting total: what came before is unknown time.
      this.streams.set(stream, {
        total,
        mean: 0,
        variance: 0,
        samples: 0,
        score: 0,
        spike: false,
        drop: false,
        zeroRun: 0,
        normalRun: 0,
        anomalousRun: 0,
      });
      return;
    }
    // A counter that went down was reset (a restart): count from zero.
    const delta = total >= s.total ? total - s.total : total;
    s.total = total;
    const count = delta * scale;
    const perSecond = 1000 / o.intervalMs;

    if (s.samples < o.warmupIntervals) {
      // A plain running mean while warming up: the EWMA's weight would make the first interval dominate.
      learn(s, count, 1 / (s.samples + 1));
      s.samples++;
      return;
    }

    const sd = Math.max(Math.sqrt(s.variance), Math.sqrt(Math.max(s.mean, 1)));
    const z = (count - s.mean) / sd;
    s.score = z;
    const spikeNow = z > o.zThreshold && count >= s.mean * o.spikeRatio && count >= o.minSpikeEvents;
    const silent = count === 0 && s.mean >= o.dropMinEvents;
    s.zeroRun = silent ? s.zeroRun + 1 : 0;
    const base = s.mean * perSecond;
    const rate = count * perSecond;

    if (spikeNow && !s.spike) {
      s.spike = true;
      events.push({
        type: "raised",
        kind: "spike",
        subject: stream,
        value: rate,
        baseline: base,
        score: z,
        at: now,
        message: `ingest on ${stream} jumped to ${fmt(rate)}/s against a baseline of ${fmt(base)}/s (z = ${fmt(z)})`,
      });
    }
    if (s.spike) {
      s.normalRun = spikeNow ? 0 : s.normalRun + 1;
      if (s.normalRun >= o.clearIntervals) {
        s.spike = false;
        s.normalRun = 0;
        events.push(resolved("spike", stream, rate, base, now, `ingest on ${stream} is back to normal`));
      }
    }
    const dropAfter = Math.max(o.dropIntervals, Math.ceil(Math.log(o.dropSurprise) / Math.log(emptyChance(s))));
    if (s.zeroRun >= dropAfter && !s.drop) {
      s.drop = true;
      events.push({
        type: "raised",
        kind: "drop",
        subject: stream,
        value: 0,
        baseline: base,
        at: now,
        message: `ingest on ${stream} dropped to zero (baseline ${fmt(base)}/s)`,
      });
    }
    if (s.drop && count > 0) {
      s.drop = false;
      events.push(resolved("drop", stream, rate, base, now, `events arrive on ${stream} again`));
    }

    if (!(spikeNow || silent)) {
      s.anomalousRun = 0;
      learn(s, count, o.alpha);
      return;
    }
    // Not learnt: a spike or a silence is judged against the level before it…
    s.anomalousRun++;
    if (spikeNow && s.anomalousRun >= o.relearnIntervals) {
      // …until a higher level has lasted long enough to be the new normal.
      s.mean = count;
      s.variance = count;
      s.anomalousRun = 0;
      if (s.spike) {
        s.spike = false;
        s.normalRun = 0;
        events.push(
          resolved("spike", stream, rate, rate, now, `ingest on ${stream} stayed at ${fmt(rate)}/s: new baseline`),
        );
      }
    }
  }

  private sampleLag(consumer: string, lag: number, now: number, events: AnomalyEvent[]): void {
    const o = this.options;
    const s = this.lags.get(consumer);
    if (s === undefined) {
      this.lags.set(consumer, { last: lag, growthRun: 0, runStart: lag, active: false });
      return;
    }
    if (lag > s.last) {
      if (s.growthRun === 0) s.runStart = s.last;
      s.growthRun++;
    } else if (lag < s.last) {
      s.growthRun = 0;
    }
    s.last = lag;
    if (!s.active && s.growthRun >= o.lagIntervals && lag - s.runStart >= o.lagMinGrowth) {
      s.active = true;
      events.push({
        type: "raised",
        kind: "lag_growth",
        subject: consumer,
        value: lag,
        baseline: s.runStart,
        at: now,
        message: `${consumer} is falling behind: lag grew from ${s.runStart} to ${lag} records over ${s.growthRun} intervals`,
      });
    } else if (s.active && (lag === 0 || lag <= s.runStart)) {
      s.active = false;
      s.growthRun = 0;
      events.push(resolved("lag_growth", consumer, lag, s.runStart, now, `${consumer} caught up (lag ${lag})`));
    }
  }
}

/** Chance that one interval is empty, by the baseline (see the drop rule at the top). */
function emptyChance(s: StreamState): number {
  const poisson = Math.exp(-s.mean);
  const sd = Math.sqrt(Math.max(s.variance, s.mean));
  const normal = sd > 0 ? normalCdf((0.5 - s.mean) / sd) : 0;
  return Math.min(0.999, Math.max(poisson, normal, Number.MIN_VALUE));
}

/** Φ(x) by Abramowitz & Stegun 7.1.26 (error below 1.5e-7, plenty for a threshold). */
function normalCdf(x: number): number {
  const t = 1 / (1 + (0.3275911 * Math.abs(x)) / Math.SQRT2);
  const poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  const erfc = poly * Math.exp(-(x * x) / 2);
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}

/** Finch's incremental update of an exponentially weighted mean and variance. */
function learn(s: StreamState, x: number, alpha: number): void {
  const diff = x - s.mean;
  const increment = alpha * diff;
  s.mean += increment;
  s.variance = (1 - alpha) * (s.variance + diff * increment);
}

function resolved(
  kind: OperatorAlertKind,
  subject: string,
  value: number,
  baseline: number,
  at: number,
  message: string,
): AnomalyEvent {
  return { type: "resolved", kind, subject, value, baseline, at, message };
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}
