/**
 * Password hashing with scrypt (RFC 7914): memory-hard, in node's crypto, no native addon. The
 * encoded form carries its own parameters and salt,
 *
 *   scrypt$N=32768,r=8,p=1$<salt, base64>$<hash, base64>
 *
 * so the cost can be raised later: needsRehash() tells the login path to re-hash with the new
 * parameters once it has the plaintext in hand.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  readonly N: number;
  /** Block size. */
  readonly r: number;
  /** Parallelism. */
  readonly p: number;
}

/** OWASP's scrypt floor is N=2^17 with r=8; 2^15 keeps a login near 50 ms on a laptop core. */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = Object.freeze({ N: 2 ** 15, r: 8, p: 1 });

const SALT_BYTES = 16;
const HASH_BYTES = 32;
/** Stored hashes are input too: cap what one can make us compute (memory is 128·N·r bytes). */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;
const ENCODED = /^scrypt\$N=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/**
 * Hashes with a fresh random salt.
 *
 * ```ts
 * const encoded = await hashPassword("correct horse battery staple");
 * await verifyPassword("correct horse battery staple", encoded); // true
 * ```
 */
export async function hashPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<string> {
  checkParams(params);
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, params, HASH_BYTES);
  return `scrypt$N=${params.N},r=${params.r},p=${params.p}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/** False for a wrong password and for anything that is not a hash this module wrote. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parsed = parse(encoded);
  if (parsed === undefined) return false;
  const actual = await derive(password, parsed.salt, parsed.params, parsed.hash.length);
  return timingSafeEqual(actual, parsed.hash);
}

/**
 * Spends the time a real verification would, then returns false: a login for an unknown user
 * must take as long as one with a wrong password, or response times reveal which accounts exist.
 */
export async function verifyNoPassword(password: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): Promise<false> {
  await derive(password, Buffer.alloc(SALT_BYTES), params, HASH_BYTES);
  return false;
}

/** True when `encoded` is unreadable or weaker than `params` in any parameter. */
export function needsRehash(encoded: string, params: ScryptParams = DEFAULT_SCRYPT_PARAMS): boolean {
  const parsed = parse(encoded);
  if (parsed === undefined) return true;
  const current = parsed.params;
  return (
    current.N < params.N ||
    current.r < params.r ||
    current.p < params.p ||
    parsed.salt.length < SALT_BYTES ||
    parsed.hash.length < HASH_BYTES
  );
}

function parse(encoded: string): { params: ScryptParams; salt: Buffer; hash: Buffer } | undefined {
  const m = ENCODED.exec(encoded);
  if (m === null) return undefined;
  const params = { N: Number(m[1]), r: Number(m[2]), p: Number(m[3]) };
  if (!validParams(params)) return undefined;
  const salt = Buffer.from(m[4] ?? "", "base64");
  const hash = Buffer.from(m[5] ?? "", "base64");
  if (salt.length === 0 || hash.length < 16) return undefined;
  return { params, salt, hash };
}

function validParams({ N, r, p }: ScryptParams): boolean {
  const powerOfTwo = Number.isInteger(N) && N >= 2 && (N & (N - 1)) === 0;
  return (
    powerOfTwo &&
    N <= MAX_N &&
    Number.isInteger(r) &&
    r >= 1 &&
    r <= MAX_R &&
    Number.isInteger(p) &&
    p >= 1 &&
    p <= MAX_P
  );
}

function checkParams(params: ScryptParams): void {
  if (!validParams(params)) {
    throw new RangeError(`scrypt parameters out of range: N=${params.N}, r=${params.r}, p=${params.p}`);
  }
}

function derive(password: string, salt: Buffer, params: ScryptParams, length: number): Promise<Buffer> {
  // NFKC (NIST SP 800-63B §5.1.1.2): the same password typed on two keyboards may arrive in two
  // Unicode forms and must still match.
  const secret = password.normalize("NFKC");
  // Node refuses unless maxmem exceeds 128·N·r; leave headroom instead of sitting on the limit.
  const maxmem = 256 * params.N * params.r + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, length, { N: params.N, r: params.r, p: params.p, maxmem }, (err, key) =>
      err === null ? resolve(key) : reject(err),
    );
  });
}

/**
 * The password operations bundled with one cost, for injection (the HTTP layer's PasswordHasher):
 * production uses the default, tests a cheap one.
 *
 * ```ts
 * const passwords = createPasswordHasher();
 * const encoded = await passwords.hash("s3cret-pass");
 * ```
 */
export function createPasswordHasher(params: ScryptParams = DEFAULT_SCRYPT_PARAMS) {
  checkParams(params);
  return Object.freeze({
    params,
    hash: (password: string) => hashPassword(password, params),
    verify: (password: string, encoded: string) => verifyPassword(password, encoded),
    verifyNone: (password: string) => verifyNoPassword(password, params),
    needsRehash: (encoded: string) => needsRehash(encoded, params),
  });
}
