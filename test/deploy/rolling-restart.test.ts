/**
 * A rolling restart of the production StatefulSet, as Kubernetes performs it, on this machine:
 * the three pods run in the pod sandbox (test/deploy/pod-sandbox.ts: the rendered env, uid and
 * read-only mounts, each pod's data volume kept across its restart as its claim is) against the
 * real Kafka and PostgreSQL. Highest ordinal first, each pod gets SIGTERM, comes back under the
 * same name, and must be ready before the next one goes. docs/kubernetes.md, "Rolling upgrades
 * without losing work", promises that this moves no slot: the other instances keep theirs the
 * whole time, the restarted one gets its own back (static membership), and ingest through the
 * others is never refused. The second test continues from there with a scale-down to two pods,
 * whose slots wait out the session timeout before they move.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseDuration } from "../../src/config/units.js";
import { sleep, waitFor } from "../cluster/instances.js";
import { Client } from "../helpers/http.js";
import {
  ADMIN_PASSWORD,
  freePort,
  productionPods,
  type RunningPod,
  type Services,
  type Surroundings,
  sandboxUnavailable,
  services,
  startPod,
} from "./pod-sandbox.js";

const missing = sandboxUnavailable();
const running = new Map<string, RunningPod>();
/** What the first test sets up and the second continues from: the pods' names, an admin's client of each, all slots. */
const cluster = { names: [] as string[], api: (_name: string): Client => assert.fail("no pods yet"), every: "" };
let env: Services | undefined;
let volumes = "";

after(async () => {
  await env?.cleanup(running.values());
  if (volumes !== "") rmSync(volumes, { recursive: true, force: true });
});

/** Polls `probe` until it returns a value; a probe that throws (an instance not answering yet) counts as none. */
const poll = <T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> =>
  waitFor(what, ms, () => probe().catch(() => undefined));

interface ClusterView {
  readonly mode: string;
  readonly slots: number;
  readonly instances: readonly { readonly id: string; readonly live: boolean; readonly slots: readonly number[] }[];
}

/** Instance id → its slots, as `via` lists them. */
async function ownership(via: Client): Promise<Map<string, string>> {
  const { status, body } = await via.get<ClusterView>("/api/v1/cluster");
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.mode, "cluster", JSON.stringify(body));
  return new Map(body.instances.filter((i) => i.live).map((i) => [i.id, [...i.slots].sort((a, b) => a - b).join(",")]));
}

test("a rolling restart of the production StatefulSet moves no slot", {
  skip: missing,
  timeout: 600_000,
}, async (t) => {
  const pods = productionPods();
  const replicas = (pods.docs.find((d) => d.kind === "StatefulSet") as { spec?: { replicas?: number } }).spec?.replicas;
  assert.equal(replicas, 3);
  const names = Array.from({ length: replicas }, (_, i) => `runnel-${i}`);
  env = await services(`k8sroll${process.pid}`);
  const { shared } = env;
  volumes = mkdtempSync(join("/var/tmp", "runnel-k8s-volumes-"));
  const around = new Map<string, Surroundings>();
  for (const name of names) {
    around.set(name, { ...shared, port: await freePort() });
    mkdirSync(join(volumes, name));
  }
  const start = async (name: string): Promise<RunningPod> => {
    const pod = await startPod(pods, name, around.get(name)!, join(volumes, name));
    running.set(name, pod);
    return pod;
  };

  // podManagementPolicy Parallel: the pods start together.
  await Promise.all(names.map(start));
  const token = await poll("the admin's login", 60_000, async () => {
    const res = await new Client(running.get(names[0]!)!.url).post<{ token: string }>("/api/v1/auth/login", {
      username: "admin",
      password: ADMIN_PASSWORD,
    });
    return res.status === 200 ? res.body.token : undefined;
  });
  const api = (name: string) => new Client(running.get(name)!.url, token);
  cluster.api = api;
  cluster.names = names;

  const slots = Number(
    (pods.docs.find((d) => d.kind === "ConfigMap")!.data as Record<string, string>).RUNNEL_DEFAULT_PARTITIONS,
  );
  const every = Array.from({ length: slots }, (_, i) => i).join(",");
  cluster.every = every;
  // The broker's assignor spreads the slots evenly over a few heartbeats; the registry shows it
  // within its 2 s refresh. Taken once the same even split is seen twice, 3 s apart.
  const split = async (): Promise<Map<string, string> | undefined> => {
    for (const name of names) if ((await api(name).get("/readyz")).status !== 200) return undefined;
    const owned = await ownership(api(names[0]!));
    const lists = [...owned.values()].map((s) =>
      s
        .split(",")
        .filter((x) => x !== "")
        .map(Number),
    );
    const all = lists.flat().sort((a, b) => a - b);
    const even = lists.every((l) => l.length === slots / names.length);
    return owned.size === names.length && even && all.join(",") === every ? owned : undefined;
  };
  const before = await poll("the three to be ready and share the slots evenly", 180_000, async () => {
    const first = await split();
    if (first === undefined) return undefined;
    await sleep(3000);
    const second = await split();
    return second !== undefined && JSON.stringify([...second]) === JSON.stringify([...first]) ? second : undefined;
  });
  t.diagnostic(`slots before: ${JSON.stringify(Object.fromEntries(before))}`);
  assert.equal((await api(names[0]!).post("/api/v1/streams", { name: "orders" })).status, 201);

  // The StatefulSet controller's order: highest ordinal first, the next only once this one is ready.
  for (const name of [...names].reverse()) {
    const others = names.filter((n) => n !== name);
    const problems: string[] = [];
    let sent = 0;
    let watching = true;
    const watch = (async () => {
      while (watching) {
        for (const other of others) {
          const owned = await ownership(api(other)).catch((e: Error) => {
            problems.push(`GET /api/v1/cluster on ${other}: ${e.message}`);
            return undefined;
          });
          for (const o of others) {
            if (owned !== undefined && owned.get(o) !== before.get(o)) {
              problems.push(`${o} owned [${owned.get(o)}], not [${before.get(o)}], while ${name} restarted`);
            }
          }
          const res = await api(other).post("/api/v1/streams/orders/events", { user_id: `user-${sent}`, amount: sent });
          sent++;
          if (res.status !== 200) problems.push(`ingest through ${other}: ${res.status} ${JSON.stringify(res.body)}`);
        }
        await sleep(250);
      }
    })();

    let stopMs = 0;
    let readyMs = 0;
    let after: Map<string, string>;
    try {
      const pod = running.get(name)!;
      const stopping = performance.now();
      pod.child.kill("SIGTERM");
      assert.equal(await pod.exited, 0, pod.stderr());
      stopMs = Math.round(performance.now() - stopping);
      await start(name);
      await poll(`${name} to be ready again`, 120_000, async () =>
        (await api(name).get("/readyz")).status === 200 ? true : undefined,
      );
      readyMs = Math.round(performance.now() - stopping);
      // Its slots are the ones it had: with the others' unchanged and every slot owned, nothing else is left.
      after = await poll(`${name} to be listed with its slots again`, 30_000, async () => {
        const owned = await ownership(api(name));
        return owned.get(name) === before.get(name) ? owned : undefined;
      });
    } finally {
      watching = false;
      await watch;
    }
    t.diagnostic(
      `${name}: SIGTERM to exit ${stopMs} ms, to ready again ${readyMs} ms; ${sent} events ingested through the others meanwhile`,
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(Object.fromEntries(after), Object.fromEntries(before));
  }
});

test("a scale-down: the removed pod's slots move to the others once its session has expired", {
  skip: missing,
  timeout: 300_000,
}, async (t) => {
  // The autoscaler or `kubectl scale` ends the highest pod with SIGTERM, as a restart does: it leaves
  // as a static member coming back, so the broker keeps its slots for it until the session expires.
  const settings = productionPods().docs.find((d) => d.kind === "ConfigMap")!.data as Record<string, string>;
  const sessionMs = parseDuration(settings.RUNNEL_CLUSTER_SESSION_TIMEOUT!)!;
  const { names, api, every } = cluster;
  const gone = names.at(-1)!;
  const stay = names.slice(0, -1);
  const pod = running.get(gone)!;
  const stopping = performance.now();
  pod.child.kill("SIGTERM");
  assert.equal(await pod.exited, 0, pod.stderr());
  await poll(`${stay.join(" and ")} to own every slot`, sessionMs + 60_000, async () => {
    const owned = await ownership(api(stay[0]!));
    const all = stay.flatMap((n) =>
      (owned.get(n) ?? "")
        .split(",")
        .filter((x) => x !== "")
        .map(Number),
    );
    return owned.size === stay.length && all.sort((a, b) => a - b).join(",") === every ? owned : undefined;
  });
  const movedMs = Math.round(performance.now() - stopping);
  t.diagnostic(
    `${gone} stopped for good: its slots owned by the others ${movedMs} ms after its SIGTERM (session ${sessionMs} ms)`,
  );
  assert.ok(movedMs >= sessionMs - 5_000, `moved after ${movedMs} ms, before the session could expire`);
  assert.ok(movedMs <= sessionMs + 30_000, `moved after ${movedMs} ms`);
});
