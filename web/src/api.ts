/**
 * The dashboard's only way to the server: the public API of docs/api.md, with the caller's token.
 * Errors arrive as ApiError carrying the API's code, message and details, so pages can show the
 * API's own words. Server-Sent Events are read with fetch() because EventSource cannot send the
 * Authorization header.
 */
import type { Role, User } from "./types";

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }

  /** The route is not registered on this server (a feature that has not landed yet). */
  get unavailable(): boolean {
    return this.status === 404 && this.code === "not_found" && this.message.startsWith("no route ");
  }
}

export interface Session {
  readonly token: string;
  readonly user: User;
}

const KEY = "runnel.session";
let session: Session | undefined = load();
const listeners = new Set<(s: Session | undefined) => void>();

function load(): Session | undefined {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw === null ? undefined : (JSON.parse(raw) as Session);
  } catch {
    return undefined;
  }
}

export function currentSession(): Session | undefined {
  return session;
}

export function setSession(next: Session | undefined): void {
  session = next;
  if (next === undefined) sessionStorage.removeItem(KEY);
  else sessionStorage.setItem(KEY, JSON.stringify(next));
  for (const l of listeners) l(next);
}

export function onSession(listener: (s: Session | undefined) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function hasRole(...roles: Role[]): boolean {
  return session !== undefined && roles.includes(session.user.role);
}

async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { error?: string; message?: string; details?: unknown };
    return new ApiError(res.status, body.error ?? "error", body.message ?? res.statusText, body.details);
  } catch {
    return new ApiError(res.status, "error", text || res.statusText);
  }
}

/** Calls `/api/v1{path}`; resolves to the JSON answer (undefined for 204). A 401 ends the session. */
export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (session) headers.authorization = `Bearer ${session.token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  if (!res.ok) {
    const error = await errorOf(res);
    if (res.status === 401 && session !== undefined && !path.startsWith("/auth/")) setSession(undefined);
    throw error;
  }
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const get = <T>(path: string): Promise<T> => api<T>("GET", path);

export interface SseMessage {
  readonly event: string;
  readonly data: string;
  readonly id?: string;
}

/**
 * Opens a Server-Sent Events stream and calls `onMessage` for each message until `signal` aborts.
 * Rejects with ApiError when the server refuses; resolves when the stream ends.
 */
export async function sse(path: string, signal: AbortSignal, onMessage: (m: SseMessage) => void): Promise<void> {
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (session) headers.authorization = `Bearer ${session.token}`;
  const res = await fetch(`/api/v1${path}`, { headers, signal });
  if (!res.ok) throw await errorOf(res);
  if (res.body === null) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      buffer += value;
      let end = buffer.indexOf("\n\n");
      while (end >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message = parseSse(block);
        if (message) onMessage(message);
        end = buffer.indexOf("\n\n");
      }
    }
  } catch (e) {
    if (signal.aborted) return;
    throw e;
  }
}

/** One SSE block → message; comments (keepalives) → undefined. */
export function parseSse(block: string): SseMessage | undefined {
  let event = "message";
  let id: string | undefined;
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  if (data.length === 0) return undefined;
  return { event, data: data.join("\n"), ...(id !== undefined && { id }) };
}

/** Quotes a stream name for SQL (names are `[a-z][a-z0-9_]*`, quoted anyway). */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export interface QueryResult {
  readonly columns: ReadonlyArray<{ name: string; type: string }>;
  readonly rows: ReadonlyArray<ReadonlyArray<unknown>>;
}

export const query = (sql: string, params?: unknown[]): Promise<QueryResult> =>
  api<QueryResult>("POST", "/query", { sql, ...(params !== undefined && { params }) });
