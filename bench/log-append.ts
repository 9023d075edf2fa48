/**
 * The event log benchmark of issue 3: append throughput and acknowledgement latency for batches of
 * 1, 100 and 1000 events of ~100 bytes, plus single-event appends paced at 1,000 requests/s, for
 * the local log and (when a broker is reachable) Runnel's Kafka backend (src/log/kafka: Runnel's
 * transactional TypeScript client on the broker, labelled "runnel-kafka"; it measures that backend,
 * not Kafka, whose own producer bench/log-kafka.ts runs) in the same run. Each case runs
 * several times and the medians are reported (2 shared, noisy cores). Prints a table and writes
 * bench/results/log.json with the machine's description.
 *
 * Usage: node --import tsx bench/log-append.ts [--seconds=2] [--runs=3] [--paced-seconds=5]
 *                                              [--dir=<os tmp>] [--kafka=auto|off]
 * Kafka: RUNNEL_TEST_KAFKA_BROKERS, else `bash scripts/kafka.sh` (which reuses a running broker),
 * used only when src/log/kafka exports createKafkaEventLog; otherwise the Kafka rows are skipped
 * and say why.
 *
 * Throughput cases are closed loops: `concurrency` appenders each keep one append in flight, as
 * many ingestion requests would; for the local log they also report the segment bytes on disk
 * per record (B/record: frames, keys and values). Latency is from the call to append() to its resolution. The
 * paced case is an open loop: latency is measured from each request's scheduled time, so a stall
 * shows up in every request it delays (no coordinated omission).
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, open, rm } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { LocalEventLog } from "../src/log/local/index.js";
import type { AppendRecord, EventLog } from "../src/log/types.js";
import { events, POOL } from "./lib/page-view-events.js";
import { type Comparison, quickMode, ratio, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k!, v ?? "true"] as const;
  }),
);
const seconds = Number(args.get("seconds") ?? (quickMode() ? 1 : 2));
const runs = Number(args.get("runs") ?? (quickMode() ? 1 : 3));
const pacedSeconds = Number(args.get("paced-seconds") ?? (quickMode() ? 2 : 5));
const baseDir = args.get("dir") ?? os.tmpdir();
const kafkaMode = args.get("kafka") ?? "auto";
const PACED_RATE = 1000;
const TARGET_EVENTS_PER_S = 1_000_000;
const TARGET_PACED_P99_MS = 5;

interface Case {
  readonly name: string;
  readonly batch: number;
  readonly concurrency: number;
}

const CASES: readonly Case[] = [
  { name: "batch 1", batch: 1, concurrency: 64 },
  { name: "batch 100", batch: 100, concurrency: 16 },
  { name: "batch 1000", batch: 1000, concurrency: 8 },
];

interface RunResult {
  readonly eventsPerS: number;
  readonly appendsPerS: number;
  /** From the call to append() to its resolution. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Paced runs: from each request's scheduled time, so the pacer's timer lateness counts too. */
  readonly p99FromScheduleMs?: number;
  /**
   * Events per second of this process's CPU time (all threads, user + system): what one core
   * sustains, and much steadier than wall-clock throughput on a shared machine.
   */
  readonly eventsPerCpuS?: number;
  /** Segment bytes on disk per record appended (local log: frames, keys and values included). */
  readonly bytesPerRecord?: number;
}

interface Setup {
  readonly log: EventLog;
  readonly cleanup: () => Promise<void>;
  /** Bytes the stream takes on disk, where the backend can tell. */
  readonly bytesOnDisk?: () => number;
}

interface Backend {
  /** "runnel-kafka": Runnel's Kafka backend (src/log/kafka, a TypeScript client), not Kafka's own producer. */
  readonly name: "local" | "runnel-kafka";
  /** Opens a log with one 4-partition stream named `stream`; returns it and its cleanup. */
  setup(stream: string): Promise<Setup>;
}

const eventBytes = events.reduce((a, e) => a + e.value.length, 0) / POOL;

function batchesOf(size: number): AppendRecord[][] {
  const out: AppendRecord[][] = [];
  for (let i = 0; i + size <= POOL; i += size) out.push(events.slice(i, i + size));
  return out;
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function throughputRun({ log, bytesOnDisk }: Setup, stream: string, c: Case): Promise<RunResult> {
  const batches = batchesOf(c.batch);
  // Warm-up, so the first run does not pay for JIT and file creation.
  await Promise.all(Array.from({ length: c.concurrency }, (_, w) => log.append(stream, batches[w % batches.length]!)));
  const latencies: number[] = [];
  let appends = 0;
  let next = 0;
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  const deadline = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: c.concurrency }, async () => {
      while (performance.now() < deadline) {
        const batch = batches[next++ % batches.length]!;
        const t0 = performance.now();
        await log.append(stream, batch);
        latencies.push(performance.now() - t0);
        appends++;
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpuStart);
  const sorted = Float64Array.from(latencies).sort();
  // The warm-up's appends are on disk too.
  const written = (appends + c.concurrency) * c.batch;
  return {
    ...(bytesOnDisk !== undefined && { bytesPerRecord: bytesOnDisk() / written }),
    eventsPerCpuS: (appends * c.batch) / ((cpu.user + cpu.system) / 1e6),
    eventsPerS: (appends * c.batch) / elapsed,
    appendsPerS: appends / elapsed,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
  };
}

async function pacedRun(log: EventLog, stream: string): Promise<RunResult> {
  const total = Math.round(pacedSeconds * PACED_RATE);
  const fromCall = new Float64Array(total);
  const fromSchedule = new Float64Array(total);
  const inFlight: Promise<unknown>[] = [];
  const start = performance.now() + 10;
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    const due = Math.min(total, Math.floor(((now - start) * PACED_RATE) / 1000) + 1);
    for (; sent < due; sent++) {
      const i = sent;
      const scheduled = start + (i * 1000) / PACED_RATE;
      const called = performance.now();
      inFlight.push(
        log.append(stream, [events[i % POOL]!]).then(() => {
          const t = performance.now();
          fromCall[i] = t - called;
          fromSchedule[i] = t - scheduled;
        }),
      );
    }
    const wait = start + (sent * 1000) / PACED_RATE - performance.now();
    await new Promise((r) => setTimeout(r, Math.max(0, wait)));
  }
  await Promise.all(inFlight);
  const elapsed = (performance.now() - start) / 1000;
  const sorted = fromCall.sort();
  const scheduledSorted = fromSchedule.sort();
  return {
    eventsPerS: total / elapsed,
    appendsPerS: total / elapsed,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    p99FromScheduleMs: percentile(scheduledSorted, 0.99),
  };
}

/**
 * What the disk itself allows: one 150-byte write and fdatasync per millisecond, no log. The
 * paced case cannot beat this floor's p99, so both are reported side by side.
 */
async function diskFloorRun(): Promise<RunResult> {
  const dir = await mkdtemp(join(baseDir, "runnel-bench-floor-"));
  const handle = await open(join(dir, "floor"), "w+");
  const buf = Buffer.alloc(150, 7);
  const total = Math.round(pacedSeconds * PACED_RATE);
  const latencies = new Float64Array(total);
  const start = performance.now();
  try {
    for (let i = 0; i < total; i++) {
      const t0 = performance.now();
      await handle.write(buf, 0, buf.length, i * buf.length);
      await handle.datasync();
      latencies[i] = performance.now() - t0;
      const wait = start + ((i + 1) * 1000) / PACED_RATE - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  } finally {
    await handle.close();
    await rm(dir, { recursive: true, force: true });
  }
  const elapsed = (performance.now() - start) / 1000;
  const sorted = latencies.sort();
  return {
    eventsPerS: total / elapsed,
    appendsPerS: total / elapsed,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
  };
}

const localBackend: Backend = {
  name: "local",
  async setup(stream) {
    const dir = await mkdtemp(join(baseDir, "runnel-bench-log-"));
    const log = new LocalEventLog({ dir });
    await log.open();
    await log.createStream(stream, { partitions: 4 });
    return {
      log,
      cleanup: async () => {
        await log.close();
        await rm(dir, { recursive: true, force: true });
      },
      bytesOnDisk: () => log.streamSizes().get(stream) ?? 0,
    };
  },
};

/** The Kafka backend, or why there is none. Switches itself on once src/log/kafka is in place. */
async function kafkaBackend(): Promise<Backend | string> {
  if (kafkaMode === "off") return "switched off with --kafka=off";
  let factory: unknown;
  try {
    const mod: Record<string, unknown> = await import("../src/log/kafka/index.js");
    factory = mod.createKafkaEventLog;
  } catch (e) {
    return `src/log/kafka is not importable (${(e as Error).message.split("\n")[0]})`;
  }
  if (typeof factory !== "function") return "src/log/kafka does not export createKafkaEventLog yet";
  let brokers = process.env.RUNNEL_TEST_KAFKA_BROKERS ?? "";
  if (brokers === "") {
    try {
      brokers = execFileSync("bash", ["scripts/kafka.sh"], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim();
    } catch {
      return "no broker: RUNNEL_TEST_KAFKA_BROKERS is unset and scripts/kafka.sh failed";
    }
  }
  const create = factory as (options: { brokers: string[]; topicPrefix: string }) => EventLog;
  const list = brokers.split(",").filter((b) => b !== "");
  return {
    name: "runnel-kafka",
    async setup(stream) {
      const log = create({ brokers: list, topicPrefix: `runnel-bench-${process.pid}-` });
      await log.open();
      await log.createStream(stream, { partitions: 4 });
      return {
        log,
        cleanup: async () => {
          await log.deleteStream(stream).catch(() => {});
          await log.close();
        },
      };
    },
  };
}

interface CaseResult {
  readonly backend: string;
  readonly case: string;
  readonly batch: number;
  readonly concurrency: number | "paced";
  readonly runs: RunResult[];
  readonly median: RunResult;
}

function medianOf(results: RunResult[]): RunResult {
  const scheduled = results.flatMap((r) => (r.p99FromScheduleMs === undefined ? [] : [r.p99FromScheduleMs]));
  const perCpu = results.flatMap((r) => (r.eventsPerCpuS === undefined ? [] : [r.eventsPerCpuS]));
  const perRecord = results.flatMap((r) => (r.bytesPerRecord === undefined ? [] : [r.bytesPerRecord]));
  return {
    ...(perCpu.length > 0 && { eventsPerCpuS: median(perCpu) }),
    ...(perRecord.length > 0 && { bytesPerRecord: median(perRecord) }),
    eventsPerS: median(results.map((r) => r.eventsPerS)),
    appendsPerS: median(results.map((r) => r.appendsPerS)),
    p50Ms: median(results.map((r) => r.p50Ms)),
    p99Ms: median(results.map((r) => r.p99Ms)),
    ...(scheduled.length > 0 && { p99FromScheduleMs: median(scheduled) }),
  };
}

let streamCounter = 0;
async function measure(backend: Backend): Promise<CaseResult[]> {
  const out: CaseResult[] = [];
  // Paced first: deleting the big logs of the throughput cases makes the disk (ext4 with online
  // discard) stall fdatasyncs for a while, which would land in the paced case's tail.
  const all: (Case | "paced")[] = ["paced", ...CASES];
  for (const c of all) {
    const results: RunResult[] = [];
    for (let r = 0; r < runs; r++) {
      // A fresh log per run, so one run's segments and page cache do not favour the next.
      const stream = `bench_${process.pid}_${streamCounter++}`;
      const setup = await backend.setup(stream);
      try {
        results.push(c === "paced" ? await pacedRun(setup.log, stream) : await throughputRun(setup, stream, c));
      } finally {
        await setup.cleanup();
      }
    }
    const row: CaseResult =
      c === "paced"
        ? {
            backend: backend.name,
            case: `paced ${PACED_RATE}/s`,
            batch: 1,
            concurrency: "paced",
            runs: results,
            median: medianOf(results),
          }
        : {
            backend: backend.name,
            case: c.name,
            batch: c.batch,
            concurrency: c.concurrency,
            runs: results,
            median: medianOf(results),
          };
    out.push(row);
    printRow(row);
  }
  return out;
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

function printRow(r: CaseResult): void {
  console.log(
    [
      r.backend.padEnd(12),
      r.case.padEnd(15),
      String(r.concurrency).padStart(7),
      fmt(r.median.eventsPerS).padStart(12),
      fmt(r.median.appendsPerS).padStart(10),
      fmt(r.median.p50Ms, 2).padStart(9),
      fmt(r.median.p99Ms, 2).padStart(9),
      fmt(r.median.eventsPerCpuS ?? Number.NaN).padStart(12),
      fmt(r.median.bytesPerRecord ?? Number.NaN, 1).padStart(8),
      r.median.p99FromScheduleMs === undefined
        ? `  (runs: ${r.runs.map((x) => fmt(x.eventsPerS)).join(", ")} events/s)`
        : `  (p99 from schedule ${fmt(r.median.p99FromScheduleMs, 2)} ms; runs' p99: ${r.runs.map((x) => fmt(x.p99Ms, 2)).join(", ")} ms)`,
    ].join(" "),
  );
}

const machine = {
  cpu: os.cpus()[0]?.model ?? "unknown",
  cores: os.availableParallelism(),
  memoryBytes: os.totalmem(),
  os: `${os.type()} ${os.release()} ${os.arch()}`,
  node: process.version,
  date: new Date().toISOString(),
  logDir: baseDir,
};

console.log(
  `event log benchmark: ${machine.cpu}, ${machine.cores} cores, ${fmt(machine.memoryBytes / 2 ** 30, 1)} GiB, Node ${machine.node}`,
);
console.log(
  `events of ~${fmt(eventBytes)} bytes; ${runs} runs per case (${seconds} s each, paced ${pacedSeconds} s); medians`,
);
console.log(
  `${"log".padEnd(12)} ${"case".padEnd(15)} ${"in-flt".padStart(7)} ${"events/s".padStart(12)} ${"appends/s".padStart(10)} ${"p50 ms".padStart(9)} ${"p99 ms".padStart(9)} ${"ev/cpu-s".padStart(12)} ${"B/record".padStart(8)}`,
);

const floorRuns: RunResult[] = [];
for (let r = 0; r < runs; r++) floorRuns.push(await diskFloorRun());
const floor: CaseResult = {
  backend: "disk",
  case: `fdatasync ${PACED_RATE}/s`,
  batch: 1,
  concurrency: "paced",
  runs: floorRuns,
  median: medianOf(floorRuns),
};
printRow(floor);
const results = await measure(localBackend);
const kafka = await kafkaBackend();
let kafkaNote: string | undefined;
if (typeof kafka === "string") {
  kafkaNote = kafka;
  console.log(`kafka: skipped (${kafka})`);
} else {
  try {
    results.push(...(await measure(kafka)));
  } catch (e) {
    kafkaNote = `failed: ${(e as Error).message}`;
    console.log(`kafka: ${kafkaNote}`);
  }
}

const ratios: { case: string; eventsPerS: number; p50: number; p99: number }[] = [];
for (const l of results.filter((r) => r.backend === "local")) {
  const k = results.find((r) => r.backend === "runnel-kafka" && r.case === l.case);
  if (k === undefined) continue;
  ratios.push({
    case: l.case,
    eventsPerS: l.median.eventsPerS / k.median.eventsPerS,
    p50: l.median.p50Ms / k.median.p50Ms,
    p99: l.median.p99Ms / k.median.p99Ms,
  });
}
if (ratios.length > 0) {
  console.log(
    "local / Runnel's Kafka backend (throughput: >1 means local is faster; latency: <1 means local answers sooner; Kafka's own producer: bench/log-kafka.ts)",
  );
  for (const r of ratios) {
    console.log(
      `  ${r.case.padEnd(15)} events/s ×${fmt(r.eventsPerS, 2)}  p50 ×${fmt(r.p50, 2)}  p99 ×${fmt(r.p99, 2)}`,
    );
  }
}

const local1000 = results.find((r) => r.backend === "local" && r.batch === 1000);
const localPaced = results.find((r) => r.backend === "local" && r.concurrency === "paced");
const targets = {
  batch1000EventsPerS: {
    target: TARGET_EVENTS_PER_S,
    measured: local1000?.median.eventsPerS,
    met: (local1000?.median.eventsPerS ?? 0) >= TARGET_EVENTS_PER_S,
    perCpuSecond: local1000?.median.eventsPerCpuS,
    bytesPerRecord: local1000?.median.bytesPerRecord,
  },
  pacedP99Ms: {
    target: TARGET_PACED_P99_MS,
    measured: localPaced?.median.p99Ms,
    met: (localPaced?.median.p99Ms ?? Number.POSITIVE_INFINITY) < TARGET_PACED_P99_MS,
    diskFloorP99Ms: floor.median.p99Ms,
  },
};
console.log(
  `targets: batch-1000 ${fmt(targets.batch1000EventsPerS.measured ?? 0)} events/s (≥ ${fmt(TARGET_EVENTS_PER_S)}: ${targets.batch1000EventsPerS.met ? "met" : "not met"}; ` +
    `${fmt(targets.batch1000EventsPerS.perCpuSecond ?? 0)} per CPU-second, ${fmt(targets.batch1000EventsPerS.bytesPerRecord ?? 0, 1)} bytes per record on disk); ` +
    `paced p99 ${fmt(targets.pacedP99Ms.measured ?? 0, 2)} ms (< ${TARGET_PACED_P99_MS}: ${targets.pacedP99Ms.met ? "met" : "not met"}; ` +
    `the bare disk's write+fdatasync p99 is ${fmt(floor.median.p99Ms, 2)} ms)`,
);

const kafka1000 = results.find((r) => r.backend === "runnel-kafka" && r.batch === 1000);
const comparisons: Comparison[] = [];
if (local1000 !== undefined) {
  const peer = kafka1000?.median.eventsPerS ?? null;
  comparisons.push({
    measure: "log append, batches of 1,000, closed loop",
    runnel: local1000.median.eventsPerS,
    peer,
    peerName: "Runnel's Kafka backend (its TypeScript transactional client) on the test broker",
    ratio: ratio(local1000.median.eventsPerS, peer),
    unit: "events/s",
    outputsEqual: null,
    caveat: `not Kafka's own producer (bench/log-kafka.ts compares that and reads every side back); nothing read back here; ${kafkaNote ?? `medians of ${runs} runs of ${seconds} s`}`,
  });
}
if (localPaced !== undefined) {
  comparisons.push({
    measure: `log append p99, single events paced at ${PACED_RATE}/s`,
    runnel: localPaced.median.p99Ms,
    peer: floor.median.p99Ms,
    peerName: "the bare disk: write + fdatasync of one record",
    ratio: ratio(localPaced.median.p99Ms, floor.median.p99Ms),
    unit: "ms p99",
    outputsEqual: null,
    caveat: `the disk floor bounds what any durable log can do here; target < ${TARGET_PACED_P99_MS} ms; nothing to compare (the floor writes bytes, not events)`,
  });
}
const written = await writeResults("log", {
  comparisons,
  logMachine: machine,
  config: { seconds, runs, pacedSeconds, pacedRate: PACED_RATE, eventBytes: Math.round(eventBytes), partitions: 4 },
  kafka: kafkaNote === undefined ? "measured" : kafkaNote,
  diskFloor: floor,
  results,
  ratios,
  targets,
});
console.log(`wrote ${written}`);
