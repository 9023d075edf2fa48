/**
 * Refuses a blocked user's events before they reach the ingestor (423 user_blocked), for as long
 * as the StreamIngestor is built without the RuleManager as its `blocks` (its own check, in the
 * validator, is the place this belongs: src/ingest/setup.ts is to pass `blocks` through). The rule
 * for whose event it is mirrors the ingestor's: a `user` credential's own name, else `user_id`.
 */
import { RunnelError } from "../core/errors.js";
import type { BlockList } from "../ingest/ingestor.js";
import type { IngestMeta, Ingestor, IngestResult, Principal } from "../ingest/types.js";

export function withBlocks(inner: Ingestor, blocks: BlockList): Ingestor {
  return {
    ingest(stream: string, events: readonly unknown[], principal: Principal, meta?: IngestMeta): Promise<IngestResult> {
      for (let index = 0; index < events.length; index++) {
        const e = events[index];
        const named = typeof e === "object" && e !== null ? (e as Record<string, unknown>).user_id : undefined;
        const userId = principal.role === "user" ? principal.username : named;
        if (typeof userId === "string" && blocks.isBlocked(userId, stream)) {
          return Promise.reject(
            new RunnelError("user_blocked", `user "${userId}" is blocked on stream "${stream}" pending review`, {
              details: [{ index, userId }],
            }),
          );
        }
      }
      return inner.ingest(stream, events, principal, meta);
    },
  };
}
