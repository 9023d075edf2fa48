/** What the HTTP layer needs from the rest of Runnel: interfaces only, wired by the composition root. */
import type { QueryScheduler } from "../analytics/query-scheduler.js";
import type { AnalyticsStore } from "../analytics/types.js";
import type { ImportJobs } from "../archive/import/jobs.js";
import type { PipelineManager } from "../catalog/pipelines.js";
import type { StreamCatalog } from "../catalog/streams.js";
import type { RuleManager } from "../cep/manager.js";
import type { QueryRouter } from "../cluster/queries/router.js";
import type { ClusterView } from "../cluster/status.js";
import type { Config } from "../config/config.js";
import type { ControlStore } from "../control/types.js";
import type { Clock } from "../core/clock.js";
import type { IdempotencyStore } from "../ingest/idempotency.js";
import type { Ingestor } from "../ingest/types.js";
import type { EventLog } from "../log/types.js";
import type { ConsumerReport } from "../monitoring/consumer-health.js";
import type { Logger } from "../monitoring/logging.js";
import type { Metrics } from "../monitoring/metrics.js";
import type { OperatorAlertLog } from "../monitoring/operator-alerts.js";
import type { SourceManager } from "../sources/manager.js";
import type { Authenticator } from "./auth/authenticate.js";
import type { ConnectionGuard } from "./auth/connection-guard.js";
import type { TokenService } from "./auth/tokens.js";

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  verify(password: string, encoded: string): Promise<boolean>;
  /** Spends the same time as verify() for a user that does not exist, so timing reveals nothing. */
  verifyNone(password: string): Promise<false>;
  /** True when a hash was made with weaker parameters than the current ones (re-hashed at login). */
  needsRehash?(encoded: string): boolean;
}

/** Readiness of each component, for /readyz. */
export type ReadinessProbe = () => Promise<Record<string, boolean>>;

export interface ApiServices {
  readonly config: Config;
  readonly clock: Clock;
  readonly metrics: Metrics;
  readonly control: ControlStore;
  readonly analytics: AnalyticsStore;
  /** Admits queries fairly across users: every POST /query runs through it. */
  readonly queries: QueryScheduler;
  readonly log: EventLog;
  readonly ingestor: Ingestor;
  readonly streams: StreamCatalog;
  readonly pipelines: PipelineManager;
  /** CEP rules, alerts and blocks; absent in tests that do not need them. */
  readonly rules?: RuleManager;
  readonly auth: Authenticator;
  /** Closes open streams and sockets whose credential is revoked (src/api/auth/connection-guard.ts). */
  readonly connections: ConnectionGuard;
  readonly tokens: TokenService;
  readonly passwords: PasswordHasher;
  readonly readiness: ReadinessProbe;
  /** Consumers of the log that keep failing or recently dead-lettered records, for /readyz. */
  readonly consumers?: () => readonly ConsumerReport[];
  /** The root logger; the API logs through its child `component: "api"`. */
  readonly logger?: Logger;
  /** Unusual-traffic alerts for operators (src/monitoring/operator-alerts.ts). */
  readonly operatorAlerts?: OperatorAlertLog;
  /** Idempotency-Key memory for ingest; without it the header is ignored. */
  readonly idempotency?: IdempotencyStore;
  /** Configured sources (MQTT, Kafka topics, files); without it /sources answers 503. */
  readonly sources?: SourceManager;
  /** Backfill jobs into the archive; without it the import routes answer 503. */
  readonly imports?: ImportJobs;
  /** The installation's instances and what each owns; without it GET /cluster answers 503. */
  readonly cluster?: ClusterView;
  /**
   * Cluster mode: queries go to the instances owning their partitions (docs/cluster.md, "Queries
   * across instances"); without it every query is answered from this process's store alone.
   */
  readonly queryRouter?: QueryRouter;
}
