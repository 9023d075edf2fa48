/**
 * Cached credentials against a real (in-memory) control store: reused, yet revoked promptly by the
 * store's revocation events.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Authenticator } from "../../../src/api/auth/authenticate.js";
import { CredentialCache } from "../../../src/api/auth/credential-cache.js";
import { Revocations } from "../../../src/api/auth/revocations.js";
import { TokenService } from "../../../src/api/auth/tokens.js";
import type { SqlDriver } from "../../../src/control/driver.js";
import { generateApiKey, SqlControlStore } from "../../../src/control/index.js";
import { connectPglite } from "../../../src/control/pglite.js";
import type { ControlStore } from "../../../src/control/types.js";
import { ManualClock } from "../../../src/core/clock.js";

const clock = new ManualClock(Date.parse("2026-11-28T12:00:00Z"));
const tokens = new TokenService("x".repeat(32), 3_600_000, clock);
const revocations = new Revocations();
let driver: SqlDriver;
let store: ControlStore;
/** Lookups that reached the store, by method. */
const lookups = new Map<string, number>();
/** The same database as another Runnel instance sharing it would change it: it publishes nothing here. */
let elsewhere: ControlStore;

before(async () => {
  driver = await connectPglite();
  store = new SqlControlStore(async () => driver, { revocations });
  await store.open();
  elsewhere = new SqlControlStore(async () => driver);
  await elsewhere.open();
});
after(() => store.close());

function counting(control: ControlStore): ControlStore {
  return new Proxy(control, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (property === "getUserById" || property === "findApiKeyByHash") {
        return (...args: unknown[]) => {
          lookups.set(property, (lookups.get(property) ?? 0) + 1);
          return value.apply(target, args);
        };
      }
      return value.bind(target);
    },
  });
}

function setup(ttlMs = 1000) {
  const cache = new CredentialCache(clock, { ttlMs, revocations });
  const control = counting(store);
  return { control, auth: new Authenticator(control, tokens, cache) };
}

let n = 0;
async function user(control: ControlStore) {
  const created = await control.createUser({
    username: `u${++n}`,
    email: `u${n}@example.com`,
    passwordHash: "x",
    role: "user",
  });
  const token = await tokens.issue({ userId: created.id, version: created.tokenVersion });
  const { key, prefix, keyHash } = generateApiKey();
  const apiKey = await control.createApiKey({ userId: created.id, name: "k", role: "user", prefix, keyHash });
  return { user: created, token, key, keyId: apiKey.id };
}

describe("credential cache", () => {
  it("answers repeated requests without asking the store", async () => {
    const { control, auth } = setup();
    const { token, key, user: u } = await user(control);
    lookups.clear();
    for (let i = 0; i < 5; i++) {
      assert.equal((await auth.authenticate(`Bearer ${token}`)).userId, u.id);
      assert.equal((await auth.authenticate(`Bearer ${key}`)).credential, "api_key");
    }
    assert.deepEqual(Object.fromEntries(lookups), { getUserById: 1, findApiKeyByHash: 1 });
  });

  it("disabling, deleting a key and deleting the user fail the very next request", async () => {
    const { control, auth } = setup(60_000);
    const a = await user(control);
    await auth.authenticate(`Bearer ${a.token}`);
    await auth.authenticate(`Bearer ${a.key}`);
    await control.updateUser(a.user.id, { disabled: true });
    await assert.rejects(auth.authenticate(`Bearer ${a.token}`), { code: "unauthorized" });
    await assert.rejects(auth.authenticate(`Bearer ${a.key}`), { code: "unauthorized" });

    const b = await user(control);
    await auth.authenticate(`Bearer ${b.key}`);
    assert.equal(await control.deleteApiKey(b.user.id, b.keyId), true);
    await assert.rejects(auth.authenticate(`Bearer ${b.key}`), { code: "unauthorized" });
    assert.equal((await auth.authenticate(`Bearer ${b.token}`)).userId, b.user.id);
    await control.deleteUser(b.user.id);
    await assert.rejects(auth.authenticate(`Bearer ${b.token}`), { code: "unauthorized" });
  });

  it("a change made elsewhere (another instance) is seen once the TTL has passed", async () => {
    const { control, auth } = setup(1000);
    const a = await user(control);
    await auth.authenticate(`Bearer ${a.token}`);
    await elsewhere.updateUser(a.user.id, { disabled: true });
    assert.equal((await auth.authenticate(`Bearer ${a.token}`)).userId, a.user.id);
    clock.advance(1000);
    await assert.rejects(auth.authenticate(`Bearer ${a.token}`), { code: "unauthorized" });
  });

  it("never serves a token past its expiry", async () => {
    const { control, auth } = setup(10 * 3_600_000);
    const a = await user(control);
    await auth.authenticate(`Bearer ${a.token}`);
    clock.advance(3_600_000);
    await assert.rejects(auth.authenticate(`Bearer ${a.token}`), { code: "token_expired" });
  });

  it("a lookup overtaken by a revocation does not store its stale answer", async () => {
    const cache = new CredentialCache(clock, { ttlMs: 60_000, revocations });
    const control = store;
    const a = await user(control);
    const principal = {
      userId: a.user.id,
      username: a.user.username,
      role: "user" as const,
      credential: "token" as const,
    };
    const epoch = cache.begin();
    await control.updateUser(a.user.id, { disabled: true });
    cache.set(a.token, principal, Number.POSITIVE_INFINITY, epoch);
    assert.equal(cache.get(a.token), undefined);
  });
});
