/**
 * The ControlStore seam: accounts, credentials, settings, activity, and the catalogue of
 * streams and pipelines, in PostgreSQL. Implementations: embedded PGlite and a real server by
 * URL (src/control/pglite.ts, src/control/postgres.ts), one schema and one set of migrations
 * (src/control/migrations.ts), one test suite (test/control/conformance.ts) run against both.
 */
import type { DriverPoolStats } from "./driver.js";

export type Role = "admin" | "analyst" | "user" | "service";
export const ROLES: readonly Role[] = ["admin", "analyst", "user", "service"];

export interface User {
  readonly id: string;
  readonly username: string;
  readonly email: string;
  readonly role: Role;
  readonly disabled: boolean;
  readonly createdAt: string;
  /** Bumped whenever credentials must be revoked (password change, disable); tokens carry it. */
  readonly tokenVersion: number;
}

export interface UserWithSecret extends User {
  /** Encoded password hash with its KDF parameters (see src/control/passwords.ts). */
  readonly passwordHash: string;
}

export interface ApiKey {
  readonly id: string;
  readonly userId: string;
  readonly name: string;
  readonly role: Role;
  /** The visible first characters of the key, for identification. */
  readonly prefix: string;
  readonly createdAt: string;
}

export interface ApiKeyWithOwner extends ApiKey {
  readonly owner: User;
}

export interface ActivityEntry {
  readonly id: string;
  readonly userId: string;
  readonly kind: string;
  readonly detail: Record<string, unknown>;
  readonly at: string;
}

export interface StreamDefinition {
  readonly name: string;
  readonly partitions: number;
  readonly schema?: Record<string, unknown>;
  readonly timestampField: string;
  readonly retentionMs?: number;
  /** The pipeline that writes this stream, when it is derived. */
  readonly derivedFrom?: string;
  /**
   * false: the stream lives in the log only (pipelines, rules and tail read it) and has no
   * analytics table, so ingest does not pay for indexing it. Absent: true.
   */
  readonly analytics?: boolean;
  /** How far ahead of ingest time an event's time may be; absent: the default (src/ingest/event-time.ts). */
  readonly maxFutureSkewMs?: number;
  readonly createdAt: string;
}

export interface PipelineDefinition {
  readonly name: string;
  readonly sql: string;
  /** Where a new pipeline starts reading its input. */
  readonly startFrom: "earliest" | "now";
  /** Event-time settings as given, in human units (`{"outOfOrderness": "5s"}`). */
  readonly options?: Readonly<Record<string, string>>;
  /** False while an admin has it disabled: its runner is stopped, its position kept. */
  readonly enabled: boolean;
  readonly createdAt: string;
}

/** A CEP rule as stored: the posted spec (API.md) plus identity and state. */
export interface RuleRecord {
  readonly id: string;
  readonly name: string;
  readonly stream: string;
  readonly spec: Record<string, unknown>;
  readonly enabled: boolean;
  readonly createdAt: string;
  readonly updatedAt: string;
}

export interface AlertRecord {
  readonly id: string;
  readonly ruleId: string;
  readonly ruleName: string;
  /** Identifies the match within its rule; (ruleId, matchId) is unique. */
  readonly matchId: string;
  readonly key: string;
  readonly userId: string | null;
  readonly severity: string;
  readonly timedOut: boolean;
  readonly events: unknown[];
  readonly firstEventTime: string;
  readonly lastEventTime: string;
  readonly detectedAt: string;
}

/** An alert to store; `detectedAt` defaults to the store's clock. */
export type NewAlert = Omit<AlertRecord, "detectedAt"> & { readonly detectedAt?: string };

export interface BlockRecord {
  readonly userId: string;
  readonly stream: string;
  readonly ruleId: string | null;
  readonly alertId: string | null;
  readonly since: string;
}

export interface NewUser {
  readonly username: string;
  readonly email: string;
  readonly passwordHash: string;
  readonly role: Role;
}

export interface NewApiKey {
  readonly userId: string;
  readonly name: string;
  readonly role: Role;
  readonly prefix: string;
  /** SHA-256 of the whole key, hex; the key itself is never stored. */
  readonly keyHash: string;
}

export interface ControlStore {
  /** Connects and runs pending migrations. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** True when the database answers a trivial query. */
  ping(): Promise<boolean>;
  /** Connection pool use for monitoring (undefined while closed); optional for test doubles. */
  poolStats?(): DriverPoolStats | undefined;

  // Users. Unique username and email: a duplicate throws RunnelError("conflict").
  createUser(user: NewUser): Promise<User>;
  getUserByUsername(username: string): Promise<UserWithSecret | undefined>;
  getUserById(id: string): Promise<User | undefined>;
  listUsers(): Promise<User[]>;
  updateUser(
    id: string,
    patch: { email?: string; role?: Role; disabled?: boolean; passwordHash?: string },
  ): Promise<User>;
  /**
   * Removes the account, its keys and settings; activity stays. The username is reserved for ever
   * (createUser refuses it with a conflict): events name their user by username, so a newcomer
   * under the same name would otherwise inherit the deleted user's events.
   */
  deleteUser(id: string): Promise<void>;
  /**
   * Replaces the password hash only if it is still `current` (a concurrent password change wins),
   * without revoking tokens: the password is the same, only its hash is stronger. True if replaced.
   */
  rehashPassword(id: string, current: string, next: string): Promise<boolean>;
  countAdmins(): Promise<number>;

  // API keys.
  createApiKey(key: NewApiKey): Promise<ApiKey>;
  findApiKeyByHash(keyHash: string): Promise<ApiKeyWithOwner | undefined>;
  listApiKeys(userId: string): Promise<ApiKey[]>;
  deleteApiKey(userId: string, id: string): Promise<boolean>;

  // Settings: any JSON object per user.
  getSettings(userId: string): Promise<Record<string, unknown>>;
  putSettings(userId: string, settings: Record<string, unknown>): Promise<void>;

  // Activity log: append-only, newest first.
  recordActivity(userId: string, kind: string, detail?: Record<string, unknown>): Promise<void>;
  listActivity(userId: string, options?: { limit?: number; before?: string }): Promise<ActivityEntry[]>;

  // Catalogue.
  createStream(stream: Omit<StreamDefinition, "createdAt">): Promise<StreamDefinition>;
  getStream(name: string): Promise<StreamDefinition | undefined>;
  listStreams(): Promise<StreamDefinition[]>;
  deleteStream(name: string): Promise<boolean>;

  /** `enabled` defaults to true. */
  createPipeline(
    pipeline: Omit<PipelineDefinition, "createdAt" | "enabled"> & { readonly enabled?: boolean },
  ): Promise<PipelineDefinition>;
  getPipeline(name: string): Promise<PipelineDefinition | undefined>;
  listPipelines(): Promise<PipelineDefinition[]>;
  /** The updated definition, or undefined when no pipeline has that name. */
  setPipelineEnabled(name: string, enabled: boolean): Promise<PipelineDefinition | undefined>;
  deletePipeline(name: string): Promise<boolean>;

  // CEP rules, alerts and blocks (src/cep).
  createRule(rule: {
    id: string;
    name: string;
    stream: string;
    spec: Record<string, unknown>;
    enabled: boolean;
  }): Promise<RuleRecord>;
  getRule(id: string): Promise<RuleRecord | undefined>;
  listRules(): Promise<RuleRecord[]>;
  /** Changes the given fields (the spec is replaced whole); undefined when no such rule. */
  updateRule(
    id: string,
    patch: { enabled?: boolean; name?: string; stream?: string; spec?: Record<string, unknown> },
  ): Promise<RuleRecord | undefined>;
  deleteRule(id: string): Promise<boolean>;
  /** Stores an alert unless its id or its (ruleId, matchId) is already stored; true when it was new. */
  recordAlert(alert: NewAlert): Promise<boolean>;
  /**
   * recordAlert for many alerts in one statement (a rule runner's whole chunk of matches, so they
   * are stored in one round trip rather than one after another): element i is true when alerts[i]
   * was new. An alert repeated within the batch is new only at its first position.
   */
  recordAlerts(alerts: readonly NewAlert[]): Promise<boolean[]>;
  /** Newest first. */
  listAlerts(query?: { ruleId?: string; userId?: string; since?: string; limit?: number }): Promise<AlertRecord[]>;
  /** True when the block is new. */
  putBlock(block: Omit<BlockRecord, "since">): Promise<boolean>;
  listBlocks(): Promise<BlockRecord[]>;
  /** Lifts the user's blocks (on one stream, or all); returns what was lifted. */
  deleteBlocks(userId: string, stream?: string): Promise<BlockRecord[]>;
}
