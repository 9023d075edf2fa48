/**
 * The ControlStore contract, run against every implementation (pglite.test.ts, postgres.test.ts).
 * Tests share one opened store per suite and never assume an empty database: each names its own
 * rows uniquely, so the suite also runs against a database other suites have written to.
 */
import assert from "node:assert/strict";
import { randomBytes, randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { SqlControlStoreOptions } from "../../src/control/index.js";
import type { ControlStore, Revocation, Role, User } from "../../src/control/types.js";
import { RunnelError } from "../../src/core/errors.js";

export type ControlStoreFactory = (options?: SqlControlStoreOptions) => ControlStore | Promise<ControlStore>;

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function unique(label: string): string {
  return `${label}_${randomBytes(5).toString("hex")}`;
}

async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof RunnelError, `expected a RunnelError, got ${String(e)}`);
    assert.equal(e.code, code);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  });
}

export function runControlStoreConformance(name: string, factory: ControlStoreFactory): void {
  describe(`ControlStore conformance: ${name}`, () => {
    let store: ControlStore;

    before(async () => {
      store = await factory();
      await store.open();
    });

    after(async () => {
      await store?.close();
    });

    const newUser = (role: Role = "user", label = "u") => {
      const username = unique(label);
      return store.createUser({ username, email: `${username}@Example.com`, passwordHash: `hash-${username}`, role });
    };

    describe("lifecycle", () => {
      it("pings when open", async () => {
        assert.equal(await store.ping(), true);
      });

      it("opening again is harmless and keeps data (migrations are idempotent)", async () => {
        const user = await newUser();
        await store.open();
        assert.deepEqual(await store.getUserById(user.id), user);
      });

      it("migrations are idempotent across stores on one database", async () => {
        const other = await factory();
        await other.open();
        try {
          assert.equal(await other.ping(), true);
          await other.listUsers();
        } finally {
          await other.close();
        }
      });

      it("close during open leaves the store closed", async () => {
        const racing = await factory();
        const opening = racing.open();
        await racing.close();
        await opening;
        assert.equal(await racing.ping(), false);
        await rejectsWith(racing.listUsers(), "not_ready");
      });

      it("refuses work before open and pings false", async () => {
        const closed = await factory();
        assert.equal(await closed.ping(), false);
        await rejectsWith(closed.listUsers(), "not_ready");
      });
    });

    describe("users", () => {
      it("creates and reads a user without exposing the hash except by username", async () => {
        const username = unique("alice");
        const created = await store.createUser({
          username,
          email: `${username}@example.com`,
          passwordHash: "scrypt$x",
          role: "analyst",
        });
        assert.match(created.id, /^[0-9a-f-]{36}$/);
        assert.equal(created.username, username);
        assert.equal(created.email, `${username}@example.com`);
        assert.equal(created.role, "analyst");
        assert.equal(created.disabled, false);
        assert.equal(created.tokenVersion, 0);
        assert.match(created.createdAt, ISO);
        assert.equal("passwordHash" in created, false);

        assert.deepEqual(await store.getUserById(created.id), created);
        const withSecret = await store.getUserByUsername(username);
        assert.deepEqual(withSecret, { ...created, passwordHash: "scrypt$x" });
        assert.equal("passwordHash" in ((await store.getUserById(created.id)) ?? {}), false);
      });

      it("returns undefined for unknown users, including malformed ids", async () => {
        assert.equal(await store.getUserByUsername(unique("nobody")), undefined);
        assert.equal(await store.getUserById("00000000-0000-4000-8000-000000000000"), undefined);
        assert.equal(await store.getUserById("not-a-uuid"), undefined);
      });

      it("usernames fold case and compatibility forms: lookup by any form finds the account", async () => {
        const user = await newUser("user", "Case");
        assert.equal((await store.getUserByUsername(user.username.toLowerCase()))?.id, user.id);
        assert.equal((await store.getUserByUsername(user.username.toUpperCase()))?.id, user.id);
        const fullwidth = [...user.username].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join("");
        assert.equal((await store.getUserByUsername(fullwidth))?.id, user.id);
      });

      it("a username differing only in case or width is a conflict", async () => {
        const user = await newUser("user", "Fold");
        const fullwidth = [...user.username].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join("");
        for (const username of [user.username.toLowerCase(), user.username.toUpperCase(), fullwidth]) {
          await rejectsWith(
            store.createUser({ username, email: `${unique("x")}@x.io`, passwordHash: "h", role: "user" }),
            "conflict",
            /username already taken/,
          );
        }
      });

      it("lists users", async () => {
        const a = await newUser();
        const b = await newUser();
        const all = await store.listUsers();
        assert.deepEqual(
          all.filter((u) => u.id === a.id || u.id === b.id).sort((x, y) => x.id.localeCompare(y.id)),
          [a, b].sort((x, y) => x.id.localeCompare(y.id)),
        );
        for (const u of all) assert.equal("passwordHash" in u, false);
      });

      it("a duplicate username is a conflict naming the username", async () => {
        const user = await newUser();
        await rejectsWith(
          store.createUser({ username: user.username, email: `${unique("x")}@x.io`, passwordHash: "h", role: "user" }),
          "conflict",
          /username already taken/,
        );
      });

      it("a duplicate email is a conflict, whatever its case", async () => {
        const user = await newUser();
        await rejectsWith(
          store.createUser({ username: unique("x"), email: user.email, passwordHash: "h", role: "user" }),
          "conflict",
          /email already registered/,
        );
        await rejectsWith(
          store.createUser({ username: unique("x"), email: user.email.toUpperCase(), passwordHash: "h", role: "user" }),
          "conflict",
          /email already registered/,
        );
      });

      it("rejects an unknown role", async () => {
        await rejectsWith(
          store.createUser({
            username: unique("x"),
            email: `${unique("x")}@x.io`,
            passwordHash: "h",
            role: "root" as Role,
          }),
          "invalid_input",
          /role must be one of/,
        );
      });

      it("updates email and role; an email clash is a conflict", async () => {
        const user = await newUser();
        const other = await newUser();
        const email = `${unique("new")}@example.com`;
        const updated = await store.updateUser(user.id, { email });
        assert.equal(updated.email, email);
        assert.equal(updated.role, "user");
        assert.equal(updated.tokenVersion, user.tokenVersion);
        await rejectsWith(store.updateUser(user.id, { email: other.email.toUpperCase() }), "conflict", /email/);
        assert.equal((await store.getUserById(user.id))?.email, email);
      });

      it("an empty patch changes nothing", async () => {
        const user = await newUser();
        assert.deepEqual(await store.updateUser(user.id, {}), user);
      });

      it("updating an unknown user is not_found", async () => {
        await rejectsWith(store.updateUser("00000000-0000-4000-8000-000000000000", { disabled: true }), "not_found");
        await rejectsWith(store.updateUser("nope", { disabled: true }), "not_found");
      });

      it("changing the password bumps tokenVersion", async () => {
        const user = await newUser();
        const updated = await store.updateUser(user.id, { passwordHash: "new-hash" });
        assert.equal(updated.tokenVersion, user.tokenVersion + 1);
        assert.equal((await store.getUserByUsername(user.username))?.passwordHash, "new-hash");
      });

      it("disabling and re-enabling each bump tokenVersion; setting the same value does not", async () => {
        const user = await newUser();
        const disabled = await store.updateUser(user.id, { disabled: true });
        assert.equal(disabled.disabled, true);
        assert.equal(disabled.tokenVersion, user.tokenVersion + 1);
        const again = await store.updateUser(user.id, { disabled: true });
        assert.equal(again.tokenVersion, disabled.tokenVersion);
        const enabled = await store.updateUser(user.id, { disabled: false });
        assert.equal(enabled.disabled, false);
        assert.equal(enabled.tokenVersion, disabled.tokenVersion + 1);
      });

      it("changing the role bumps tokenVersion; changing the email does not", async () => {
        const user = await newUser("admin");
        const demoted = await store.updateUser(user.id, { role: "user" });
        assert.equal(demoted.role, "user");
        assert.equal(demoted.tokenVersion, user.tokenVersion + 1);
        const moved = await store.updateUser(user.id, { email: `${unique("m")}@example.com` });
        assert.equal(moved.tokenVersion, demoted.tokenVersion);
      });

      it("counts enabled admins", async () => {
        const before = await store.countAdmins();
        const admin = await newUser("admin");
        await newUser("analyst");
        assert.equal(await store.countAdmins(), before + 1);
        await store.updateUser(admin.id, { disabled: true });
        assert.equal(await store.countAdmins(), before);
        await store.updateUser(admin.id, { disabled: false });
        await store.deleteUser(admin.id);
        assert.equal(await store.countAdmins(), before);
      });

      it("deletes a user; deleting again is a no-op", async () => {
        const user = await newUser();
        await store.deleteUser(user.id);
        assert.equal(await store.getUserById(user.id), undefined);
        assert.equal(await store.getUserByUsername(user.username), undefined);
        await store.deleteUser(user.id);
        await store.deleteUser("not-a-uuid");
      });

      it("keeps a deleted user's username reserved in every case, but frees the email", async () => {
        const user = await newUser();
        await store.deleteUser(user.id);
        for (const username of [user.username, user.username.toUpperCase()]) {
          await rejectsWith(
            store.createUser({ username, email: `other-${user.email}`, passwordHash: "h", role: "user" }),
            "conflict",
            /reserved/,
          );
        }
        const sameEmail = await store.createUser({
          username: unique("again"),
          email: user.email,
          passwordHash: "h",
          role: "user",
        });
        assert.notEqual(sameEmail.id, user.id);
      });

      it("re-hashes a password only over the hash it was read with, without revoking tokens", async () => {
        const user = await newUser();
        const before = await store.getUserByUsername(user.username);
        assert.ok(before);
        assert.equal(await store.rehashPassword(user.id, "stale-hash", "stronger"), false);
        assert.equal(await store.rehashPassword(user.id, before.passwordHash, "stronger"), true);
        const after = await store.getUserByUsername(user.username);
        assert.equal(after?.passwordHash, "stronger");
        assert.equal(after?.tokenVersion, before.tokenVersion);
        assert.equal(await store.rehashPassword("not-a-uuid", "a", "b"), false);
      });
    });

    describe("revocations", () => {
      const published: Revocation[] = [];
      let watched: ControlStore;
      before(async () => {
        watched = await factory({ revocations: { publish: (r) => published.push(r) } });
        await watched.open();
      });
      after(() => watched?.close());
      const fresh = () => {
        const username = unique("rv");
        return watched.createUser({ username, email: `${username}@x.io`, passwordHash: "h", role: "analyst" });
      };

      it("each revoking change publishes one event after it committed; others publish none", async () => {
        const user = await fresh();
        published.length = 0;
        await watched.updateUser(user.id, { email: `${unique("e")}@x.io` });
        await watched.updateUser(user.id, { role: "analyst" });
        assert.equal(published.length, 0);
        await watched.updateUser(user.id, { passwordHash: "h2" });
        await watched.updateUser(user.id, { role: "user" });
        await watched.updateUser(user.id, { disabled: true });
        await watched.updateUser(user.id, { disabled: false });
        await watched.deleteUser(user.id);
        await watched.deleteUser(user.id);
        assert.deepEqual(
          published.map((r) => r.reason),
          ["password_changed", "role_changed", "disabled", "deleted"],
        );
        assert.ok(published.every((r) => r.userId === user.id));
      });

      it("deleting a key publishes its id; deleting a missing key publishes nothing", async () => {
        const user = await fresh();
        const key = await watched.createApiKey({
          userId: user.id,
          name: "k",
          role: "user",
          prefix: "p",
          keyHash: randomBytes(32).toString("hex"),
        });
        published.length = 0;
        assert.equal(await watched.deleteApiKey(user.id, key.id), true);
        assert.equal(await watched.deleteApiKey(user.id, key.id), false);
        assert.deepEqual(published, [{ userId: user.id, reason: "api_key_deleted", apiKeyId: key.id }]);
      });
    });

    describe("api keys", () => {
      const keyFor = (user: User, role: Role = "user") => {
        const prefix = randomBytes(4).toString("hex");
        return { userId: user.id, name: unique("key"), role, prefix, keyHash: randomBytes(32).toString("hex") };
      };

      it("creates a key and finds it by hash with its owner", async () => {
        const user = await newUser("admin");
        const spec = keyFor(user, "service");
        const key = await store.createApiKey(spec);
        assert.match(key.id, /^[0-9a-f-]{36}$/);
        assert.deepEqual(
          { userId: key.userId, name: key.name, role: key.role, prefix: key.prefix },
          { userId: user.id, name: spec.name, role: "service", prefix: spec.prefix },
        );
        assert.match(key.createdAt, ISO);
        assert.equal("keyHash" in key, false);

        const found = await store.findApiKeyByHash(spec.keyHash);
        assert.deepEqual(found, { ...key, owner: user });
        assert.equal(await store.findApiKeyByHash(randomBytes(32).toString("hex")), undefined);
      });

      it("the owner seen through a key reflects the owner's current state", async () => {
        const user = await newUser("analyst");
        const spec = keyFor(user);
        await store.createApiKey(spec);
        const demoted = await store.updateUser(user.id, { role: "user" });
        assert.deepEqual((await store.findApiKeyByHash(spec.keyHash))?.owner, demoted);
      });

      it("disabling a user deletes their keys; re-enabling does not bring them back", async () => {
        const user = await newUser();
        const spec = keyFor(user);
        await store.createApiKey(spec);
        await store.updateUser(user.id, { disabled: true });
        assert.equal(await store.findApiKeyByHash(spec.keyHash), undefined);
        await store.updateUser(user.id, { disabled: false });
        assert.equal(await store.findApiKeyByHash(spec.keyHash), undefined);
        assert.deepEqual(await store.listApiKeys(user.id), []);
      });

      it("lists a user's keys only, oldest first", async () => {
        const user = await newUser();
        const other = await newUser();
        const k1 = await store.createApiKey(keyFor(user));
        const k2 = await store.createApiKey(keyFor(user));
        await store.createApiKey(keyFor(other));
        const listed = await store.listApiKeys(user.id);
        assert.deepEqual(listed.map((k) => k.id).sort(), [k1.id, k2.id].sort());
        assert.deepEqual(await store.listApiKeys("not-a-uuid"), []);
      });

      it("deletes only the owner's key", async () => {
        const user = await newUser();
        const other = await newUser();
        const spec = keyFor(user);
        const key = await store.createApiKey(spec);
        assert.equal(await store.deleteApiKey(other.id, key.id), false);
        assert.ok(await store.findApiKeyByHash(spec.keyHash));
        assert.equal(await store.deleteApiKey(user.id, key.id), true);
        assert.equal(await store.deleteApiKey(user.id, key.id), false);
        assert.equal(await store.findApiKeyByHash(spec.keyHash), undefined);
        assert.equal(await store.deleteApiKey(user.id, "not-a-uuid"), false);
      });

      it("a duplicate key hash is a conflict", async () => {
        const user = await newUser();
        const spec = keyFor(user);
        await store.createApiKey(spec);
        await rejectsWith(store.createApiKey({ ...spec, name: "again" }), "conflict");
      });

      it("a key for an unknown user is not_found", async () => {
        const ghost = { ...(await newUser()) };
        await store.deleteUser(ghost.id);
        await rejectsWith(store.createApiKey(keyFor(ghost)), "not_found");
      });
    });

    describe("settings", () => {
      it("are empty until put, then round-trip as replaced whole", async () => {
        const user = await newUser();
        assert.deepEqual(await store.getSettings(user.id), {});
        const settings = { theme: "dark", dashboards: [{ id: 1, panels: ["a", "b"] }], nested: { x: null, y: true } };
        await store.putSettings(user.id, settings);
        assert.deepEqual(await store.getSettings(user.id), settings);
        await store.putSettings(user.id, { theme: "light" });
        assert.deepEqual(await store.getSettings(user.id), { theme: "light" });
      });

      it("keep strings that look like JSON as strings", async () => {
        const user = await newUser();
        const settings = { text: '{"a":1}', quote: 'say "hi"', unicode: "ünïcødé ☃" };
        await store.putSettings(user.id, settings);
        assert.deepEqual(await store.getSettings(user.id), settings);
      });

      it("refuse the NUL character, which PostgreSQL cannot store", async () => {
        const user = await newUser();
        await rejectsWith(store.putSettings(user.id, { bad: "a\u0000b" }), "invalid_input", /NUL/);
        await rejectsWith(store.recordActivity(user.id, "bad\u0000kind"), "invalid_input", /NUL/);
      });

      it("are per user", async () => {
        const a = await newUser();
        const b = await newUser();
        await store.putSettings(a.id, { owner: "a" });
        assert.deepEqual(await store.getSettings(b.id), {});
      });

      it("for an unknown user are not_found", async () => {
        await rejectsWith(store.putSettings("00000000-0000-4000-8000-000000000000", {}), "not_found");
      });
    });

    describe("activity", () => {
      it("lists newest first with the detail kept", async () => {
        const user = await newUser();
        await store.recordActivity(user.id, "login", { ip: "127.0.0.1" });
        await store.recordActivity(user.id, "password_changed");
        await store.recordActivity(user.id, "api_key_created", { name: "ci", nested: { n: 1 } });
        const entries = await store.listActivity(user.id);
        assert.deepEqual(
          entries.map((e) => [e.kind, e.detail]),
          [
            ["api_key_created", { name: "ci", nested: { n: 1 } }],
            ["password_changed", {}],
            ["login", { ip: "127.0.0.1" }],
          ],
        );
        for (const e of entries) {
          assert.equal(e.userId, user.id);
          assert.match(e.id, /^\d+$/);
          assert.match(e.at, ISO);
        }
      });

      it("pages with limit and a before cursor", async () => {
        const user = await newUser();
        // Twelve entries, so ids cross a digit boundary: ordering must be numeric, not textual.
        for (let i = 0; i < 12; i++) await store.recordActivity(user.id, "event", { i });
        const seen: number[] = [];
        let before: string | undefined;
        for (;;) {
          const page = await store.listActivity(user.id, before === undefined ? { limit: 3 } : { limit: 3, before });
          assert.ok(page.length <= 3);
          if (page.length === 0) break;
          seen.push(...page.map((e) => e.detail.i as number));
          before = page.at(-1)?.id;
        }
        assert.deepEqual(seen, [11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
      });

      it("defaults to 50 entries and caps the limit at 500", async () => {
        const user = await newUser();
        for (let i = 0; i < 60; i++) await store.recordActivity(user.id, "event", { i });
        assert.equal((await store.listActivity(user.id)).length, 50);
        assert.equal((await store.listActivity(user.id, { limit: 10_000 })).length, 60);
      });

      it("rejects a bad limit or cursor", async () => {
        const user = await newUser();
        await rejectsWith(store.listActivity(user.id, { limit: 0 }), "invalid_input");
        await rejectsWith(store.listActivity(user.id, { limit: 1.5 }), "invalid_input");
        await rejectsWith(store.listActivity(user.id, { before: "1; DROP TABLE activity" }), "invalid_input");
        await rejectsWith(store.listActivity(user.id, { before: "-1" }), "invalid_input");
      });

      it("is per user", async () => {
        const a = await newUser();
        const b = await newUser();
        await store.recordActivity(a.id, "login");
        assert.deepEqual(await store.listActivity(b.id), []);
      });
    });

    describe("user deletion", () => {
      it("cascades to api keys and settings and keeps activity", async () => {
        const user = await newUser();
        const spec = { userId: user.id, name: "k", role: "user" as const, prefix: "abcd1234", keyHash: unique("h") };
        await store.createApiKey(spec);
        await store.putSettings(user.id, { a: 1 });
        await store.recordActivity(user.id, "login");
        await store.deleteUser(user.id);
        assert.equal(await store.findApiKeyByHash(spec.keyHash), undefined);
        assert.deepEqual(await store.listApiKeys(user.id), []);
        assert.deepEqual(await store.getSettings(user.id), {});
        assert.deepEqual(
          (await store.listActivity(user.id)).map((e) => e.kind),
          ["login"],
        );
      });
    });

    describe("streams", () => {
      it("creates with every field and reads it back", async () => {
        const name = unique("clicks");
        const schema = { type: "object", properties: { url: { type: "string" } }, required: ["url"] };
        const created = await store.createStream({
          name,
          partitions: 8,
          schema,
          timestampField: "ts",
          retentionMs: 7 * 24 * 3600 * 1000,
          derivedFrom: "sessionise",
          maxFutureSkewMs: 3650 * 86_400_000,
        });
        assert.deepEqual(
          { ...created, createdAt: "" },
          {
            name,
            partitions: 8,
            schema,
            timestampField: "ts",
            retentionMs: 604_800_000,
            derivedFrom: "sessionise",
            maxFutureSkewMs: 315_360_000_000,
            createdAt: "",
          },
        );
        assert.match(created.createdAt, ISO);
        assert.deepEqual(await store.getStream(name), created);
      });

      it("omits optional fields that were not given", async () => {
        const name = unique("plain");
        const created = await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        assert.deepEqual(Object.keys(created).sort(), ["createdAt", "name", "partitions", "timestampField"]);
        assert.deepEqual(await store.getStream(name), created);
      });

      it("keeps a stream out of the analytics store when created so", async () => {
        const name = unique("raw");
        const created = await store.createStream({
          name,
          partitions: 1,
          timestampField: "timestamp",
          analytics: false,
        });
        assert.equal(created.analytics, false);
        assert.equal((await store.getStream(name))?.analytics, false);
        assert.equal((await store.listStreams()).find((s) => s.name === name)?.analytics, false);
      });

      it("keeps the analytics hot window beyond 2^31 ms", async () => {
        const name = unique("hot");
        const hotMs = 90 * 86_400_000;
        const archiveRetentionMs = 3 * 365 * 86_400_000;
        await store.createStream({ name, partitions: 1, timestampField: "timestamp", hotMs, archiveRetentionMs });
        assert.equal((await store.getStream(name))?.hotMs, hotMs);
        assert.equal((await store.getStream(name))?.archiveRetentionMs, archiveRetentionMs);
      });

      it("keeps retention beyond 2^31 ms", async () => {
        const name = unique("long");
        const retentionMs = 365 * 24 * 3600 * 1000;
        await store.createStream({ name, partitions: 1, timestampField: "timestamp", retentionMs });
        assert.equal((await store.getStream(name))?.retentionMs, retentionMs);
      });

      it("lists, conflicts on a duplicate, deletes", async () => {
        const name = unique("s");
        await store.createStream({ name, partitions: 2, timestampField: "timestamp" });
        assert.ok((await store.listStreams()).some((s) => s.name === name));
        await rejectsWith(
          store.createStream({ name, partitions: 3, timestampField: "timestamp" }),
          "conflict",
          /stream already exists/,
        );
        assert.equal(await store.deleteStream(name), true);
        assert.equal(await store.deleteStream(name), false);
        assert.equal(await store.getStream(name), undefined);
        assert.ok(!(await store.listStreams()).some((s) => s.name === name));
      });

      it("rejects a non-positive partition count", async () => {
        await rejectsWith(
          store.createStream({ name: unique("bad"), partitions: 0, timestampField: "t" }),
          "invalid_input",
          /partitions must be at least 1/,
        );
      });
    });

    describe("archive manifest", () => {
      const file = (stream: string, partition: number, offsetStart: number, offsetEnd: number) => ({
        stream,
        partition,
        offsetStart,
        offsetEnd,
        // Beyond 2^31: epoch ms and offsets are bigint columns.
        minTime: 1_767_225_600_000 + offsetStart,
        maxTime: 1_767_225_600_000 + offsetEnd,
        minUser: "alice",
        maxUser: "zoe",
        rows: offsetEnd - offsetStart,
        bytes: 4096 + offsetStart,
        schemaVersion: 7,
        path: `${stream}/2026-01-01/p${partition}/${offsetStart}-${offsetEnd}.parquet`,
      });

      it("commits consecutive files per partition and moves each partition's boundary", async () => {
        const name = unique("arch");
        await store.createStream({ name, partitions: 2, timestampField: "timestamp" });
        assert.deepEqual(await store.listArchiveFiles(name), []);
        assert.deepEqual(await store.archiveBoundaries(name), new Map());
        const big = 3_000_000_000;
        await store.commitArchiveFile(file(name, 0, 0, 100));
        await store.commitArchiveFile(file(name, 1, 0, 5));
        await store.commitArchiveFile(file(name, 0, 100, big));
        assert.deepEqual(await store.listArchiveFiles(name), [
          file(name, 0, 0, 100),
          file(name, 0, 100, big),
          file(name, 1, 0, 5),
        ]);
        assert.deepEqual(
          await store.archiveBoundaries(name),
          new Map([
            [0, big],
            [1, 5],
          ]),
        );
        assert.ok((await store.listArchiveFiles()).some((f) => f.stream === name));
      });

      it("refuses a file committed twice, an overlap and a gap, committing nothing", async () => {
        const name = unique("arch");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        await store.commitArchiveFile(file(name, 0, 0, 10));
        await rejectsWith(store.commitArchiveFile(file(name, 0, 0, 10)), "conflict", /archived up to 10/);
        await rejectsWith(store.commitArchiveFile(file(name, 0, 5, 20)), "conflict");
        await rejectsWith(store.commitArchiveFile(file(name, 0, 11, 20)), "conflict");
        await rejectsWith(store.commitArchiveFile({ ...file(name, 0, 10, 20), offsetEnd: 10 }), "invalid_input");
        assert.deepEqual(await store.listArchiveFiles(name), [file(name, 0, 0, 10)]);
        assert.deepEqual(await store.archiveBoundaries(name), new Map([[0, 10]]));
      });

      it("deletes files from the manifest by path, keeping the boundaries", async () => {
        const name = unique("arch");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        await store.commitArchiveFile(file(name, 0, 0, 10));
        await store.commitArchiveFile(file(name, 0, 10, 20));
        assert.deepEqual(await store.deleteArchiveFiles(name, [file(name, 0, 0, 10).path, "no/such.parquet"]), [
          file(name, 0, 0, 10),
        ]);
        assert.deepEqual(await store.deleteArchiveFiles(name, []), []);
        assert.deepEqual(await store.listArchiveFiles(name), [file(name, 0, 10, 20)]);
        assert.deepEqual(await store.archiveBoundaries(name), new Map([[0, 20]]));
        await store.commitArchiveFile(file(name, 0, 20, 30));
      });

      it("replaces consecutive files by one covering them (compaction), all or nothing", async () => {
        const name = unique("arch");
        await store.createStream({ name, partitions: 2, timestampField: "timestamp" });
        for (const [s, e] of [
          [0, 10],
          [10, 25],
          [25, 40],
          [40, 50],
        ] as const) {
          await store.commitArchiveFile(file(name, 0, s, e));
        }
        await store.commitArchiveFile(file(name, 1, 0, 10));
        const merged = { ...file(name, 0, 10, 40), path: `${name}/merged.parquet` };
        const paths = (s: number, e: number) => file(name, 0, s, e).path;
        // Not consecutive (10-25 and 40-50), a range that does not match, a file of another partition.
        await rejectsWith(store.replaceArchiveFiles(name, [paths(10, 25), paths(40, 50)], merged), "conflict");
        await rejectsWith(store.replaceArchiveFiles(name, [paths(10, 25)], merged), "conflict");
        await rejectsWith(
          store.replaceArchiveFiles(name, [paths(10, 25), paths(25, 40), file(name, 1, 0, 10).path], merged),
          "conflict",
        );
        assert.equal((await store.listArchiveFiles(name)).length, 5, "nothing replaced");
        await store.replaceArchiveFiles(name, [paths(25, 40), paths(10, 25)], merged);
        assert.deepEqual(
          (await store.listArchiveFiles(name)).map((f) => [f.partition, f.offsetStart, f.offsetEnd, f.path]),
          [
            [0, 0, 10, paths(0, 10)],
            [0, 10, 40, merged.path],
            [0, 40, 50, paths(40, 50)],
            [1, 0, 10, file(name, 1, 0, 10).path],
          ],
        );
        // Replaced files are gone: a second attempt is refused.
        await rejectsWith(store.replaceArchiveFiles(name, [paths(10, 25), paths(25, 40)], merged), "conflict");
        assert.deepEqual(
          await store.archiveBoundaries(name),
          new Map([
            [0, 50],
            [1, 10],
          ]),
        );
      });

      it("replaces files by parts laid out by user range, and parts only all together", async () => {
        const name = unique("arch");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        for (const [s, e] of [
          [0, 10],
          [10, 30],
          [30, 40],
        ] as const) {
          await store.commitArchiveFile(file(name, 0, s, e));
        }
        const paths = (s: number, e: number) => file(name, 0, s, e).path;
        const part = (i: number, rows: number, minUser: string, maxUser: string) => ({
          ...file(name, 0, 0, 30),
          rows,
          minUser,
          maxUser,
          path: `${name}/w2026-01-01/p0/0-30.u${i}.parquet`,
          ...(i > 0 ? { userPart: i } : {}),
        });
        const parts = [part(0, 12, "a", "k"), part(1, 18, "l", "z")];
        // Rows that do not add up, parts out of order.
        await rejectsWith(
          store.replaceArchiveFiles(
            name,
            [paths(0, 10), paths(10, 30)],
            [part(0, 12, "a", "k"), part(1, 17, "l", "z")],
          ),
          "conflict",
        );
        await rejectsWith(
          store.replaceArchiveFiles(name, [paths(0, 10), paths(10, 30)], [parts[1]!, parts[0]!]),
          "conflict",
        );
        await store.replaceArchiveFiles(name, [paths(10, 30), paths(0, 10)], parts);
        assert.deepEqual(await store.listArchiveFiles(name), [...parts, file(name, 0, 30, 40)]);
        // Parts of a range go together: one left out would keep its rows twice.
        const again = { ...file(name, 0, 0, 40), path: `${name}/w2026-01-01/p0/0-40.u0.parquet` };
        await rejectsWith(store.replaceArchiveFiles(name, [parts[0]!.path, paths(30, 40)], again), "conflict");
        await store.replaceArchiveFiles(name, [parts[1]!.path, parts[0]!.path, paths(30, 40)], again);
        assert.deepEqual(await store.listArchiveFiles(name), [again]);
        assert.deepEqual(await store.archiveBoundaries(name), new Map([[0, 40]]));
      });

      it("refuses a file of a missing stream; deleting a stream deletes its manifest", async () => {
        await rejectsWith(store.commitArchiveFile(file(unique("none"), 0, 0, 1)), "stream_not_found");
        const name = unique("arch");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        await store.commitArchiveFile(file(name, 0, 0, 10));
        await store.deleteStream(name);
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        assert.deepEqual(await store.listArchiveFiles(name), []);
        assert.deepEqual(await store.archiveBoundaries(name), new Map());
      });
    });

    describe("imported archive files", () => {
      const chunk = (stream: string, importId: string, firstRow: number, days: number[], perDay = 10) =>
        days.map((d) => ({
          stream,
          importId,
          firstRow,
          chunkRows: perDay * days.length,
          // Beyond 2^31: epoch ms are bigint columns.
          minTime: 1_767_225_600_000 + d * 86_400_000,
          maxTime: 1_767_225_600_000 + d * 86_400_000 + 1000,
          minUser: "alice",
          maxUser: "zoe",
          rows: perDay,
          bytes: 2048 + d,
          schemaVersion: 4,
          path: `${stream}/2026-01-0${d + 1}/import/${importId}-${firstRow}-x.parquet`,
        }));

      it("commits a chunk's files together, lists them by stream and import, never the same rows twice", async () => {
        const name = unique("imp");
        await store.createStream({ name, partitions: 2, timestampField: "timestamp" });
        assert.deepEqual(await store.listImportFiles(name), []);
        await store.commitImportChunk(chunk(name, "jan", 0, [0, 1]));
        await store.commitImportChunk(chunk(name, "jan", 20, [2]));
        await store.commitImportChunk(chunk(name, "feb", 0, [3]));
        assert.deepEqual(await store.listImportFiles(name, "jan"), [
          ...chunk(name, "jan", 0, [0, 1]),
          ...chunk(name, "jan", 20, [2]),
        ]);
        assert.equal((await store.listImportFiles(name)).length, 4);
        assert.ok((await store.listImportFiles()).some((f) => f.stream === name));
        // The same chunk again, and chunks overlapping committed rows, commit nothing.
        await rejectsWith(store.commitImportChunk(chunk(name, "jan", 0, [5, 6])), "conflict", /overlap/);
        await rejectsWith(store.commitImportChunk(chunk(name, "jan", 15, [5])), "conflict");
        await rejectsWith(store.commitImportChunk(chunk(name, "jan", 25, [5])), "conflict");
        assert.equal((await store.listImportFiles(name, "jan")).length, 3);
        // Adjacent rows are another chunk.
        await store.commitImportChunk(chunk(name, "jan", 30, [5]));
        // Files that do not add up to the chunk, or name two chunks, are refused.
        await rejectsWith(
          store.commitImportChunk([{ ...chunk(name, "x", 0, [0])[0]!, chunkRows: 11 }]),
          "invalid_input",
        );
        await rejectsWith(
          store.commitImportChunk([...chunk(name, "y", 0, [0]), ...chunk(name, "y", 10, [1])]),
          "invalid_input",
        );
        await rejectsWith(store.commitImportChunk([]), "invalid_input");
      });

      it("keeps a ledger of committed chunks that outlives their files", async () => {
        const name = unique("imp");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        await store.commitImportChunk(chunk(name, "jan", 0, [0, 1]));
        await store.commitImportChunk(chunk(name, "jan", 20, [1]));
        const chunks = [
          { stream: name, importId: "jan", firstRow: 0, chunkRows: 20 },
          { stream: name, importId: "jan", firstRow: 20, chunkRows: 10 },
        ];
        assert.deepEqual(await store.listImportChunks(name, "jan"), chunks);
        assert.deepEqual(await store.listImportChunks(name, "feb"), []);
        await store.deleteImportFiles(
          name,
          (await store.listImportFiles(name)).map((f) => f.path),
        );
        assert.deepEqual(await store.listImportChunks(name, "jan"), chunks, "files expired, chunks still committed");
        await rejectsWith(store.commitImportChunk(chunk(name, "jan", 0, [2])), "conflict", /overlap/);
        await store.deleteStream(name);
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        assert.deepEqual(await store.listImportChunks(name, "jan"), []);
      });

      it("replaces imported files by one merged file holding their rows, all or nothing", async () => {
        const name = unique("imp");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        const a = chunk(name, "a", 0, [0, 1]);
        const b = chunk(name, "b", 0, [1]);
        await store.commitImportChunk(a);
        await store.commitImportChunk(b);
        const merged = {
          stream: name,
          minTime: a[1]!.minTime,
          maxTime: b[0]!.maxTime,
          minUser: "alice",
          maxUser: "zoe",
          rows: 20,
          bytes: 4000,
          schemaVersion: 4,
          path: `${name}/2026-01-02/import/compacted-x.parquet`,
        };
        // Rows that do not add up, or a file no longer committed, replace nothing.
        await rejectsWith(
          store.replaceImportFiles(name, [a[1]!.path, b[0]!.path], { ...merged, rows: 21 }),
          "conflict",
        );
        await rejectsWith(
          store.replaceImportFiles(name, [a[1]!.path, "no/such.parquet"], { ...merged, rows: 10 }),
          "conflict",
        );
        assert.equal((await store.listImportFiles(name)).length, 3);
        await store.replaceImportFiles(name, [a[1]!.path, b[0]!.path], merged);
        assert.deepEqual(await store.listImportFiles(name), [a[0], merged]);
        assert.deepEqual(await store.listImportFiles(name, "b"), [], "a merged file is no one import's");
        assert.equal((await store.listImportChunks(name, "b")).length, 1, "the chunk stays committed");
        await rejectsWith(store.replaceImportFiles(name, [a[1]!.path], { ...merged, rows: 10 }), "conflict");
      });

      it("deletes imported files by path; deleting the stream deletes them; a missing stream is refused", async () => {
        await rejectsWith(store.commitImportChunk(chunk(unique("none"), "a", 0, [0])), "stream_not_found");
        const name = unique("imp");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        const files = chunk(name, "a", 0, [0, 1]);
        await store.commitImportChunk(files);
        assert.deepEqual(await store.deleteImportFiles(name, [files[0]!.path, "no/such.parquet"]), [files[0]]);
        assert.deepEqual(await store.listImportFiles(name), [files[1]]);
        await store.deleteStream(name);
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        assert.deepEqual(await store.listImportFiles(name), []);
      });
    });

    describe("stream column types", () => {
      it("registers new columns, keeps the first type of a field, widens BIGINT to DOUBLE only", async () => {
        const name = unique("typed");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        assert.deepEqual(await store.listStreamColumns(name), []);
        await store.registerStreamColumns(name, [{ name: "Amount", type: "BIGINT" }], 10);
        // Another writer's first value lost the race: the stored type stays, names compare case-insensitively.
        const after = await store.registerStreamColumns(
          name,
          [
            { name: "amount", type: "VARCHAR" },
            { name: "note", type: "VARCHAR" },
          ],
          10,
        );
        assert.deepEqual(after, [
          { name: "Amount", type: "BIGINT" },
          { name: "note", type: "VARCHAR" },
        ]);
        await store.registerStreamColumns(
          name,
          [
            { name: "amount", type: "DOUBLE" },
            { name: "note", type: "DOUBLE" },
          ],
          10,
        );
        assert.deepEqual(await store.listStreamColumns(name), [
          { name: "Amount", type: "DOUBLE" },
          { name: "note", type: "VARCHAR" },
        ]);
      });

      it("resolves concurrent first values of a new field to one type", async () => {
        const name = unique("race");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        const answers = await Promise.all(
          (["BIGINT", "VARCHAR", "BOOLEAN", "JSON"] as const).map((type) =>
            store.registerStreamColumns(name, [{ name: "x", type }], 10),
          ),
        );
        const stored = await store.listStreamColumns(name);
        assert.equal(stored.length, 1);
        for (const answer of answers) assert.deepEqual(answer, stored);
      });

      it("refuses columns past the bound, adding none of them, and unknown streams", async () => {
        const name = unique("bounded");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        await store.registerStreamColumns(name, [{ name: "a", type: "BIGINT" }], 2);
        await rejectsWith(
          store.registerStreamColumns(
            name,
            [
              { name: "b", type: "BIGINT" },
              { name: "c", type: "BIGINT" },
            ],
            2,
          ),
          "too_many_columns",
          /limit of 2/,
        );
        assert.equal((await store.listStreamColumns(name)).length, 1);
        await rejectsWith(
          store.registerStreamColumns(unique("missing"), [{ name: "a", type: "BIGINT" }], 2),
          "stream_not_found",
          /does not exist/,
        );
      });

      it("retypes all or nothing while each column is still of its expected type; deleting the stream deletes them", async () => {
        const name = unique("retype");
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        await store.registerStreamColumns(
          name,
          [
            { name: "a", type: "BIGINT" },
            { name: "b", type: "BOOLEAN" },
          ],
          10,
        );
        await rejectsWith(
          store.retypeStreamColumns(name, [
            { name: "a", from: "BIGINT", to: "VARCHAR" },
            { name: "b", from: "JSON", to: "VARCHAR" },
          ]),
          "conflict",
          /no longer of type JSON/,
        );
        assert.deepEqual(await store.listStreamColumns(name), [
          { name: "a", type: "BIGINT" },
          { name: "b", type: "BOOLEAN" },
        ]);
        assert.deepEqual(await store.retypeStreamColumns(name, [{ name: "A", from: "BIGINT", to: "VARCHAR" }]), [
          { name: "a", type: "VARCHAR" },
          { name: "b", type: "BOOLEAN" },
        ]);
        await store.deleteStream(name);
        await store.createStream({ name, partitions: 1, timestampField: "timestamp" });
        assert.deepEqual(await store.listStreamColumns(name), []);
      });
    });

    describe("pipelines", () => {
      it("create, get, list, conflict, delete", async () => {
        const name = unique("p");
        const sql =
          "INSERT INTO out SELECT user_id, count(*) FROM clicks GROUP BY user_id, TUMBLE(_time, INTERVAL '1' MINUTE)";
        const created = await store.createPipeline({ name, sql, startFrom: "earliest" });
        assert.equal(created.name, name);
        assert.equal(created.sql, sql);
        assert.equal(created.startFrom, "earliest");
        assert.match(created.createdAt, ISO);
        assert.deepEqual(await store.getPipeline(name), created);
        assert.ok((await store.listPipelines()).some((p) => p.name === name));
        await rejectsWith(store.createPipeline({ name, sql, startFrom: "now" }), "conflict", /pipeline already exists/);
        assert.equal(await store.deletePipeline(name), true);
        assert.equal(await store.deletePipeline(name), false);
        assert.equal(await store.getPipeline(name), undefined);
      });

      it("enabled: true by default, set and read back, kept by list; unknown name → undefined", async () => {
        const name = unique("p");
        const created = await store.createPipeline({ name, sql: "SELECT * FROM clicks", startFrom: "now" });
        assert.equal(created.enabled, true);
        const disabled = await store.setPipelineEnabled(name, false);
        assert.deepEqual(disabled, { ...created, enabled: false });
        assert.equal((await store.getPipeline(name))?.enabled, false);
        assert.equal((await store.listPipelines()).find((p) => p.name === name)?.enabled, false);
        assert.equal((await store.setPipelineEnabled(name, true))?.enabled, true);
        assert.equal((await store.getPipeline(name))?.enabled, true);
        assert.equal(await store.setPipelineEnabled(unique("missing"), false), undefined);
        const off = unique("p");
        assert.equal(
          (await store.createPipeline({ name: off, sql: "SELECT 1", startFrom: "now", enabled: false })).enabled,
          false,
        );
        assert.equal(await store.deletePipeline(name), true);
        assert.equal(await store.deletePipeline(off), true);
      });

      it("rejects an unknown start position", async () => {
        await rejectsWith(
          store.createPipeline({ name: unique("p"), sql: "SELECT 1", startFrom: "latest" as "now" }),
          "invalid_input",
          /startFrom/,
        );
      });
    });

    describe("CEP rules, alerts and blocks", () => {
      it("stores rules, one alert per match, and blocks", async () => {
        const id = randomUUID();
        const spec = { name: "r", stream: "s", pattern: [{ name: "a" }] };
        const rule = await store.createRule({ id, name: unique("rule"), stream: "s", spec, enabled: true });
        assert.deepEqual(rule.spec, spec);
        assert.equal((await store.getRule(id))?.enabled, true);
        assert.equal((await store.updateRule(id, { enabled: false }))?.enabled, false);
        assert.ok((await store.listRules()).some((r) => r.id === id));
        const changedSpec = { name: "r2", stream: "s2", pattern: [{ name: "b", where: "x > 1" }] };
        const changed = await store.updateRule(id, { name: "r2", stream: "s2", spec: changedSpec });
        assert.deepEqual(
          { name: changed?.name, stream: changed?.stream, spec: changed?.spec, enabled: changed?.enabled },
          { name: "r2", stream: "s2", spec: changedSpec, enabled: false },
          "name, stream and spec change; what is not given stays",
        );
        assert.deepEqual((await store.getRule(id))?.spec, changedSpec);
        assert.equal(await store.updateRule(randomUUID(), { name: "x" }), undefined);
        const user = unique("u");
        const other = unique("u");
        const alert = {
          id: unique("alert"),
          ruleId: id,
          ruleName: rule.name,
          matchId: "0:1,0:2",
          key: "device-1",
          userId: user,
          userIds: [user, other],
          severity: "high",
          timedOut: false,
          events: [
            { amount: 1, user_id: user },
            { amount: 2, user_id: other },
          ],
          firstEventTime: "2026-01-01T00:00:00.000Z",
          lastEventTime: "2026-01-01T00:00:01.000Z",
        };
        assert.equal(await store.recordAlert(alert), true);
        assert.equal(await store.recordAlert({ ...alert, id: unique("again") }), false);
        const listed = await store.listAlerts({ userId: user });
        assert.equal(listed.length, 1);
        assert.equal(listed[0]?.id, alert.id);
        assert.deepEqual(listed[0]?.userIds, [user, other]);
        const theOther = await store.listAlerts({ userId: other });
        assert.deepEqual(
          theOther.map((a) => a.id),
          [alert.id],
          "found by any user whose events it holds, not only the first",
        );
        assert.deepEqual(await store.listAlerts({ userId: unique("u") }), []);
        assert.match(listed[0]?.detectedAt ?? "", ISO);
        assert.equal(await store.putBlock({ userId: user, stream: "s", ruleId: id, alertId: alert.id }), true);
        assert.equal(await store.putBlock({ userId: user, stream: "s", ruleId: id, alertId: alert.id }), false);
        assert.ok((await store.listBlocks()).some((b) => b.userId === user && b.stream === "s"));
        assert.equal((await store.getBlock(user, "s"))?.alertId, alert.id);
        assert.equal(await store.getBlock(user, "t"), undefined);
        assert.deepEqual(
          (await store.listAlerts({ ids: [alert.id, unique("none")] })).map((a) => a.id),
          [alert.id],
        );
        assert.deepEqual(await store.listAlerts({ ids: [] }), []);
        assert.equal((await store.deleteBlocks(user)).length, 1);
        assert.equal(await store.getBlock(user, "s"), undefined);
        assert.equal((await store.deleteBlocks(user)).length, 0);
        assert.equal(await store.deleteRule(id), true);
        assert.equal(await store.getRule(id), undefined);
      });

      it("stores a batch of alerts in one call, idempotently, in batch order", async () => {
        const ruleId = randomUUID();
        const user = unique("u");
        const alert = (matchId: string, id = unique("alert")) => ({
          id,
          ruleId,
          ruleName: "r",
          matchId,
          key: user,
          userId: user as string | null,
          userIds: [user] as string[],
          severity: "high",
          timedOut: false,
          events: [{ step: "large", amount: 900, note: 'ünïcode "quoted"' }],
          firstEventTime: "2026-01-01T00:00:00.000Z",
          lastEventTime: "2026-01-01T00:00:01.000Z",
        });
        const stored = alert("0:1");
        assert.equal(await store.recordAlert(stored), true);
        const fresh = { ...alert("0:2"), detectedAt: "2026-01-02T03:04:05.678Z" };
        const timedOut = { ...alert("timeout:0:3"), timedOut: true, userId: null, userIds: [] };
        const batch = [
          stored, // replayed: same id and match
          fresh,
          { ...alert("0:1"), id: unique("other") }, // another id for a stored match
          timedOut,
          fresh, // repeated within the batch
        ];
        assert.deepEqual(await store.recordAlerts(batch), [false, true, false, true, false]);
        // Replaying the whole batch (a restart from an older checkpoint) stores nothing.
        assert.deepEqual(await store.recordAlerts(batch), [false, false, false, false, false]);
        assert.deepEqual(await store.recordAlerts([]), []);

        const listed = await store.listAlerts({ ruleId });
        assert.deepEqual(
          listed.map((a) => a.matchId),
          ["timeout:0:3", "0:2", "0:1"],
          "newest first, in batch order",
        );
        assert.deepEqual(
          listed.find((a) => a.id === fresh.id),
          fresh,
        );
        const gotTimedOut = listed.find((a) => a.id === timedOut.id);
        assert.equal(gotTimedOut?.timedOut, true);
        assert.equal(gotTimedOut?.userId, null);
        assert.match(gotTimedOut?.detectedAt ?? "", ISO);

        // One statement: a batch holding a malformed alert stores none of it.
        await assert.rejects(store.recordAlerts([alert("0:9"), { ...alert("0:10"), firstEventTime: "not a time" }]));
        assert.equal((await store.listAlerts({ ruleId })).length, 3);
      });

      it("raises the blocks of a stored alert once, even after they were lifted", async () => {
        const ruleId = randomUUID();
        const [owner, partner] = [unique("u"), unique("u")];
        const alert = {
          id: unique("alert"),
          ruleId,
          ruleName: "r",
          matchId: "0:1,0:2",
          key: owner,
          userId: owner,
          userIds: [owner, partner],
          severity: "high",
          timedOut: false,
          events: [],
          firstEventTime: "2026-01-01T00:00:00.000Z",
          lastEventTime: "2026-01-01T00:00:01.000Z",
        };
        const blocks = [
          { userId: owner, stream: "s", ruleId, alertId: alert.id },
          { userId: partner, stream: "s", ruleId, alertId: alert.id },
        ];
        assert.deepEqual(await store.raiseBlocks(blocks), [], "an alert not stored raises nothing");
        assert.equal(await store.getBlock(owner, "s"), undefined);
        // A user blocked already (by another alert) keeps that block.
        assert.equal(await store.putBlock({ userId: partner, stream: "s", ruleId, alertId: "earlier" }), true);
        assert.equal(await store.recordAlert(alert), true);
        assert.deepEqual(await store.raiseBlocks(blocks), [blocks[0]], "the new blocks");
        assert.equal((await store.getBlock(owner, "s"))?.alertId, alert.id);
        assert.equal((await store.getBlock(partner, "s"))?.alertId, "earlier");
        await store.deleteBlocks(owner);
        await store.deleteBlocks(partner);
        // The match replayed (a restart or a move before the rule's next checkpoint).
        assert.equal(await store.recordAlert(alert), false);
        assert.deepEqual(await store.raiseBlocks(blocks), [], "raised before: the lifts stay");
        assert.equal(await store.getBlock(owner, "s"), undefined);
        assert.equal(await store.getBlock(partner, "s"), undefined);
        assert.deepEqual(await store.raiseBlocks([]), []);
      });
    });
  });
}
