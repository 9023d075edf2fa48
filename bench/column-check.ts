/**
 * Cost of ingest's column-type check (src/ingest/column-check.ts) per event: events as
 * JSON.parse gives them (8 top-level fields, every column already typed) checked one by one, as
 * the ingestor does, against a loop over the same fields that checks nothing. Prints ns/event.
 *
 * Usage: node --import tsx bench/column-check.ts [--events=1000000]
 */
import { ColumnTypes } from "../src/catalog/columns.js";
import { ColumnCheck, type ColumnSource } from "../src/ingest/column-check.js";
import { quickMode, ratio, writeResults } from "./report.js";

const EVENTS = Number(
  process.argv.find((a) => a.startsWith("--events="))?.split("=")[1] ?? (quickMode() ? 200_000 : 1_000_000),
);

const types = new ColumnTypes([
  { name: "event_type", type: "VARCHAR" },
  { name: "amount", type: "DOUBLE" },
  { name: "count", type: "BIGINT" },
  { name: "currency", type: "VARCHAR" },
  { name: "card_present", type: "BOOLEAN" },
  { name: "timestamp", type: "BIGINT" },
  { name: "meta", type: "JSON" },
]);
const source: ColumnSource = {
  maxColumns: 1000,
  typesOf: () => types,
  refresh: async () => types,
  register: async () => types,
};

const events = Array.from(
  { length: 4096 },
  (_, i) =>
    JSON.parse(
      JSON.stringify({
        user_id: `user-${i % 100}`,
        event_type: "transaction",
        amount: (i % 997) + 0.5,
        count: i,
        currency: "EUR",
        card_present: i % 2 === 0,
        timestamp: 1_700_000_000_000 + i,
        meta: { ip: "10.0.0.1" },
      }),
    ) as Record<string, unknown>,
);

function baseline(): number {
  let n = 0;
  for (let i = 0; i < EVENTS; i++) {
    const fields = events[i & 4095]!;
    for (const name in fields) if (fields[name] !== undefined) n++;
  }
  return n;
}

async function checked(): Promise<number> {
  let check = (await ColumnCheck.begin(source, { name: "transactions" }))!;
  for (let i = 0; i < EVENTS; i++) {
    // One check per request of 4096 events, as the ingestor makes one per batch.
    if ((i & 4095) === 0) check = (await ColumnCheck.begin(source, { name: "transactions" }))!;
    check.check(events[i & 4095]!, i & 4095);
  }
  await check.settle(events);
  return EVENTS;
}

const rounds: { loop: number; check: number }[] = [];
for (let round = 0; round < 3; round++) {
  let t = process.hrtime.bigint();
  baseline();
  const base = Number(process.hrtime.bigint() - t) / EVENTS;
  t = process.hrtime.bigint();
  await checked();
  const withCheck = Number(process.hrtime.bigint() - t) / EVENTS;
  rounds.push({ loop: base, check: withCheck });
  console.log(
    JSON.stringify({ round, loopNsPerEvent: base.toFixed(1), checkNsPerEvent: withCheck.toFixed(1), fields: 8 }),
  );
}
// The last round: the first ones include compiling both loops.
const last = rounds[rounds.length - 1]!;
await writeResults("column-check", {
  comparisons: [
    {
      measure: "ingest column-type check, 8 fields",
      runnel: last.check,
      peer: last.loop,
      peerName: "a loop over the same fields checking nothing",
      ratio: ratio(last.check, last.loop),
      unit: "ns/event",
      outputsEqual: null,
      caveat: `no peer system: the baseline bounds what the check costs beyond visiting the fields; nothing to compare (the check accepts every event); wall ns, ${EVENTS.toLocaleString("en")} events, third round`,
    },
  ],
  events: EVENTS,
  rounds,
});
