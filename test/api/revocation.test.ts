/**
 * Revocation reaches open connections (issue 14, finding 5), on the real server: a tail opened by
 * an analyst closes with an error event when the analyst is disabled or demoted, instead of going
 * on delivering other users' events; a WebSocket producer is closed with 4401 when its user is
 * disabled, instead of going on getting acks. Also finding 11 on the real server: usernames that
 * differ only in case or width are one name.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import { Client } from "../helpers/http.js";
import { until } from "../helpers/poll.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";
import { openSse, within } from "../helpers/sse.js";

let server: ServerProcess;
let removeDir: () => Promise<void>;
let admin: Client;
let victim: Client;

before(async () => {
  const data = await tempDataDir();
  removeDir = data.remove;
  server = await startServerProcess(data.dir);
  admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
  assert.equal((await admin.post("/api/v1/streams", { name: "tx", partitions: 2 })).status, 201);
  const signup = await new Client(server.url).post("/api/v1/auth/signup", {
    username: "victim",
    email: "victim@example.com",
    password: "victim-password",
  });
  assert.equal(signup.status, 201, JSON.stringify(signup.body));
  victim = await new Client(server.url).login("victim", "victim-password");
});

after(async () => {
  await server?.kill();
  await removeDir?.();
});

async function analyst(username: string): Promise<string> {
  const created = await admin.post("/api/v1/users", {
    username,
    email: `${username}@example.com`,
    password: "analyst-password",
    role: "analyst",
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const login = await new Client(server.url).post<{ token: string }>("/api/v1/auth/login", {
    username,
    password: "analyst-password",
  });
  return login.body.token;
}

async function victimEvent(mark: string): Promise<void> {
  const res = await victim.post("/api/v1/streams/tx/events", { mark });
  assert.equal(res.status, 200, JSON.stringify(res.body));
}

describe("an open tail obeys revocation", () => {
  for (const [what, change] of [
    ["disabled", { disabled: true }],
    ["demoted to user", { role: "user" }],
  ] as const) {
    it(`closes with an error event when its analyst is ${what}, and delivers nothing after`, async () => {
      const name = what === "disabled" ? "ann" : "ben";
      const token = await analyst(name);
      const tail = await openSse(`${server.url}/api/v1/streams/tx/tail`, token);
      try {
        await victimEvent(`before-${name}`);
        await until(
          async () => tail.text(),
          (t) => t.includes(`before-${name}`),
          "the analyst's tail to carry the victim's event",
        );
        const changed = await admin.request("PATCH", `/api/v1/users/${name}`, change);
        assert.equal(changed.status, 200, JSON.stringify(changed.body));
        await within(tail.ended, 5000, `the tail of a ${what} analyst closing`);
        await victimEvent(`after-${name}`);
        assert.match(tail.text(), /event: error\ndata: \{"error":"unauthorized"/);
        assert.doesNotMatch(tail.text(), new RegExp(`after-${name}`));
      } finally {
        tail.close();
      }
    });
  }
});

describe("an open alerts stream obeys revocation", () => {
  it("closes with an error event when its analyst is disabled", async () => {
    const token = await analyst("cal");
    const alerts = await openSse(`${server.url}/api/v1/alerts/stream`, token);
    try {
      assert.equal((await admin.request("PATCH", "/api/v1/users/cal", { disabled: true })).status, 200);
      await within(alerts.ended, 5000, "the alerts stream of a disabled analyst closing");
      assert.match(alerts.text(), /event: error\ndata: \{"error":"unauthorized"/);
    } finally {
      alerts.close();
    }
  });
});

describe("an open WebSocket producer obeys revocation", () => {
  it("is closed with 4401 and a reason when its user is disabled", async () => {
    const signup = await new Client(server.url).post("/api/v1/auth/signup", {
      username: "wes",
      email: "wes@example.com",
      password: "wes-password",
    });
    assert.equal(signup.status, 201);
    const wes = await new Client(server.url).login("wes", "wes-password");
    const key = (await wes.post<{ key: string }>("/api/v1/api-keys", { name: "producer" })).body.key;
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/api/v1/streams/tx/ws`, {
      headers: { authorization: `Bearer ${key}` },
    });
    const frames: Record<string, unknown>[] = [];
    ws.on("message", (data) => frames.push(JSON.parse(String(data)) as Record<string, unknown>));
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      });
      ws.send(JSON.stringify({ n: 1 }));
      await until(
        async () => frames.length,
        (n) => n === 1,
        "the first ack",
      );
      assert.equal(frames[0]?.type, "ack");
      assert.equal((await admin.request("PATCH", "/api/v1/users/wes", { disabled: true })).status, 200);
      const { code, reason } = await within(closed, 5000, "the disabled user's socket closing");
      assert.equal(code, 4401);
      assert.match(reason, /^unauthorized: /);
      assert.equal(frames.length, 1);
    } finally {
      ws.terminate();
    }
  });
});

describe("usernames are one name whatever their case or width", () => {
  for (const username of ["Admin", "ADMIN", "ａｄｍｉｎ"]) {
    it(`signing up as ${username} is refused as taken`, async () => {
      const res = await new Client(server.url).post("/api/v1/auth/signup", {
        username,
        email: `${encodeURIComponent(username)}-${Date.now()}@example.com`,
        password: "password-123",
      });
      assert.equal(res.status, 409, JSON.stringify(res.body));
      assert.equal(res.body.error, "conflict");
    });
  }

  it("logging in by another case form finds the account", async () => {
    const res = await new Client(server.url).post("/api/v1/auth/login", {
      username: "ADMIN",
      password: ADMIN_PASSWORD,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((res.body.user as { username: string }).username, "admin");
  });
});
