/** The seed's user_data flow with Apache Kafka as the log (a real broker from scripts/kafka.sh). */
import { execFileSync } from "node:child_process";
import { seedFlowSuite } from "./seed-flow.scenario.js";

const ROOT = new URL("../..", import.meta.url).pathname;

seedFlowSuite("seed flow on Apache Kafka", async () => {
  const brokers =
    process.env.RUNNEL_TEST_KAFKA_BROKERS ??
    execFileSync("bash", [`${ROOT}scripts/kafka.sh`], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim();
  // Topics are named after streams; a fresh prefix per run keeps runs on the shared broker apart.
  return { RUNNEL_KAFKA_BROKERS: brokers, RUNNEL_KAFKA_TOPIC_PREFIX: `seed_${Date.now().toString(36)}_` };
});
