/**
 * The installation's slots topic: one partition per slot, never written. Its partitions are what
 * the group protocol shares out among the instances (./group-ownership.ts); the data topics are
 * not subscribed, so a stream created later needs no new subscription.
 */
import { Admin } from "@platformatic/kafka";
import { ENV_NAMES } from "../config/config.js";
import { RunnelError } from "../core/errors.js";
import { hasKafkaError, toRunnelError } from "../log/kafka/errors.js";

/** The slots topic of the installation whose topics start with `topicPrefix` (no stream name starts with "_"). */
export function slotsTopic(topicPrefix: string): string {
  return `${topicPrefix}__slots`;
}

/**
 * Creates the topic with `slots` partitions and the brokers' default replication factor, or checks
 * the existing one has as many: instances that disagree on the slot count cannot share the work.
 */
export async function ensureSlotsTopic(brokers: readonly string[], topic: string, slots: number): Promise<void> {
  const admin = new Admin({ clientId: "runnel-cluster", bootstrapBrokers: [...brokers] });
  try {
    try {
      // Nothing is ever written to it: the smallest retention keeps it empty should anyone try.
      await admin.createTopics({
        topics: [topic],
        partitions: slots,
        replicas: -1,
        configs: [{ name: "retention.ms", value: "60000" }],
      });
      return;
    } catch (e) {
      if (!hasKafkaError(e, "TOPIC_ALREADY_EXISTS")) throw toRunnelError(e, `create topic ${topic}`);
    }
    const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
    const existing = metadata.topics.get(topic)?.partitionsCount;
    if (existing !== undefined && existing !== slots) {
      throw new RunnelError(
        "conflict",
        `${ENV_NAMES.clusterSlots} is ${slots}, but the installation's slots topic ${topic} has ${existing} partitions: every instance of an installation must use one slot count (set ${ENV_NAMES.clusterSlots}=${existing})`,
      );
    }
  } catch (e) {
    throw toRunnelError(e, `check topic ${topic}`);
  } finally {
    await admin.close().catch(() => undefined);
  }
}
