/**
 * What `GET /api/v1/cluster` answers: the installation, its instances with their endpoints, the
 * slots and the partitions of each stream each owns, the lag of each task, and the last rebalance.
 * One shape for both modes: a single process is an installation of one instance owning everything.
 */
import type { InstanceRecord, TaskReport } from "./registry.js";

export interface ClusterInstanceStatus {
  readonly id: string;
  readonly url: string;
  /** The instance that answered. */
  readonly self: boolean;
  readonly live: boolean;
  readonly startedAt: string;
  readonly lastSeen: string;
  readonly slots: readonly number[];
  /** The partitions of each stream its slots cover. */
  readonly partitions: Readonly<Record<string, readonly number[]>>;
  readonly lastRebalanceAt: string | null;
  readonly tasks: readonly TaskReport[];
}

export interface ClusterStatus {
  readonly installation: string;
  /** `single`: this process does all the work, and `reason` says why. */
  readonly mode: "cluster" | "single";
  readonly reason?: string;
  /** The instance that answered. */
  readonly instanceId: string;
  /** Partition p of every stream belongs to slot p mod slots. */
  readonly slots: number;
  /** How long a silent instance keeps its slots (the group's session timeout); null in single mode. */
  readonly sessionTimeoutMs: number | null;
  /** The latest rebalance of any live instance. */
  readonly lastRebalanceAt: string | null;
  readonly instances: readonly ClusterInstanceStatus[];
}

/** What the API reads the status from. */
export interface ClusterView {
  status(): Promise<ClusterStatus>;
}

export interface StreamPartitions {
  readonly name: string;
  readonly partitions: number;
}

/** The partitions of each stream that `slots` (of `slotCount`) cover. */
export function partitionsOf(
  slots: readonly number[],
  slotCount: number,
  streams: readonly StreamPartitions[],
): Record<string, number[]> {
  const owned = new Set(slots);
  const out: Record<string, number[]> = {};
  for (const { name, partitions } of streams) {
    const mine: number[] = [];
    for (let p = 0; p < partitions; p++) if (owned.has(p % slotCount)) mine.push(p);
    out[name] = mine;
  }
  return out;
}

export function clusterStatus(input: {
  readonly installation: string;
  readonly instanceId: string;
  readonly slots: number;
  readonly sessionTimeoutMs: number | null;
  readonly mode: ClusterStatus["mode"];
  readonly reason?: string;
  readonly instances: readonly InstanceRecord[];
  readonly streams: readonly StreamPartitions[];
}): ClusterStatus {
  const instances = input.instances.map((i) => ({
    id: i.id,
    url: i.url,
    self: i.id === input.instanceId,
    live: i.live,
    startedAt: i.startedAt,
    lastSeen: i.lastSeen,
    slots: i.slots,
    partitions: partitionsOf(i.slots, input.slots, input.streams),
    lastRebalanceAt: i.lastRebalanceAt,
    tasks: i.tasks,
  }));
  const rebalances = instances.flatMap((i) => (i.live && i.lastRebalanceAt !== null ? [i.lastRebalanceAt] : []));
  return {
    installation: input.installation,
    mode: input.mode,
    ...(input.reason !== undefined && { reason: input.reason }),
    instanceId: input.instanceId,
    slots: input.slots,
    sessionTimeoutMs: input.sessionTimeoutMs,
    lastRebalanceAt: rebalances.length === 0 ? null : rebalances.sort().at(-1)!,
    instances,
  };
}
