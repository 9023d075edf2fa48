export { KafkaEventLog } from "./kafka-event-log.js";
export type { KafkaEventLogOptions } from "./options.js";

import { KafkaEventLog } from "./kafka-event-log.js";
import type { KafkaEventLogOptions } from "./options.js";

/**
 * The Kafka-backed EventLog, for the composition root. Options are validated here (a bad field is
 * refused with invalid_input naming it); call open() before use.
 *
 * @example
 *   const log = createKafkaEventLog({ brokers: process.env.RUNNEL_KAFKA_BROKERS!.split(",") });
 *   await log.open();
 */
export function createKafkaEventLog(
  options: {
    brokers: string[];
    clientId?: string;
    topicPrefix?: string;
  } & KafkaEventLogOptions,
): KafkaEventLog {
  return new KafkaEventLog(options);
}
