/**
 * The log against Kafka itself (issue 17): Kafka's own producer perf test (the Java client,
 * org.apache.kafka.tools.ProducerPerformance) against the test broker, next to Runnel's local log
 * and Runnel's Kafka backend appending the same records, in the same run. Rows:
 *
 *   (a) page-cache durability: Kafka's default (the broker acknowledges acks=all from the page
 *       cache) next to the local log, which cannot skip its fdatasync (src/log/local/options.ts has
 *       no such setting), so it is shown as it is: it does more work than the broker here.
 *   (b) both flushing: the topic's flush.messages=1 (the broker fsyncs every produce) next to the
 *       same local log.
 *   (c) all-or-nothing batches: the transactional Java producer next to Runnel's Kafka backend
 *       (src/log/kafka: its own record batches, transactions run by the TypeScript client), both
 *       on page-cache topics.
 *
 * Every Java row: acks=all, enable.idempotence=true, max.in.flight.requests.per.connection=5,
 * batch.size and linger.ms raised as Kafka's throughput guidance says (batch.size 100–200 kB,
 * linger.ms 10–100), no compression (Runnel's sides compress nothing either). The payloads are the
 * ~100-byte JSON events of bench/log-append.ts, given to the tool as its payload file.
 *
 * Reported per row: events/s (medians of --runs), the client's CPU-seconds (the Node process, or
 * the JVM including its start-up) and the broker's (utime+stime of the broker process from
 * /proc/<pid>/stat; the broker is shared with other tests, so run this under the CPU lock).
 * Every run reads back what it wrote (read_committed) and fails unless the counts, the end offsets
 * and the payloads agree: the local log and the Kafka backend must hold exactly the payload
 * multiset they were given (hashed); the Java tool picks payloads from the file at random, so its
 * topic must hold N records that all come from the file, with end offsets summing to N (plus one
 * marker per partition and transaction for the transactional row).
 *
 * Usage: node --import tsx bench/log-kafka.ts [--records=1000000] [--runs=3] [--quick (200k records, 1 run)]
 *   [--java-linger-ms=20] [--java-batch-bytes=131072] [--java-txn-ms=100] [--dir=<os tmp>]
 *   [--only=local,java,java-flush,java-txn,backend] (a subset, for profiling: writes no results)
 *   [--backend-transactions=<the backend's transactionsInFlight>] [--concurrency=8 (Runnel's appends in flight)]
 * Needs RUNNEL_TEST_KAFKA_BROKERS (else scripts/kafka.sh) and the broker's jars in
 * RUNNEL_KAFKA_DIR (default .runnel/kafka). Writes bench/results/log-kafka.json.
 */
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { join, resolve } from "node:path";
import { Admin } from "@platformatic/kafka";
import { createKafkaEventLog } from "../src/log/kafka/index.js";
import { DEFAULT_TRANSACTIONS_IN_FLIGHT } from "../src/log/kafka/options.js";
import { LocalEventLog } from "../src/log/local/index.js";
import type { AppendRecord, EventLog, RecordPosition } from "../src/log/types.js";
import { events, POOL } from "./lib/page-view-events.js";
import { type Comparison, machine, quickMode, ratio, writeResults } from "./report.js";

const args = new Map(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, "").split("=");
    return [k!, v ?? "true"] as const;
  }),
);
/** `--quick`, or `npm run bench -- --quick`: 200k records a run instead of 1 M. */
const quick = args.get("quick") === "true" || quickMode();
const RECORDS = Number(args.get("records") ?? (quick ? 200_000 : 1_000_000));
const RUNS = Number(args.get("runs") ?? (quick ? 1 : 3));
const JAVA_LINGER_MS = Number(args.get("java-linger-ms") ?? 20);
const JAVA_BATCH_BYTES = Number(args.get("java-batch-bytes") ?? 131_072);
const JAVA_TXN_MS = Number(args.get("java-txn-ms") ?? 100);
/** The Kafka backend's transactionsInFlight; its own default when not given. */
const BACKEND_TXNS = args.has("backend-transactions") ? Number(args.get("backend-transactions")) : undefined;
/** Rows to run, by id (local, java, java-flush, java-txn, backend); all by default. */
const ONLY = args.get("only")?.split(",");
const BASE_DIR = args.get("dir") ?? os.tmpdir();
const PARTITIONS = 4;
/** Runnel's sides append as bench/log-append.ts's fastest case: batches of 1,000, 8 in flight by default. */
const BATCH = 1000;
const CONCURRENCY = Number(args.get("concurrency") ?? 8);
const REPO = resolve(import.meta.dirname, "..");
const KAFKA_DIR = process.env.RUNNEL_KAFKA_DIR ?? join(REPO, ".runnel", "kafka");
const CLOCK_TICKS = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());

class BenchCheckError extends Error {
  readonly code = "RUNNEL_BENCH_OUTPUTS_DIFFER";
}

// ---- the records -----------------------------------------------------------------------------

const poolText = events.map((e) => Buffer.from(e.value).toString("utf8"));
const poolIndex = new Map(poolText.map((t, i) => [t, i]));
const eventBytes = events.reduce((a, e) => a + e.value.length, 0) / POOL;

/** Record i of a run is events[i % POOL]: the multiset every Runnel side must hold. */
function expectedCounts(n: number): Uint32Array {
  const counts = new Uint32Array(POOL);
  for (let i = 0; i < n; i++) counts[i % POOL]!++;
  return counts;
}

function hashCounts(counts: Uint32Array): string {
  return createHash("sha256").update(counts).digest("hex").slice(0, 16);
}

// ---- measurements ----------------------------------------------------------------------------

interface RunResult {
  readonly eventsPerS: number;
  readonly seconds: number;
  readonly clientCpuS: number;
  readonly brokerCpuS?: number;
  /**
   * Commit markers written (one per partition a transaction touched): the Java producer's sticky
   * partitioner fills one partition at a time, Runnel's groups touch every partition.
   */
  readonly commitMarkers?: number;
  readonly readBack: ReadBack;
}

interface ReadBack {
  readonly records: number;
  readonly endOffsets: readonly number[];
  /** SHA-256 prefix over the per-payload counts; equal multisets give equal hashes. */
  readonly payloadHash: string;
}

interface Row {
  readonly id: string;
  readonly label: string;
  readonly runs: RunResult[];
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function brokerPid(): number | undefined {
  const port = (process.env.RUNNEL_TEST_KAFKA_BROKERS ?? "127.0.0.1:19092").split(",")[0]!.split(":")[1];
  try {
    const pid = Number(readFileSync(join(KAFKA_DIR, `broker-${port}.pid`), "utf8").trim());
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("kafka.Kafka") ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** CPU-seconds (user + system, all threads) the process has used so far. */
function cpuSecondsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

// ---- the broker side -------------------------------------------------------------------------

function brokers(): string[] {
  let list = process.env.RUNNEL_TEST_KAFKA_BROKERS ?? "";
  if (list === "") {
    list = execFileSync("bash", [join(REPO, "scripts", "kafka.sh")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim();
  }
  return list.split(",").filter((b) => b !== "");
}

const BROKERS = brokers();
const PREFIX = `runnel-benchkafka-${process.pid}-`;
const admin = new Admin({ clientId: "runnel-bench-kafka", bootstrapBrokers: BROKERS });
/** Reads every topic back (read_committed), whoever wrote it. */
const reader = createKafkaEventLog({ brokers: BROKERS, topicPrefix: PREFIX, clientId: "runnel-bench-reader" });
await reader.open();

async function createTopic(stream: string, flushEveryMessage: boolean): Promise<string> {
  const topic = `${PREFIX}${stream}`;
  await admin.createTopics({
    topics: [topic],
    partitions: PARTITIONS,
    replicas: 1,
    configs: flushEveryMessage ? [{ name: "flush.messages", value: "1" }] : [],
  });
  return topic;
}

async function deleteTopic(stream: string): Promise<void> {
  await admin.deleteTopics({ topics: [`${PREFIX}${stream}`] }).catch(() => undefined);
}

function javaClasspath(): string {
  const lib = readdirSync(KAFKA_DIR).find((d) => d.startsWith("lib-") && !d.endsWith(".lock"));
  if (lib === undefined) throw new Error(`no Kafka jars under ${KAFKA_DIR} (run scripts/kafka.sh once)`);
  return `${join(KAFKA_DIR, lib)}/*`;
}

interface JavaOutcome {
  readonly eventsPerS: number;
  readonly seconds: number;
  readonly clientCpuS: number;
}

/**
 * Runs ProducerPerformance to completion. The JVM's CPU-seconds come from bash's `times` (the
 * children's user and system time), so they include its start-up and JIT, as a user would pay.
 */
async function runJavaProducer(topic: string, payloadFile: string, transactional: boolean): Promise<JavaOutcome> {
  const props = [
    `bootstrap.servers=${BROKERS.join(",")}`,
    "acks=all",
    "enable.idempotence=true",
    "max.in.flight.requests.per.connection=5",
    `linger.ms=${JAVA_LINGER_MS}`,
    `batch.size=${JAVA_BATCH_BYTES}`,
    "compression.type=none",
  ];
  const javaArgs = [
    "-Xms512m",
    "-Xmx512m",
    "-cp",
    javaClasspath(),
    "org.apache.kafka.tools.ProducerPerformance",
    "--topic",
    topic,
    "--num-records",
    String(RECORDS),
    "--throughput",
    "-1",
    "--payload-file",
    payloadFile,
    "--producer-props",
    ...props,
    ...(transactional ? ["--transaction-duration-ms", String(JAVA_TXN_MS)] : []),
  ];
  const script = 'java "$@"; rc=$?; times >&2; exit $rc';
  const { stdout, stderr } = await new Promise<{ stdout: string; stderr: string }>((done, fail) => {
    execFile("bash", ["-c", script, "java", ...javaArgs], { maxBuffer: 64 * 1024 * 1024 }, (e, out, err) =>
      e === null ? done({ stdout: out, stderr: err }) : fail(new Error(`ProducerPerformance failed: ${err}`)),
    );
  });
  // "1000000 records sent, 412371.1 records/sec (38.97 MB/sec), ..."
  const total = /(\d+) records sent, ([\d.]+) records\/sec/.exec(stdout.trim().split("\n").at(-1) ?? "");
  if (total === null || Number(total[1]) !== RECORDS) throw new Error(`unexpected tool output: ${stdout.slice(-300)}`);
  // bash's `times`: the shell's own line, then its children's "XmY.YYYs XmY.YYYs".
  const childTimes = stderr.trim().split("\n").at(-1) ?? "";
  const cpu = [...childTimes.matchAll(/(\d+)m([\d.]+)s/g)].reduce((a, m) => a + Number(m[1]) * 60 + Number(m[2]), 0);
  const eventsPerS = Number(total[2]);
  return { eventsPerS, seconds: RECORDS / eventsPerS, clientCpuS: cpu };
}

/**
 * The Java tool chooses each payload at random from the file: its topic must hold exactly N
 * records, each one of the file's lines.
 */
interface ReadBackOffsets extends ReadBack {
  /** The offsets read, per partition in log order. */
  readonly offsets: number[][];
}

async function readBack(stream: string, log: EventLog): Promise<ReadBackOffsets> {
  const counts = new Uint32Array(POOL);
  const offsets = Array.from({ length: PARTITIONS }, () => [] as number[]);
  let records = 0;
  const ends = await log.endOffsets(stream);
  const starts = await log.startOffsets(stream);
  for (let p = 0; p < PARTITIONS; p++) {
    let next = starts[p]!;
    while (next < ends[p]!) {
      const batch = await log.read(stream, p, next, { maxRecords: 10_000 });
      if (batch.length === 0) break;
      for (const r of batch) {
        const i = poolIndex.get(Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength).toString("utf8"));
        if (i === undefined)
          throw new BenchCheckError(`${stream}: partition ${p} offset ${r.offset} holds a foreign payload`);
        counts[i]!++;
        records++;
        offsets[p]!.push(r.offset);
      }
      next = batch[batch.length - 1]!.offset + 1;
    }
  }
  return { records, endOffsets: ends, payloadHash: hashCounts(counts), offsets };
}

function check(condition: boolean, message: string): void {
  if (!condition) throw new BenchCheckError(message);
}

// ---- the rows --------------------------------------------------------------------------------

const expected = expectedCounts(RECORDS);
const expectedHash = hashCounts(expected);

function batches(): AppendRecord[][] {
  const out: AppendRecord[][] = [];
  for (let i = 0; i < RECORDS; i += BATCH) {
    const batch: AppendRecord[] = [];
    for (let j = i; j < Math.min(RECORDS, i + BATCH); j++) batch.push(events[j % POOL]!);
    out.push(batch);
  }
  return out;
}

/** Closed loop: CONCURRENCY appenders, each with one batch in flight, until every batch is in. */
async function appendAll(
  log: EventLog,
  stream: string,
): Promise<{ seconds: number; cpuS: number; positions: RecordPosition[][] }> {
  const all = batches();
  const positions: RecordPosition[][] = new Array(all.length);
  let next = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < all.length; i = next++) positions[i] = await log.append(stream, all[i]!);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { seconds, cpuS: (cpu.user + cpu.system) / 1e6, positions };
}

/**
 * Every acknowledged position holds a record read back and every record read back was acknowledged
 * (the offsets of each partition, in order), and each partition ends past its last record: at it
 * on the dense local log, after one or more commit markers on Kafka.
 */
function checkPositions(side: string, positions: RecordPosition[][], back: ReadBackOffsets, dense: boolean): void {
  const acked = Array.from({ length: PARTITIONS }, () => [] as number[]);
  for (const batch of positions) for (const p of batch) acked[p.partition]!.push(p.offset);
  for (let p = 0; p < PARTITIONS; p++) {
    const want = acked[p]!.sort((x, y) => x - y);
    const got = back.offsets[p]!;
    check(
      want.length === got.length,
      `${side}: partition ${p} acknowledged ${want.length} records, holds ${got.length}`,
    );
    for (let k = 0; k < want.length; k++) {
      check(want[k] === got[k], `${side}: partition ${p} acknowledged offset ${want[k]}, holds ${got[k]} there`);
    }
    const last = want.at(-1) ?? -1;
    const end = back.endOffsets[p]!;
    check(
      dense ? end === last + 1 : end > last + 1,
      `${side}: partition ${p} ends at ${end}, its last record is ${last}`,
    );
  }
}

let streamCounter = 0;
const nextStream = (what: string) => `${what}_${streamCounter++}`;

async function localRun(): Promise<RunResult> {
  const dir = await mkdtemp(join(BASE_DIR, "runnel-bench-logkafka-"));
  const log = new LocalEventLog({ dir });
  await log.open();
  const stream = nextStream("local");
  try {
    await log.createStream(stream, { partitions: PARTITIONS });
    const { seconds, cpuS, positions } = await appendAll(log, stream);
    const back = await readBack(stream, log);
    check(back.records === RECORDS, `local log: read back ${back.records} of ${RECORDS}`);
    check(back.payloadHash === expectedHash, "local log: the payloads read back differ from those appended");
    checkPositions("local log", positions, back, true);
    return {
      eventsPerS: RECORDS / seconds,
      seconds,
      clientCpuS: cpuS,
      readBack: strip(back),
    };
  } finally {
    await log.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function kafkaBackendRun(): Promise<RunResult> {
  const stream = nextStream("backend");
  const log = createKafkaEventLog({
    brokers: BROKERS,
    topicPrefix: PREFIX,
    clientId: "runnel-bench-backend",
    ...(BACKEND_TXNS !== undefined && { transactionsInFlight: BACKEND_TXNS }),
  });
  await log.open();
  try {
    await log.createStream(stream, { partitions: PARTITIONS });
    // Warm the producer (connection, transactional id) outside the timed loop, as the JVM's
    // start-up is outside the tool's figure; the warm-up record stays and is counted below.
    const warmUp = await log.append(stream, [events[0]!]);
    const pid = brokerPid();
    const broker0 = pid === undefined ? 0 : cpuSecondsOf(pid);
    const { seconds, cpuS, positions } = await appendAll(log, stream);
    const brokerCpuS = pid === undefined ? undefined : cpuSecondsOf(pid) - broker0;
    const back = await readBack(stream, reader);
    const counts = expectedCounts(RECORDS);
    counts[0]!++;
    check(back.records === RECORDS + 1, `Kafka backend: read back ${back.records} of ${RECORDS + 1}`);
    check(back.payloadHash === hashCounts(counts), "Kafka backend: the payloads read back differ from those appended");
    checkPositions("Kafka backend", [warmUp, ...positions], back, false);
    const markers = back.endOffsets.reduce((a, b) => a + b, 0) - back.records;
    return {
      eventsPerS: RECORDS / seconds,
      seconds,
      clientCpuS: cpuS,
      ...(brokerCpuS !== undefined && { brokerCpuS }),
      // Less the warm-up's, in its one partition.
      commitMarkers: markers - 1,
      readBack: strip(back),
    };
  } finally {
    await log.deleteStream(stream).catch(() => undefined);
    await log.close();
  }
}

async function javaRun(payloadFile: string, flushEveryMessage: boolean, transactional: boolean): Promise<RunResult> {
  const stream = nextStream(transactional ? "java_txn" : flushEveryMessage ? "java_flush" : "java");
  const topic = await createTopic(stream, flushEveryMessage);
  try {
    const pid = brokerPid();
    const broker0 = pid === undefined ? 0 : cpuSecondsOf(pid);
    const outcome = await runJavaProducer(topic, payloadFile, transactional);
    const brokerCpuS = pid === undefined ? undefined : cpuSecondsOf(pid) - broker0;
    await reader.refresh();
    const back = await readBack(stream, reader);
    check(back.records === RECORDS, `Java producer: read back ${back.records} of ${RECORDS}`);
    const sumEnds = back.endOffsets.reduce((a, b) => a + b, 0);
    const markers = sumEnds - RECORDS;
    check(
      transactional ? markers > 0 : markers === 0,
      `Java producer: end offsets sum to ${sumEnds} for ${RECORDS} records`,
    );
    return {
      ...outcome,
      ...(brokerCpuS !== undefined && { brokerCpuS }),
      ...(transactional && { commitMarkers: markers }),
      readBack: strip(back),
    };
  } finally {
    await deleteTopic(stream);
  }
}

function strip(back: ReadBack): ReadBack {
  return { records: back.records, endOffsets: back.endOffsets, payloadHash: back.payloadHash };
}

// ---- the run ---------------------------------------------------------------------------------

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

const host = machine();

console.log(
  `log vs Kafka: ${host.cpu}, ${host.cores} cores, Node ${host.node}, ${host.java ?? "no Java"}; ${fmt(RECORDS)} records of ~${fmt(eventBytes)} bytes, ${PARTITIONS} partitions, ${RUNS} runs per row, medians`,
);
console.log(
  `Java: acks=all, idempotence, max.in.flight 5, linger.ms ${JAVA_LINGER_MS}, batch.size ${JAVA_BATCH_BYTES}, transactions every ${JAVA_TXN_MS} ms in (c); Runnel: batches of ${BATCH}, ${CONCURRENCY} in flight`,
);
console.log(
  `${"row".padEnd(52)} ${"events/s".padStart(10)} ${"client cpu-s".padStart(12)} ${"broker cpu-s".padStart(12)} ${"markers".padStart(7)}`,
);

const tmp = await mkdtemp(join(BASE_DIR, "runnel-bench-payloads-"));
const payloadFile = join(tmp, "payloads.txt");
await writeFile(payloadFile, poolText.join("\n"));

const plan: { id: string; label: string; run: () => Promise<RunResult> }[] = [
  { id: "local", label: "Runnel local log (fdatasync per group commit)", run: localRun },
  { id: "java", label: "(a) Kafka Java producer, page cache", run: () => javaRun(payloadFile, false, false) },
  {
    id: "java-flush",
    label: "(b) Kafka Java producer, flush.messages=1",
    run: () => javaRun(payloadFile, true, false),
  },
  {
    id: "java-txn",
    label: `(c) Kafka Java producer, transactional (${JAVA_TXN_MS} ms)`,
    run: () => javaRun(payloadFile, false, true),
  },
  { id: "backend", label: "(c) Runnel's Kafka backend (own batches, transactions)", run: kafkaBackendRun },
];

const rows: Row[] = [];
try {
  for (const p of plan) {
    if (ONLY !== undefined && !ONLY.includes(p.id)) continue;
    const runs: RunResult[] = [];
    for (let r = 0; r < RUNS; r++) runs.push(await p.run());
    const row = { id: p.id, label: p.label, runs };
    rows.push(row);
    const m = (f: (x: RunResult) => number | undefined) => {
      const v = runs.flatMap((x) => (f(x) === undefined ? [] : [f(x)!]));
      return v.length === 0 ? Number.NaN : median(v);
    };
    console.log(
      `${p.label.padEnd(52)} ${fmt(m((x) => x.eventsPerS)).padStart(10)} ${fmt(
        m((x) => x.clientCpuS),
        2,
      ).padStart(12)} ${fmt(
        m((x) => x.brokerCpuS),
        2,
      ).padStart(
        12,
      )} ${fmt(m((x) => x.commitMarkers)).padStart(7)}  (runs: ${runs.map((x) => fmt(x.eventsPerS)).join(", ")})`,
    );
  }
} finally {
  await rm(tmp, { recursive: true, force: true });
  await reader.close();
  await admin.close();
}

if (ONLY !== undefined) {
  console.log("--only: no comparisons, no results file");
  process.exit(0);
}
const med = (id: string) => median(rows.find((r) => r.id === id)!.runs.map((x) => x.eventsPerS));
const comparisons = [
  {
    measure: "log append, peer at page-cache durability (a)",
    runnel: med("local"),
    peer: med("java"),
    peerName: "Kafka 4.1 Java producer (acks=all, idempotent)",
    caveat:
      "the local log fdatasyncs every group commit and cannot skip it; the broker acknowledges from the page cache",
  },
  {
    measure: "log append, both flushing (b)",
    runnel: med("local"),
    peer: med("java-flush"),
    peerName: "Kafka 4.1 Java producer, topic flush.messages=1",
    caveat: "single broker on the same 2 cores as the client; Runnel's records carry a key, Java's none",
  },
  {
    measure: "Runnel on Kafka vs Kafka's producer, all-or-nothing batches (c)",
    runnel: med("backend"),
    peer: med("java-txn"),
    peerName: `Kafka 4.1 Java transactional producer (${JAVA_TXN_MS} ms transactions)`,
    caveat:
      "same broker and guarantees; Runnel commits one transaction per group of concurrent appends (all 8 in flight here), Java one per 100 ms",
  },
].map((c): Comparison & { ratio: number } => ({
  ...c,
  ratio: ratio(c.runnel, c.peer) ?? Number.NaN,
  unit: "events/s",
  // Every run read back what it wrote and threw (exiting non-zero) unless it matched.
  outputsEqual: true,
}));

console.log("ratios (Runnel / peer, events/s):");
for (const c of comparisons) console.log(`  ${c.measure.padEnd(64)} ×${fmt(c.ratio, 2)}`);

const written = await writeResults("log-kafka", {
  comparisons,
  config: {
    records: RECORDS,
    runs: RUNS,
    partitions: PARTITIONS,
    eventBytes: Math.round(eventBytes),
    runnel: {
      batch: BATCH,
      concurrency: CONCURRENCY,
      kafkaBackendTransactionsInFlight: BACKEND_TXNS ?? DEFAULT_TRANSACTIONS_IN_FLIGHT,
    },
    java: {
      acks: "all",
      idempotence: true,
      maxInFlight: 5,
      lingerMs: JAVA_LINGER_MS,
      batchBytes: JAVA_BATCH_BYTES,
      transactionMs: JAVA_TXN_MS,
    },
  },
  rows,
});
console.log(`wrote ${written}`);
