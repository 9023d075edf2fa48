/**
 * "Accounts and credentials" of API.md from the outside, on both control stores: embedded PGlite
 * and a real PostgreSQL (RUNNEL_TEST_DATABASE_URL from scripts/test.sh, else the private cluster
 * scripts/postgres.sh starts), each in a fresh database.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ManualClock } from "../../src/core/clock.js";
import { startTestRunnel, type TestRunnel } from "../helpers/app.js";
import { onServer, postgresServerUrl } from "../helpers/postgres.js";
import { ADMIN_PASSWORD } from "../helpers/server-process.js";

type Body = Record<string, unknown>;
interface Answer {
  status: number;
  body: Body;
  headers: Record<string, unknown>;
}

interface StoreUnderTest {
  readonly name: string;
  env(): Promise<Record<string, string>>;
  cleanup(): Promise<void>;
}

const pglite: StoreUnderTest = { name: "PGlite", env: async () => ({}), cleanup: async () => {} };

function postgres(): StoreUnderTest {
  const database = `runnel_accounts_${randomBytes(5).toString("hex")}`;
  let server = "";
  return {
    name: "PostgreSQL",
    env: async () => {
      server = postgresServerUrl();
      await onServer(server, `CREATE DATABASE ${database}`);
      const u = new URL(server);
      u.pathname = `/${database}`;
      return { RUNNEL_DATABASE_URL: u.toString() };
    },
    cleanup: async () => {
      if (server !== "") await onServer(server, `DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    },
  };
}

for (const store of [pglite, postgres()]) {
  describe(`accounts on ${store.name}`, () => {
    let t: TestRunnel;
    let adminToken = "";
    const clock = new ManualClock(Date.parse("2026-11-28T12:00:00Z"));

    const call = async (
      method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
      url: string,
      options: { token?: string; body?: unknown; ip?: string } = {},
    ): Promise<Answer> => {
      const headers: Record<string, string> = {};
      if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
      if (options.body !== undefined) headers["content-type"] = "application/json";
      const res = await t.app.inject({
        method,
        url,
        headers,
        remoteAddress: options.ip ?? "127.0.0.1",
        ...(options.body !== undefined && { payload: JSON.stringify(options.body) }),
      });
      return {
        status: res.statusCode,
        body: res.body === "" ? {} : (JSON.parse(res.body) as Body),
        headers: res.headers,
      };
    };
    const expect = (res: Answer, status: number, code?: string): Answer => {
      assert.equal(res.status, status, JSON.stringify(res.body));
      if (code !== undefined) assert.equal(res.body.error, code);
      return res;
    };
    const signup = async (username: string, password = "password-1"): Promise<string> => {
      expect(
        await call("POST", "/api/v1/auth/signup", { body: { username, email: `${username}@ex.com`, password } }),
        201,
      );
      return expect(await call("POST", "/api/v1/auth/login", { body: { username, password } }), 200).body
        .token as string;
    };
    const createUser = async (username: string, role: string): Promise<string> => {
      const body = { username, email: `${username}@ex.com`, password: "password-1", role };
      expect(await call("POST", "/api/v1/users", { token: adminToken, body }), 201);
      return expect(await call("POST", "/api/v1/auth/login", { body: { username, password: "password-1" } }), 200).body
        .token as string;
    };
    const newKey = async (token: string, role?: string): Promise<string> =>
      expect(await call("POST", "/api/v1/api-keys", { token, body: { name: "k", ...(role && { role }) } }), 201).body
        .key as string;

    before(async () => {
      t = await startTestRunnel({ clock, env: await store.env() });
      adminToken = t.adminToken;
      expect(
        await call("POST", "/api/v1/streams", {
          token: adminToken,
          body: { name: "ledger", partitions: 2 },
        }),
        201,
      );
    });
    after(async () => {
      await t?.close();
      await store.cleanup();
    });

    describe("signup and login", () => {
      it("signs up with role user and logs in", async () => {
        const res = expect(
          await call("POST", "/api/v1/auth/signup", {
            body: { username: "amy", email: "amy@ex.com", password: "password-1" },
          }),
          201,
        );
        const user = res.body.user as Body;
        assert.equal(user.username, "amy");
        assert.equal(user.role, "user");
        assert.equal(user.passwordHash, undefined);
        const login = expect(
          await call("POST", "/api/v1/auth/login", { body: { username: "amy", password: "password-1" } }),
          200,
        );
        assert.equal(typeof login.body.token, "string");
        assert.equal((login.body.user as Body).username, "amy");
        assert.equal(login.body.expiresIn, 3600);
      });

      it("validates username and password, and refuses duplicates with 409", async () => {
        for (const body of [
          { username: "", email: "a@b.c", password: "password-1" },
          { username: "bad name", email: "a@b.c", password: "password-1" },
          { username: "x".repeat(65), email: "a@b.c", password: "password-1" },
          { username: "shorty", email: "a@b.c", password: "1234567" },
          { username: "extra", email: "a@b.c", password: "password-1", role: "admin" },
        ]) {
          expect(await call("POST", "/api/v1/auth/signup", { body }), 400, "invalid_input");
        }
        await signup("dup");
        expect(
          await call("POST", "/api/v1/auth/signup", {
            body: { username: "dup", email: "other@ex.com", password: "password-1" },
          }),
          409,
          "conflict",
        );
        expect(
          await call("POST", "/api/v1/auth/signup", {
            body: { username: "dup2", email: "DUP@ex.com", password: "password-1" },
          }),
          409,
          "conflict",
        );
      });

      it("answers an unknown user and a wrong password alike", async () => {
        await signup("bea");
        const wrong = expect(
          await call("POST", "/api/v1/auth/login", {
            body: { username: "bea", password: "wrong-pass" },
            ip: "10.1.0.1",
          }),
          401,
          "unauthorized",
        );
        const unknown = expect(
          await call("POST", "/api/v1/auth/login", { body: { username: "nobody", password: "x" }, ip: "10.1.0.1" }),
          401,
          "unauthorized",
        );
        assert.equal(wrong.body.message, unknown.body.message);
      });

      it("tokens expire after an hour", async () => {
        const token = await signup("tess");
        expect(await call("GET", "/api/v1/me", { token }), 200);
        clock.advance(3_600_001);
        expect(await call("GET", "/api/v1/me", { token }), 401, "token_expired");
        adminToken = await t.login("admin", ADMIN_PASSWORD);
      });
    });

    describe("login throttling", () => {
      it("slows then refuses one address, records it, and leaves other addresses alone", async () => {
        const token = await signup("carl");
        const attacker = "203.0.113.5";
        for (let i = 0; i < 5; i++) {
          expect(
            await call("POST", "/api/v1/auth/login", { body: { username: "carl", password: `no-${i}` }, ip: attacker }),
            401,
          );
        }
        expect(
          await call("POST", "/api/v1/auth/login", { body: { username: "carl", password: "no-5" }, ip: attacker }),
          401,
        );
        const refused = expect(
          await call("POST", "/api/v1/auth/login", {
            body: { username: "carl", password: "password-1" },
            ip: attacker,
          }),
          429,
          "too_many_attempts",
        );
        assert.equal(refused.headers["retry-after"], "1");
        expect(
          await call("POST", "/api/v1/auth/login", {
            body: { username: "carl", password: "password-1" },
            ip: "198.51.100.20",
          }),
          200,
        );
        clock.advance(1_000);
        expect(
          await call("POST", "/api/v1/auth/login", {
            body: { username: "carl", password: "password-1" },
            ip: attacker,
          }),
          200,
        );
        const kinds = ((await call("GET", "/api/v1/me/activity", { token })).body.activity as Body[]).map(
          (e) => e.kind,
        );
        assert.ok(kinds.includes("login_throttled"), kinds.join());
        assert.equal(kinds.filter((k) => k === "login_failed").length, 6);
      });

      it("a wrong current password on /me/password counts too", async () => {
        const token = await signup("pat");
        for (let i = 0; i < 6; i++) {
          expect(
            await call("POST", "/api/v1/me/password", {
              token,
              body: { current: `bad-${i}`, next: "password-2" },
              ip: "10.2.0.1",
            }),
            403,
          );
        }
        expect(
          await call("POST", "/api/v1/me/password", {
            token,
            body: { current: "password-1", next: "password-2" },
            ip: "10.2.0.1",
          }),
          429,
          "too_many_attempts",
        );
      });
    });

    describe("revocation: the next request after each gets 401", () => {
      it("password change revokes tokens and hands back a fresh one", async () => {
        const token = await signup("dan");
        const other = expect(
          await call("POST", "/api/v1/auth/login", { body: { username: "dan", password: "password-1" } }),
          200,
        ).body.token as string;
        const res = expect(
          await call("POST", "/api/v1/me/password", { token, body: { current: "password-1", next: "password-2" } }),
          200,
        );
        expect(await call("GET", "/api/v1/me", { token }), 401, "unauthorized");
        expect(await call("GET", "/api/v1/me", { token: other }), 401, "unauthorized");
        expect(await call("GET", "/api/v1/me", { token: res.body.token as string }), 200);
        expect(await call("POST", "/api/v1/auth/login", { body: { username: "dan", password: "password-1" } }), 401);
        expect(await call("POST", "/api/v1/auth/login", { body: { username: "dan", password: "password-2" } }), 200);
      });

      it("disabling revokes tokens and deletes keys; enabling lets the user log in again, keys stay revoked", async () => {
        const token = await signup("eve");
        const key = await newKey(token);
        expect(await call("PATCH", "/api/v1/users/eve", { token: adminToken, body: { disabled: true } }), 200);
        expect(await call("GET", "/api/v1/me", { token }), 401);
        expect(await call("GET", "/api/v1/me", { token: key }), 401);
        expect(await call("POST", "/api/v1/auth/login", { body: { username: "eve", password: "password-1" } }), 401);
        expect(await call("PATCH", "/api/v1/users/eve", { token: adminToken, body: { disabled: false } }), 200);
        expect(await call("GET", "/api/v1/me", { token: key }), 401, "unauthorized");
        expect(await call("GET", "/api/v1/me", { token }), 401, "unauthorized");
        const again = expect(
          await call("POST", "/api/v1/auth/login", { body: { username: "eve", password: "password-1" } }),
          200,
        ).body.token as string;
        assert.deepEqual(expect(await call("GET", "/api/v1/api-keys", { token: again }), 200).body.keys, []);
      });

      it("deleting the user revokes tokens and keys", async () => {
        const token = await signup("fay");
        const key = await newKey(token);
        expect(await call("DELETE", "/api/v1/users/fay", { token: adminToken }), 204);
        expect(await call("GET", "/api/v1/me", { token }), 401);
        expect(await call("GET", "/api/v1/me", { token: key }), 401);
      });

      it("deleting a key revokes it alone", async () => {
        const token = await signup("gus");
        const created = expect(await call("POST", "/api/v1/api-keys", { token, body: { name: "ci" } }), 201);
        const key = created.body.key as string;
        expect(await call("GET", "/api/v1/me", { token: key }), 200);
        expect(await call("DELETE", `/api/v1/api-keys/${created.body.id as string}`, { token }), 204);
        expect(await call("GET", "/api/v1/me", { token: key }), 401);
        expect(await call("GET", "/api/v1/me", { token }), 200);
      });

      it("a demotion revokes tokens and keys above the new role", async () => {
        const token = await createUser("hal", "admin");
        const serviceKey = await newKey(token, "service");
        const userKey = await newKey(token, "user");
        expect(await call("PATCH", "/api/v1/users/hal", { token: adminToken, body: { role: "user" } }), 200);
        expect(await call("GET", "/api/v1/me", { token }), 401);
        expect(await call("GET", "/api/v1/me", { token: serviceKey }), 401);
        expect(await call("GET", "/api/v1/me", { token: userKey }), 200);
      });
    });

    describe("API keys", () => {
      it("are shown once, listed by prefix, and act with their role", async () => {
        const token = await signup("ivy");
        const created = expect(await call("POST", "/api/v1/api-keys", { token, body: { name: "laptop" } }), 201);
        const key = created.body.key as string;
        assert.match(key, /^rnl_[0-9A-Za-z]{8}_[0-9A-Za-z]{32}$/);
        assert.equal(created.body.role, "user");
        const list = expect(await call("GET", "/api/v1/api-keys", { token }), 200).body.keys as Body[];
        assert.equal(list.length, 1);
        assert.equal(list[0]!.prefix, key.slice(4, 12));
        assert.ok(!JSON.stringify(list).includes(key));
        const me = expect(await call("GET", "/api/v1/me", { token: key }), 200).body;
        assert.equal(me.credential, "api_key");
      });

      it("only an admin creates service or analyst keys", async () => {
        const token = await signup("jon");
        expect(await call("POST", "/api/v1/api-keys", { token, body: { name: "x", role: "service" } }), 403);
        expect(await call("POST", "/api/v1/api-keys", { token, body: { name: "x", role: "analyst" } }), 403);
        expect(await call("POST", "/api/v1/api-keys", { token, body: { name: "x", role: "admin" } }), 403);
        const analyst = await createUser("kim", "analyst");
        expect(await call("POST", "/api/v1/api-keys", { token: analyst, body: { name: "x", role: "analyst" } }), 403);
        const service = await newKey(adminToken, "service");
        expect(
          await call("POST", "/api/v1/streams/ledger/events", {
            token: service,
            body: { user_id: "jon", amount: 1 },
          }),
          200,
        );
        expect(await call("POST", "/api/v1/query", { token: service, body: { sql: "SELECT 1" } }), 403);
      });

      it("a key cannot create keys unless it is an admin's", async () => {
        const token = await signup("lea");
        const key = await newKey(token);
        expect(await call("POST", "/api/v1/api-keys", { token: key, body: { name: "y" } }), 403);
      });
    });

    describe("profile, settings, activity", () => {
      it("reads and changes the profile and settings", async () => {
        const token = await signup("max");
        expect(await call("PATCH", "/api/v1/me", { token, body: { email: "max2@ex.com" } }), 200);
        const me = expect(await call("GET", "/api/v1/me", { token }), 200).body;
        assert.equal((me.user as Body).email, "max2@ex.com");
        assert.deepEqual(expect(await call("GET", "/api/v1/me/settings", { token }), 200).body, { settings: {} });
        const settings = { theme: "dark", nested: { a: [1, 2] } };
        expect(await call("PUT", "/api/v1/me/settings", { token, body: settings }), 200);
        assert.deepEqual(expect(await call("GET", "/api/v1/me/settings", { token }), 200).body, { settings });
        expect(await call("PUT", "/api/v1/me/settings", { token, body: [1] }), 400);
      });

      it("activity is newest first and paginated with next", async () => {
        const token = await signup("ned");
        for (let i = 0; i < 3; i++) expect(await call("PUT", "/api/v1/me/settings", { token, body: { i } }), 200);
        const first = expect(await call("GET", "/api/v1/me/activity?limit=2", { token }), 200).body;
        const page1 = first.activity as Body[];
        assert.deepEqual(
          page1.map((e) => e.kind),
          ["settings_changed", "settings_changed"],
        );
        assert.equal(first.next, page1[1]!.id);
        const second = expect(
          await call("GET", `/api/v1/me/activity?limit=2&before=${first.next as string}`, { token }),
          200,
        ).body;
        assert.deepEqual(
          (second.activity as Body[]).map((e) => e.kind),
          ["settings_changed", "login"],
        );
        const rest = expect(
          await call("GET", `/api/v1/me/activity?limit=2&before=${second.next as string}`, { token }),
          200,
        ).body;
        assert.deepEqual(
          (rest.activity as Body[]).map((e) => e.kind),
          ["signup"],
        );
        assert.equal(rest.next, null);
        expect(await call("GET", "/api/v1/me/activity?limit=0", { token }), 400);
        expect(await call("GET", "/api/v1/me/activity?before=abc", { token }), 400);
      });

      it("admins read anyone's activity; nobody else does", async () => {
        const token = await signup("ola");
        const seen = expect(await call("GET", "/api/v1/users/ola/activity", { token: adminToken }), 200).body;
        assert.deepEqual(
          (seen.activity as Body[]).map((e) => e.kind),
          ["login", "signup"],
        );
        expect(await call("GET", "/api/v1/users/ola/activity", { token }), 403);
        expect(await call("GET", "/api/v1/users/nobody/activity", { token: adminToken }), 404);
      });
    });

    describe("admin user management", () => {
      it("lists, creates, changes and deletes users; others get 403", async () => {
        const token = await signup("pia");
        expect(await call("GET", "/api/v1/users", { token }), 403);
        const users = expect(await call("GET", "/api/v1/users", { token: adminToken }), 200).body.users as Body[];
        assert.ok(users.some((u) => u.username === "pia"));
        assert.ok(!JSON.stringify(users).includes("scrypt"));
        await createUser("quin", "analyst");
        expect(await call("PATCH", "/api/v1/users/quin", { token: adminToken, body: { role: "user" } }), 200);
        expect(await call("PATCH", "/api/v1/users/quin", { token: adminToken, body: {} }), 400);
        expect(await call("PATCH", "/api/v1/users/nobody", { token: adminToken, body: { disabled: true } }), 404);
        expect(await call("DELETE", "/api/v1/users/quin", { token: adminToken }), 204);
        expect(await call("DELETE", "/api/v1/users/quin", { token: adminToken }), 404);
      });

      it("the last admin cannot be deleted, demoted or disabled", async () => {
        const admins = ((await call("GET", "/api/v1/users", { token: adminToken })).body.users as Body[]).filter(
          (u) => u.role === "admin" && u.disabled === false,
        );
        // Other tests may have made admins; demote them so "admin" is the last.
        for (const a of admins) {
          if (a.username !== "admin") {
            await call("PATCH", `/api/v1/users/${a.username as string}`, {
              token: adminToken,
              body: { role: "user" },
            });
          }
        }
        expect(await call("DELETE", "/api/v1/users/admin", { token: adminToken }), 409, "conflict");
        expect(await call("PATCH", "/api/v1/users/admin", { token: adminToken, body: { disabled: true } }), 409);
        expect(await call("PATCH", "/api/v1/users/admin", { token: adminToken, body: { role: "user" } }), 409);
        expect(
          await call("POST", "/api/v1/auth/login", { body: { username: "admin", password: ADMIN_PASSWORD } }),
          200,
        );
      });

      it("deleting a user keeps their events (for audit) and reserves the username", async () => {
        const token = await signup("rob");
        expect(
          await call("POST", "/api/v1/streams/ledger/events", { token, body: { amount: 42, note: "rob-audit" } }),
          200,
        );
        expect(await call("PUT", "/api/v1/me/settings", { token, body: { x: 1 } }), 200);
        expect(await call("DELETE", "/api/v1/users/rob", { token: adminToken }), 204);
        const deadline = Date.now() + 5_000;
        let rows: unknown[][] = [];
        while (Date.now() < deadline) {
          // The column appears once the loader has seen the event: until then the query is refused.
          const res = await call("POST", "/api/v1/query", {
            token: adminToken,
            body: { sql: "SELECT user_id, amount FROM ledger WHERE note = 'rob-audit'" },
          });
          rows = res.status === 200 ? (res.body.rows as unknown[][]) : [];
          if (rows.length > 0) break;
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.deepEqual(rows, [["rob", 42]]);
        expect(
          await call("POST", "/api/v1/auth/signup", {
            body: { username: "rob", email: "new-rob@ex.com", password: "password-1" },
          }),
          409,
          "conflict",
        );
        const body = { username: "rob", email: "rob3@ex.com", password: "password-1", role: "user" };
        expect(await call("POST", "/api/v1/users", { token: adminToken, body }), 409);
      });
    });

    it("every answer carries the security headers and no CORS header", async () => {
      for (const res of [
        await call("GET", "/healthz"),
        await call("GET", "/api/v1/me"),
        await call("GET", "/api/v1/nope"),
      ]) {
        assert.equal(res.headers["x-content-type-options"], "nosniff");
        assert.equal(res.headers["x-frame-options"], "DENY");
        assert.equal(res.headers["access-control-allow-origin"], undefined);
      }
    });
  });
}
