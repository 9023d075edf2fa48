/** Runnel in this process on a data dir the test keeps, so it can be stopped and started again. */
import { execFileSync } from "node:child_process";
import { loadConfig } from "../../src/config/config.js";
import { type Runnel, startRunnel } from "../../src/server.js";
import { ADMIN_PASSWORD } from "../helpers/server-process.js";

export interface Instance {
  readonly runnel: Runnel;
  readonly token: string;
  call(method: string, url: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }>;
  count(sql: string): Promise<number>;
  /** Polls `sql` (a count) until it returns `expected` or a few seconds pass; returns the last value. */
  countUntil(sql: string, expected: number, timeoutMs?: number): Promise<number>;
}

export async function startInstance(dataDir: string, env: Record<string, string> = {}): Promise<Instance> {
  const config = loadConfig(
    {},
    { RUNNEL_DATA_DIR: dataDir, RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD, RUNNEL_LOG_LEVEL: "silent", ...env },
  );
  const runnel = await startRunnel(config, { listen: false });
  const call: Instance["call"] = async (method, url, body) => {
    const res = await runnel.app.inject({
      method: method as "GET",
      url,
      headers: {
        ...(token !== "" && { authorization: `Bearer ${token}` }),
        ...(body !== undefined && { "content-type": "application/json" }),
      },
      ...(body !== undefined && { payload: JSON.stringify(body) }),
    });
    return { status: res.statusCode, body: res.body === "" ? {} : (JSON.parse(res.body) as Record<string, unknown>) };
  };
  let token = "";
  const login = await call("POST", "/api/v1/auth/login", { username: "admin", password: ADMIN_PASSWORD });
  token = login.body.token as string;
  const count = async (sql: string): Promise<number> => {
    const res = await call("POST", "/api/v1/query", { sql });
    // A column that no loaded event carried yet does not exist: not loaded yet.
    if (res.status !== 200) return -1;
    return Number((res.body.rows as unknown[][])[0]![0]);
  };
  const countUntil = async (sql: string, expected: number, timeoutMs = 10_000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    let n = await count(sql);
    while (n !== expected && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      n = await count(sql);
    }
    return n;
  };
  return { runnel, token, call, count, countUntil };
}

/** The test broker's URL: RUNNEL_TEST_MQTT_URL (scripts/test.sh), else started here. */
export function mqttUrl(): string {
  const env = process.env.RUNNEL_TEST_MQTT_URL;
  if (env) return env;
  const root = new URL("../..", import.meta.url).pathname;
  const addr = execFileSync("bash", [`${root}scripts/mosquitto.sh`], { encoding: "utf8" }).trim();
  return `mqtt://${addr}`;
}

export async function waitFor<T>(probe: () => T | Promise<T>, done: (v: T) => boolean, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let v = await probe();
  while (!done(v) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    v = await probe();
  }
  return v;
}
