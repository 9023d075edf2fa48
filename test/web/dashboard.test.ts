/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core) against a real
 * server process: signing in, the live ingest chart moving while a producer runs, a query and its
 * rows, a rule created in the form, its alert arriving live, the blocked user unblocked from the
 * review queue, and a `user` seeing none of another user's data on any page. Screenshots of each
 * page go to test-output/web/ for reviewers.
 *
 * No timing assertions: every wait is for something to appear, with a generous ceiling.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { ADMIN_PASSWORD, type ServerProcess, startServerProcess, tempDataDir } from "../helpers/server-process.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const SHOTS = join(ROOT, "test-output", "web");
const WAIT = 30_000;
const ALICE_MARK = "ALICE-SECRET-7q";
const BOB_MARK = "BOB-OWN-7q";

let server: ServerProcess;
let removeData: () => Promise<void>;
let browser: Browser;
let adminToken = "";
let cepAvailable = false;

async function call(method: string, path: string, token?: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(`${server.url}${path}`, {
    method,
    headers,
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: (text === "" ? {} : JSON.parse(text)) as Record<string, unknown> };
}

async function ok(method: string, path: string, token?: string, body?: unknown, status = 200) {
  const res = await call(method, path, token, body);
  assert.equal(res.status, status, `${method} ${path}: ${JSON.stringify(res.json)}`);
  return res.json;
}

function chromiumPath(): string {
  if (process.env.RUNNEL_TEST_CHROMIUM) return process.env.RUNNEL_TEST_CHROMIUM;
  return execFileSync("bash", [join(ROOT, "scripts/chromium.sh")], { encoding: "utf8" }).trim();
}

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  return { context, page };
}

async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.goto(`${server.url}/`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByTestId("whoami").getByText(username).waitFor();
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Polls `check` until it holds (no timing assertion: only a ceiling). */
async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + WAIT;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Clicks a nav link and waits for the page's heading. */
async function go(page: Page, link: string, heading: string = link): Promise<void> {
  await page.getByRole("navigation").getByRole("link", { name: link, exact: true }).click();
  await page.getByRole("heading", { level: 1, name: heading }).waitFor();
}

before(async () => {
  await mkdir(SHOTS, { recursive: true });
  if (!existsSync(join(ROOT, "web/dist/index.html"))) {
    execFileSync("npx", ["vite", "build", "web", "--logLevel", "warn"], { cwd: ROOT, stdio: "inherit" });
  }
  const data = await tempDataDir();
  removeData = data.remove;
  server = await startServerProcess(data.dir);
  browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    // Playwright gives each launch a fresh, empty profile directory.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });

  adminToken = (await ok("POST", "/api/v1/auth/login", undefined, { username: "admin", password: ADMIN_PASSWORD }))
    .token as string;
  await ok("POST", "/api/v1/streams", adminToken, { name: "transactions", partitions: 2 }, 201);
  for (const name of ["alice", "bob"]) {
    await ok(
      "POST",
      "/api/v1/auth/signup",
      undefined,
      { username: name, email: `${name}@ex.com`, password: `${name}-password-1` },
      201,
    );
  }
  await ok("POST", "/api/v1/streams/transactions/events", adminToken, [
    { user_id: "alice", amount: 42, note: ALICE_MARK },
    { user_id: "bob", amount: 7, note: BOB_MARK },
  ]);
  cepAvailable = (await call("GET", "/api/v1/rules", adminToken)).status === 200;
});

after(async () => {
  await browser?.close();
  await server?.kill();
  await removeData?.();
});

describe("the dashboard in Chromium", () => {
  it("an admin signs in and sees the ingest chart move while a producer runs", async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, "admin", ADMIN_PASSWORD);
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      let producing = true;
      const producer = (async () => {
        for (let i = 0; producing && i < 600; i++) {
          await call("POST", "/api/v1/streams/transactions/events", adminToken, [
            { user_id: "producer", amount: i },
            { user_id: "producer", amount: i + 1 },
          ]);
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      try {
        // The chart's newest point is the current events/s: it rises above zero while events arrive.
        const chart = page.getByTestId("chart-ingest");
        await waitFor(
          async () => Number(await chart.getAttribute("data-last")) > 0,
          "the ingest chart rises above zero",
        );
        const updates = Number(await chart.getAttribute("data-updates"));
        await waitFor(
          async () => Number(await chart.getAttribute("data-updates")) > updates + 2,
          "the ingest chart keeps updating",
        );
        await shot(page, "overview");
      } finally {
        producing = false;
        await producer;
      }
      // A stream kept out of the analytics store says so instead of a count.
      await ok("POST", "/api/v1/streams", adminToken, { name: "firehose", analytics: false }, 201);
      await go(page, "Streams");
      await page.getByTestId("streams").getByText("transactions").waitFor();
      const firehose = page.getByTestId("streams").getByRole("row").filter({ hasText: "firehose" });
      await firehose.getByText("log only").first().waitFor();
      await shot(page, "streams");
    } finally {
      await context.close();
    }
  });

  it("runs a query and shows its rows, and shows an API error as its message", async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, "admin", ADMIN_PASSWORD);
      await go(page, "Query");
      await page.getByTestId("tables").getByText("transactions").waitFor();
      await page
        .getByTestId("sql")
        .fill("SELECT user_id, amount, note, _time FROM transactions WHERE note IS NOT NULL ORDER BY user_id");
      await page.getByTestId("run").click();
      const results = page.getByTestId("results");
      await results.getByText(ALICE_MARK).waitFor();
      await results.getByText(BOB_MARK).waitFor();
      await page
        .getByTestId("sql")
        .fill(
          "SELECT time_bucket(INTERVAL 1 SECOND, _time) AS t, count(*) AS n, sum(amount) AS total FROM transactions GROUP BY t ORDER BY t",
        );
      await page.getByTestId("run").click();
      await page.getByTestId("result-chart").waitFor();
      await shot(page, "query");
      await page.getByTestId("sql").fill("SELECT nope FROM transactions");
      await page.getByTestId("run").click();
      const error = await page.getByTestId("error").textContent();
      assert.match(error ?? "", /nope/i);
    } finally {
      await context.close();
    }
  });

  it("creates a rule, sees its alert arrive live, and unblocks the user from the review queue", async (t) => {
    if (!cepAvailable) {
      t.skip("the CEP routes are not registered on this server");
      return;
    }
    const { context, page } = await newPage();
    try {
      await signIn(page, "admin", ADMIN_PASSWORD);
      await go(page, "Rules");
      const form = page.getByTestId("rule-form");
      await form.getByLabel("Name").fill("big-spender");
      await form.getByLabel("Stream").fill("transactions");
      // A bad where first: the API's message shows next to the pattern field.
      await form
        .getByLabel("Pattern (JSON steps)")
        .fill('[{"name": "large", "where": "amount >>> 500", "times": {"min": 2}}]');
      await form.getByRole("button", { name: "Create rule" }).click();
      await page.getByTestId("error-pattern").waitFor();
      await form
        .getByLabel("Pattern (JSON steps)")
        .fill('[{"name": "large", "where": "amount > 500", "times": {"min": 2}}]');
      await form.getByRole("button", { name: "Create rule" }).click();
      await page.getByTestId("rules").getByText("big-spender").waitFor();

      // Changed in place: the form opens with the rule's fields; the new window shows in the list.
      const row = page.getByTestId("rules").getByRole("row").filter({ hasText: "big-spender" });
      await row.getByRole("button", { name: "Edit" }).click();
      await page.getByRole("heading", { name: "Edit rule big-spender" }).waitFor();
      assert.equal(await form.getByLabel("Within").inputValue(), "5m");
      assert.match(await form.getByLabel("Pattern (JSON steps)").inputValue(), /amount > 500/);
      await form.getByLabel("Within").fill("bogus");
      await form.getByRole("button", { name: "Save changes" }).click();
      await page.getByTestId("error-within").waitFor();
      await form.getByLabel("Within").fill("10m");
      await form.getByRole("button", { name: "Save changes" }).click();
      await page.getByRole("heading", { name: "Create a rule" }).waitFor();
      await row.getByText("10m").waitFor();
      const stored = (await call("GET", "/api/v1/rules", adminToken)).json as {
        rules: Array<{ name: string; spec: { within?: string; pattern: unknown[] } }>;
      };
      const changed = stored.rules.find((r) => r.name === "big-spender");
      assert.equal(changed?.spec.within, "10m");
      assert.equal(changed?.spec.pattern.length, 1);
      await shot(page, "rules");

      await go(page, "Alerts");
      await page.getByText("live", { exact: true }).waitFor();
      await ok("POST", "/api/v1/streams/transactions/events", adminToken, [
        { user_id: "carol", amount: 900 },
        { user_id: "carol", amount: 950 },
      ]);
      const alert = page.getByTestId("alert").filter({ hasText: "big-spender" });
      await alert.waitFor();
      await alert.locator("summary").click();
      await alert.getByText('"amount":950').waitFor();
      await shot(page, "alerts");

      // Blocked: carol's next event is refused until an admin reviews.
      const refused = await call("POST", "/api/v1/streams/transactions/events", adminToken, {
        user_id: "carol",
        amount: 1,
      });
      assert.equal(refused.status, 423);
      await go(page, "Review", "Review blocked users");
      await page.getByTestId("block").filter({ hasText: "carol" }).waitFor();
      await shot(page, "review");
      await page.getByTestId("unblock-carol").click();
      await page.getByTestId("no-blocks").waitFor();
      await ok("POST", "/api/v1/streams/transactions/events", adminToken, { user_id: "carol", amount: 2 });
    } finally {
      await context.close();
    }
  });

  it("disables and re-enables a pipeline from the pipelines page", async () => {
    await ok(
      "POST",
      "/api/v1/pipelines",
      adminToken,
      { name: "amounts", sql: "SELECT user_id, amount FROM transactions", startFrom: "earliest" },
      201,
    );
    const enabled = async () => (await ok("GET", "/api/v1/pipelines/amounts", adminToken)).enabled === true;
    const { context, page } = await newPage();
    try {
      await signIn(page, "admin", ADMIN_PASSWORD);
      await go(page, "Pipelines");
      const row = page.getByTestId("pipelines").getByRole("row").filter({ hasText: "amounts" });
      await row.getByRole("button", { name: "Disable" }).click();
      await row.getByRole("button", { name: "Enable" }).waitFor();
      assert.equal(await enabled(), false);
      await shot(page, "pipelines-disabled");
      await row.getByRole("button", { name: "Enable" }).click();
      await row.getByRole("button", { name: "Disable" }).waitFor();
      assert.equal(await enabled(), true);
    } finally {
      await context.close();
      await ok("DELETE", "/api/v1/pipelines/amounts", adminToken, undefined, 204);
    }
  });

  it("shows a pipeline that dead-lettered a record, and the stream's dead letters", async () => {
    // Streams of its own, so the other pages' stream lists stay as they were.
    await ok("POST", "/api/v1/streams", adminToken, { name: "codes_in", partitions: 1 }, 201);
    await ok(
      "POST",
      "/api/v1/pipelines",
      adminToken,
      { name: "codes", sql: "SELECT user_id, CAST(code AS INTEGER) AS code FROM codes_in", startFrom: "now" },
      201,
    );
    try {
      // The CAST fails on this record every time: the pipeline moves it to codes_in_dead_letter.
      await ok("POST", "/api/v1/streams/codes_in/events", adminToken, [{ user_id: "dora", code: "x1" }]);
      const { context, page } = await newPage();
      try {
        await signIn(page, "admin", ADMIN_PASSWORD);
        await go(page, "Pipelines");
        const row = page.getByTestId("pipelines").getByRole("row").filter({ hasText: "codes" });
        await row.getByText("1 dead-lettered").waitFor();
        assert.equal(await row.getByTestId("consumer-state").locator("[data-state=ok]").count(), 1, "not failing");
        await shot(page, "pipelines-dead-letter");
        await go(page, "Streams");
        const stream = page
          .getByTestId("streams")
          .getByRole("row")
          .filter({ has: page.getByTestId("tail-codes_in") });
        await stream.locator(".error-text", { hasText: "1" }).waitFor();
      } finally {
        await context.close();
      }
    } finally {
      await ok("DELETE", "/api/v1/pipelines/codes", adminToken, undefined, 204);
      await ok("DELETE", "/api/v1/streams/codes_in_dead_letter", adminToken, undefined, 204);
      await ok("DELETE", "/api/v1/streams/codes_in", adminToken, undefined, 204);
    }
  });

  it("shows each stream's archive on the overview, with the rows an import brought", async () => {
    // A stream of its own, so the other pages' stream lists stay as they were.
    await ok("POST", "/api/v1/streams", adminToken, { name: "history", partitions: 1 }, 201);
    try {
      const days = [1, 2, 3];
      const body = days
        .flatMap((d) =>
          [0, 1].map((i) => JSON.stringify({ user_id: `u${i}`, timestamp: `2025-03-0${d}T10:00:00Z`, v: i })),
        )
        .join("\n");
      const res = await fetch(`${server.url}/api/v1/streams/history/imports?id=march`, {
        method: "POST",
        headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/x-ndjson" },
        body,
      });
      assert.equal(res.status, 202, await res.text());
      await waitFor(
        async () => (await call("GET", "/api/v1/streams/history/imports/march", adminToken)).json.state === "done",
        "the import is done",
      );
      const { context, page } = await newPage();
      try {
        await signIn(page, "admin", ADMIN_PASSWORD);
        await page.getByRole("heading", { name: "Overview" }).waitFor();
        const row = page.getByTestId("archive-state").getByRole("row").filter({ hasText: "history" });
        // Stream, files (one per day), size, rows, lag, compactions, failures, imported rows.
        await waitFor(async () => {
          const cells = await row.getByRole("cell").allTextContents();
          return cells[0] === "history" && cells[1] === "3" && cells[3] === "6" && cells[7] === "6";
        }, "the archive row shows the imported files and rows");
        const cells = await row.getByRole("cell").allTextContents();
        assert.match(cells[2]!, /\d+(\.\d+)? (B|KiB)/);
        assert.equal(cells[6], "0", "no failures");
        await page.getByTestId("archive-state").scrollIntoViewIfNeeded();
        await shot(page, "overview-archive");
      } finally {
        await context.close();
      }
    } finally {
      await ok("DELETE", "/api/v1/streams/history", adminToken, undefined, 204);
    }
  });

  it("shows the installation's instances on an admin's overview", async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, "admin", ADMIN_PASSWORD);
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      const table = page.getByTestId("cluster-state");
      const row = table.getByRole("row").filter({ hasText: "(this one)" });
      await row.waitFor();
      // Instance, URL, state, slots, tasks, lag, last rebalance: one process owns the one slot.
      const cells = await row.getByRole("cell").allTextContents();
      assert.equal(cells[1], server.url, "the advertised URL defaults to where it listens");
      assert.equal(cells[2], "live");
      assert.equal(cells[3], "0");
      await page.getByText(/one instance: the local log serves one process/).waitFor();
      await table.scrollIntoViewIfNeeded();
      await shot(page, "overview-cluster");
    } finally {
      await context.close();
    }
  });

  it("shows each stream's rollups on the streams page, with the events each took in and the rows it keeps", async () => {
    await ok(
      "POST",
      "/api/v1/streams",
      adminToken,
      {
        name: "orders",
        partitions: 1,
        rollups: [
          {
            name: "orders_per_minute",
            granularity: "1m",
            dimensions: ["country"],
            metrics: { n: "count", revenue: "sum(amount)" },
          },
        ],
      },
      201,
    );
    try {
      // Six events in three groups (two minutes in fr, one in de): 6 in, 3 kept, 2.0 : 1.
      const events = [
        ["fr", "10:00:05"],
        ["fr", "10:00:40"],
        ["fr", "10:01:10"],
        ["fr", "10:01:20"],
        ["de", "10:01:30"],
        ["de", "10:01:50"],
      ].map(([country, t], i) => ({ user_id: "u1", country, amount: i + 1, timestamp: `2026-12-01T${t}Z` }));
      await ok("POST", "/api/v1/streams/orders/events", adminToken, events);
      const { context, page } = await newPage();
      try {
        await signIn(page, "admin", ADMIN_PASSWORD);
        await go(page, "Streams");
        const row = page.getByTestId("rollups").getByRole("row").filter({ hasText: "orders_per_minute" });
        // Rollup, stream, granularity, dimensions, metrics, events in, rows kept, ratio.
        await waitFor(async () => (await row.getByRole("cell").allTextContents())[5] === "6", "the rollup took 6 in");
        assert.deepEqual(await row.getByRole("cell").allTextContents(), [
          "orders_per_minute",
          "orders",
          "1m",
          "country",
          "n = count, revenue = sum(amount)",
          "6",
          "3",
          "2.0 : 1",
        ]);
        await page.getByTestId("rollups").scrollIntoViewIfNeeded();
        await shot(page, "streams-rollups");
      } finally {
        await context.close();
      }
    } finally {
      await ok("DELETE", "/api/v1/streams/orders", adminToken, undefined, 204);
    }
  });

  it("a user sees only their own data on every page", async () => {
    const { context, page } = await newPage();
    try {
      await signIn(page, "bob", "bob-password-1");
      const nav = page.getByRole("navigation");
      for (const adminOnly of ["Review", "Users", "Rules", "Pipelines"]) {
        assert.equal(await nav.getByRole("link", { name: adminOnly, exact: true }).count(), 0, adminOnly);
      }
      await page.getByTestId("own-counts").getByText("transactions").waitFor();
      await shot(page, "user-overview");

      await go(page, "Query");
      // The editor's default text changes when the tables arrive; a fill that lands between its
      // select-all and its typing appends to the new default (CI run 14: "syntax error at or near
      // SELECT"). The admin's query test waits for the tables too.
      await page.getByTestId("tables").getByText("transactions").waitFor();
      await page.getByTestId("sql").fill("SELECT user_id, note FROM transactions WHERE user_id <> 'bob' OR true");
      await page.getByTestId("run").click();
      // This wait timed out in 2 of ~20 full suites and never alone; say what the page showed instead.
      await page
        .getByTestId("results")
        .getByText(BOB_MARK)
        .waitFor()
        .catch(async (e: unknown) => {
          await shot(page, "user-query-timeout");
          const shown =
            (await page
              .locator("main")
              .textContent({ timeout: 1000 })
              .catch(() => null)) ?? "(none)";
          throw new Error(`${(e as Error).message}\nthe page showed: ${shown.slice(0, 2000)}`);
        });
      const results = (await page.getByTestId("results").textContent()) ?? "";
      for (const other of [ALICE_MARK, "alice", "carol", "producer"]) assert.ok(!results.includes(other), other);

      await go(page, "Alerts");
      await page.getByText(/\d+ of \d+/).waitFor();
      const alerts = (await page.getByTestId("alerts").textContent()) ?? "";
      assert.ok(!alerts.includes("carol"), "another user's alert");

      await go(page, "Streams");
      await page.getByTestId("tail-transactions").click();
      await page.getByText("Waiting for events…").waitFor();
      await page.getByText("live", { exact: true }).first().waitFor();
      await ok("POST", "/api/v1/streams/transactions/events", adminToken, [
        { user_id: "alice", note: `${ALICE_MARK}-tail` },
        { user_id: "bob", note: `${BOB_MARK}-tail` },
      ]);
      await page.getByTestId("tail").getByText(`${BOB_MARK}-tail`).waitFor();
      assert.ok(!((await page.getByTestId("tail").textContent()) ?? "").includes(ALICE_MARK));
      await page.getByTestId("tail-pause").click();
      await ok("POST", "/api/v1/streams/transactions/events", adminToken, {
        user_id: "bob",
        note: "held-while-paused",
      });
      await page.getByRole("button", { name: /Resume \(1 held\)/ }).waitFor();
      await page.getByRole("button", { name: /Resume/ }).click();
      await page.getByTestId("tail").getByText("held-while-paused").waitFor();
      await shot(page, "user-tail");

      await go(page, "Account");
      await page.getByTestId("profile").getByText("bob").waitFor();
      await page.getByLabel("Key name").fill("laptop");
      await page.getByRole("button", { name: "Create key" }).click();
      await page.getByTestId("new-key").waitFor();
      await page.getByTestId("activity").getByText("api_key_created").waitFor();
      const account = (await page.locator("main").textContent()) ?? "";
      assert.ok(!account.includes("alice"), "another user on the account page");
      await shot(page, "account");

      // Admin pages by URL: the API refuses, and the page says so.
      await page.goto(`${server.url}/admin/users`);
      await page.getByTestId("error").waitFor();
      assert.ok(!((await page.locator("main").textContent()) ?? "").includes("alice@ex.com"));
      await page.goto(`${server.url}/review`);
      await page.getByTestId("error").waitFor();
    } finally {
      await context.close();
    }
  });

  it("an admin manages users: role, disable, delete", async () => {
    const { context, page } = await newPage();
    try {
      await ok(
        "POST",
        "/api/v1/users",
        adminToken,
        { username: "temp", email: "temp@ex.com", password: "temp-password-1", role: "user" },
        201,
      );
      await signIn(page, "admin", ADMIN_PASSWORD);
      await go(page, "Users");
      const row = page.getByTestId("users").locator("tr").filter({ hasText: "temp@ex.com" });
      await row.getByLabel("Role of temp").selectOption("analyst");
      await row.getByRole("button", { name: "Disable" }).click();
      await row.getByText("disabled").waitFor();
      await shot(page, "users");
      const users = (await ok("GET", "/api/v1/users", adminToken)).users as Array<{
        username: string;
        role: string;
        disabled: boolean;
      }>;
      const temp = users.find((u) => u.username === "temp");
      assert.equal(temp?.role, "analyst");
      assert.equal(temp?.disabled, true);
      page.once("dialog", (d) => void d.accept());
      await row.getByRole("button", { name: "Delete" }).click();
      await row.waitFor({ state: "detached" });
    } finally {
      await context.close();
    }
  });
});
