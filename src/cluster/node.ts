/**
 * This process as one instance of a cluster (docs/cluster.md): it creates the installation's slots
 * topic, joins the group `<installation>.tasks` as a static member named by its instance id, feeds
 * what the group gives it into the ownership the runners follow, and keeps its row of the
 * instance registry fresh.
 *
 * Joining runs in the background: a restart after a crash waits for the old session to expire
 * before the broker lets the instance id back in, and the HTTP server answers meanwhile (`/readyz`
 * with 503 until the instance has restored the tasks of the slots it was given).
 */
import { join, resolve } from "node:path";
import { type Config, ConfigError } from "../config/config.js";
import type { SqlExecutor } from "../control/driver.js";
import type { Logger } from "../monitoring/logging.js";
import { GroupOwnership } from "./group-ownership.js";
import { GroupMembership } from "./membership.js";
import type { PartitionOwnership } from "./ownership.js";
import { type InstanceRecord, InstanceRegistry, type TaskReport } from "./registry.js";
import { ensureSlotsTopic, slotsTopic } from "./slots-topic.js";
import { sharedTokenSecret } from "./token-secret.js";

/** Whether this configuration runs as one instance of a cluster, and if not, why. */
export type ClusterMode = { readonly cluster: true } | { readonly cluster: false; readonly reason: string };

export function clusterMode(config: Pick<Config, "kafkaBrokers" | "databaseUrl" | "checkpointStore">): ClusterMode {
  if (config.kafkaBrokers === undefined) {
    return { cluster: false, reason: "the local log serves one process (cluster mode needs RUNNEL_KAFKA_BROKERS)" };
  }
  if (config.databaseUrl === undefined) {
    return {
      cluster: false,
      reason: "the embedded PGlite control database serves one process (cluster mode needs RUNNEL_DATABASE_URL)",
    };
  }
  if (config.checkpointStore !== "database") {
    return {
      cluster: false,
      reason: "checkpoints are files on this machine (cluster mode needs RUNNEL_CHECKPOINT_STORE=database)",
    };
  }
  return { cluster: true };
}

/**
 * Instances of a cluster load and archive only the partitions they own, and a partition's archived
 * rows are read by whichever instance owns it next (docs/cluster.md, "A shared archive"). The
 * default archive, `<data dir>/archive`, is this instance's own: with it a moved partition's
 * archived rows would silently drop out of every answer, so cluster mode refuses to start on it.
 */
export function requireSharedArchive(config: Pick<Config, "dataDir" | "archive">): void {
  const where = config.archive.location;
  if (where.kind === "local" && resolve(where.dir) === resolve(join(config.dataDir, "archive"))) {
    throw new ConfigError(
      "RUNNEL_ARCHIVE_URL",
      "must name an archive every instance of the cluster reads (s3://bucket/prefix, or a directory " +
        "they all mount): the default <data dir>/archive is this instance's own, and the archived rows " +
        "of a partition that moves must stay readable by its next owner",
    );
  }
}

export interface ClusterNodeOptions {
  readonly brokers: readonly string[];
  readonly topicPrefix: string;
  readonly cluster: Config["cluster"];
  /** The control database, migrated (the instance registry's table). */
  readonly db: SqlExecutor;
  readonly logger: Logger;
  /** Each followed change of the owned slots (the rebalance counter). */
  readonly onRebalance?: () => void;
  /** How often the registry row is refreshed. Default 2 s. */
  readonly refreshMs?: number;
  /** How long to wait between attempts to join. Default 5 s. */
  readonly joinRetryMs?: number;
}

const DEFAULT_REFRESH_MS = 2_000;
const DEFAULT_JOIN_RETRY_MS = 5_000;
const ERROR_LOG_EVERY_MS = 60_000;

export class ClusterNode {
  /** This instance's tasks, for the registry; the composition root sets it once the runners exist. */
  tasks: () => readonly TaskReport[] = () => [];
  private url: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> | undefined;
  private joining: Promise<void> | undefined;
  private closed = false;
  private duplicateReported = false;
  private refreshFailing = false;

  private constructor(
    private readonly options: ClusterNodeOptions,
    private readonly group: GroupOwnership,
    private readonly registry: InstanceRegistry,
    /** The group's session timeout, as the brokers apply it. */
    readonly sessionTimeoutMs: number,
  ) {}

  /**
   * Creates the slots topic if missing and sets the group's session timeout if configured: a slot
   * count or a session timeout the cluster refuses stops the start here, with the reason.
   */
  static async open(options: ClusterNodeOptions): Promise<ClusterNode> {
    const { brokers, topicPrefix, cluster, logger } = options;
    const topic = slotsTopic(topicPrefix);
    await ensureSlotsTopic(brokers, topic, cluster.slots);
    const member = new GroupMembership({
      brokers,
      group: `${cluster.installation}.tasks`,
      topics: [topic],
      instanceId: cluster.instanceId,
      clientId: `runnel-${cluster.instanceId}`,
      ...(cluster.sessionTimeoutMs !== undefined && { sessionTimeoutMs: cluster.sessionTimeoutMs }),
    });
    await member.configure();
    const sessionTimeoutMs = await member.sessionTimeoutMs();
    const log = logger.child({ component: "cluster" });
    // Heartbeats that fail while a broker is lost, or while the broker still holds a crashed
    // predecessor's session, are retried every second: worth a line, not one a second.
    let lastError = { message: "", at: 0 };
    member.on("error", (err) => {
      const now = Date.now();
      if (err.message === lastError.message && now - lastError.at < ERROR_LOG_EVERY_MS) return;
      lastError = { message: err.message, at: now };
      log.warn({ err }, "group membership failed; retrying (the same failure is logged once a minute)");
    });
    member.on("revoked", ({ partitions, reason }) =>
      log.info({ slots: partitions.map((p) => p.partition), reason }, "slots revoked"),
    );
    member.on("assigned", ({ partitions }) =>
      log.info({ slots: partitions.map((p) => p.partition) }, "slots assigned"),
    );
    let node: ClusterNode | undefined;
    const group = new GroupOwnership({
      member,
      slots: cluster.slots,
      sessionTimeoutMs,
      onRebalance: ({ owned, ms }) => {
        log.info({ owned, ms }, "runners follow the owned slots");
        options.onRebalance?.();
        node?.refreshSoon();
      },
      onError: (err) => log.error({ err }, "a runner failed to follow a change of the owned slots"),
    });
    const registry = new InstanceRegistry(options.db, {
      installation: cluster.installation,
      instanceId: cluster.instanceId,
    });
    node = new ClusterNode(options, group, registry, sessionTimeoutMs);
    return node;
  }

  /** The slots this instance owns: what the runners follow. */
  get ownership(): PartitionOwnership {
    return this.group.ownership;
  }

  /** Registers at `url` (where this instance is reached) and joins the group in the background. */
  async start(url: string): Promise<void> {
    this.url = url;
    await this.registry.register(new Date(), url);
    const refreshMs = this.options.refreshMs ?? DEFAULT_REFRESH_MS;
    this.timer = setInterval(() => this.refreshSoon(), refreshMs);
    this.timer.unref();
    this.joining = this.joinUntilJoined();
  }

  /** Joined, and the runners have restored the tasks of every slot the group gave this instance. */
  ready(): boolean {
    return this.group.ready();
  }

  /** When the owned slots last changed (ms since the epoch), and how often they have. */
  rebalances(): { readonly count: number; readonly lastAt: number | undefined } {
    return this.group.rebalances();
  }

  /** The installation's token secret, generated by the first instance (when RUNNEL_TOKEN_SECRET is not set). */
  tokenSecret(): Promise<string> {
    return sharedTokenSecret(this.options.db, this.options.cluster.installation);
  }

  /** Every instance of the installation the registry knows, live or recently gone. */
  instances(): Promise<InstanceRecord[]> {
    return this.registry.list();
  }

  /**
   * Leaves for a restart (KIP-848's temporary leave: the broker keeps this instance's slots for it
   * until its session times out, so a rolling restart moves nothing) and marks the row not live.
   * Called after the runners have stopped.
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.refreshing;
    await this.group.leave({ temporary: true });
    await this.joining;
    await this.registry.deregister().catch(() => undefined);
  }

  private async joinUntilJoined(): Promise<void> {
    const log = this.options.logger.child({ component: "cluster" });
    const retryMs = this.options.joinRetryMs ?? DEFAULT_JOIN_RETRY_MS;
    while (!this.closed) {
      try {
        await this.group.join();
        log.info({ group: `${this.options.cluster.installation}.tasks` }, "joined the installation's group");
        return;
      } catch (err) {
        if (this.closed) return;
        log.warn({ err }, `could not join the installation's group; trying again in ${retryMs} ms`);
        await new Promise((resolve) => setTimeout(resolve, retryMs).unref());
      }
    }
  }

  private refreshSoon(): void {
    if (this.closed || this.refreshing !== undefined || this.url === undefined) return;
    this.refreshing = this.refresh().finally(() => {
      this.refreshing = undefined;
    });
  }

  private async refresh(): Promise<void> {
    const log = this.options.logger.child({ component: "cluster" });
    const { lastAt } = this.group.rebalances();
    try {
      const mine = await this.registry.refresh({
        slots: [...this.group.ownership.owned()],
        ...(lastAt !== undefined && { lastRebalanceAt: lastAt }),
        tasks: this.tasks(),
      });
      if (this.refreshFailing) log.info("the instance registry is reachable again");
      this.refreshFailing = false;
      if (!mine && !this.duplicateReported) {
        this.duplicateReported = true;
        log.error(
          { instanceId: this.options.cluster.instanceId },
          "another process registered under this instance id: give each instance its own RUNNEL_INSTANCE_ID",
        );
      }
    } catch (err) {
      if (!this.refreshFailing) log.warn({ err }, "could not refresh this instance's row of the registry; will retry");
      this.refreshFailing = true;
    }
  }
}
