/**
 * The real Kafka broker of the integration tests: RUNNEL_TEST_KAFKA_BROKERS (set by
 * scripts/test.sh), else the one scripts/kafka.sh starts (and prints the address of).
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The bootstrap address, `host:port[,host:port…]`. */
export function kafkaBrokers(): string {
  const fromEnv = process.env.RUNNEL_TEST_KAFKA_BROKERS;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const script = fileURLToPath(new URL("../../scripts/kafka.sh", import.meta.url));
  return execFileSync("bash", [script], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
}
