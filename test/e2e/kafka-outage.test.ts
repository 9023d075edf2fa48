/**
 * A Kafka outage seen from the API: a real Runnel on a broker of its own (scripts/kafka.sh on free
 * ports and a temporary data dir, never the shared broker other test files use). While the broker
 * is stopped, ingestion answers 503 not_ready with Retry-After within seconds and /readyz names the
 * log; once it is back, ingestion resumes by itself and every acknowledged event is there exactly
 * once, and none of the refused ones.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const BATCH = 10;
/** An outage answer slower than this is a hang, as far as a producer is concerned. */
const ANSWER_BOUND_MS = 10_000;

/**
 * A free port below the ephemeral range (32768+ on Linux). An ephemeral one is unsafe for a broker
 * that goes away and comes back: while it is down, a client retrying 127.0.0.1:P may be handed P
 * as its own local port and connect to itself (TCP self-connect), and the broker cannot bind again.
 */
async function freePort(taken: readonly number[] = []): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.includes(port)) continue;
    const server = createServer();
    const free = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (free) {
      await new Promise((resolve) => server.close(resolve));
      return port;
    }
  }
}

/** scripts/kafka.sh for the dedicated broker; resolves with its stdout (the bootstrap address). */
async function kafka(command: "start" | "stop", env: Record<string, string>): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)("bash", [join(ROOT, "scripts/kafka.sh"), command], {
      env: { ...process.env, ...env },
      encoding: "utf8",
    });
    return stdout.trim();
  } catch (e) {
    // The temporary data dir goes at the end: keep the broker's own account in the failure.
    const log = join(env.RUNNEL_KAFKA_DATA_DIR!, `broker-${env.RUNNEL_KAFKA_PORT}.log`);
    const tail = await readFile(log, "utf8").then(
      (text) => text.split("\n").slice(-40).join("\n"),
      () => "(no broker log)",
    );
    throw new Error(`scripts/kafka.sh ${command} failed: ${String(e)}\n--- ${log}\n${tail}`);
  }
}

interface Answer {
  readonly status: number;
  readonly body: { error?: string; details?: { components?: Record<string, boolean> } };
  readonly retryAfter: string | null;
  readonly ms: number;
}

/** One request that must answer within ANSWER_BOUND_MS; a timeout fails the test as a hang. */
async function timed(url: string, init: RequestInit): Promise<Answer> {
  const started = Date.now();
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(ANSWER_BOUND_MS) });
  } catch (e) {
    assert.fail(`${init.method ?? "GET"} ${url} did not answer within ${ANSWER_BOUND_MS} ms: ${String(e)}`);
  }
  const text = await res.text();
  return {
    status: res.status,
    body: text === "" ? {} : (JSON.parse(text) as Answer["body"]),
    retryAfter: res.headers.get("retry-after"),
    ms: Date.now() - started,
  };
}

test("a stopped Kafka broker makes ingestion answer 503 quickly; after it restarts nothing is lost", async () => {
  const kafkaDir = await mkdtemp(join(tmpdir(), "runnel-kafka-outage-"));
  const port = await freePort();
  const env = {
    RUNNEL_KAFKA_PORT: String(port),
    RUNNEL_KAFKA_CONTROLLER_PORT: String(await freePort([port])),
    RUNNEL_KAFKA_DATA_DIR: kafkaDir,
  };
  const data = await tempDataDir();
  let server: ServerProcess | undefined;
  try {
    const t0 = Date.now();
    const phase = (name: string) => console.log(`${name}: ${Date.now() - t0} ms`);
    const brokers = await kafka("start", env);
    phase("broker started");
    server = await startServerProcess(data.dir, {
      RUNNEL_KAFKA_BROKERS: brokers,
      RUNNEL_KAFKA_TOPIC_PREFIX: `outage_${Date.now().toString(36)}_`,
    });
    const login = await new Client(server.url).post<{ token: string }>("/api/v1/auth/login", {
      username: "admin",
      password: ADMIN_PASSWORD,
    });
    const token = login.body.token;
    const admin = new Client(server.url).as(token);
    assert.equal((await admin.post("/api/v1/streams", { name: "orders", partitions: 4 })).status, 201);
    const ingestUrl = `${server.url}/api/v1/streams/orders/events`;
    let nextBatch = 0;
    const ingest = (): Promise<Answer & { batch: number }> => {
      const batch = nextBatch++;
      const events = Array.from({ length: BATCH }, (_, i) => ({ user_id: `u${(batch * BATCH + i) % 17}`, batch, i }));
      return timed(ingestUrl, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(events),
      }).then((a) => ({ ...a, batch }));
    };
    const acked = new Set<number>();
    const refused = new Set<number>();
    /** Posts batches, honouring 503's Retry-After, until one is acknowledged (within 60 s). */
    const ingestUntilAccepted = async (): Promise<void> => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        const a = await ingest();
        if (a.status === 200) {
          acked.add(a.batch);
          return;
        }
        assert.equal(a.status, 503, `batch ${a.batch}: ${a.status} ${JSON.stringify(a.body)}`);
        refused.add(a.batch);
        assert.ok(Date.now() < deadline, `ingestion was not accepted within 60 s: ${JSON.stringify(a.body)}`);
        await new Promise((r) => setTimeout(r, 1000 * Number(a.retryAfter ?? 1)));
      }
    };

    // A new cluster creates its transaction log on the first transactional producer: until then
    // ingestion answers 503, as it should, and a producer honouring Retry-After gets in.
    phase("server started");
    await ingestUntilAccepted();
    phase(`first batch accepted (${refused.size} refused)`);
    // Before: a steady trickle, every batch acknowledged.
    for (let k = 0; k < 20; k++) {
      const a = await ingest();
      assert.equal(a.status, 200, `batch ${a.batch} before the outage: ${JSON.stringify(a.body)}`);
      acked.add(a.batch);
    }
    assert.equal((await timed(`${server.url}/readyz`, {})).status, 200);

    await kafka("stop", env);
    phase("broker stopped");

    // During: sequential and concurrent appends each answer 503 not_ready with Retry-After.
    const during = [await ingest(), ...(await Promise.all(Array.from({ length: 16 }, () => ingest()))), await ingest()];
    for (const a of during) {
      assert.equal(a.status, 503, `batch ${a.batch} during the outage: ${a.status} ${JSON.stringify(a.body)}`);
      assert.equal(a.body.error, "not_ready");
      assert.ok(a.retryAfter !== null && Number(a.retryAfter) >= 1, `Retry-After is ${a.retryAfter}`);
      refused.add(a.batch);
    }
    const ready = await timed(`${server.url}/readyz`, {});
    assert.equal(ready.status, 503);
    assert.equal(ready.body.error, "not_ready");
    assert.equal(ready.body.details?.components?.log, false, JSON.stringify(ready.body));
    assert.equal(ready.body.details?.components?.control, true, "only the log is down");
    console.log(`outage answers: ${during.map((a) => a.ms).join(", ")} ms; /readyz ${ready.ms} ms`);

    await kafka("start", env);
    phase("broker restarted");
    // After: the same server resumes without a restart.
    await ingestUntilAccepted();
    phase("resumed");
    for (let k = 0; k < 10; k++) {
      const a = await ingest();
      assert.equal(a.status, 200, `batch ${a.batch} after recovery: ${JSON.stringify(a.body)}`);
      acked.add(a.batch);
    }
    assert.equal((await timed(`${server.url}/readyz`, {})).status, 200);

    const expected = acked.size * BATCH;
    const result = await admin.queryUntil(
      "SELECT batch, count(*) AS n, count(DISTINCT i) AS d FROM orders GROUP BY batch ORDER BY batch",
      (rows) => rows.reduce((s: number, r) => s + Number(r[1]), 0) >= expected,
      30_000,
    );
    phase("queried");
    const present = new Map(result.rows.map((r) => [Number(r[0]), [Number(r[1]), Number(r[2])] as const]));
    for (const batch of acked) {
      assert.deepEqual(present.get(batch), [BATCH, BATCH], `acknowledged batch ${batch} is there exactly once`);
    }
    for (const batch of refused) assert.equal(present.get(batch), undefined, `refused batch ${batch} left events`);
    assert.equal(present.size, acked.size, "no batch appeared that was not acknowledged");
  } finally {
    await server?.kill();
    await kafka("stop", env).catch(() => undefined);
    await rm(kafkaDir, { recursive: true, force: true });
    await data.remove();
  }
});
