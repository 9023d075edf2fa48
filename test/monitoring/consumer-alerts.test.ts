/** Operator alerts about consumers: one dead_letter alert per consumer, consumer_failing while it lasts. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { createMetrics } from "../../src/monitoring/metrics.js";
import { ConsumerAlerts, DEAD_LETTER_QUIET_MS, OperatorAlertLog } from "../../src/monitoring/operator-alerts.js";

function setup() {
  const clock = new ManualClock(1_000_000);
  const metrics = createMetrics();
  const log = new OperatorAlertLog();
  return { clock, metrics, log, alerts: new ConsumerAlerts(log, metrics, clock) };
}

const letter = (offset: number) => ({ consumer: "rule/large", stream: "tx", partition: 0, offset, reason: "too deep" });

test("dead letters raise one alert per consumer, counted each, resolved after a quiet period", async () => {
  const { clock, metrics, log, alerts } = setup();
  alerts.deadLettered(letter(1));
  alerts.deadLettered(letter(2));
  const active = log.list({ active: true });
  assert.equal(active.length, 1);
  assert.equal(active[0]?.kind, "dead_letter");
  assert.equal(active[0]?.subject, "rule/large");
  assert.match(active[0]?.message ?? "", /tx record 0\/1 \(too deep\).*tx_dead_letter/);
  const counted = (await metrics.consumerDeadLetters.get()).values;
  assert.deepEqual(
    counted.map((v) => [v.labels, v.value]),
    [[{ consumer: "rule/large", stream: "tx" }, 2]],
  );
  assert.deepEqual(
    alerts.recentDeadLetters().map((d) => [d.consumer, d.count]),
    [["rule/large", 2]],
  );
  clock.advance(DEAD_LETTER_QUIET_MS - 1);
  alerts.sample(new Map());
  assert.equal(log.list({ active: true }).length, 1, "not quiet long enough");
  clock.advance(1);
  alerts.sample(new Map());
  assert.equal(log.list({ active: true }).length, 0);
  assert.deepEqual(alerts.recentDeadLetters(), []);
});

test("a failing consumer raises consumer_failing once and resolves it when it recovers", async () => {
  const { metrics, log, alerts } = setup();
  alerts.sample(new Map([["analytics/tx", "database is locked"]]));
  alerts.sample(new Map([["analytics/tx", "database is locked"]]));
  const active = log.list({ active: true, kind: "consumer_failing" });
  assert.equal(active.length, 1);
  assert.equal(active[0]?.severity, "critical");
  assert.match(active[0]?.message ?? "", /database is locked/);
  assert.equal((await metrics.consumerFailing.get()).values[0]?.value, 1);
  alerts.sample(new Map());
  assert.equal(log.list({ active: true }).length, 0);
  assert.equal(log.list({ kind: "consumer_failing" })[0]?.resolution, "analytics/tx is processing again");
  assert.deepEqual((await metrics.consumerFailing.get()).values, []);
});
