/** The seed's user_data flow with Apache Kafka as the log (a real broker from scripts/kafka.sh). */
import { kafkaBrokers } from "../helpers/kafka.js";
import { seedFlowSuite } from "./seed-flow.scenario.js";

seedFlowSuite("seed flow on Apache Kafka", async () => {
  const brokers = kafkaBrokers();
  // Topics are named after streams; a fresh prefix per run keeps runs on the shared broker apart.
  return { RUNNEL_KAFKA_BROKERS: brokers, RUNNEL_KAFKA_TOPIC_PREFIX: `seed_${Date.now().toString(36)}_` };
});
