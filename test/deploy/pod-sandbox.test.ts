/**
 * The production pod's environment and security context, run for real on this machine: no cluster
 * or container runtime exists here, so test/deploy/fixtures/pod-sandbox.sh reproduces what the
 * StatefulSet imposes on the process (read-only filesystems but the emptyDir /tmp and the data
 * volume, runAsUser/runAsGroup, no capabilities, no privilege escalation) in a mount namespace of
 * its own, and `runnel start` runs there with the rendered ConfigMap and env against the real
 * Kafka and PostgreSQL. It must start, answer the probes, take and query events, and stop cleanly
 * on SIGTERM well within the grace period. Needs root (mount namespaces), as CI has.
 */
import assert from "node:assert/strict";
import { chownSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseDuration } from "../../src/config/units.js";
import { Client } from "../helpers/http.js";
import {
  ADMIN_PASSWORD,
  DATA_MOUNT,
  freePort,
  productionPods,
  type RunningPod,
  type Services,
  sandboxUnavailable,
  services,
  startInSandbox,
  startPod,
} from "./pod-sandbox.js";

const missing = sandboxUnavailable();
let running: RunningPod | undefined;
let env: Services | undefined;

after(async () => {
  await env?.cleanup(running === undefined ? [] : [running]);
});

test("runnel start runs under the production pod's settings and security context", {
  skip: missing,
  timeout: 240_000,
}, async (t) => {
  const pods = productionPods();
  const { pod } = pods;
  const { runAsUser, runAsGroup } = pod.securityContext;
  const mounts = pod.containers[0]!.volumeMounts.map((m) => m.mountPath).sort();
  const settings = pods.docs.find((d) => d.kind === "ConfigMap")!.data as Record<string, string>;
  assert.deepEqual(mounts, [settings.RUNNEL_DATA_DIR, "/tmp"].sort(), "the writable places are the data dir and /tmp");

  env = await services(`k8spod${process.pid}`);
  running = await startPod(pods, "runnel-0", { ...env.shared, port: await freePort() });
  const { child, url, exited, stderr } = running;

  // unshare, bash and setpriv exec in turn: the pid is Runnel's own process.
  const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1];
  assert.equal(field("Uid")?.split(/\s+/)[0], String(runAsUser));
  assert.equal(field("Gid")?.split(/\s+/)[0], String(runAsGroup));
  assert.equal(field("CapEff"), "0000000000000000");
  assert.equal(field("CapBnd"), "0000000000000000");
  assert.equal(field("NoNewPrivs"), "1");
  const rw = readFileSync(`/proc/${child.pid}/mounts`, "utf8")
    .split("\n")
    .map((line) => line.split(" "))
    .filter((f) => f[3]?.startsWith("rw"))
    .map((f) => f[1]!)
    .filter((point) => !point.startsWith("/dev/"));
  assert.deepEqual(rw.sort(), [DATA_MOUNT, "/tmp"].sort(), "only the volumes are writable");

  const api = new Client(url);
  assert.equal((await api.get("/healthz")).status, 200);
  const deadline = Date.now() + 60_000;
  let ready = await api.get("/readyz");
  while (ready.status !== 200 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 500));
    ready = await api.get("/readyz");
  }
  assert.equal(ready.status, 200, JSON.stringify(ready.body));

  const admin = await api.login("admin", ADMIN_PASSWORD);
  // Kafka, PostgreSQL and the database's checkpoints make it an instance of a cluster, named by its pod.
  const cluster = await admin.get<{
    mode: string;
    instanceId: string;
    slots: number;
    sessionTimeoutMs: number;
    instances: { id: string; url: string; self: boolean }[];
  }>("/api/v1/cluster");
  assert.equal(cluster.status, 200, JSON.stringify(cluster.body));
  assert.equal(cluster.body.mode, "cluster", JSON.stringify(cluster.body));
  assert.equal(cluster.body.instanceId, "runnel-0");
  assert.equal(cluster.body.slots, Number(settings.RUNNEL_DEFAULT_PARTITIONS));
  assert.equal(cluster.body.sessionTimeoutMs, parseDuration(settings.RUNNEL_CLUSTER_SESSION_TIMEOUT!));
  assert.deepEqual(
    cluster.body.instances.map((i) => [i.id, i.url, i.self]),
    [["runnel-0", url, true]],
  );
  assert.equal((await admin.post("/api/v1/streams", { name: "user_data" })).status, 201);
  const ingest = await admin.post("/api/v1/streams/user_data/events", [
    { data: "2", user_id: "A" },
    { data: "40", user_id: "B" },
  ]);
  assert.equal(ingest.status, 200, JSON.stringify(ingest.body));
  const result = await admin.queryUntil("SELECT count(*) AS n FROM user_data", (rows) => rows[0]?.[0] === 2, 15_000);
  assert.deepEqual(result.rows, [[2]]);

  const budgetMs = (pod.terminationGracePeriodSeconds - pods.preStopSeconds) * 1000;
  const started = performance.now();
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), budgetMs);
  const code = await exited;
  clearTimeout(timer);
  const stopMs = Math.round(performance.now() - started);
  t.diagnostic(`SIGTERM to exit: ${stopMs} ms (grace after preStop: ${budgetMs} ms)`);
  assert.equal(code, 0, stderr());
  assert.ok(stopMs < budgetMs);
  assert.doesNotMatch(stderr(), /EROFS|EACCES|read-only file system/i);
});

test("the sandbox is read-only outside the volumes: a data dir elsewhere is refused", {
  skip: missing,
  timeout: 120_000,
}, async () => {
  // A directory the uid could write on the host: only the sandbox's read-only remount stops it.
  const dir = mkdtempSync(join("/var/tmp", "runnel-k8s-"));
  chownSync(dir, 1000, 1000);
  try {
    const outside = startInSandbox(1000, 1000, {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      RUNNEL_DATA_DIR: join(dir, "data"),
      RUNNEL_PORT: "0",
      RUNNEL_HOST: "127.0.0.1",
      RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
    });
    let stderr = "";
    outside.stderr!.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // Were the sandbox writable, Runnel would start and run on: stop it rather than wait for the timeout.
    const guard = setTimeout(() => outside.kill("SIGKILL"), 60_000);
    const code = await new Promise<number | null>((resolve) => outside.once("exit", (c) => resolve(c)));
    clearTimeout(guard);
    assert.notEqual(code, 0);
    // The directory exists and is the uid's; Node's recursive mkdir reports the EROFS as ENOENT.
    assert.match(stderr, new RegExp(`failed to start: (EROFS|ENOENT)[^\n]*mkdir '${dir}/data'`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
