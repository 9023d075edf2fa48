import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generateApiKey, hashApiKey, looksLikeApiKey } from "../../src/control/api-keys.js";
import {
  createPasswordHasher,
  DEFAULT_SCRYPT_PARAMS,
  hashPassword,
  needsRehash,
  verifyNoPassword,
  verifyPassword,
} from "../../src/control/passwords.js";

// Low cost keeps the suite fast; one test below exercises the production default.
const FAST = { N: 2 ** 10, r: 8, p: 1 };

describe("passwords", () => {
  it("verifies the right password and rejects a wrong one", async () => {
    const encoded = await hashPassword("correct horse", FAST);
    assert.equal(await verifyPassword("correct horse", encoded), true);
    assert.equal(await verifyPassword("correct hors", encoded), false);
    assert.equal(await verifyPassword("", encoded), false);
  });

  it("encodes its parameters, salt and hash", async () => {
    const encoded = await hashPassword("pw", FAST);
    assert.match(encoded, /^scrypt\$N=1024,r=8,p=1\$[A-Za-z0-9+/]{22}==\$[A-Za-z0-9+/]{43}=$/);
  });

  it("salts every hash", async () => {
    const a = await hashPassword("same", FAST);
    const b = await hashPassword("same", FAST);
    assert.notEqual(a, b);
    assert.equal(await verifyPassword("same", a), true);
    assert.equal(await verifyPassword("same", b), true);
  });

  it("uses N=2^15, r=8, p=1 by default", async () => {
    assert.deepEqual({ ...DEFAULT_SCRYPT_PARAMS }, { N: 32768, r: 8, p: 1 });
    const encoded = await hashPassword("production cost");
    assert.ok(encoded.startsWith("scrypt$N=32768,r=8,p=1$"));
    assert.equal(await verifyPassword("production cost", encoded), true);
    assert.equal(needsRehash(encoded), false);
  });

  it("matches Unicode passwords in either normal form", async () => {
    const composed = "caf\u00e9";
    const decomposed = "cafe\u0301";
    const encoded = await hashPassword(composed, FAST);
    assert.equal(await verifyPassword(decomposed, encoded), true);
  });

  it("rejects what it did not write rather than throwing", async () => {
    for (const bad of [
      "",
      "plaintext",
      "scrypt$N=1024,r=8,p=1$$",
      "scrypt$N=1000,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
      // A stored hash asking for 128 GiB of memory must not be attempted.
      "scrypt$N=1073741824,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA==$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g=",
      "bcrypt$2b$10$abcdefghijklmnopqrstuv",
    ]) {
      assert.equal(await verifyPassword("pw", bad), false, bad);
      assert.equal(needsRehash(bad), true, bad);
    }
  });

  it("refuses to hash with invalid parameters", async () => {
    await assert.rejects(hashPassword("pw", { N: 1000, r: 8, p: 1 }), RangeError);
    await assert.rejects(hashPassword("pw", { N: 1024, r: 0, p: 1 }), RangeError);
  });

  it("asks for a rehash when the stored cost is below the target", async () => {
    const weak = await hashPassword("pw", FAST);
    assert.equal(needsRehash(weak), true);
    assert.equal(needsRehash(weak, FAST), false);
    assert.equal(needsRehash(weak, { ...FAST, r: 16 }), true);
    assert.equal(needsRehash(weak, { ...FAST, p: 2 }), true);
  });

  it("verifyNoPassword always fails", async () => {
    assert.equal(await verifyNoPassword("anything", FAST), false);
  });
});

describe("password hasher", () => {
  it("binds one cost to hash, verify, verifyNone and needsRehash", async () => {
    const passwords = createPasswordHasher(FAST);
    const encoded = await passwords.hash("hunter22");
    assert.ok(encoded.startsWith("scrypt$N=1024,"));
    assert.equal(await passwords.verify("hunter22", encoded), true);
    assert.equal(await passwords.verify("hunter23", encoded), false);
    assert.equal(await passwords.verifyNone("hunter22"), false);
    assert.equal(passwords.needsRehash(encoded), false);
    assert.equal(createPasswordHasher().needsRehash(encoded), true);
  });

  it("refuses invalid parameters up front", () => {
    assert.throws(() => createPasswordHasher({ N: 3, r: 8, p: 1 }), RangeError);
  });
});

describe("api keys", () => {
  it("generates rnl_<8>_<32> base62 keys with their prefix and SHA-256", () => {
    const { key, prefix, keyHash } = generateApiKey();
    assert.match(key, /^rnl_[0-9A-Za-z]{8}_[0-9A-Za-z]{32}$/);
    assert.equal(key.slice(4, 12), prefix);
    assert.match(keyHash, /^[0-9a-f]{64}$/);
    assert.equal(hashApiKey(key), keyHash);
    assert.equal(looksLikeApiKey(key), true);
  });

  it("never repeats and uses the whole alphabet", () => {
    const keys = new Set<string>();
    const chars = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const { key } = generateApiKey();
      keys.add(key);
      for (const c of key.slice(13)) chars.add(c);
    }
    assert.equal(keys.size, 2000);
    assert.equal(chars.size, 62);
  });

  it("tells keys from other bearer credentials", () => {
    assert.equal(looksLikeApiKey("eyJhbGciOiJIUzI1NiJ9.e30.sig"), false);
    assert.equal(looksLikeApiKey("rnl_short_x"), false);
    assert.equal(looksLikeApiKey(`rnl_abcdefgh_${"a".repeat(32)}x`), false);
  });

  it("hashes are the SHA-256 of the whole key", () => {
    assert.equal(hashApiKey("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});
