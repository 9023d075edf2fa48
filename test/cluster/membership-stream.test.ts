/**
 * A member whose message stream the client closes stays subscribed (src/cluster/membership.ts).
 *
 * Found on the fault rig (test/cluster/scenario.test.ts): when a broker is killed, the client's
 * offset refresh for the membership's stream can fail and destroy the stream, and a closed stream
 * untracks its topics. The member's heartbeats then subscribe to nothing: the broker moved its
 * partitions to the others and never gave it one again, and the instance stayed idle in the group
 * until restarted. Which member's refresh meets the dead broker is chance, so this test closes the
 * stream the way the client does (destroy with an error) on the real test broker, lets heartbeats
 * go by, and has a third member join: the three share the partitions only if the first is still
 * subscribed.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import type { Readable } from "node:stream";
import { after, before, test } from "node:test";
import { Admin } from "@platformatic/kafka";
import { GroupMembership, type RevokedEvent } from "../../src/cluster/membership.js";
import { kafkaBrokers } from "../helpers/kafka.js";
import { waitFor } from "./instances.js";

const PARTITIONS = 4;
const brokers = kafkaBrokers().split(",");
const admin = new Admin({ clientId: "runnel-test-membership-stream", bootstrapBrokers: brokers });
const topic = `runnel-test-membership-stream-${randomUUID().slice(0, 8)}`;
const members: GroupMembership[] = [];

before(() => admin.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 1 }));
after(async () => {
  await Promise.all(members.map((m) => m.leave().catch(() => undefined)));
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.close();
});

const owned = (m: GroupMembership) => m.owned().map((p) => p.partition);
/** Every partition owned by exactly one member, each member owning some. */
const shared = (ms: readonly GroupMembership[]) =>
  ms.every((m) => owned(m).length > 0) &&
  ms
    .flatMap(owned)
    .sort((x, y) => x - y)
    .join() === Array.from({ length: PARTITIONS }, (_, i) => i).join();

test("a member whose stream the client closed keeps its partitions and its subscription", async () => {
  const group = `runnel-test-${randomUUID()}`;
  const member = (instanceId: string) => {
    const m = new GroupMembership({ brokers, group, topics: [topic], instanceId });
    members.push(m);
    return m;
  };
  const [a, b] = [member("a"), member("b")];
  await a.join();
  await b.join();
  await waitFor("a and b to share the partitions", 60_000, () => (shared([a, b]) ? true : undefined));
  const revoked: RevokedEvent[] = [];
  a.on("revoked", (e) => revoked.push(e));
  let heartbeats = 0;
  a.on("heartbeat", () => heartbeats++);
  const errors: Error[] = [];
  a.on("error", (e) => errors.push(e));

  // What the client does when a refresh of the stream's offsets fails.
  (a as unknown as { stream: Readable }).stream.destroy(new Error("fetch failed 4 times."));
  // Two answered heartbeats: a subscription to nothing would have been sent and acted on.
  await waitFor("two heartbeats of a", 30_000, () => (heartbeats >= 2 ? true : undefined));
  assert.deepEqual(revoked, [], "a keeps its partitions");
  assert.deepEqual(
    errors.map((e) => e.message),
    ["fetch failed 4 times."],
    "the stream's end is reported",
  );

  const c = member("c");
  await c.join();
  await waitFor("a, b and c to share the partitions", 60_000, () => (shared([a, b, c]) ? true : undefined));
});
