/**
 * The control store's change feed on PostgreSQL: several instances share one database, and a rule,
 * pipeline, stream or block changed through one of them must take effect on all (issue 19).
 *
 * Triggers announce each committed change with NOTIFY (migration 17): the kind, the row's key and
 * the kind's version. The listener re-reads the row, so a coalesced or late notification is
 * harmless; what would not be is a lost one (the LISTEN connection dropped, or was never told).
 * Two things heal that: a version that jumps, and a poll of the versions every `resyncIntervalMs`
 * over the same connection (so the poll also proves the connection is alive); either makes the
 * handler read the whole kind again. A lost connection is reconnected with back-off, and on every
 * (re)connect the versions are compared again.
 *
 * PGlite serves one process, which applies its own changes as it makes them: it has no feed.
 *
 * @example
 *   const feed = new PostgresChangeFeed({ url, origin, handler });
 *   await feed.start();
 *   // …
 *   await feed.stop();
 */
import pg from "pg";
import { SerialQueue } from "../core/serial-queue.js";
import { originOption } from "./postgres.js";

export const CONTROL_KINDS = ["rule", "pipeline", "stream", "block"] as const;
export type ControlKind = (typeof CONTROL_KINDS)[number];

/** One row inserted, updated or deleted. */
export interface RowChange {
  readonly kind: ControlKind;
  /** The rule's id, the pipeline's or stream's name, the blocked user. */
  readonly key: string;
  /** A block's stream (other kinds: the row's stream column, if any). */
  readonly stream: string | undefined;
  /** Written by this instance, which applied it already (unless it races with a re-read, see blocks). */
  readonly own: boolean;
}

export interface ControlChangeHandler {
  /** Reads the row again and brings this instance in line with it. */
  rowChanged(change: RowChange): Promise<void>;
  /** Notifications of `kind` may have been missed: reads every row of it again. */
  resync(kind: ControlKind): Promise<void>;
  /** Alerts another instance stored, for this instance's live listeners. */
  alertsAdded(ids: readonly string[]): Promise<void>;
  /** The feed was deaf from `since` (epoch ms) until now: alerts stored meanwhile were not announced. */
  alertsMissed(since: number): Promise<void>;
}

export interface ChangeFeedOptions {
  readonly url: string;
  /** This instance's name, as its control store's connections set it (PostgresDriverOptions.origin). */
  readonly origin: string;
  readonly handler: ControlChangeHandler;
  /** How often the versions are polled (the bound on healing a lost notification). Default 5 s. */
  readonly resyncIntervalMs?: number;
  /** Reconnection back-off, doubling from `min` to `max` ms. Default 100 ms to 5 s. */
  readonly reconnectMs?: { readonly min: number; readonly max: number };
  /** A handler or connection failure; the feed carries on (the kind is read again at the next poll). */
  readonly onError?: (err: unknown, what: string) => void;
}

const CONTROL_CHANNEL = "runnel_control";
const ALERTS_CHANNEL = "runnel_alerts";
/** The feed's connection, as pg_stat_activity names it (operators and the connection-loss test find it by this). */
export const CHANGE_FEED_APPLICATION = "runnel-change-feed";
/** Alerts stored this long before the connection was found lost are offered again after it returns. */
const MISSED_ALERTS_MARGIN_MS = 5000;

interface ControlNotification {
  readonly kind: ControlKind;
  readonly key: string;
  readonly stream: string | null;
  readonly version: number;
  readonly origin: string | null;
}

interface AlertsNotification {
  readonly ids: readonly string[];
  readonly origin: string | null;
}

export class PostgresChangeFeed {
  readonly #options: ChangeFeedOptions;
  readonly #resyncMs: number;
  /** Every handler call, in the order the database committed the changes. */
  readonly #queue = new SerialQueue();
  /** Per kind, the newest version applied (or being applied). */
  readonly #versions = new Map<ControlKind, number>();
  /** Kinds whose handler call failed: read whole again at the next poll. */
  readonly #dirty = new Set<ControlKind>();
  #client: pg.Client | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reconnecting: Promise<void> | undefined;
  /** Ends the reconnection back-off's wait early (stop()). */
  #wake: (() => void) | undefined;
  #polling = false;
  #stopped = false;
  /** Since when no connection has listened (epoch ms); undefined while one does. */
  #deafSince: number | undefined;

  constructor(options: ChangeFeedOptions) {
    this.#options = options;
    this.#resyncMs = options.resyncIntervalMs ?? 5000;
  }

  /** Connects and listens; the handler is then called once per kind (a first full read). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#connect();
    this.#timer = setInterval(() => void this.#poll(), this.#resyncMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#wake?.();
    const client = this.#client;
    this.#client = undefined;
    await this.#reconnecting;
    await client?.end().catch(() => {});
    await this.#queue.run(async () => {});
  }

  /** Resolves once every change heard so far has been handled (tests). */
  idle(): Promise<void> {
    return this.#queue.run(async () => {});
  }

  async #connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.#options.url,
      application_name: CHANGE_FEED_APPLICATION,
      options: originOption(this.#options.origin),
      keepAlive: true,
      // A connection that silently stopped answering fails the poll instead of hanging it.
      query_timeout: this.#resyncMs,
      connectionTimeoutMillis: this.#resyncMs,
    });
    client.on("notification", (n) => this.#notified(n));
    client.on("error", (err) => this.#lost(client, err));
    client.on("end", () => this.#lost(client, undefined));
    try {
      await client.connect();
      await client.query(`LISTEN ${CONTROL_CHANNEL}`);
      await client.query(`LISTEN ${ALERTS_CHANNEL}`);
    } catch (e) {
      client.removeAllListeners("end");
      await client.end().catch(() => {});
      throw e;
    }
    // Listening from here on: whatever committed before is found by comparing the versions.
    try {
      await this.#compareVersions(client);
    } catch (e) {
      client.removeAllListeners("end");
      await client.end().catch(() => {});
      throw e;
    }
    this.#client = client;
    const deafSince = this.#deafSince;
    this.#deafSince = undefined;
    if (deafSince !== undefined) {
      this.#handle(undefined, () => this.#options.handler.alertsMissed(deafSince - MISSED_ALERTS_MARGIN_MS));
    }
  }

  async #compareVersions(client: pg.Client): Promise<void> {
    const { rows } = await client.query<{ kind: string; version: string }>(
      "SELECT kind, version FROM control_versions",
    );
    for (const row of rows) {
      const kind = row.kind as ControlKind;
      if (!CONTROL_KINDS.includes(kind)) continue;
      const version = Number(row.version);
      const known = this.#versions.get(kind);
      if (known !== undefined && version <= known && !this.#dirty.has(kind)) continue;
      this.#versions.set(kind, Math.max(version, known ?? version));
      this.#dirty.delete(kind);
      this.#handle(kind, () => this.#options.handler.resync(kind));
    }
  }

  async #poll(): Promise<void> {
    const client = this.#client;
    if (client === undefined || this.#polling) return;
    this.#polling = true;
    try {
      await this.#compareVersions(client);
    } catch (err) {
      this.#lost(client, err);
    } finally {
      this.#polling = false;
    }
  }

  #notified(message: pg.Notification): void {
    let payload: unknown;
    try {
      payload = JSON.parse(message.payload ?? "");
    } catch (err) {
      this.#options.onError?.(err, `a notification on ${message.channel} that is not JSON`);
      return;
    }
    const { handler, origin } = this.#options;
    if (message.channel === ALERTS_CHANNEL) {
      const n = payload as AlertsNotification;
      if (n.origin !== origin && Array.isArray(n.ids)) this.#handle(undefined, () => handler.alertsAdded(n.ids));
      return;
    }
    const n = payload as ControlNotification;
    if (!CONTROL_KINDS.includes(n.kind)) return;
    const known = this.#versions.get(n.kind);
    if (known !== undefined && n.version > known + 1) {
      // Changes between the two were never heard: read the whole kind (this change with it).
      this.#versions.set(n.kind, n.version);
      this.#handle(n.kind, () => handler.resync(n.kind));
      return;
    }
    if (known === undefined || n.version > known) this.#versions.set(n.kind, n.version);
    const change: RowChange = { kind: n.kind, key: n.key, stream: n.stream ?? undefined, own: n.origin === origin };
    this.#handle(n.kind, () => handler.rowChanged(change));
  }

  #handle(kind: ControlKind | undefined, call: () => Promise<void>): void {
    void this.#queue.run(async () => {
      if (this.#stopped) return;
      try {
        await call();
      } catch (err) {
        if (kind !== undefined) this.#dirty.add(kind);
        this.#options.onError?.(err, kind === undefined ? "alerts" : `a change of ${kind}`);
      }
    });
  }

  #lost(client: pg.Client, err: unknown): void {
    if (client !== this.#client) return;
    this.#client = undefined;
    this.#deafSince ??= Date.now();
    if (err !== undefined) this.#options.onError?.(err, "the change feed's connection");
    client.removeAllListeners("end");
    void client.end().catch(() => {});
    this.#reconnecting ??= this.#reconnect().finally(() => {
      this.#reconnecting = undefined;
    });
  }

  async #reconnect(): Promise<void> {
    const { min, max } = this.#options.reconnectMs ?? { min: 100, max: 5000 };
    let delay = min;
    while (!this.#stopped) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
      if (this.#stopped) return;
      try {
        await this.#connect();
        return;
      } catch (err) {
        this.#options.onError?.(err, "reconnecting the change feed");
        delay = Math.min(delay * 2, max);
      }
    }
  }
}
