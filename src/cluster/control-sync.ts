/**
 * What an instance does with the control changes another instance made (issue 19, "blocks and
 * rules everywhere"): each is handed to the component that owns that state, which reads it back
 * from the store and applies it through the same code path its own API uses.
 *
 * An instance's own changes are already applied by the time it hears them, except blocks: a
 * rule raises a block in memory before storing it, and a full re-read racing with a lift could
 * restore a lifted one, so every block change is read again wherever it was made.
 */
import type { StreamCatalog } from "../catalog/streams.js";
import type { ControlChangeHandler, ControlKind, RowChange } from "../control/change-feed.js";

export interface SyncTargets {
  readonly rules: {
    syncRule(id: string): Promise<void>;
    syncRules(): Promise<void>;
    syncBlock(userId: string, stream: string): Promise<void>;
    syncBlocks(): Promise<void>;
    deliverAlerts(ids: readonly string[]): Promise<void>;
    deliverAlertsSince(since: number): Promise<void>;
  };
  readonly pipelines: {
    syncPipeline(name: string): Promise<void>;
    syncPipelines(): Promise<void>;
  };
  readonly streams: Pick<StreamCatalog, "syncStream" | "syncStreams" | "get">;
}

export class ControlSync implements ControlChangeHandler {
  constructor(private readonly targets: SyncTargets) {}

  async rowChanged(change: RowChange): Promise<void> {
    const { rules, pipelines, streams } = this.targets;
    if (change.kind === "block") {
      if (change.stream !== undefined) await rules.syncBlock(change.key, change.stream);
      return;
    }
    if (change.own) return;
    switch (change.kind) {
      case "rule":
        return rules.syncRule(change.key);
      case "pipeline":
        return pipelines.syncPipeline(change.key);
      case "stream": {
        await streams.syncStream(change.key);
        // A pipeline created elsewhere starts here once its creator has made its output streams.
        const derivedFrom = (await streams.get(change.key))?.derivedFrom;
        if (derivedFrom !== undefined) await pipelines.syncPipeline(derivedFrom);
        return;
      }
    }
  }

  async resync(kind: ControlKind): Promise<void> {
    const { rules, pipelines, streams } = this.targets;
    switch (kind) {
      case "rule":
        return rules.syncRules();
      case "pipeline":
        return pipelines.syncPipelines();
      case "stream":
        // Pipelines wait for their streams: read them again too.
        await streams.syncStreams();
        return pipelines.syncPipelines();
      case "block":
        return rules.syncBlocks();
    }
  }

  alertsAdded(ids: readonly string[]): Promise<void> {
    return this.targets.rules.deliverAlerts(ids);
  }

  alertsMissed(since: number): Promise<void> {
    return this.targets.rules.deliverAlertsSince(since);
  }
}
