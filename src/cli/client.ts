/**
 * The CLI's view of a Runnel server: base URL and credential from flags or the environment
 * (RUNNEL_URL, RUNNEL_API_KEY or RUNNEL_TOKEN), and API errors turned into one readable line.
 */
import type { Flags } from "./args.js";
import { CliError, UsageError } from "./errors.js";

export interface Endpoint {
  readonly url: string;
  readonly key?: string;
}

export const DEFAULT_URL = "http://127.0.0.1:8080";

/** The flags of every command that talks to a server. */
export const CLIENT_FLAGS = {
  url: { value: "URL", help: `the server (env RUNNEL_URL, default ${DEFAULT_URL})` },
  key: { value: "KEY", help: "an API key or login token (env RUNNEL_API_KEY)" },
} as const satisfies Flags;

export function endpointFrom(flags: { url?: string; key?: string }, env: NodeJS.ProcessEnv): Endpoint {
  const url = (flags.url ?? env.RUNNEL_URL ?? DEFAULT_URL).replace(/\/+$/, "");
  if (!/^https?:\/\//.test(url)) {
    throw new UsageError(
      `${flags.url === undefined ? "RUNNEL_URL" : "--url"} must start with http:// or https://, got "${url}"`,
    );
  }
  const key = flags.key ?? env.RUNNEL_API_KEY ?? env.RUNNEL_TOKEN;
  return key === undefined || key === "" ? { url } : { url, key };
}

export function headersFor(endpoint: Endpoint, extra: Record<string, string> = {}): Record<string, string> {
  return endpoint.key === undefined ? extra : { ...extra, authorization: `Bearer ${endpoint.key}` };
}

/** `400 invalid_events: 2 of 10 events are invalid…; event 3: schema: /amount must be number`. */
export async function describeFailure(res: Response): Promise<string> {
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { error?: string; message?: string; details?: unknown };
    let line = `${res.status} ${body.error ?? "error"}: ${body.message ?? text}`;
    if (Array.isArray(body.details) && body.details.length > 0) {
      const first = body.details[0] as { index?: number; line?: number; message?: string };
      const where =
        first.index !== undefined ? `event ${first.index}` : first.line !== undefined ? `line ${first.line}` : "";
      if (first.message !== undefined) line += ` (${where ? `${where}: ` : ""}${first.message})`;
    }
    return line;
  } catch {
    return `${res.status} ${res.statusText}`;
  }
}

/** fetch with the network failure described in one line (the server is down, wrong port, …). */
export async function request(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new CliError(`cannot reach ${new URL(url).origin}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
}
