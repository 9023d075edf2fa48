/**
 * Which instance answers each slot a query needs, from the instance registry (../registry.ts):
 * the one live instance that reports the slot. A slot no live instance reports (its owner died
 * and its session has not expired yet) or that two report (a move the registry has seen half
 * of) has no owner to ask now, and the query is refused with `cluster_rebalancing` rather than
 * answered without that slot's rows or with them twice. The registry may lag the group by a
 * refresh; the instance asked checks its own ownership again before it answers (./router.ts).
 */
import { RunnelError } from "../../core/errors.js";
import type { InstanceRecord } from "../registry.js";

/** One instance's part of a query: the slots it answers for, and where to reach it. */
export interface SlotOwner {
  readonly id: string;
  readonly url: string;
  readonly slots: readonly number[];
}

/** Seconds a client waits before retrying a query refused during a rebalance. */
export const REBALANCE_RETRY_AFTER_S = 2;

export function rebalancing(message: string, cause?: unknown): RunnelError {
  return new RunnelError("cluster_rebalancing", `${message}; try again shortly`, {
    retryAfter: REBALANCE_RETRY_AFTER_S,
    ...(cause !== undefined && { cause }),
  });
}

/** The owners of `needed` slots, one entry per instance, slots ascending; refuses a slot with no single owner. */
export function ownersOf(instances: readonly InstanceRecord[], needed: Iterable<number>): SlotOwner[] {
  const byInstance = new Map<string, { url: string; slots: number[] }>();
  for (const slot of [...new Set(needed)].sort((a, b) => a - b)) {
    const claimants = instances.filter((i) => i.live && i.slots.includes(slot));
    if (claimants.length === 0) throw rebalancing(`slot ${slot} has no live owner (a rebalance is under way)`);
    if (claimants.length > 1) {
      throw rebalancing(`slot ${slot} is moving between ${claimants.map((c) => c.id).join(" and ")}`);
    }
    const owner = claimants[0] as InstanceRecord;
    const entry = byInstance.get(owner.id) ?? { url: owner.url, slots: [] };
    entry.slots.push(slot);
    byInstance.set(owner.id, entry);
  }
  return [...byInstance].map(([id, { url, slots }]) => ({ id, url, slots }));
}
