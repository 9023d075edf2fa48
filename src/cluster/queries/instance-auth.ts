/**
 * How the instances of an installation recognise each other's requests (a query forwarded to the
 * instance owning its partitions): a signature of the request body, the sending instance and the
 * time, with a key derived from the installation's token secret, which only its instances hold.
 * The key is derived (HMAC of a fixed label) rather than the secret itself, so nothing signed as a
 * login token can pass as an instance's request or the reverse. A signature is accepted within
 * `maxSkewMs` of its time: a captured request replayed later is refused.
 *
 * @example
 * const auth = new InstanceAuth(secret, "runnel-0");
 * const body = JSON.stringify({ sql, params, scope, slots });
 * fetch(url, { method: "POST", body, headers: { [INSTANCE_SIGNATURE_HEADER]: auth.sign(body) } });
 * // on the receiving instance: auth.verify(request.headers[INSTANCE_SIGNATURE_HEADER], body) → "runnel-0"
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { RunnelError } from "../../core/errors.js";

export const INSTANCE_SIGNATURE_HEADER = "x-runnel-instance-signature";

const KEY_LABEL = "runnel instance requests v1";
const DEFAULT_MAX_SKEW_MS = 30_000;

export interface InstanceAuthOptions {
  readonly now?: () => number;
  /** How far a signature's time may be from the receiver's clock. Default 30 s. */
  readonly maxSkewMs?: number;
}

export class InstanceAuth {
  private readonly key: Buffer;
  private readonly now: () => number;
  private readonly maxSkewMs: number;

  constructor(
    tokenSecret: string,
    /** This instance's id, named in what it signs. */
    readonly instanceId: string,
    options: InstanceAuthOptions = {},
  ) {
    this.key = createHmac("sha256", tokenSecret).update(KEY_LABEL).digest();
    this.now = options.now ?? Date.now;
    this.maxSkewMs = options.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  }

  /** The header value for a request whose body is `body`: `v1 <instance> <ms> <signature>`. */
  sign(body: string): string {
    const id = encodeURIComponent(this.instanceId);
    const at = Math.trunc(this.now());
    return `v1 ${id} ${at} ${this.mac(id, at, body)}`;
  }

  /** The sending instance's id; throws `unauthorized` for a missing, malformed, stale or forged signature. */
  verify(header: string | undefined, body: string): string {
    if (header === undefined || header === "") throw refused("the request carries no instance signature");
    const parts = header.split(" ");
    const [version, id, at, mac] = parts;
    if (parts.length !== 4 || version !== "v1" || id === undefined || at === undefined || mac === undefined) {
      throw refused("the instance signature is malformed");
    }
    const time = Number(at);
    if (!Number.isSafeInteger(time) || Math.abs(this.now() - time) > this.maxSkewMs) {
      throw refused("the instance signature is too old or from the future");
    }
    const expected = Buffer.from(this.mac(id, time, body));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw refused("the instance signature does not match");
    }
    return decodeURIComponent(id);
  }

  private mac(id: string, at: number, body: string): string {
    return createHmac("sha256", this.key).update(`${id}\n${at}\n${body}`).digest("base64url");
  }
}

function refused(message: string): RunnelError {
  return new RunnelError("unauthorized", `${message}: only the installation's instances may call this`);
}
