/**
 * One alert per match across SIGKILL: two rules (the seed's, with past_last_event and with
 * no_skip, so partial matches overlap) match over a known input while the server is killed twice
 * in the middle and restarted on the same data; afterwards each rule's alerts are exactly the
 * offline computation's matches, none twice and none missing.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";
import { alertName, BASE_TS, expectedMatches, fraudScenario, MINUTE, seedRule, type Tx, wave } from "./fraud-data.js";

const SEED = 424_242;
const PARTITIONS = 4;
const BATCH = 20;
/** Users whose bursts end the input: one per partition proves that partition was read to the end. */
const SENTINELS = Array.from({ length: 16 }, (_, i) => `zz${String(i).padStart(2, "0")}`);

interface Alert {
  id: string;
  ruleId: string;
  userId: string | null;
  events: Array<Record<string, unknown>>;
}

test("each match yields exactly one alert across SIGKILL and restart", async () => {
  const { events } = fraudScenario(SEED, { users: 120, spanMinutes: 30, keepAfterMatch: true });
  const end = BASE_TS + 31 * MINUTE;
  const sentinels: Tx[] = SENTINELS.flatMap((user) =>
    [0, 1, 2, 3].map((i) => ({
      user_id: user,
      event_type: "transaction" as const,
      amount: 900,
      timestamp: end + i * 1000,
      tx_id: `${user}-${i}`,
    })),
  );
  const sorted = [...events, ...sentinels].sort((a, b) => a.timestamp - b.timestamp);
  // Batches in event-time order; two waves, each followed by a kill.
  const batches: Array<{ events: Tx[]; killAfter?: string }> = [];
  const waveAt = new Set([Math.floor(sorted.length * 0.35), Math.floor(sorted.length * 0.7)]);
  let waves = 0;
  for (let i = 0; i < sorted.length; i += BATCH) {
    const slice = sorted.slice(i, i + BATCH);
    batches.push({ events: slice });
    if ([...waveAt].some((k) => k >= i && k < i + BATCH)) {
      const tag = String(waves++);
      const [opening, closing] = wave(tag, (slice[slice.length - 1] as Tx).timestamp);
      batches.push({ events: opening }, { events: closing, killAfter: `w${tag}-` });
    }
  }
  const input = batches.flatMap((b) => b.events);
  const expectSeed = expectedMatches(input, "past_last_event");
  const expectAll = expectedMatches(input, "no_skip");
  assert.ok(expectAll.length > expectSeed.length, "no_skip keeps overlapping matches");
  assert.ok(expectAll.length < 1000, "one page of alerts holds them");

  const data = await tempDataDir();
  let server: ServerProcess | undefined;
  try {
    server = await startServerProcess(data.dir);
    let admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
    assert.equal((await admin.post("/api/v1/streams", { name: "transactions", partitions: PARTITIONS })).status, 201);
    const alertOnly = [{ type: "alert", severity: "high" }];
    const seed = await admin.post<{ id: string }>("/api/v1/rules", seedRule("seed", { actions: alertOnly }));
    const noSkip = await admin.post<{ id: string }>(
      "/api/v1/rules",
      seedRule("seed-no-skip", { skip: "no_skip", actions: alertOnly }),
    );
    assert.equal(seed.status, 201, JSON.stringify(seed.body));
    assert.equal(noSkip.status, 201, JSON.stringify(noSkip.body));

    // Killed after an acknowledgement (nothing in flight, so the log holds exactly what was
    // acknowledged), as soon as the wave's first alerts show: the rules are mid-way through it.
    for (const batch of batches) {
      const res = await admin.post("/api/v1/streams/transactions/events", batch.events);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const prefix = batch.killAfter;
      if (prefix === undefined) continue;
      for (let i = 0; i < 2000; i++) {
        const seen = await admin.get<{ alerts: Alert[] }>(`/api/v1/alerts?limit=50`);
        if (seen.body.alerts.some((a) => a.userId?.startsWith(prefix))) break;
      }
      await server.kill("SIGKILL");
      server = await startServerProcess(data.dir);
      admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
    }
    // Every partition ends with a sentinel's burst: once all sentinel alerts are stored, each rule
    // has read its whole input (a partition's matches are stored before it reads further).
    const partitions = await admin.queryUntil(
      "SELECT count(DISTINCT _partition) FROM transactions WHERE user_id LIKE 'zz%'",
      (rows) => Number(rows[0]?.[0]) === PARTITIONS,
      20_000,
    );
    assert.equal(Number(partitions.rows[0]?.[0]), PARTITIONS, "the sentinels cover every partition");
    const alertsOf = async (ruleId: string): Promise<string[]> => {
      const res = await admin.get<{ alerts: Alert[] }>(`/api/v1/alerts?rule=${ruleId}&limit=1000`);
      assert.equal(res.status, 200);
      return res.body.alerts.map(alertName).sort();
    };
    for (const [ruleId, expected] of [
      [seed.body.id, expectSeed],
      [noSkip.body.id, expectAll],
    ] as const) {
      let got: string[] = [];
      for (let i = 0; i < 2400; i++) {
        got = await alertsOf(ruleId);
        if (SENTINELS.every((u) => got.some((a) => a.startsWith(`${u}:`)))) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.deepEqual(got, expected);
    }
  } finally {
    await server?.kill();
    await data.remove();
  }
});
