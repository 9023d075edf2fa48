/**
 * The MonitoringProbe behind Prometheus: pushed events go straight to metrics; registered state
 * sources and checkpoint times are kept for the scrape-time collectors (collectors.ts).
 */
import type { Metrics } from "./metrics.js";
import type {
  CepState,
  CepStateSource,
  MonitoringProbe,
  RuleRef,
  WebhookFailureReason,
  WindowState,
  WindowStateSource,
} from "./probes.js";

export class PrometheusProbe implements MonitoringProbe {
  private readonly windowSources = new Set<WindowStateSource>();
  private readonly cepSources = new Set<CepStateSource>();
  /** Last successful checkpoint per task, epoch ms. */
  private readonly checkpoints = new Map<string, number>();

  constructor(
    private readonly metrics: Metrics,
    private readonly now: () => number,
  ) {}

  checkpointTaken(task: string, durationMs: number): void {
    this.metrics.checkpointDuration.observe({ task }, durationMs / 1000);
    this.checkpoints.set(task, this.now());
  }

  checkpointFailed(task: string): void {
    this.metrics.checkpointFailures.inc({ task });
  }

  ruleMatched(rule: RuleRef): void {
    this.metrics.ruleMatches.inc({ rule: rule.name });
  }

  alertRaised(rule: RuleRef, severity: string): void {
    this.metrics.ruleAlerts.inc({ rule: rule.name, severity });
  }

  webhookDelivered(rule: RuleRef): void {
    this.metrics.webhookDeliveries.inc({ rule: rule.name });
  }

  webhookFailed(rule: RuleRef, reason: WebhookFailureReason, final: boolean): void {
    this.metrics.webhookFailures.inc({ rule: rule.name, reason, final: final ? "true" : "false" });
  }

  registerWindowState(source: WindowStateSource): () => void {
    this.windowSources.add(source);
    return () => this.windowSources.delete(source);
  }

  registerCepState(source: CepStateSource): () => void {
    this.cepSources.add(source);
    return () => this.cepSources.delete(source);
  }

  /** Records a checkpoint time learnt from a component's stats (runners that report no events). */
  noteCheckpoint(task: string, at: number): void {
    const known = this.checkpoints.get(task);
    if (known === undefined || at > known) this.checkpoints.set(task, at);
  }

  forgetTask(task: string): void {
    this.checkpoints.delete(task);
  }

  lastCheckpoints(): ReadonlyMap<string, number> {
    return this.checkpoints;
  }

  windowStates(): WindowState[] {
    return [...this.windowSources].flatMap((source) => safely(source));
  }

  cepStates(): CepState[] {
    return [...this.cepSources].flatMap((source) => safely(source));
  }
}

/** A broken stats source must not fail the whole scrape. */
function safely<T>(source: () => readonly T[]): readonly T[] {
  try {
    return source();
  } catch {
    return [];
  }
}
