/**
 * Which instances an installation has, where to reach them and what each owns: one row per
 * instance in the control database (migration 16), which each instance refreshes every few
 * seconds. Liveness is judged by the database's clock (`last_seen` is its `now()`), so instances
 * whose clocks disagree still agree on who is live. Ownership itself is the group protocol's
 * (./group-ownership.ts); this table only reports it.
 *
 * @example
 *   const registry = new InstanceRegistry(driver, { installation: "runnel", instanceId: "runnel-0" });
 *   await registry.register(new Date(), "http://runnel-0:8080");
 *   await registry.refresh({ slots: [0, 2], tasks: [] });
 *   const instances = await registry.list();
 */
import { randomUUID } from "node:crypto";
import type { SqlExecutor } from "../control/driver.js";
import type { TaskInfo } from "../runtime/owned-tasks.js";

/** One task of an instance, as its runner reports it. */
export type TaskReport = TaskInfo;

/** What an instance reports of itself on each refresh. */
export interface InstanceState {
  readonly slots: readonly number[];
  /** When its owned slots last changed (ms since the epoch). */
  readonly lastRebalanceAt?: number;
  readonly tasks: readonly TaskReport[];
}

export interface InstanceRecord {
  readonly id: string;
  readonly url: string;
  readonly startedAt: string;
  readonly lastSeen: string;
  /** Seen within the registry's `liveForMs`. */
  readonly live: boolean;
  readonly slots: readonly number[];
  readonly lastRebalanceAt: string | null;
  readonly tasks: readonly TaskReport[];
}

export interface RegistryOptions {
  readonly installation: string;
  readonly instanceId: string;
  /** An instance not seen for this long is listed as not live. Default 10 s. */
  readonly liveForMs?: number;
  /** An instance not seen for this long is forgotten. Default 1 h. */
  readonly forgetAfterMs?: number;
}

interface InstanceRow {
  instance_id: string;
  advertised_url: string;
  started_at: Date | string;
  last_seen: Date | string;
  live: boolean;
  owned_slots: number[];
  last_rebalance_at: Date | string | null;
  tasks: TaskReport[] | string;
}

export class InstanceRegistry {
  /** Tells this process apart from another started under the same instance id. */
  readonly incarnation = randomUUID();
  private readonly liveForSeconds: number;
  private readonly forgetAfterSeconds: number;

  constructor(
    private readonly db: SqlExecutor,
    private readonly options: RegistryOptions,
  ) {
    this.liveForSeconds = (options.liveForMs ?? 10_000) / 1000;
    this.forgetAfterSeconds = (options.forgetAfterMs ?? 3_600_000) / 1000;
  }

  /** Enters this instance, reached at `url`, replacing what an earlier process under the same id left. */
  async register(startedAt: Date, url: string): Promise<void> {
    const { installation, instanceId } = this.options;
    await this.db.query(
      `INSERT INTO cluster_instances (installation, instance_id, incarnation, advertised_url, started_at)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (installation, instance_id) DO UPDATE SET incarnation = EXCLUDED.incarnation,
         advertised_url = EXCLUDED.advertised_url, started_at = EXCLUDED.started_at, last_seen = now(),
         owned_slots = '{}', last_rebalance_at = NULL, tasks = '[]'::jsonb`,
      [installation, instanceId, this.incarnation, url, startedAt],
    );
  }

  /**
   * Reports this instance's state and that it is alive, and forgets long-gone instances. False
   * when another process has registered under this instance id since (two processes share one id).
   */
  async refresh(state: InstanceState): Promise<boolean> {
    const { installation, instanceId } = this.options;
    const { rows } = await this.db.query(
      `UPDATE cluster_instances SET last_seen = now(), owned_slots = $4, last_rebalance_at = $5, tasks = $6
       WHERE installation = $1 AND instance_id = $2 AND incarnation = $3 RETURNING 1`,
      [
        installation,
        instanceId,
        this.incarnation,
        [...state.slots],
        state.lastRebalanceAt === undefined ? null : new Date(state.lastRebalanceAt),
        JSON.stringify(state.tasks),
      ],
    );
    await this.db.query(
      "DELETE FROM cluster_instances WHERE installation = $1 AND last_seen < now() - make_interval(secs => $2)",
      [installation, this.forgetAfterSeconds],
    );
    return rows.length > 0;
  }

  /** A clean stop: this instance owns nothing and runs no task any more (its row stays, not live). */
  async deregister(): Promise<void> {
    const { installation, instanceId } = this.options;
    await this.db.query(
      `UPDATE cluster_instances SET owned_slots = '{}', tasks = '[]'::jsonb,
         last_seen = now() - make_interval(secs => $4)
       WHERE installation = $1 AND instance_id = $2 AND incarnation = $3`,
      [installation, instanceId, this.incarnation, this.liveForSeconds],
    );
  }

  /** Every instance of the installation not yet forgotten, by instance id. */
  async list(): Promise<InstanceRecord[]> {
    const { rows } = await this.db.query<InstanceRow>(
      `SELECT instance_id, advertised_url, started_at, last_seen, owned_slots, last_rebalance_at, tasks,
         last_seen > now() - make_interval(secs => $2) AS live
       FROM cluster_instances WHERE installation = $1 ORDER BY instance_id`,
      [this.options.installation, this.liveForSeconds],
    );
    return rows.map((r) => ({
      id: r.instance_id,
      url: r.advertised_url,
      startedAt: iso(r.started_at),
      lastSeen: iso(r.last_seen),
      live: r.live,
      slots: [...r.owned_slots].sort((a, b) => a - b),
      lastRebalanceAt: r.last_rebalance_at === null ? null : iso(r.last_rebalance_at),
      tasks: typeof r.tasks === "string" ? (JSON.parse(r.tasks) as TaskReport[]) : r.tasks,
    }));
  }
}

function iso(value: Date | string): string {
  return new Date(value).toISOString();
}
