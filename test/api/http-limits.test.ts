/**
 * HTTP-level abuse (issue 14, finding 12), on the real server with short settings: a request
 * whose body trickles in is cut at RUNNEL_REQUEST_TIMEOUT while a live tail outlives it; signup
 * and API key creation are rate-limited with 429 too_many_attempts and Retry-After, and logins go
 * on meanwhile; an ingest request with a bad credential and a malformed body answers 401.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { WebSocket } from "ws";
import { Client } from "../helpers/http.js";
import { until } from "../helpers/poll.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";
import { openSse, within } from "../helpers/sse.js";

const SIGNUPS = 3;
const KEYS = 2;
let server: ServerProcess;
let removeDir: () => Promise<void>;
let admin: Client;
let adminToken = "";

before(async () => {
  const data = await tempDataDir();
  removeDir = data.remove;
  server = await startServerProcess(data.dir, {
    RUNNEL_REQUEST_TIMEOUT: "2s",
    RUNNEL_HEADERS_TIMEOUT: "1s",
    RUNNEL_KEEP_ALIVE_TIMEOUT: "1s",
    RUNNEL_SIGNUP_RATE: `${SIGNUPS}/1h`,
    RUNNEL_API_KEY_RATE: `${KEYS}/1h`,
  });
  const login = await new Client(server.url).post<{ token: string }>("/api/v1/auth/login", {
    username: "admin",
    password: ADMIN_PASSWORD,
  });
  adminToken = login.body.token;
  admin = new Client(server.url, adminToken);
  assert.equal((await admin.post("/api/v1/streams", { name: "tx", partitions: 1 })).status, 201);
});

after(async () => {
  await server?.kill();
  await removeDir?.();
});

/**
 * A connection that sends `head`, then `drip` every 200 ms (nothing when empty); resolves with
 * everything it got back once the server closed it.
 */
function trickle(head: string, drip: string): Promise<string> {
  const { hostname, port } = new URL(server.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let answer = "";
    let timer: NodeJS.Timeout | undefined;
    socket.on("connect", () => {
      socket.write(head);
      if (drip !== "") timer = setInterval(() => socket.write(drip), 200);
    });
    socket.on("data", (chunk) => {
      answer += chunk.toString();
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(timer);
      resolve(answer);
    });
    setTimeout(() => reject(new Error("never closed")), 60_000).unref();
  });
}

describe("timeouts", () => {
  it("closes connections whose body trickles in past the request timeout (2 s here)", async () => {
    const head =
      "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n";
    const answers = await within(
      Promise.all(Array.from({ length: 20 }, () => trickle(head, " "))),
      15_000,
      "the trickling connections closing",
    );
    for (const answer of answers) assert.match(answer, /^HTTP\/1\.1 408 /);
  });

  it("closes connections whose headers trickle in past the header timeout (1 s here)", async () => {
    const answer = await within(
      trickle("GET /healthz HTTP/1.1\r\n", "X-Slow: 1\r\n"),
      10_000,
      "the connection closing",
    );
    assert.match(answer, /^HTTP\/1\.1 408 /);
  });

  it("closes an idle keep-alive connection after the keep-alive timeout (1 s here)", async () => {
    const answer = await within(
      trickle("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", ""),
      10_000,
      "the idle connection closing",
    );
    assert.match(answer, /^HTTP\/1\.1 200 /);
  });

  it("keeps a live tail open past the request timeout", async () => {
    const tail = await openSse(`${server.url}/api/v1/streams/tx/tail`, adminToken);
    try {
      await new Promise((r) => setTimeout(r, 4000));
      assert.equal((await admin.post("/api/v1/streams/tx/events", { user_id: "u1", mark: "late-event" })).status, 200);
      await until(
        async () => tail.text(),
        (t) => t.includes("late-event"),
        "the event on a tail older than the timeout",
      );
    } finally {
      tail.close();
    }
  });

  it("keeps a WebSocket producer open past the request timeout", async () => {
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/api/v1/streams/tx/ws`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once("open", () => resolve());
        ws.once("error", reject);
      });
      await new Promise((r) => setTimeout(r, 4000));
      const ack = new Promise<string>((resolve) => ws.once("message", (data) => resolve(String(data))));
      ws.send(JSON.stringify({ user_id: "u1", mark: "late-frame" }));
      assert.match(await within(ack, 5000, "the ack of a frame on an old socket"), /"type":"ack"/);
    } finally {
      ws.terminate();
    }
  });
});

describe("rate limits", () => {
  it(`refuses signup number ${SIGNUPS + 1} from one address with 429 and Retry-After; logins go on`, async () => {
    const anonymous = new Client(server.url);
    for (let i = 0; i < SIGNUPS; i++) {
      const res = await anonymous.post("/api/v1/auth/signup", {
        username: `s${i}`,
        email: `s${i}@example.com`,
        password: "signup-password",
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    const refused = await anonymous.post("/api/v1/auth/signup", {
      username: "one_too_many",
      email: "one_too_many@example.com",
      password: "signup-password",
    });
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.error, "too_many_attempts");
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
    assert.equal(
      (await anonymous.post("/api/v1/auth/login", { username: "s0", password: "signup-password" })).status,
      200,
    );
  });

  it(`refuses API key number ${KEYS + 1} of one user with 429 and Retry-After`, async () => {
    const user = await new Client(server.url).login("s1", "signup-password");
    for (let i = 0; i < KEYS; i++) {
      assert.equal((await user.post("/api/v1/api-keys", { name: `k${i}` })).status, 201);
    }
    const refused = await user.post("/api/v1/api-keys", { name: "one_too_many" });
    assert.equal(refused.status, 429, JSON.stringify(refused.body));
    assert.equal(refused.body.error, "too_many_attempts");
    assert.ok(Number(refused.headers.get("retry-after")) >= 1);
  });
});

describe("credentials before bodies", () => {
  it("an ingest request with a bad credential and a malformed body answers 401, not 400", async () => {
    for (const token of [undefined, "not-a-token"]) {
      const client = token === undefined ? new Client(server.url) : new Client(server.url, token);
      const res = await client.request("POST", "/api/v1/streams/tx/events", undefined, { raw: "{not json" });
      assert.equal(res.status, 401, JSON.stringify(res.body));
      assert.equal(res.body.error, "unauthorized");
    }
  });
});
