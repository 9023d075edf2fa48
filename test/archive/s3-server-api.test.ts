/**
 * A whole Runnel archiving into an S3 bucket (the moto server): rows move to the bucket, and when
 * the bucket goes away archiving fails, the rows stay hot and queryable, and an operator alert
 * names the stream; when it is back, the alert resolves.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";
import { until } from "../helpers/poll.js";
import { newBucket, s3ClientConfig, s3Url } from "./s3-server.js";

const HOUR = 3_600_000;
let t: TestRunnel;
let bucket: string;
let s3: S3Client;
let cache: string;

async function keys(): Promise<string[]> {
  const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "runnel/" }));
  return (page.Contents ?? []).map((o) => o.Key!).filter((k) => k.endsWith(".parquet"));
}

async function ingest(stream: string, hoursAgo: number[]): Promise<void> {
  const now = Date.now();
  const events = hoursAgo.map((h, i) => ({
    user_id: `u${i % 3}`,
    timestamp: new Date(now - h * HOUR).toISOString(),
    n: 1,
  }));
  const res = await t.call("POST", `/api/v1/streams/${stream}/events`, { token: t.adminToken, body: events });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

async function count(stream: string): Promise<unknown> {
  const res = await t.call("POST", "/api/v1/query", {
    token: t.adminToken,
    body: { sql: `SELECT count(*) FROM ${stream}` },
  });
  return (res.body.rows as unknown[][] | undefined)?.[0]?.[0];
}

before(async () => {
  const url = s3Url();
  bucket = await newBucket();
  s3 = new S3Client(s3ClientConfig(url));
  cache = await mkdtemp(join(tmpdir(), "runnel-s3-api-"));
  // The SDK reads these from the process environment, as it would in production.
  Object.assign(process.env, {
    AWS_ENDPOINT_URL: url,
    AWS_ACCESS_KEY_ID: "runnel-test",
    AWS_SECRET_ACCESS_KEY: "runnel-test-secret",
    AWS_REGION: "us-east-1",
  });
  t = await startTestRunnel({
    env: { RUNNEL_ARCHIVE_URL: `s3://${bucket}/runnel`, RUNNEL_ARCHIVE_INTERVAL: "1s", RUNNEL_ANOMALY_INTERVAL: "1s" },
  });
});

after(async () => {
  await t?.close();
  s3?.destroy();
  await rm(cache, { recursive: true, force: true });
});

describe("the archive in an S3 bucket", () => {
  it("moves old rows into the bucket, and queries still count them", async () => {
    const created = await t.call("POST", "/api/v1/streams", {
      token: t.adminToken,
      body: { name: "metrics", partitions: 1, analytics: { hot: "1h" } },
    });
    assert.equal(created.status, 201);
    // All older than the window: a row it still held would keep the rows after it hot (docs/storage.md).
    await ingest("metrics", [50, 40, 30, 20, 10]);
    await until(keys, (k) => k.length > 0, "files in the bucket");
    assert.match((await keys())[0]!, /^runnel\/metrics\/\d{4}-\d{2}-\d{2}\/p0\/0-\d+\.parquet$/);
    await until(
      () => count("metrics"),
      (n) => n === 5,
      "5 rows over both tiers",
    );
  });

  it("when the bucket goes away: rows stay hot and counted, an operator alert names the stream, and it resolves", async () => {
    const objects = await keys();
    await s3.send(new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: objects.map((Key) => ({ Key })) } }));
    await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    await ingest("metrics", [25, 15]);
    const alerts = async () =>
      (await t.call("GET", "/api/v1/operator-alerts?active=true", { token: t.adminToken })).body.alerts as
        | { subject: string; kind: string; message: string }[]
        | undefined;
    const raised = await until(
      alerts,
      (a) => (a ?? []).some((x) => x.subject === "archive/metrics"),
      "an operator alert",
    );
    const alert = raised!.find((x) => x.subject === "archive/metrics")!;
    assert.equal(alert.kind, "consumer_failing");
    assert.equal(await count("metrics"), 7, "the new old rows stay hot and counted");
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await until(alerts, (a) => !(a ?? []).some((x) => x.subject === "archive/metrics"), "the alert resolved");
    await until(keys, (k) => k.length > 0, "files in the bucket again");
  });
});
