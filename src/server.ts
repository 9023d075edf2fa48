/**
 * The composition root: the only place that picks implementations from configuration and wires
 * the seams together (DESIGN.md). Everything else depends on interfaces.
 */
import { randomUUID } from "node:crypto";
import { mkdir, rm } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import type { DestinationStream } from "pino";
import { createWorkerAnalyticsStore } from "./analytics/index.js";
import { AnalyticsLoader } from "./analytics/loader.js";
import { QueryScheduler } from "./analytics/query-scheduler.js";
import type { AnalyticsStore } from "./analytics/types.js";
import { buildApp } from "./api/app.js";
import { Authenticator } from "./api/auth/authenticate.js";
import { ConnectionGuard } from "./api/auth/connection-guard.js";
import { CredentialCache } from "./api/auth/credential-cache.js";
import { Revocations } from "./api/auth/revocations.js";
import { loadTokenSecret, TokenService } from "./api/auth/tokens.js";
import { DASHBOARD_MISSING, dashboardBuilt, WEB_DIST } from "./api/routes/web.js";
import type { ApiServices } from "./api/services.js";
import type { TieredStore } from "./archive/archiver.js";
import { Importer } from "./archive/import/importer.js";
import { ImportJobs } from "./archive/import/jobs.js";
import { Archiver, createArchiveLocation } from "./archive/index.js";
import { ColumnCatalog } from "./catalog/columns.js";
import { PipelineManager } from "./catalog/pipelines.js";
import { StreamCatalog } from "./catalog/streams.js";
import { RuleManager } from "./cep/manager.js";
import { ControlSync } from "./cluster/control-sync.js";
import { ClusterNode, clusterMode, requireSharedArchive } from "./cluster/node.js";
import { InstanceAuth } from "./cluster/queries/instance-auth.js";
import { distributedQueries } from "./cluster/queries/merge.js";
import { QueryRouter } from "./cluster/queries/router.js";
import type { TaskReport } from "./cluster/registry.js";
import { type ClusterView, clusterStatus } from "./cluster/status.js";
import type { Config } from "./config/config.js";
import { PostgresChangeFeed } from "./control/change-feed.js";
import { createPgliteControlStore, createPostgresControlStore } from "./control/index.js";
import { createPasswordHasher, hashPassword } from "./control/passwords.js";
import { connectPostgres } from "./control/postgres.js";
import type { ControlStore } from "./control/types.js";
import { type Clock, systemClock } from "./core/clock.js";
import { type DeadLetter, DeadLetters } from "./core/dead-letters.js";
import { errorText } from "./core/record-fault.js";
import { type Closer, stopInReverse } from "./core/shutdown.js";
import { startIngestion } from "./ingest/setup.js";
import { createKafkaEventLog } from "./log/kafka/index.js";
import { LocalEventLog } from "./log/local/index.js";
import type { EventLog, FencedWriter } from "./log/types.js";
import { type ConsumerFailure, consumerReports } from "./monitoring/consumer-health.js";
import { type Monitoring, startMonitoring } from "./monitoring/index.js";
import { createLogger, type Logger } from "./monitoring/logging.js";
import { createMetrics, type Metrics } from "./monitoring/metrics.js";
import { ConsumerAlerts } from "./monitoring/operator-alerts.js";
import { hasPoolStats } from "./monitoring/probes.js";
import { TimedEventLog } from "./monitoring/timed-log.js";
import { openCheckpointStore } from "./runtime/checkpoint/index.js";
import { pipelineGroup } from "./stream/runner.js";

/** A failure to start that the CLI reports as one clear line. */
export class StartupError extends Error {
  override name = "StartupError";
}

export interface Runnel {
  readonly app: FastifyInstance;
  /** Base URL the server listens on, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  /** Metrics probe, operator alerts and the traffic watch (tests drive `monitoring.watch.tick()`). */
  readonly monitoring: Monitoring;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly clock?: Clock;
  /** Listen (default) or only build the app, for inject()-based tests. */
  readonly listen?: boolean;
  /** Where JSON log lines go (default stdout); tests pass a stream to read them. */
  readonly logDestination?: DestinationStream;
}

export async function startRunnel(config: Config, options: StartOptions = {}): Promise<Runnel> {
  const clock = options.clock ?? systemClock;
  await mkdir(config.dataDir, { recursive: true });
  const metrics = createMetrics();
  const logger = createLogger(config.logLevel, options.logDestination);

  const logLogger = logger.child({ component: "log" });
  // The local log by default; Apache Kafka topics when brokers are configured (docs/kafka.md).
  const localLog =
    config.kafkaBrokers === undefined
      ? new LocalEventLog({
          dir: join(config.dataDir, "log"),
          segmentBytes: config.log.segmentBytes,
          clock,
          lock: { warn: (message) => logLogger.warn(message) },
          onRecovery: (report) => {
            metrics.logRecoveries.inc({ reason: report.reason });
            logLogger.warn({ ...report }, "truncated on recovery");
          },
          onGroupCommit: (group) => {
            metrics.logFsyncBatchRecords.observe(group.records);
            metrics.logFsyncBatchAppends.observe(group.appends);
          },
        })
      : undefined;
  const baseLog: EventLog =
    localLog ??
    createKafkaEventLog({
      brokers: [...(config.kafkaBrokers ?? [])],
      clientId: "runnel",
      topicPrefix: config.kafkaTopicPrefix,
    });
  // Every append, from ingest, pipelines or checkpoints, is timed the same way (any log implementation).
  const log: EventLog = new TimedEventLog(baseLog, (seconds, outcome) =>
    metrics.logAppendDuration.observe({ outcome }, seconds),
  );
  // Revocation as one event: the store publishes every revoking change; the credential cache and
  // open streams and sockets (the connection guard, below) obey it.
  const revocations = new Revocations((err) =>
    logger.child({ component: "auth" }).error({ err }, "a revocation listener failed"),
  );
  // Resolved credentials are cached for ingest's sake; every revocation empties the cache.
  const credentials = new CredentialCache(clock, { revocations });
  // This process in the control store's change feed: its connections name it, so it can tell its
  // own changes from those of the other instances sharing the database.
  const origin = randomUUID();
  const control: ControlStore =
    config.databaseUrl !== undefined
      ? createPostgresControlStore(config.databaseUrl, { revocations, origin })
      : createPgliteControlStore(join(config.dataDir, "control"), { revocations });
  await mkdir(join(config.dataDir, "analytics"), { recursive: true });
  const archiveLocation = createArchiveLocation(config.archive.location, config.dataDir);
  await archiveLocation.open();
  // In a worker thread: its DuckDB appends would otherwise share the event loop with ingest.
  const analytics = createWorkerAnalyticsStore({
    path: join(config.dataDir, "analytics", "runnel.duckdb"),
    readers: config.query.concurrency,
    maxRows: config.query.maxRows,
    maxResultBytes: config.query.maxResultBytes,
    queryTimeoutMs: config.query.timeoutMs,
    sandbox: { memoryLimit: `${config.query.memoryLimitBytes}B` },
    threads: config.query.storeThreads,
    archiveDir: archiveLocation.localDir,
  });
  // Fair admission of queries across users (docs/security.md, "Query limits").
  const queries = new QueryScheduler({
    maxRunning: config.query.concurrency,
    maxRunningPerPrincipal: config.query.userConcurrency,
    maxQueuedPerPrincipal: config.query.userQueue,
  });
  metrics.onScrape(() => {
    const { running, queued } = queries.stats();
    metrics.queries.set({ state: "running" }, running);
    metrics.queries.set({ state: "queued" }, queued);
  });

  const startedAt = clock.now();
  const mode = clusterMode(config);
  if (mode.cluster) requireSharedArchive(config);
  // Set once the checkpoint store is open; /readyz asks it from the start.
  let cluster: ClusterNode | undefined;
  const closers: Closer[] = [];
  const shutdownLogger = logger.child({ component: "shutdown" });
  const stopAll = (): Promise<void> => stopInReverse(closers, shutdownLogger);

  try {
    // The log first: the local log's directory lock (src/log/local/dir-lock.ts) must refuse a second
    // process before it opens the embedded control store or anything else under the data directory.
    await log.open();
    closers.push({ name: "event log", close: () => log.close() });
    await control.open();
    closers.push({ name: "control store", close: () => control.close() });
    await bootstrapAdmin(control, config);
    await analytics.open();
    closers.push({ name: "analytics store", close: () => analytics.close() });
    // Before every runner, so the runners that follow its ownership (pipelines, rules) are stopped
    // before it leaves the group.
    cluster = await openCluster(config, mode, logger, metrics, closers);
    const ownership = cluster?.ownership;

    const analyticsLogger = logger.child({ component: "analytics" });
    const columns = new ColumnCatalog({ control, maxColumns: config.limits.maxColumnsPerStream });
    // Records consumers can never process go to dead-letter streams, which the catalogue (below) creates.
    let catalog: StreamCatalog | undefined;
    const catalogOf = (): StreamCatalog => {
      if (catalog === undefined) throw new Error("the stream catalogue is not open yet");
      return catalog;
    };
    // Letters written before monitoring starts are alerted once it has.
    let consumerAlerts: ConsumerAlerts | undefined;
    const earlyLetters: DeadLetter[] = [];
    const consumerLogger = logger.child({ component: "consumers" });
    const alertLetter = (letter: DeadLetter): void => {
      const { consumer, stream, record, error } = letter;
      const reason = errorText(error);
      consumerLogger.warn(
        { consumer, stream, partition: record.partition, offset: record.offset, reason },
        "record dead-lettered",
      );
      consumerAlerts?.deadLettered({ consumer, stream, partition: record.partition, offset: record.offset, reason });
    };
    const deadLetters = new DeadLetters({
      log,
      streams: { get: (name) => catalogOf().get(name), create: (spec) => catalogOf().create(spec) },
      now: () => clock.now(),
      onDeadLetter: (letter) => (consumerAlerts === undefined ? earlyLetters.push(letter) : alertLetter(letter)),
    });
    // Set below; a partition the loader gains is loaded from the archive boundary it publishes.
    let archiverOf: (() => Archiver) | undefined;
    const loader = new AnalyticsLoader({
      log,
      store: analytics,
      columns,
      onError: (err, stream) => analyticsLogger.warn({ err, stream }, "loading failed; will retry"),
      deadLetters,
      // In a cluster each instance loads the partitions it owns; queries are routed to the owners
      // (src/cluster/queries/, docs/cluster.md "Queries across instances").
      ...(ownership !== undefined && {
        ownership,
        boundaries: (stream: string) => {
          if (archiverOf === undefined) throw new Error("the archiver is not open yet");
          return archiverOf().publishedBoundaries(stream);
        },
      }),
    });
    closers.push({ name: "analytics loader", close: () => loader.stop() });
    const archiveLogger = logger.child({ component: "archive" });
    const archiver = new Archiver({
      control,
      analytics,
      location: archiveLocation,
      now: () => clock.now(),
      onError: (err, stream) => {
        metrics.archiveFailures.inc({ stream });
        archiveLogger.warn({ err, stream }, "archiving failed; rows stay hot, will retry");
      },
      onCommitted: (file) => {
        metrics.archiveWrittenFiles.inc({ stream: file.stream });
        metrics.archiveWrittenBytes.inc({ stream: file.stream }, file.bytes);
      },
      onCompacted: (stream) => metrics.archiveCompactions.inc({ stream }),
      // In a cluster only the owned partitions: another instance loads and archives the others.
      ...(ownership !== undefined && { owns: (p: number) => ownership.owns(p) }),
    });
    archiverOf = () => archiver;
    metrics.onScrape(async () => {
      const indexed = (await control.listStreams()).filter((s) => s.analytics !== false);
      const names = indexed.map((s) => s.name);
      metrics.rollupInputRows.reset();
      metrics.rollupKeptRows.reset();
      for (const s of indexed) {
        if (s.rollups === undefined) continue;
        for (const r of await analytics.rollupStats(s.name)) {
          metrics.rollupInputRows.set({ stream: s.name, rollup: r.name }, r.rowsIn);
          metrics.rollupKeptRows.set({ stream: s.name, rollup: r.name }, r.rowsKept);
        }
      }
      for (const metric of [metrics.archiveFiles, metrics.archiveBytes, metrics.archiveRows, metrics.archiveLag]) {
        metric.reset();
      }
      for (const [stream, lag] of archiver.lagSeconds(names)) {
        metrics.archiveLag.set({ stream }, lag);
        const held = archiver.stats.streams.get(stream);
        metrics.archiveFiles.set({ stream }, held?.files ?? 0);
        metrics.archiveBytes.set({ stream }, held?.bytes ?? 0);
        metrics.archiveRows.set({ stream }, held?.rows ?? 0);
      }
    });
    const streams = new StreamCatalog({ control, log, analytics, loader, columns, archive: archiver });
    catalog = streams;
    await streams.open();
    // Before any query: the archive as committed, and none of its rows left in the hot tier.
    await archiver.recover();
    archiver.start(config.archive.intervalMs);
    closers.push({ name: "archiver", close: () => archiver.stop() });
    // Backfill (src/archive/import/): jobs stop after their chunk before the archiver stops.
    const importSpool = join(config.dataDir, "imports");
    await rm(importSpool, { recursive: true, force: true });
    const imports = new ImportJobs({
      importer: new Importer({
        control,
        archiver,
        location: archiveLocation,
        analytics,
        columns,
        clock,
        maxEventBytes: config.limits.maxEventBytes,
        chunkRows: config.archive.importChunkRows,
        onChunk: (stream, rows) => metrics.archiveImportedRows.inc({ stream }, rows),
      }),
      control,
      spoolDir: importSpool,
      now: () => clock.now(),
      onFinished: (p) =>
        archiveLogger.info(
          { stream: p.stream, id: p.id, state: p.state, rows: p.rowsImported, files: p.files, error: p.error },
          "import finished",
        ),
    });
    closers.push({ name: "imports", close: () => imports.close() });
    metrics.onScrape(() => metrics.archiveImportsRunning.set(imports.running().length));
    // Opened after monitoring, whose probe hears its windows' state and checkpoints.
    let pipelineManager: PipelineManager | undefined;
    let ruleManager: RuleManager | undefined;
    const failingConsumers = (): ConsumerFailure[] => {
      const out: ConsumerFailure[] = [];
      for (const [stream, s] of loader.status()) {
        if (s.failing === undefined) continue;
        const { since, attempts, error } = s.failing;
        out.push({ consumer: `analytics/${stream}`, since, attempts, error: errorText(error) });
      }
      out.push(...(pipelineManager?.failing() ?? []), ...(ruleManager?.failing() ?? []));
      return out;
    };

    const readiness = async () => ({
      control: await control.ping().catch(() => false),
      analytics: await analytics.ping().catch(() => false),
      // Kafka's log answers false while no broker answers (ingest then refuses with 503 too).
      log: await (log.ping?.() ?? Promise.resolve(true)).catch(() => false),
      // Every consumer of the log is running and none keeps failing (details in /readyz's `consumers`).
      processing: pipelineManager !== undefined && ruleManager !== undefined && failingConsumers().length === 0,
      // Cluster mode: joined, and the tasks of every slot the group gave this instance restored.
      ...(mode.cluster && { cluster: cluster?.ready() ?? false }),
    });
    const monitoring = startMonitoring({
      metrics,
      clock,
      log,
      ...(localLog && { logStats: () => localLog.stats(), logStreamSizes: () => localLog.streamSizes() }),
      dataDir: config.dataDir,
      logDir: join(config.dataDir, "log"),
      pipelines: async () => (await pipelineManager?.list()) ?? [],
      pipelineGroup,
      analyticsLag: () => loader.lag(),
      readiness,
      ...(hasPoolStats(control) && { controlPool: () => control.poolStats() }),
      logger,
      anomaly: { intervalMs: config.monitoring.anomalyIntervalMs },
    });
    closers.push({ name: "monitoring", close: () => monitoring.stop() });
    consumerAlerts = new ConsumerAlerts(monitoring.operatorAlerts, metrics, clock);
    for (const letter of earlyLetters.splice(0)) alertLetter(letter);
    const alerts = consumerAlerts;
    const consumerWatch = setInterval(() => {
      const failing = new Map(failingConsumers().map((f) => [f.consumer, f.error]));
      // Archiving that keeps failing raises the same operator alert (rows stay hot meanwhile).
      for (const [stream, { error }] of archiver.failing()) failing.set(`archive/${stream}`, error);
      alerts.sample(failing);
    }, config.monitoring.anomalyIntervalMs);
    consumerWatch.unref();
    closers.push({ name: "consumer watch", close: async () => clearInterval(consumerWatch) });
    // Every task checkpoints through one store (issue 16): files under the data directory, or the
    // control plane's PostgreSQL that every instance of the installation reaches (RUNNEL_CHECKPOINT_STORE).
    const checkpoints = await openCheckpointStore(config);
    closers.push({ name: "checkpoint store", close: () => checkpoints.close() });
    // The outputs of a task this instance lost are fenced by the broker (docs/cluster.md).
    const fencedWriter = cluster === undefined ? undefined : taskWriters(baseLog, config);
    const pipelines = new PipelineManager({
      control,
      log,
      streams,
      metrics,
      clock,
      checkpoints,
      probe: monitoring.probe,
      deadLetters,
      ...(cluster !== undefined && { ownership: cluster.ownership }),
      ...(fencedWriter !== undefined && { fencedWriter }),
    });
    pipelineManager = pipelines;
    await pipelines.open();
    closers.push({ name: "pipelines", close: () => pipelines.stop() });
    // After monitoring, so rules report matches, alerts, webhooks and state through its probe.
    const rules = new RuleManager({
      control,
      log,
      checkpoints,
      // Where rules checkpointed before the store: imported on each rule's first start.
      legacyDir: join(config.dataDir, "cep"),
      streamExists: async (name) => (await streams.getStream(name)) !== undefined,
      streamRetention: async (name) => (await streams.getStream(name))?.retentionMs,
      probe: monitoring.probe,
      deadLetters,
      ...(cluster !== undefined && { ownership: cluster.ownership }),
      ...(fencedWriter !== undefined && { fencedWriter }),
    });
    ruleManager = rules;
    await rules.open();
    closers.push({ name: "rules", close: () => rules.stop() });
    // The tasks of the runners that share the work, the loader's included.
    const tasks = () => [...pipelines.tasks(), ...rules.tasks(), ...(cluster === undefined ? [] : loader.tasks())];
    if (cluster !== undefined) cluster.tasks = tasks;
    // On a shared PostgreSQL, the rules, pipelines, streams and blocks changed through any instance
    // take effect here too, and alerts raised anywhere reach this instance's live listeners.
    if (config.databaseUrl !== undefined) {
      const syncLogger = logger.child({ component: "control-sync" });
      const feed = new PostgresChangeFeed({
        url: config.databaseUrl,
        origin,
        handler: new ControlSync({ rules, pipelines, streams }),
        onError: (err, what) => syncLogger.warn({ err }, `${what} failed; will read it again`),
      });
      await feed.start();
      closers.push({ name: "control change feed", close: () => feed.stop() });
    }
    // Kafka enforces retention itself (retention.ms on each topic).
    if (localLog) {
      const retention = scheduleRetention(localLog, config.retentionIntervalMs, metrics, logLogger);
      closers.push({ name: "retention", close: async () => clearInterval(retention) });
    }

    const ingestLogger = logger.child({ component: "ingest" });
    const ingestion = await startIngestion({
      config,
      log,
      streams,
      clock,
      metrics,
      lag: () => loader.lag(),
      onSourceError: (source, err) => ingestLogger.warn({ err, source }, "source failed; will retry"),
      // The validator checks CEP blocks, so HTTP, WebSocket and every source refuse a blocked user.
      blocks: rules,
      columns,
    });
    closers.push({ name: "ingestion", close: () => ingestion.stop() });
    const ingestor = ingestion.ingestor;
    // One secret per installation in cluster mode, so every instance accepts every instance's tokens.
    const tokenSecret = await (cluster === undefined || config.auth.tokenSecret !== undefined
      ? loadTokenSecret(join(config.dataDir, "token-secret"), config.auth.tokenSecret)
      : cluster.tokenSecret());
    const tokens = new TokenService(tokenSecret, config.auth.tokenTtlMs, clock);
    const auth = new Authenticator(control, tokens, credentials);
    const services: ApiServices = {
      config,
      clock,
      metrics,
      control,
      analytics,
      queries,
      log,
      ingestor,
      streams,
      pipelines,
      rules,
      tokens,
      auth,
      // Connections re-check as often as the cache forgets, so another instance's change reaches them within 2 TTLs.
      connections: new ConnectionGuard(auth, revocations, credentials.ttlMs),
      passwords: createPasswordHasher(),
      readiness,
      consumers: () => consumerReports(failingConsumers(), alerts),
      logger,
      operatorAlerts: monitoring.operatorAlerts,
      idempotency: ingestion.idempotency,
      sources: ingestion.sources,
      imports,
      cluster: clusterView(config, mode, cluster, streams, () => url, startedAt, clock, tasks),
      ...(cluster !== undefined && {
        queryRouter: queryRouter(config, cluster, control, analytics, loader, columns, tokenSecret),
      }),
    };
    const app = await buildApp(services);
    closers.push({ name: "HTTP server", close: () => app.close() });
    let url = "";
    if (options.listen !== false) {
      url = await app.listen({ host: config.host, port: config.port });
      // One line, once: `/` then answers with a page saying the same.
      if (!dashboardBuilt()) logger.warn({ dir: WEB_DIST }, DASHBOARD_MISSING);
    }
    await cluster?.start(config.cluster.advertisedUrl ?? advertisedUrl(config, url));
    return { app, url, monitoring, stop: stopAll };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

/** Cluster mode: every query goes to the instances owning its partitions (docs/cluster.md, "Queries across instances"). */
function queryRouter(
  config: Config,
  node: ClusterNode,
  control: ControlStore,
  analytics: AnalyticsStore & Pick<TieredStore, "ensureColumns">,
  loader: AnalyticsLoader,
  columns: ColumnCatalog,
  tokenSecret: string,
): QueryRouter {
  const { maxRows, maxResultBytes, timeoutMs, memoryLimitBytes } = config.query;
  return new QueryRouter({
    instanceId: config.cluster.instanceId,
    ownership: node.ownership,
    instances: () => node.instances(),
    streams: () => control.listStreams(),
    store: analytics,
    loaded: (tables, wanted) => node.ready() && loader.readyFor(wanted, tables),
    alignColumns: async (tables) => {
      for (const table of tables) await analytics.ensureColumns(table, await columns.columnsOf(table));
    },
    auth: new InstanceAuth(tokenSecret, config.cluster.instanceId),
    distributed: distributedQueries(
      { maxRows, maxBytes: maxResultBytes, timeoutMs },
      { threads: 1, memoryLimit: `${memoryLimitBytes}B` },
    ),
    // The owner's own limit applies to its share; the margin covers the hop.
    timeoutMs: timeoutMs + 5_000,
  });
}

/**
 * Each task's fenced writer in cluster mode: one transactional id per task of the installation (and
 * topic prefix, so installations sharing a Kafka cluster never fence each other), so the task's next
 * owner fences this instance's writes for it. The base log's: fenced appends are not timed.
 */
function taskWriters(log: EventLog, config: Config): ((task: string) => FencedWriter) | undefined {
  const writer = log.fencedWriter?.bind(log);
  if (writer === undefined) return undefined;
  const prefix = `${config.kafkaTopicPrefix}${config.cluster.installation}.`;
  return (task) => writer(`${prefix}${task}`);
}

/**
 * At the latest this long after a shutdown begins, the instance leaves its group, even while the
 * steps before the leave still run (their writes are fenced from then on): they take under a
 * second normally (0.7 s on the loaded fault rig).
 */
const LEAVE_WITHIN_MS = 5_000;

/**
 * Cluster mode's node (src/cluster/node.ts) when the configuration shares Kafka, PostgreSQL and the
 * checkpoint store; otherwise one line saying why this process stays one instance.
 */
async function openCluster(
  config: Config,
  mode: ReturnType<typeof clusterMode>,
  logger: Logger,
  metrics: Metrics,
  closers: Closer[],
): Promise<ClusterNode | undefined> {
  const log = logger.child({ component: "cluster" });
  if (!mode.cluster || config.kafkaBrokers === undefined || config.databaseUrl === undefined) {
    if (!mode.cluster && config.kafkaBrokers !== undefined) {
      log.info({ reason: mode.reason }, `one instance: ${mode.reason}`);
    }
    metrics.onScrape(() => metrics.clusterInstances.set(1));
    return undefined;
  }
  const db = await connectPostgres(config.databaseUrl, { max: 2 });
  closers.push({ name: "instance registry", close: () => db.close() });
  const node = await ClusterNode.open({
    brokers: config.kafkaBrokers,
    topicPrefix: config.kafkaTopicPrefix,
    cluster: config.cluster,
    db,
    logger,
    onRebalance: () => metrics.clusterRebalances.inc(),
  });
  // The slots move one session timeout after the leave, so slow runner stops (a final checkpoint on a
  // loaded machine) must not hold it back for long; the runners are fenced once it is done.
  closers.push({ name: "cluster membership", close: () => node.close(), latestStartMs: LEAVE_WITHIN_MS });
  metrics.onScrape(async () => {
    metrics.clusterOwnedSlots.set(node.ownership.owned().size);
    const instances = await node.instances();
    metrics.clusterInstances.set(instances.filter((i) => i.live).length);
  });
  const { installation, instanceId, slots } = config.cluster;
  log.info(
    { installation, instanceId, slots, sessionTimeoutMs: node.sessionTimeoutMs },
    `cluster mode: instance "${instanceId}" of installation "${installation}", ${slots} slots shared through group "${installation}.tasks"`,
  );
  return node;
}

/** Where the others reach this instance by default: its own address, the hostname when it listens on every interface. */
function advertisedUrl(config: Config, listening: string): string {
  const port = listening === "" ? config.port : Number(new URL(listening).port);
  const wildcard = config.host === "0.0.0.0" || config.host === "::";
  return `http://${wildcard ? hostname() : config.host}:${port}`;
}

/** GET /api/v1/cluster's answer, from the registry in cluster mode, from this process alone otherwise. */
function clusterView(
  config: Config,
  mode: ReturnType<typeof clusterMode>,
  node: ClusterNode | undefined,
  streams: StreamCatalog,
  url: () => string,
  startedAt: number,
  clock: Clock,
  tasks: () => readonly TaskReport[],
): ClusterView {
  const { installation, instanceId } = config.cluster;
  return {
    async status() {
      const defined = (await streams.list()).map((s) => ({ name: s.name, partitions: s.partitions }));
      if (node !== undefined) {
        return clusterStatus({
          installation,
          instanceId,
          slots: config.cluster.slots,
          sessionTimeoutMs: node.sessionTimeoutMs,
          mode: "cluster",
          instances: await node.instances(),
          streams: defined,
        });
      }
      const now = new Date(clock.now()).toISOString();
      return clusterStatus({
        installation,
        instanceId,
        slots: 1,
        sessionTimeoutMs: null,
        mode: "single",
        reason: mode.cluster ? "cluster mode is off" : mode.reason,
        instances: [
          {
            id: instanceId,
            url: config.cluster.advertisedUrl ?? advertisedUrl(config, url()),
            startedAt: new Date(startedAt).toISOString(),
            lastSeen: now,
            live: true,
            slots: [0],
            lastRebalanceAt: null,
            tasks: tasks(),
          },
        ],
        streams: defined,
      });
    },
  };
}

/**
 * The log offers enforceRetention() but does not schedule it; the root does, every `intervalMs`
 * (RUNNEL_RETENTION_INTERVAL), and counts what it deletes.
 */
function scheduleRetention(log: LocalEventLog, intervalMs: number, metrics: Metrics, logger: Logger): NodeJS.Timeout {
  const timer = setInterval(() => {
    log.enforceRetention().then(
      (r) => {
        metrics.logRetentionSegments.inc(r.deletedSegments);
        metrics.logRetentionBytes.inc(r.deletedBytes);
        if (r.deletedSegments > 0) logger.info(r, "retention deleted old segments");
      },
      (err: unknown) => logger.warn({ err }, "retention failed; will try again"),
    );
  }, intervalMs);
  timer.unref();
  return timer;
}

async function bootstrapAdmin(control: ControlStore, config: Config): Promise<void> {
  if ((await control.countAdmins()) > 0) return;
  if (config.adminPassword === undefined) {
    throw new StartupError(
      "no admin account exists yet: set RUNNEL_ADMIN_PASSWORD (at least 8 characters) for the first start",
    );
  }
  try {
    await control.createUser({
      username: "admin",
      email: "admin@localhost",
      passwordHash: await hashPassword(config.adminPassword),
      role: "admin",
    });
  } catch (e) {
    // Instances of a cluster starting at once on a new database: one of them created it first.
    if ((await control.countAdmins()) === 0) throw e;
  }
}
