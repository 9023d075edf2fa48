/**
 * Issue 14's hostile event bodies against the real `runnel start` process: a body nested 20,000
 * deep (accepted before, then it broke every consumer of the stream), 5,000 deep on JSON routes
 * (500 before), duplicate field names (stored as sent before), and an event stamped 9999-12-31
 * (moved its partition's watermark to the end of time). Each is refused whole with a 400 that
 * names the limit, and nothing of a refused request is appended.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { Client } from "../helpers/http.js";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";

let data: Awaited<ReturnType<typeof tempDataDir>>;
let server: ServerProcess;
let admin: Client;
let bob: Client;
let bobToken: string;
/** Events accepted into `hostile` so far: what its table must hold. */
let accepted = 0;

const deep = (levels: number) => `{"user_id":"bob","v":${"[".repeat(levels - 1)}${"]".repeat(levels - 1)}}`;

before(async () => {
  data = await tempDataDir();
  server = await startServerProcess(data.dir);
  admin = await new Client(server.url).login("admin", ADMIN_PASSWORD);
  assert.equal((await admin.post("/api/v1/streams", { name: "hostile", partitions: 2 })).status, 201);
  const signup = await new Client(server.url).post("/api/v1/auth/signup", {
    username: "bob",
    email: "bob@example.com",
    password: "password-1",
  });
  assert.equal(signup.status, 201);
  bob = await new Client(server.url).login("bob", "password-1");
  bobToken = (
    await new Client(server.url).post<{ token: string }>("/api/v1/auth/login", {
      username: "bob",
      password: "password-1",
    })
  ).body.token;
});
after(async () => {
  await server?.kill();
  await data?.remove();
});

async function ingest(body: string, contentType = "application/x-ndjson") {
  return bob.request<{ error?: string; message?: string; details?: { index?: number; line?: number }[] }>(
    "POST",
    "/api/v1/streams/hostile/events",
    undefined,
    { raw: body, contentType },
  );
}

/** Appends one good event and waits until the table shows it: then every earlier append is visible too. */
async function assertStoredExactly(): Promise<void> {
  const ok = await ingest(JSON.stringify({ marker: accepted }));
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  accepted++;
  const result = await admin.queryUntil("SELECT count(*) FROM hostile", (rows) => Number(rows[0]![0]) >= accepted);
  assert.equal(Number(result.rows[0]![0]), accepted);
}

test("an event nested 20,000 deep is refused with 400 naming the limit, as NDJSON and as JSON; nothing appended", async () => {
  const body = deep(20_000);
  assert.ok(body.length > 39_000);
  for (const contentType of ["application/x-ndjson", "application/json"]) {
    const res = await ingest(body, contentType);
    assert.equal(res.status, 400, JSON.stringify(res.body));
    assert.equal(res.body.error, "invalid_json");
    assert.match(res.body.message!, /deeper than 64 levels \(RUNNEL_MAX_JSON_DEPTH\)/);
  }
  await assertStoredExactly();
});

test("5,000 deep answers 400, never 500: ingest, an array of events, and PUT /me/settings", async () => {
  const settings = `{"theme":${"[".repeat(5000)}${"]".repeat(5000)}}`;
  const put = await bob.request("PUT", "/api/v1/me/settings", undefined, { raw: settings });
  assert.equal(put.status, 400, JSON.stringify(put.body));
  assert.equal(put.body.error, "invalid_json");
  assert.match(String(put.body.message), /RUNNEL_MAX_JSON_DEPTH/);

  const single = await ingest(deep(5000), "application/json");
  assert.equal(single.status, 400, JSON.stringify(single.body));

  const array = await ingest(`[{"ok":1},${deep(5000)}]`, "application/json");
  assert.equal(array.status, 400, JSON.stringify(array.body));
  assert.deepEqual(
    array.body.details?.map((d) => d.index),
    [1],
  );
  // An event as deep as the limit allows is an ordinary event.
  const atLimit = await ingest(deep(64), "application/json");
  assert.equal(atLimit.status, 200, JSON.stringify(atLimit.body));
  accepted++;
  await assertStoredExactly();
});

test("duplicate field names are refused naming the field (I-JSON), at any depth; nothing appended", async () => {
  const cases = [
    '{"user_id":"alice","user_id":"bob","amount":1}',
    '{"user_id":"bob","card":{"n":"1","n":"2"}}',
    '{"user_id":"bob","\\u0075ser_id":"bob"}',
  ];
  for (const body of cases) {
    const res = await ingest(body);
    assert.equal(res.status, 400, `${body}: ${JSON.stringify(res.body)}`);
    assert.match(res.body.message!, /duplicate field "(user_id|n)"/);
  }
  const json = await ingest('[{"a":1},{"user_id":"alice","user_id":"bob"}]', "application/json");
  assert.equal(json.status, 400);
  assert.equal(json.body.details?.[0]?.index, 1);
  await assertStoredExactly();
});

test("one bad event refuses the whole NDJSON batch, naming its line and index", async () => {
  const res = await ingest(['{"a":1}', "", '{"b":2}', '{"c":1,"c":2}', '{"d":4}'].join("\n"));
  assert.equal(res.status, 400, JSON.stringify(res.body));
  assert.deepEqual(res.body.details?.[0], {
    line: 4,
    index: 2,
    message: 'duplicate field "c": field names must be unique (I-JSON, RFC 7493)',
  });
  await assertStoredExactly();
});

test("an event stamped 9999-12-31 is refused naming its time, the bound and the setting; 30 minutes ahead is accepted", async () => {
  const far = await ingest(JSON.stringify({ timestamp: "9999-12-31T00:00:00Z", amount: 1 }));
  assert.equal(far.status, 400, JSON.stringify(far.body));
  assert.equal(far.body.error, "invalid_events");
  assert.match(
    JSON.stringify(far.body.details),
    /timestamp: event time 9999-12-31T00:00:00.000Z is more than 1h ahead of ingest time .* \(the stream's maxFutureSkew\)/,
  );
  const batch = await ingest(
    [JSON.stringify({ timestamp: Date.now(), n: 1 }), JSON.stringify({ timestamp: 253_402_214_400_000, n: 2 })].join(
      "\n",
    ),
  );
  assert.equal(batch.status, 400);
  assert.equal(batch.body.details?.[0]?.index, 1);

  const soon = await ingest(JSON.stringify({ timestamp: new Date(Date.now() + 30 * 60_000).toISOString(), n: 3 }));
  assert.equal(soon.status, 200, JSON.stringify(soon.body));
  accepted++;
  await assertStoredExactly();
});

test("maxFutureSkew is a stream option, validated naming it, shown on the stream", async () => {
  const bad = await admin.post("/api/v1/streams", { name: "skewed", maxFutureSkew: "soon" });
  assert.equal(bad.status, 400);
  assert.match(String(bad.body.message), /maxFutureSkew must be a duration/);
  const created = await admin.post("/api/v1/streams", { name: "skewed", maxFutureSkew: "5m" });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.equal(created.body.maxFutureSkewMs, 300_000);
  assert.equal((await admin.get("/api/v1/streams/hostile")).body.maxFutureSkewMs, 3_600_000);
  const ahead = new Date(Date.now() + 10 * 60_000).toISOString();
  const res = await admin.request("POST", "/api/v1/streams/skewed/events", { user_id: "u", timestamp: ahead });
  assert.equal(res.status, 400);
  assert.match(JSON.stringify(res.body), /more than 5m ahead/);
});

test("a WebSocket frame nested 20,000 deep gets an error frame and appends nothing", async () => {
  const socket = new WebSocket(`${server.url.replace("http", "ws")}/api/v1/streams/hostile/ws`, {
    headers: { authorization: `Bearer ${bobToken}` },
  });
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  try {
    const answers: Record<string, unknown>[] = [];
    const got = new Promise<void>((resolve) =>
      socket.on("message", (m) => {
        answers.push(JSON.parse(String(m)) as Record<string, unknown>);
        if (answers.length === 2) resolve();
      }),
    );
    socket.send(deep(20_000));
    socket.send(`[${deep(20_000)}]`);
    await got;
    for (const answer of answers) {
      assert.equal(answer.type, "error");
      assert.match(String(answer.message), /RUNNEL_MAX_JSON_DEPTH/);
    }
  } finally {
    socket.close();
  }
  await assertStoredExactly();
  // The server is still well: nothing in the stream wedged a consumer.
  assert.equal((await new Client(server.url).get("/readyz")).status, 200);
});
