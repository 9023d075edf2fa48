/**
 * API keys: `rnl_<prefix>_<secret>`, both parts random base62 (8 and 32 characters, about 238 bits
 * together). Only the SHA-256 of the whole key is stored: a key is already high-entropy, so a fast
 * hash is enough, and unlike passwords it can be looked up by its hash directly.
 */
import { createHash, randomBytes } from "node:crypto";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const PREFIX_LENGTH = 8;
const SECRET_LENGTH = 32;
const FORMAT = /^rnl_[0-9A-Za-z]{8}_[0-9A-Za-z]{32}$/;

export interface GeneratedApiKey {
  /** The whole key: shown to its owner once, never stored. */
  readonly key: string;
  /** The 8 characters after `rnl_`, stored and shown so a key can be recognised in lists. */
  readonly prefix: string;
  /** SHA-256 of the whole key, hex. */
  readonly keyHash: string;
}

/**
 * ```ts
 * const { key, prefix, keyHash } = generateApiKey();
 * await store.createApiKey({ userId, name: "ci", role: "user", prefix, keyHash });
 * ```
 */
export function generateApiKey(): GeneratedApiKey {
  const prefix = randomBase62(PREFIX_LENGTH);
  const key = `rnl_${prefix}_${randomBase62(SECRET_LENGTH)}`;
  return { key, prefix, keyHash: hashApiKey(key) };
}

export function hashApiKey(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex");
}

/** Tells an API key from a token in an Authorization header without touching the database. */
export function looksLikeApiKey(text: string): boolean {
  return FORMAT.test(text);
}

function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      // 248 = 4·62: bytes above it would make the first characters of the alphabet likelier.
      if (byte < 248) out += ALPHABET[byte % 62];
      if (out.length === length) break;
    }
  }
  return out;
}
