/**
 * Rules at run time: CRUD through the control store, one RuleRunner per enabled rule started
 * before the create/patch call returns (so the rule sees every event ingested after the
 * response), actions on matches, the live alert feed, and the block list the ingestor consults.
 */
import { createHash, randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { PartitionOwnership } from "../cluster/ownership.js";
import type { AlertRecord, BlockRecord, ControlStore, RaisedBlock, RuleRecord } from "../control/types.js";
import type { DeadLetterSink } from "../core/dead-letters.js";
import { RunnelError } from "../core/errors.js";
import { SerialQueue } from "../core/serial-queue.js";
import type { BlockList } from "../ingest/ingestor.js";
import type { EventLog, FencedWriter } from "../log/types.js";
import { type MonitoringProbe, noopProbe, type RuleRef } from "../monitoring/probes.js";
import type { CheckpointStore } from "../runtime/checkpoint/store.js";
import type { CheckpointObserver } from "../runtime/driver.js";
import type { TaskInfo } from "../runtime/owned-tasks.js";
import { dropRepartition, Repartitioner } from "../runtime/repartition.js";
import { alertOf, sendWebhook, type WebhookStats } from "./actions.js";
import { dropRuleCheckpoints, ruleJob } from "./checkpoint.js";
import { importLegacyCheckpoint, legacyCheckpointPath, removeCheckpoint } from "./legacy-checkpoint.js";
import type { CepMatch } from "./operator.js";
import { compileRule } from "./rule/compile.js";
import { type RuleSpec, validateRuleSpec } from "./rule/spec.js";
import { RuleRunner } from "./runner.js";

export interface RuleManagerOptions {
  readonly control: ControlStore;
  readonly log: EventLog;
  /** Where rules checkpoint: one task per rule and partition (src/cep/checkpoint.ts). */
  readonly checkpoints: CheckpointStore;
  /** This process, as its claims on the rules' tasks name it; default `<host>/<pid>`. */
  readonly owner?: string;
  /**
   * Where rules checkpointed before the checkpoint store (one file per rule): a rule's checkpoint
   * found there is imported into the store once, on its first start, and the files removed.
   */
  readonly legacyDir?: string;
  readonly streamExists: (name: string) => Promise<boolean>;
  /** A stream's retention (ms, undefined: forever), kept by the internal stream of a rule keyed by another field. */
  readonly streamRetention?: (name: string) => Promise<number | undefined>;
  /** Matches, alerts, webhook outcomes and CEP state go to monitoring through this (default: nowhere). */
  readonly probe?: MonitoringProbe;
  /** Where rules put the records they cannot process (default: counted and skipped). */
  readonly deadLetters?: DeadLetterSink;
  /** The partitions this instance runs the rules' tasks of (cluster mode); default all. */
  readonly ownership?: PartitionOwnership;
  /**
   * Each task's fenced writer (cluster mode on Kafka, TaskDriverOptions.fencedWriter): a rule's
   * dead letters and its repartition stage's copies and markers, refused once another instance
   * took the task.
   */
  readonly fencedWriter?: (task: string) => FencedWriter;
}

export interface RuleView extends RuleRecord {
  readonly stats: {
    readonly running: boolean;
    readonly eventsIn: number;
    readonly matches: number;
    readonly partialMatches: number;
    readonly failures: number;
    readonly lastError: string | undefined;
    /** Events dropped for arriving behind the watermark. */
    readonly late: number;
    /** Records moved to the stream's dead-letter stream. */
    readonly deadLetters: number;
    /** While the rule keeps failing (its rounds retried with back-off): since when (epoch ms, as pipelines'), how often, why. */
    readonly failing?: { readonly since: number; readonly attempts: number; readonly error: string };
    readonly webhook: WebhookStats;
  };
}

type AlertListener = (alert: AlertRecord) => void;

/** Alerts remembered as pushed to this instance's listeners, so one announced twice is pushed once. */
const RECENT_ALERTS = 10_000;

/** A rule's runner and the definition its matches are acted on with. */
interface RunningRule {
  readonly runner: RuleRunner;
  /** For a rule keyed by a field other than user_id: the stage that repartitions its stream by that field. */
  readonly repartition: Repartitioner | undefined;
  /** What the repartition stage's stream holds (the stream and the key); a rule changing it starts afresh. */
  readonly source: string;
  readonly revision: string;
  /** Read by the runner's sink at each match; replaced in place when only the name or actions change. */
  readonly current: { rule: RuleRecord };
}

/**
 * The part of a rule that decides what matches (and so what its state means); a change to
 * anything else (name, actions) keeps the running state.
 */
function revisionOf(spec: RuleSpec): string {
  const { stream, key, pattern, within, lateness, skip, onTimeout } = spec;
  return createHash("sha256")
    .update(JSON.stringify({ stream, key, pattern, within, lateness, skip, onTimeout }))
    .digest("hex")
    .slice(0, 16);
}

function severityOf(spec: RuleSpec): string {
  const alertAction = spec.actions?.find((a) => a.type === "alert");
  return alertAction?.type === "alert" ? (alertAction.severity ?? "medium") : "medium";
}

export class RuleManager implements BlockList {
  private readonly runners = new Map<string, RunningRule>();
  private readonly webhookStats = new Map<string, WebhookStats>();
  private readonly blocked = new Set<string>();
  /** Blocks raised here and not yet stored: a re-read of the stored blocks must not lift them. */
  private readonly storing = new Map<string, number>();
  /** Ids of the alerts pushed to the listeners lately, oldest first. */
  private readonly pushed = new Set<string>();
  /**
   * Every change of a rule's running state, made through this instance's API or heard from
   * another's (sync*), one at a time: a change and a re-read of the same rule cannot interleave.
   */
  private readonly changes = new SerialQueue();
  private readonly listeners = new Set<AlertListener>();
  private readonly probe: MonitoringProbe;
  private unregisterState: (() => void) | undefined;
  private readonly owner: string;
  /** Every rule's tasks report their checkpoints as the CEP engine's (task="cep": rule ids would be unbounded labels). */
  private readonly checkpointObserver: CheckpointObserver;

  constructor(private readonly options: RuleManagerOptions) {
    const probe = options.probe ?? noopProbe;
    this.probe = probe;
    this.owner = options.owner ?? `${hostname()}/${process.pid}`;
    this.checkpointObserver = {
      taken: (ms) => probe.checkpointTaken("cep", ms),
      failed: () => probe.checkpointFailed("cep"),
    };
  }

  /** The tasks of every rule running here (the owned partitions'), with their repartition stages'. */
  tasks(): TaskInfo[] {
    return [...this.runners.values()].flatMap((r) => [...(r.repartition?.tasks() ?? []), ...r.runner.tasks()]);
  }

  async open(): Promise<void> {
    // Read at scrape time, so the hot path does no gauge bookkeeping.
    this.unregisterState = this.probe.registerCepState(() =>
      [...this.runners].map(([id, { runner, current }]) => ({
        rule: { id, name: current.rule.name },
        keys: runner.activeKeys(),
        partialMatches: runner.partialMatches(),
        late: runner.late(),
      })),
    );
    for (const b of await this.options.control.listBlocks()) this.blocked.add(blockKey(b.userId, b.stream));
    for (const rule of await this.options.control.listRules()) {
      if (!rule.enabled) continue;
      try {
        await this.startRunner(rule);
      } catch {
        // A rule whose stream vanished stays stored; GET shows it not running.
      }
    }
  }

  async stop(): Promise<void> {
    this.unregisterState?.();
    this.unregisterState = undefined;
    await Promise.all([...this.runners.keys()].map((id) => this.stopRunner(id)));
  }

  isBlocked(userId: string, stream: string): boolean {
    return this.blocked.size > 0 && this.blocked.has(blockKey(userId, stream));
  }

  onAlert(listener: AlertListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  create(input: unknown): Promise<RuleView> {
    return this.changes.run(() => this.createNow(input));
  }

  private async createNow(input: unknown): Promise<RuleView> {
    const spec = await this.checkedSpec(input);
    const rule = await this.options.control.createRule({
      id: randomUUID(),
      name: spec.name,
      stream: spec.stream,
      spec: spec as unknown as Record<string, unknown>,
      enabled: spec.enabled !== false,
    });
    if (rule.enabled) await this.startRunner(rule);
    return this.view(rule);
  }

  async list(): Promise<RuleView[]> {
    return (await this.options.control.listRules()).map((r) => this.view(r));
  }

  async get(id: string): Promise<RuleView> {
    const rule = await this.options.control.getRule(id);
    if (rule === undefined) throw new RunnelError("not_found", `rule "${id}" does not exist`);
    return this.view(rule);
  }

  setEnabled(id: string, enabled: boolean): Promise<RuleView> {
    return this.changes.run(() => this.setEnabledNow(id, enabled));
  }

  private async setEnabledNow(id: string, enabled: boolean): Promise<RuleView> {
    const rule = await this.options.control.updateRule(id, { enabled });
    if (rule === undefined) throw new RunnelError("not_found", `rule "${id}" does not exist`);
    await this.apply(rule, "here");
    return this.view(rule);
  }

  /**
   * Changes a rule's definition: `merge` replaces the given top-level fields (PATCH), `replace`
   * takes a whole new spec (PUT; `enabled` absent keeps the current state). The result is
   * validated whole. A change to what matches (pattern, within, key, stream, …) starts the new
   * definition empty where the old one stopped reading, so it sees every event from there on;
   * a change to the name or actions alone keeps the partial matches.
   */
  update(id: string, input: unknown, mode: "merge" | "replace"): Promise<RuleView> {
    return this.changes.run(() => this.updateNow(id, input, mode));
  }

  private async updateNow(id: string, input: unknown, mode: "merge" | "replace"): Promise<RuleView> {
    if (typeof input !== "object" || input === null || Array.isArray(input)) {
      throw new RunnelError("invalid_input", "the body must be a JSON object");
    }
    const body = input as Record<string, unknown>;
    if (body.enabled !== undefined && typeof body.enabled !== "boolean") {
      throw new RunnelError("invalid_input", "/enabled: must be true or false");
    }
    const current = await this.options.control.getRule(id);
    if (current === undefined) throw new RunnelError("not_found", `rule "${id}" does not exist`);
    if (mode === "merge" && Object.keys(body).every((k) => k === "enabled")) {
      return body.enabled === undefined ? this.view(current) : this.setEnabledNow(id, body.enabled as boolean);
    }
    const enabled = typeof body.enabled === "boolean" ? body.enabled : current.enabled;
    const spec = await this.checkedSpec({ ...(mode === "merge" ? current.spec : {}), ...body, enabled });
    const rule = await this.options.control.updateRule(id, {
      name: spec.name,
      stream: spec.stream,
      spec: spec as unknown as Record<string, unknown>,
      enabled,
    });
    if (rule === undefined) throw new RunnelError("not_found", `rule "${id}" does not exist`);
    await this.apply(rule, "here");
    return this.view(rule);
  }

  /**
   * Brings the running state in line with a stored rule (started, stopped, restarted or
   * re-pointed). Where the change was made (`here`), what it makes meaningless (checkpoints) is
   * also reset; an instance that only heard of it (`elsewhere`) leaves that to the first.
   */
  private async apply(rule: RuleRecord, changed: "here" | "elsewhere"): Promise<void> {
    const running = this.runners.get(rule.id);
    if (!rule.enabled) {
      if (running === undefined) return;
      await this.stopRunner(rule.id);
      // Re-enabling starts afresh from the end of the stream, as a new rule would.
      if (changed === "here") await this.dropCheckpoints(rule.id);
      return;
    }
    const spec = rule.spec as unknown as RuleSpec;
    if (running === undefined) {
      await this.startRunner(rule);
    } else if (running.revision === revisionOf(spec)) {
      running.current.rule = rule;
    } else {
      // Its last checkpoint holds where it stopped; the new runner takes the positions, not the state.
      await this.stopRunner(rule.id);
      // Positions in a repartition stream keyed by the old field (or copied from the old stream)
      // mean nothing for the new definition: the stage and the rule start afresh, as a new rule.
      if (changed === "here" && running.repartition !== undefined && running.source !== sourceOf(spec)) {
        await this.dropCheckpoints(rule.id);
      }
      await this.startRunner(rule);
    }
  }

  private async stopRunner(id: string): Promise<void> {
    const running = this.runners.get(id);
    this.runners.delete(id);
    await running?.repartition?.stop();
    await running?.runner.stop();
  }

  /** A rule spec validated, compiled and on an existing stream. */
  private async checkedSpec(input: unknown): Promise<RuleSpec> {
    const spec = validateRuleSpec(input);
    compileRule(spec);
    if (!(await this.options.streamExists(spec.stream))) {
      throw new RunnelError("invalid_input", `/stream: stream "${spec.stream}" does not exist`);
    }
    return spec;
  }

  delete(id: string): Promise<void> {
    return this.changes.run(() => this.deleteNow(id));
  }

  private async deleteNow(id: string): Promise<void> {
    await this.stopRunner(id);
    await this.dropCheckpoints(id);
    if (!(await this.options.control.deleteRule(id))) throw new RunnelError("not_found", `rule "${id}" does not exist`);
  }

  // Changes made through another instance (src/control/change-feed.ts), each read from the store.

  /** Starts, restarts, re-points or stops the rule as stored now. */
  syncRule(id: string): Promise<void> {
    return this.changes.run(async () => {
      const rule = await this.options.control.getRule(id);
      if (rule === undefined) await this.stopRunner(id);
      else await this.follow(rule);
    });
  }

  /** syncRule for every rule, and stops the runners of rules no longer stored. */
  syncRules(): Promise<void> {
    return this.changes.run(async () => {
      const rules = await this.options.control.listRules();
      const stored = new Set(rules.map((r) => r.id));
      for (const id of [...this.runners.keys()]) if (!stored.has(id)) await this.stopRunner(id);
      for (const rule of rules) await this.follow(rule);
    });
  }

  private async follow(rule: RuleRecord): Promise<void> {
    try {
      await this.apply(rule, "elsewhere");
    } catch {
      // As at open(): a rule that cannot start here (its stream vanished) stays stored and shows not running.
    }
  }

  /** Refuses or admits the user on the stream again, as the stored block says. */
  async syncBlock(userId: string, stream: string): Promise<void> {
    const key = blockKey(userId, stream);
    if ((await this.options.control.getBlock(userId, stream)) !== undefined) this.blocked.add(key);
    else if (!this.storing.has(key)) this.blocked.delete(key);
  }

  /** syncBlock for every block: the stored ones refused, every other one lifted. */
  async syncBlocks(): Promise<void> {
    const stored = new Set((await this.options.control.listBlocks()).map((b) => blockKey(b.userId, b.stream)));
    for (const key of this.blocked) if (!stored.has(key) && !this.storing.has(key)) this.blocked.delete(key);
    for (const key of stored) this.blocked.add(key);
  }

  /** Pushes alerts another instance stored to this instance's listeners (live streams and sockets). */
  async deliverAlerts(ids: readonly string[]): Promise<void> {
    const fresh = ids.filter((id) => !this.pushed.has(id));
    if (fresh.length === 0) return;
    this.push((await this.options.control.listAlerts({ ids: fresh, limit: fresh.length })).reverse());
  }

  /** deliverAlerts for every alert detected since `since` (epoch ms) not pushed yet: the feed was deaf meanwhile. */
  async deliverAlertsSince(since: number): Promise<void> {
    const alerts = await this.options.control.listAlerts({ since: new Date(since).toISOString(), limit: 1000 });
    this.push(alerts.reverse().filter((a) => !this.pushed.has(a.id)));
  }

  async listBlocks(): Promise<BlockRecord[]> {
    return this.options.control.listBlocks();
  }

  /** Lifts a block and records it in the user's and the admin's activity. */
  async unblock(
    userId: string,
    stream: string | undefined,
    by: { id: string; username: string },
  ): Promise<BlockRecord[]> {
    const lifted = await this.options.control.deleteBlocks(userId, stream);
    if (lifted.length === 0) {
      throw new RunnelError(
        "not_found",
        `user "${userId}" is not blocked${stream === undefined ? "" : ` on ${stream}`}`,
      );
    }
    for (const b of lifted) this.blocked.delete(blockKey(b.userId, b.stream));
    const streams = lifted.map((b) => b.stream);
    const user = await this.options.control.getUserByUsername(userId);
    if (user !== undefined)
      await this.options.control.recordActivity(user.id, "unblocked", { streams, by: by.username });
    await this.options.control.recordActivity(by.id, "unblocked_user", { user: userId, streams });
    return lifted;
  }

  /** Resolves once every rule has processed what was appended so far (tests). */
  async idle(): Promise<void> {
    await Promise.all(
      [...this.runners.values()].map(async (r) => {
        await r.repartition?.idle();
        await r.runner.idle();
      }),
    );
  }

  private async dropCheckpoints(id: string): Promise<void> {
    // The rule's tasks and its repartition stage's (both under `rule/<id>/`), then the stage's stream.
    await dropRuleCheckpoints(this.options.checkpoints, id, this.owner);
    await dropRepartition(this.options.log, this.options.checkpoints, ruleJob(id), this.owner);
    const { legacyDir } = this.options;
    if (legacyDir !== undefined) await removeCheckpoint(legacyCheckpointPath(legacyDir, id));
  }

  private async startRunner(rule: RuleRecord): Promise<void> {
    const spec = rule.spec as unknown as RuleSpec;
    const compiled = compileRule(spec);
    const stats: WebhookStats = this.webhookStats.get(rule.id) ?? { sent: 0, failures: 0, lastError: undefined };
    this.webhookStats.set(rule.id, stats);
    const revision = revisionOf(spec);
    const current = { rule };
    const { checkpoints, legacyDir } = this.options;
    if (legacyDir !== undefined) {
      const path = legacyCheckpointPath(legacyDir, rule.id);
      await importLegacyCheckpoint({
        store: checkpoints,
        ruleId: rule.id,
        path,
        owner: this.owner,
        revision,
        stream: rule.stream,
      });
    }
    const repartition =
      compiled.key === "user_id"
        ? undefined
        : await this.startRepartition(rule.id, rule.name, spec.stream, compiled.key);
    const runner = new RuleRunner({
      log: this.options.log,
      ruleId: rule.id,
      stream: repartition?.stream ?? rule.stream,
      compiled,
      checkpoints,
      owner: this.owner,
      revision,
      sink: (matches) => this.act(current.rule, compiled.key, stats, matches),
      consumer: `rule/${rule.name}`,
      checkpointObserver: this.checkpointObserver,
      ...(this.options.deadLetters !== undefined && { deadLetters: this.options.deadLetters }),
      ...(this.options.ownership !== undefined && { ownership: this.options.ownership }),
      ...(this.options.fencedWriter !== undefined && { fencedWriter: this.options.fencedWriter }),
    });
    try {
      await runner.start();
    } catch (e) {
      await repartition?.stop();
      throw e;
    }
    this.runners.set(rule.id, { runner, repartition, source: sourceOf(spec), revision, current });
  }

  /**
   * The log partitions by user: a rule keyed by another field reads its stream through a stage
   * that repartitions it by that field (src/runtime/repartition.ts), so one device's events meet
   * in one task wherever they were ingested. Started before the rule, from the end of the stream
   * the first time, as the rule would.
   */
  private async startRepartition(id: string, name: string, stream: string, key: string): Promise<Repartitioner> {
    const retentionMs = await this.options.streamRetention?.(stream);
    const stage = new Repartitioner({
      log: this.options.log,
      job: ruleJob(id),
      inputStream: stream,
      keyField: key,
      startFrom: "now",
      checkpoints: this.options.checkpoints,
      owner: this.owner,
      consumer: `rule/${name}`,
      ...(retentionMs !== undefined && { retentionMs }),
      ...(this.options.deadLetters !== undefined && { deadLetters: this.options.deadLetters }),
      ...(this.options.ownership !== undefined && { ownership: this.options.ownership }),
      ...(this.options.fencedWriter !== undefined && { fencedWriter: this.options.fencedWriter }),
    });
    await stage.start();
    return stage;
  }

  private async act(rule: RuleRecord, key: string, stats: WebhookStats, matches: readonly CepMatch[]): Promise<void> {
    const spec = rule.spec as unknown as RuleSpec;
    const severity = severityOf(spec);
    const { control } = this.options;
    const { probe } = this;
    const ref: RuleRef = { id: rule.id, name: rule.name };
    // The stored and the pushed alert carry the same detection time.
    const detectedAt = new Date().toISOString();
    const alerts: AlertRecord[] = matches.map((m) => ({
      ...alertOf({ id: rule.id, name: rule.name, key, severity }, m),
      detectedAt,
    }));
    // The whole chunk in one statement. `fresh[i]` is false for a match replayed after a crash or a
    // move: it was counted, pushed and acted on before.
    const fresh = await control.recordAlerts(alerts);
    const blocks: RaisedBlock[] = [];
    for (let i = 0; i < alerts.length; i++) {
      const alert = alerts[i] as AlertRecord;
      const isFresh = fresh[i] === true;
      if (!alert.timedOut) {
        if (isFresh) probe.ruleMatched(ref);
        for (const action of spec.actions ?? []) {
          if (action.type === "block") {
            for (const userId of blockedBy(action.users ?? "owner", alert)) {
              for (const stream of action.streams ?? [rule.stream]) {
                // A new match's block is refused from now on, before it is stored. A replayed one's
                // is refused only if the store still raises it (below): it may have been lifted since.
                if (isFresh) this.blocked.add(blockKey(userId, stream));
                blocks.push({ userId, stream, ruleId: rule.id, alertId: alert.id });
              }
            }
          } else if (action.type === "webhook" && isFresh) {
            sendWebhook(action.url, alert, stats, {
              delivered: () => probe.webhookDelivered(ref),
              failed: (reason, final) => probe.webhookFailed(ref, reason, final),
            });
          }
        }
      }
      if (isFresh) this.publish(ref, alert);
    }
    // After the alerts are out. If this fails the runner hands the same matches over again: their
    // alerts are then not fresh, and the store raises the blocks of those whose blocks it has not.
    const keys = blocks.map((b) => blockKey(b.userId, b.stream));
    for (const key of keys) this.storing.set(key, (this.storing.get(key) ?? 0) + 1);
    try {
      for (const b of await control.raiseBlocks(blocks)) {
        this.blocked.add(blockKey(b.userId, b.stream));
        const user = await control.getUserByUsername(b.userId);
        if (user !== undefined) {
          await control.recordActivity(user.id, "blocked", { stream: b.stream, rule: rule.name, alert: b.alertId });
        }
      }
    } finally {
      for (const key of keys) {
        const n = (this.storing.get(key) ?? 1) - 1;
        if (n === 0) this.storing.delete(key);
        else this.storing.set(key, n);
      }
    }
  }

  private publish(ref: RuleRef, alert: AlertRecord): void {
    this.probe.alertRaised(ref, alert.severity);
    this.push([alert]);
  }

  /** To the listeners, once per alert however often it is announced (counted where it was raised). */
  private push(alerts: readonly AlertRecord[]): void {
    for (const alert of alerts) {
      if (this.pushed.has(alert.id)) continue;
      this.pushed.add(alert.id);
      if (this.pushed.size > RECENT_ALERTS) this.pushed.delete(this.pushed.values().next().value as string);
      for (const l of this.listeners) l(alert);
    }
  }

  /** Rules whose rounds keep failing, for readiness. */
  failing(): { consumer: string; since: number; attempts: number; error: string }[] {
    const out = [];
    for (const { runner, repartition, current } of this.runners.values()) {
      const f = runner.failing;
      if (f !== undefined) {
        out.push({
          consumer: `rule/${current.rule.name}`,
          since: f.since,
          attempts: f.attempts,
          error: f.error,
        });
      }
      // A stage that cannot copy starves the rule as surely as a failing runner.
      const stage = repartition?.stats().failing;
      if (stage !== undefined) out.push({ consumer: `rule/${current.rule.name}/repartition`, ...stage });
    }
    return out;
  }

  private view(rule: RuleRecord): RuleView {
    const running = this.runners.get(rule.id);
    const r = running?.runner;
    const stage = running?.repartition?.stats();
    const failing = r?.failing;
    return {
      ...rule,
      stats: {
        // A runner whose every partition another process took over does nothing more.
        running: r !== undefined && !r.takenOver(),
        eventsIn: r?.recordsIn ?? 0,
        matches: r?.matches ?? 0,
        partialMatches: r?.partialMatches() ?? 0,
        failures: r?.failures ?? 0,
        lastError: r?.lastError,
        late: r?.late() ?? 0,
        // Records that are not JSON objects are dead-lettered by the repartition stage, when there is one.
        deadLetters: (r?.deadLetters ?? 0) + (stage?.deadLetters ?? 0),
        ...(failing !== undefined && {
          failing: { since: failing.since, attempts: failing.attempts, error: failing.error },
        }),
        ...(failing === undefined && stage?.failing !== undefined && { failing: stage.failing }),
        webhook: this.webhookStats.get(rule.id) ?? { sent: 0, failures: 0, lastError: undefined },
      },
    };
  }
}

/**
 * Who a match blocks (docs/cep.md, "Who sees an alert, who is blocked"): by default its owner,
 * the one user whose events make up the whole match (always the key's user when keyed by
 * user_id); a match holding several users' events blocks them all only with `users: "all"`.
 */
function blockedBy(users: "owner" | "all", alert: AlertRecord): readonly string[] {
  return users === "all" || alert.userIds.length === 1 ? alert.userIds : [];
}

/** What a rule's repartition stage copies: its stream, keyed by its key. */
function sourceOf(spec: RuleSpec): string {
  return JSON.stringify([spec.stream, spec.key ?? "user_id"]);
}

function blockKey(userId: string, stream: string): string {
  return `${userId}\u0000${stream}`;
}
