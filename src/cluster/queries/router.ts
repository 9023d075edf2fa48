/**
 * Any instance of a cluster answers any query (docs/cluster.md, "Queries across instances"). Each
 * instance's analytics hold only the partitions of the slots it owns, so the instance asked
 * (the coordinator) finds the slots the query needs and their owners (./owners.ts):
 *
 * - a `user`'s query needs the slot of the user's partition of each stream it reads (streams are
 *   partitioned by user_id); installation-wide queries (`all`) need every slot;
 * - when one instance owns every needed slot, it answers the query whole over its share: itself,
 *   or the owner, to which the query is forwarded (Kafka Streams' interactive queries);
 * - otherwise the query is split by the planner (src/analytics/distributed/) into a partial that
 *   every owner runs over its share and a merge the coordinator runs over their rows (Druid's and
 *   Pinot's brokers), or refused with `query_not_distributable`, naming why.
 *
 * The share an owner answers for is named in the request and the owner checks that it still owns
 * it, under a valid lease, and that its loader has caught up with every partition of it since it
 * gained them (waiting a moment for that: a stream just created is loaded within a round or
 * two); otherwise, or when an owner does not answer, the query fails with
 * `cluster_rebalancing` (503, Retry-After), never with a partial or doubled answer. Requests
 * between instances are signed (./instance-auth.ts) and carry the caller's scope, which the owner
 * applies as it is: a `user` scope stays that user's rows only.
 */
import { parametersFor } from "../../analytics/distributed/partials.js";
import type { DistributedPlan, DistributeOptions } from "../../analytics/distributed/types.js";
import { checkQuery } from "../../analytics/sql/check.js";
import type { AnalyticsStore, QueryResult, QueryScope } from "../../analytics/types.js";
import type { StreamDefinition } from "../../control/types.js";
import { ERROR_CATALOGUE, type ErrorCode, RunnelError } from "../../core/errors.js";
import { partitionForKey } from "../../log/partitioner.js";
import type { PartitionOwnership } from "../ownership.js";
import type { InstanceRecord } from "../registry.js";
import { INSTANCE_SIGNATURE_HEADER, type InstanceAuth } from "./instance-auth.js";
import { ownersOf, rebalancing, type SlotOwner } from "./owners.js";

/** The column every stream is partitioned by (the log's key). */
export const PARTITION_KEY = "user_id";

const DEFAULT_LOAD_WAIT_MS = 2_000;
const LOAD_POLL_MS = 20;

/** Where an instance answers its share of a query (POST, signed). */
export const SHARE_PATH = "/api/v1/cluster/query";

/** What one instance is asked to answer: `sql` over the partitions of `slots` only, for `scope`. */
export interface ShareRequest {
  readonly sql: string;
  readonly params: readonly unknown[];
  readonly scope: QueryScope;
  readonly slots: readonly number[];
  /** The stream tables `sql` reads, whose columns the owner aligns with the catalogue first. */
  readonly tables: readonly string[];
}

/** The planner and the merge of partial results (src/analytics/distributed/). */
export interface DistributedQueries {
  plan(sql: string, options: DistributeOptions): Promise<DistributedPlan>;
  /** Runs `plan.mergeSql` over a table `partials` holding every partial's rows; `params`: the caller's, all of them. */
  merge(plan: DistributedPlan, partials: readonly QueryResult[], params: readonly unknown[]): Promise<QueryResult>;
}

export interface QueryRouterOptions {
  /** This instance's id, as the registry lists it. */
  readonly instanceId: string;
  readonly ownership: PartitionOwnership;
  /** The installation's instances (the registry). */
  readonly instances: () => Promise<readonly InstanceRecord[]>;
  /** The streams defined (names, partition counts, rollups). */
  readonly streams: () => Promise<readonly StreamDefinition[]>;
  /** This instance's store: answers a share. */
  readonly store: Pick<AnalyticsStore, "query">;
  /**
   * Whether this instance has loaded, of the streams `tables` names, every owned partition `wanted`
   * picks (the loader's readyFor).
   */
  readonly loaded: (tables: readonly string[], wanted: (partition: number) => boolean) => boolean;
  /**
   * How long an owner waits for its loader to catch up before refusing a share as still loading
   * (default 2 s): a stream created a moment ago, or a partition just gained with little to read,
   * is ready within a round or two, and a query then should not fail for it.
   */
  readonly loadWaitMs?: number;
  /**
   * Gives these stream tables every column the catalogue registered, with its registered type:
   * an instance adds a column when its own partitions first hold the field, and every instance's
   * partial must bind the same columns with the same types.
   */
  readonly alignColumns: (tables: readonly string[]) => Promise<void>;
  readonly auth: InstanceAuth;
  readonly distributed: DistributedQueries;
  /** How long an owner may take to answer (the query time limit, plus a margin for the hop). */
  readonly timeoutMs: number;
  readonly now?: () => number;
  readonly fetch?: typeof fetch;
}

export class QueryRouter {
  private readonly now: () => number;
  private readonly fetch: typeof fetch;

  constructor(private readonly options: QueryRouterOptions) {
    this.now = options.now ?? Date.now;
    this.fetch = options.fetch ?? fetch;
  }

  /** Answers `sql` for `scope` over the whole installation's data, from whichever instances own it. */
  async query(sql: string, params: readonly unknown[], scope: QueryScope): Promise<QueryResult> {
    const { slots: needed, tables, partitions } = await this.slotsNeeded(sql, scope);
    // It reads no stream (SELECT 1): any instance answers it, this one.
    if (needed.length === 0) {
      return this.options.store.query(sql, params, scope, { slots: this.options.ownership.slots, owned: [] });
    }
    const owners = ownersOf(await this.options.instances(), needed);
    if (owners.length === 1) return this.ask(owners[0] as SlotOwner, { sql, params, scope, slots: needed, tables });
    refuseUnlessCopartitioned(partitions);
    const plan = await this.options.distributed.plan(sql, { partitionKey: PARTITION_KEY, now: new Date(this.now()) });
    const partialParams = parametersFor(plan.partialParams, params);
    const partials = await Promise.all(
      owners.map((owner) =>
        this.ask(owner, { sql: plan.partialSql, params: partialParams, scope, slots: owner.slots, tables }),
      ),
    );
    return this.options.distributed.merge(plan, partials, params);
  }

  /** Checks that a share request was signed by an instance of this installation; returns its id. */
  verify(signature: string | string[] | undefined, body: string): string {
    return this.options.auth.verify(typeof signature === "string" ? signature : undefined, body);
  }

  /**
   * Answers one share, on the instance that owns it: refused with `cluster_rebalancing` unless
   * this instance owns every slot of it under a valid lease and has loaded its partitions.
   */
  async answerShare(request: ShareRequest): Promise<QueryResult> {
    const { ownership } = this.options;
    const slots = new Set(request.slots);
    const missing = [...slots].filter((s) => !ownership.owned().has(s));
    if (missing.length > 0) {
      throw rebalancing(`instance ${this.options.instanceId} does not own slot ${missing.join(", ")}`);
    }
    if (ownership.validUntil() <= this.now()) {
      throw rebalancing(`instance ${this.options.instanceId} cannot confirm its ownership (its lease ran out)`);
    }
    if (!(await this.loadedWithin(request.tables, (p) => slots.has(p % ownership.slots)))) {
      throw rebalancing(`instance ${this.options.instanceId} is still loading partitions it gained`);
    }
    await this.options.alignColumns(request.tables);
    return this.options.store.query(request.sql, request.params, request.scope, {
      slots: ownership.slots,
      owned: [...slots].sort((a, b) => a - b),
    });
  }

  /** Whether the loader has caught up with these partitions, waiting for it up to loadWaitMs. */
  private async loadedWithin(tables: readonly string[], wanted: (partition: number) => boolean): Promise<boolean> {
    const { loaded, loadWaitMs = DEFAULT_LOAD_WAIT_MS } = this.options;
    // Monotonic, not `now`: this bounds a wait, it reads no lease.
    const deadline = performance.now() + loadWaitMs;
    while (!loaded(tables, wanted)) {
      if (performance.now() >= deadline) return false;
      await new Promise((resolve) => setTimeout(resolve, LOAD_POLL_MS));
    }
    return true;
  }

  /** The slots whose partitions hold the rows `scope` may see of the streams `sql` reads. */
  private async slotsNeeded(
    sql: string,
    scope: QueryScope,
  ): Promise<{ slots: number[]; tables: string[]; partitions: Map<string, number> }> {
    const slotCount = this.options.ownership.slots;
    // Streams kept out of the analytics store are no tables (the query route says why).
    const streams = (await this.options.streams()).filter((s) => s.analytics !== false);
    const rollups = new Set(streams.flatMap((s) => (s.rollups ?? []).map((r) => r.name)));
    const { tables } = await checkQuery(sql, new Set([...streams.map((s) => s.name), ...rollups]));
    for (const table of tables) {
      if (rollups.has(table)) {
        throw new RunnelError(
          "unsupported_sql",
          `rollup ${table} cannot be read across the instances of a cluster yet; query its stream instead`,
        );
      }
    }
    const read = [...tables].sort();
    const partitions = new Map(streams.filter((s) => tables.has(s.name)).map((s) => [s.name, s.partitions]));
    if (tables.size === 0) return { slots: [], tables: read, partitions };
    const slots = new Set<number>();
    if (scope.kind === "all") {
      // Every partition's slot, and slot 0, which answers for imported rows (they have no partition).
      slots.add(0);
      for (const [, n] of partitions) for (let p = 0; p < Math.min(n, slotCount); p++) slots.add(p);
    } else {
      for (const [, n] of partitions) slots.add(partitionForKey(scope.userId, n) % slotCount);
    }
    return { slots: [...slots].sort((a, b) => a - b), tables: read, partitions };
  }

  /** `request` answered by `owner`: here when it is this instance, else over HTTP. */
  private async ask(owner: SlotOwner, request: ShareRequest): Promise<QueryResult> {
    if (owner.id === this.options.instanceId) return this.answerShare(request);
    const body = JSON.stringify(request);
    let res: Response;
    try {
      res = await this.fetch(`${owner.url}${SHARE_PATH}`, {
        method: "POST",
        headers: { "content-type": "application/json", [INSTANCE_SIGNATURE_HEADER]: this.options.auth.sign(body) },
        body,
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (e) {
      throw rebalancing(`instance ${owner.id} (${owner.url}) did not answer`, e);
    }
    let answer: unknown;
    try {
      answer = await res.json();
    } catch (e) {
      throw rebalancing(`instance ${owner.id} broke off its answer`, e);
    }
    if (res.ok) return answer as QueryResult;
    throw fromOwner(owner, res.status, answer);
  }
}

/**
 * Partials join rows on one instance only: streams of one partition count put each user's rows
 * of all of them in one slot (co-partitioned), streams of different counts do not, so a query
 * reading several of them cannot be split.
 */
function refuseUnlessCopartitioned(partitions: ReadonlyMap<string, number>): void {
  if (new Set(partitions.values()).size <= 1) return;
  const listed = [...partitions].map(([name, n]) => `${name} (${n} partitions)`).join(", ");
  throw new RunnelError(
    "query_not_distributable",
    `streams ${listed} are not co-partitioned: one user's rows of them may be on different instances, so a query reading them together cannot be merged from the instances' partial results; give the streams one partition count`,
    { details: { construct: "streams of different partition counts" } },
  );
}

/**
 * An owner's refusal as this instance's: the caller's own errors (a bad query, a result too
 * large) as they are; anything retryable or unknown as `cluster_rebalancing`, since another
 * instance's trouble is no reason to fail the query for good.
 */
function fromOwner(owner: SlotOwner, status: number, answer: unknown): RunnelError {
  const { error, message, details } = (answer ?? {}) as { error?: unknown; message?: unknown; details?: unknown };
  const code = typeof error === "string" && error in ERROR_CATALOGUE ? (error as ErrorCode) : undefined;
  const text = typeof message === "string" ? message : `status ${status}`;
  // The installation's instances disagree on its token secret: a configuration fault, not a rebalance.
  if (code === "unauthorized") {
    return new RunnelError("internal", `instance ${owner.id} refused this instance's signature: ${text}`);
  }
  if (code !== undefined && !ERROR_CATALOGUE[code].retryable) {
    return new RunnelError(code, text, details === undefined ? {} : { details });
  }
  return rebalancing(`instance ${owner.id} could not answer its share (${code ?? status}: ${text})`);
}
