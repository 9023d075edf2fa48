/** Runnel in this process, on a temporary data dir, for inject()-based API tests. */
import type { FastifyInstance } from "fastify";
import { loadConfig } from "../../src/config/config.js";
import type { Clock } from "../../src/core/clock.js";
import { type Runnel, startRunnel } from "../../src/server.js";
import { ADMIN_PASSWORD, LOOSE_RATES, tempDataDir } from "./server-process.js";

export interface TestRunnel {
  readonly runnel: Runnel;
  readonly app: FastifyInstance;
  /** Sends a request through inject() and parses the JSON answer. */
  call(
    method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
    url: string,
    options?: { token?: string; body?: unknown; raw?: string | Buffer; contentType?: string },
  ): Promise<{ status: number; body: Record<string, unknown>; headers: Record<string, unknown> }>;
  login(username: string, password: string): Promise<string>;
  adminToken: string;
  close(): Promise<void>;
}

export async function startTestRunnel(
  /** `listen`: also serve HTTP on a free loopback port (`runnel.url`), for streams inject() cannot read. */
  options: { clock?: Clock; env?: Record<string, string>; listen?: boolean } = {},
): Promise<TestRunnel> {
  const data = await tempDataDir();
  const config = loadConfig(
    {},
    {
      RUNNEL_DATA_DIR: data.dir,
      RUNNEL_ADMIN_PASSWORD: ADMIN_PASSWORD,
      RUNNEL_LOG_LEVEL: "silent",
      ...LOOSE_RATES,
      ...(options.listen === true && { RUNNEL_HOST: "127.0.0.1", RUNNEL_PORT: "0" }),
      ...options.env,
    },
  );
  const runnel = await startRunnel(config, {
    listen: options.listen === true,
    ...(options.clock && { clock: options.clock }),
  });
  const app = runnel.app;
  const call: TestRunnel["call"] = async (method, url, opts = {}) => {
    const headers: Record<string, string> = {};
    if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
    let payload: string | Buffer | undefined = opts.raw;
    if (opts.body !== undefined) payload = JSON.stringify(opts.body);
    if (payload !== undefined) headers["content-type"] = opts.contentType ?? "application/json";
    const res = await app.inject({ method, url, headers, ...(payload !== undefined && { payload }) });
    let body: Record<string, unknown> = {};
    if (res.body !== "") body = JSON.parse(res.body) as Record<string, unknown>;
    return { status: res.statusCode, body, headers: res.headers };
  };
  const login = async (username: string, password: string): Promise<string> => {
    const res = await call("POST", "/api/v1/auth/login", { body: { username, password } });
    if (res.status !== 200) throw new Error(`login failed: ${JSON.stringify(res.body)}`);
    return res.body.token as string;
  };
  const adminToken = await login("admin", ADMIN_PASSWORD);
  return {
    runnel,
    app,
    call,
    login,
    adminToken,
    close: async () => {
      await runnel.stop();
      await data.remove();
    },
  };
}
