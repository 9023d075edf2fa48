/**
 * The traffic anomaly detector on synthetic traffic with an injected clock: a spike is reported
 * once, a drop is reported, noise (Poisson and wider, slow drift, quiet streams) is not.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { AnomalyDetector, type AnomalyEvent } from "../../src/monitoring/anomaly.js";
import { consumerLags } from "../../src/monitoring/index.js";
import { createMetrics } from "../../src/monitoring/metrics.js";
import { OperatorAlertLog, TrafficWatch } from "../../src/monitoring/operator-alerts.js";
import { rng } from "../helpers/rng.js";

const INTERVAL = 10_000;

/** Events in one interval around `mean`: Poisson noise, widened by `extra` (relative). */
function noisy(random: () => number, mean: number, extra = 0): number {
  const gauss = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const sd = Math.sqrt(mean + (extra * mean) ** 2);
  return Math.max(0, Math.round(mean + sd * gauss));
}

/** Feeds per-interval counts of one stream; returns every event the detector reported. */
function run(detector: AnomalyDetector, clock: ManualClock, stream: string, counts: number[]): AnomalyEvent[] {
  const events: AnomalyEvent[] = [];
  let total = 0;
  for (const c of counts) {
    total += c;
    clock.advance(INTERVAL);
    events.push(...detector.sample(clock.now(), new Map([[stream, total]])));
  }
  return events;
}

function series(n: number, f: (i: number) => number): number[] {
  return Array.from({ length: n }, (_, i) => f(i));
}

test("noise is not reported: Poisson and wider noise, slow drift, a quiet stream", () => {
  const random = rng(1);
  const clock = new ManualClock(1_700_000_000_000);
  // Six hours of 10-second intervals per case.
  const cases: Record<string, number[]> = {
    poisson: series(2160, () => noisy(random, 100)),
    wide: series(2160, () => noisy(random, 200, 0.25)),
    drifting: series(2160, (i) => noisy(random, 100 * (1 + 0.5 * Math.sin((2 * Math.PI * i) / 720)), 0.1)),
    quiet: series(2160, () => noisy(random, 0.5)),
  };
  for (const [name, counts] of Object.entries(cases)) {
    const events = run(new AnomalyDetector({ intervalMs: INTERVAL }), clock, name, counts);
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.kind}: ${e.message}`),
      [],
      `${name} traffic raised alerts`,
    );
  }
});

test("a spike is reported once, while it lasts, and resolves when traffic is back to normal", () => {
  const random = rng(2);
  const clock = new ManualClock(0);
  const counts = [
    ...series(60, () => noisy(random, 100, 0.1)),
    ...series(5, () => noisy(random, 1000)),
    ...series(60, () => noisy(random, 100, 0.1)),
  ];
  const events = run(new AnomalyDetector({ intervalMs: INTERVAL }), clock, "clicks", counts);
  assert.deepEqual(
    events.map((e) => [e.type, e.kind, e.subject]),
    [
      ["raised", "spike", "clicks"],
      ["resolved", "spike", "clicks"],
    ],
  );
  const raised = events[0]!;
  assert.ok(raised.value > 50 && raised.baseline < 15, `rates per second: ${raised.value} vs ${raised.baseline}`);
  assert.equal(raised.at, 61 * INTERVAL, "raised on the first interval of the spike");
  assert.ok((raised.score ?? 0) > 4);
});

test("a lasting new level is reported once, then accepted as the new baseline", () => {
  const random = rng(3);
  const clock = new ManualClock(0);
  const counts = [...series(60, () => noisy(random, 100)), ...series(200, () => noisy(random, 400))];
  const detector = new AnomalyDetector({ intervalMs: INTERVAL });
  const events = run(detector, clock, "orders", counts);
  assert.deepEqual(
    events.map((e) => [e.type, e.kind]),
    [
      ["raised", "spike"],
      ["resolved", "spike"],
    ],
  );
  assert.match(events[1]!.message, /new baseline/);
  const learnt = detector.baselines().get("orders")!.ratePerSecond;
  assert.ok(learnt > 35 && learnt < 45, `baseline ${learnt}/s`);
});

test("a drop to zero is reported once and resolves when events return", () => {
  const random = rng(4);
  const clock = new ManualClock(0);
  const counts = [
    ...series(60, () => noisy(random, 50)),
    ...series(30, () => 0),
    ...series(10, () => noisy(random, 50)),
  ];
  const events = run(new AnomalyDetector({ intervalMs: INTERVAL }), clock, "sensors", counts);
  assert.deepEqual(
    events.map((e) => [e.type, e.kind, e.at]),
    [
      ["raised", "drop", 62 * INTERVAL],
      ["resolved", "drop", 91 * INTERVAL],
    ],
  );
  assert.equal(events[0]!.value, 0);
  assert.ok(events[0]!.baseline > 4, "the baseline before the drop is reported");
});

test("sustained lag growth is reported once; lag that rises and falls is not", () => {
  const random = rng(5);
  const detector = new AnomalyDetector({ intervalMs: INTERVAL });
  const events: AnomalyEvent[] = [];
  let at = 0;
  const lagAt = (i: number): Map<string, number> => {
    const healthy = Math.round(200 + 150 * random());
    // Falls behind from interval 30 to 50, then catches up.
    const slow = i < 30 ? Math.round(100 * random()) : i < 50 ? (i - 29) * 400 : Math.max(0, 8000 - (i - 49) * 2000);
    return new Map([
      ["pipeline/healthy", healthy],
      ["pipeline/slow", slow],
    ]);
  };
  for (let i = 0; i < 80; i++) {
    at += INTERVAL;
    events.push(...detector.sample(at, new Map(), lagAt(i)));
  }
  assert.deepEqual(
    events.map((e) => [e.type, e.kind, e.subject]),
    [
      ["raised", "lag_growth", "pipeline/slow"],
      ["resolved", "lag_growth", "pipeline/slow"],
    ],
  );
});

test("a consumer that goes away (deleted or disabled) resolves its open lag alert", () => {
  const detector = new AnomalyDetector({ intervalMs: INTERVAL });
  const events: AnomalyEvent[] = [];
  let at = 0;
  for (let i = 0; i < 10; i++) {
    at += INTERVAL;
    events.push(...detector.sample(at, new Map(), new Map([["pipeline/paused", i * 1000]])));
  }
  at += INTERVAL;
  events.push(...detector.sample(at, new Map(), new Map()));
  assert.deepEqual(
    events.map((e) => [e.type, e.kind, e.subject]),
    [
      ["raised", "lag_growth", "pipeline/paused"],
      ["resolved", "lag_growth", "pipeline/paused"],
    ],
  );
  assert.match(events[1]!.message, /no longer consumes/);
});

test("the watch samples running pipelines and analytics, not disabled pipelines", () => {
  const view = (name: string, enabled: boolean, lag: number) => ({ name, input: "clicks", enabled, stats: { lag } });
  const lags = consumerLags([view("running", true, 5), view("paused", false, 90_000)], new Map([["clicks", 7]]));
  assert.deepEqual(
    [...lags],
    [
      ["pipeline/running", 5],
      ["analytics/clicks", 7],
    ],
  );
});

test("TrafficWatch reads the ingest counter by the injected clock and publishes alerts and metrics", async () => {
  const clock = new ManualClock(1_700_000_000_000);
  const metrics = createMetrics();
  const alerts = new OperatorAlertLog();
  const updates: string[] = [];
  alerts.subscribe((u) => updates.push(`${u.type} ${u.alert.kind} ${u.alert.subject}`));
  const watch = new TrafficWatch({
    detector: new AnomalyDetector({ intervalMs: INTERVAL }),
    alerts,
    metrics,
    clock,
    intervalMs: INTERVAL,
  });
  try {
    const random = rng(6);
    // Two sources of one stream add up; another stream stays steady throughout.
    const tick = async (clicks: number) => {
      metrics.ingestEvents.inc({ stream: "clicks", source: "http" }, Math.floor(clicks / 2));
      metrics.ingestEvents.inc({ stream: "clicks", source: "mqtt" }, Math.ceil(clicks / 2));
      metrics.ingestEvents.inc({ stream: "steady", source: "http" }, noisy(random, 80));
      clock.advance(INTERVAL);
      await watch.tick();
    };
    for (let i = 0; i < 40; i++) await tick(noisy(random, 100));
    for (let i = 0; i < 3; i++) await tick(2000);
    assert.deepEqual(updates, ["raised spike clicks"]);

    const [active] = alerts.list({ active: true });
    assert.equal(active?.severity, "warning");
    assert.equal(active?.raisedAt, new Date(clock.now() - 2 * INTERVAL).toISOString());

    const text = await metrics.registry.metrics();
    assert.match(text, /runnel_operator_alerts_total\{kind="spike"\} 1/);
    assert.match(text, /runnel_operator_alerts_active\{kind="spike",subject="clicks"\} 1/);
    assert.match(text, /runnel_ingest_baseline_events_per_second\{stream="steady"\} [0-9.]+/);

    for (let i = 0; i < 5; i++) await tick(noisy(random, 100));
    assert.deepEqual(updates, ["raised spike clicks", "resolved spike clicks"]);
    assert.equal(alerts.list({ active: true }).length, 0);
    assert.match(await metrics.registry.metrics(), /runnel_operator_alerts_total\{kind="spike"\} 1\n/);
  } finally {
    watch.stop();
  }
});
