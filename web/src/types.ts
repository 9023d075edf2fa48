/** Shapes of the public API's answers (docs/api.md), as the dashboard reads them. */
export type Role = "admin" | "analyst" | "user" | "service";

export interface User {
  readonly id: string;
  readonly username: string;
  readonly email: string;
  readonly role: Role;
  readonly disabled?: boolean;
  readonly createdAt?: string;
}

export interface Stream {
  readonly name: string;
  readonly partitions: number;
  readonly timestampField: string;
  readonly retentionMs?: number;
  readonly derivedFrom?: string;
  /** false: in the log only, not in the analytics store (nothing to query). */
  readonly analytics?: boolean;
  /** Rollup tables of the stream (docs/rollups.md); GET /streams/{name} adds each one's ratio. */
  readonly rollups?: readonly Rollup[];
  readonly createdAt: string;
}

export interface Rollup {
  readonly name: string;
  readonly granularity: string;
  readonly dimensions: readonly string[];
  /** Column → `count`, `sum(amount)`, … */
  readonly metrics: Readonly<Record<string, string>>;
  /** `building`: being backfilled after it was added; `dropping`: being removed. */
  readonly state?: "ready" | "building" | "dropping";
  /** Only from GET /streams/{name}: events taken in and rows kept for them. */
  readonly rowsIn?: number;
  readonly rowsKept?: number;
}

export interface Histogram {
  readonly buckets: ReadonlyArray<readonly [number, number]>;
  readonly count: number;
  readonly sum: number;
}

/** GET /api/v1/stats */
export interface Stats {
  readonly at: number;
  readonly streams: Readonly<
    Record<string, { events: number; bytes: number; analyticsLag: number; deadLetters?: number }>
  >;
  readonly pipelines: Readonly<
    Record<
      string,
      { running: number; lag: number; recordsIn: number; recordsOut: number; late?: number; deadLetters?: number }
    >
  >;
  readonly rules: Readonly<Record<string, { matches: number; alerts: number; late?: number; deadLetters?: number }>>;
  readonly sources: Readonly<Record<string, { up: number; records: number }>>;
  readonly ingest: { readonly refusals: number; readonly pendingBytes: number };
  readonly latencies: { readonly ingest: Histogram; readonly logAppend: Histogram; readonly query: Histogram };
  readonly storage: { readonly logBytes: number; readonly availableBytes: number };
  /** Absent from a server older than the archive. */
  readonly archive?: {
    readonly streams: Readonly<
      Record<
        string,
        {
          files: number;
          bytes: number;
          rows: number;
          lag: number;
          failures: number;
          compactions: number;
          imported: number;
        }
      >
    >;
    readonly importsRunning: number;
  };
}

export interface Alert {
  readonly id: string;
  readonly ruleId: string;
  readonly ruleName: string;
  readonly key: string;
  readonly userId: string | null;
  /** Every user whose events the match holds (for a `user`: only themselves). */
  readonly userIds: readonly string[];
  readonly severity: string;
  readonly events: readonly unknown[];
  readonly firstEventTime: string;
  readonly lastEventTime: string;
  readonly detectedAt: string;
}

export interface Block {
  readonly userId: string;
  readonly stream: string;
  readonly ruleId: string;
  readonly alertId: string;
  readonly since: string;
}

export interface Rule {
  readonly id: string;
  readonly name: string;
  readonly stream: string;
  readonly enabled: boolean;
  readonly spec: Readonly<Record<string, unknown>>;
  readonly createdAt: string;
  readonly stats?: Readonly<Record<string, unknown>>;
}

export interface Pipeline {
  readonly name: string;
  readonly sql: string;
  readonly input: string;
  readonly output: string;
  readonly kind?: string;
  /** False while an admin has it disabled (its runner stopped, its position kept). */
  readonly enabled: boolean;
  readonly createdAt: string;
  readonly stats?: Readonly<Record<string, unknown>>;
}

export interface Source {
  readonly name: string;
  readonly type: string;
  readonly state: string;
  readonly reason?: string;
  readonly since: string;
  readonly metrics?: { readonly accepted: number; readonly deadLettered: number; readonly backlog: number };
}

export interface ApiKey {
  readonly id: string;
  readonly name: string;
  readonly role: Role;
  readonly prefix: string;
  readonly createdAt: string;
}

export interface Activity {
  readonly id: string;
  readonly kind: string;
  readonly detail: unknown;
  readonly at: string;
}

/** GET /api/v1/cluster (admin) */
export interface ClusterStatus {
  readonly installation: string;
  readonly mode: "cluster" | "single";
  readonly reason?: string;
  readonly instanceId: string;
  readonly slots: number;
  readonly sessionTimeoutMs: number | null;
  readonly lastRebalanceAt: string | null;
  readonly instances: ReadonlyArray<{
    readonly id: string;
    readonly url: string;
    readonly self: boolean;
    readonly live: boolean;
    readonly lastSeen: string;
    readonly slots: readonly number[];
    readonly lastRebalanceAt: string | null;
    readonly tasks: ReadonlyArray<{ task: string; partition: number; lag: number; restored: boolean }>;
  }>;
}
