/** A small JSON client for tests against a running server. */
export interface Reply<T = Record<string, unknown>> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

export class Client {
  constructor(
    readonly baseUrl: string,
    private readonly token?: string,
  ) {}

  as(token: string): Client {
    return new Client(this.baseUrl, token);
  }

  async request<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    options: { contentType?: string; raw?: Uint8Array | string; headers?: Record<string, string> } = {},
  ): Promise<Reply<T>> {
    const headers: Record<string, string> = { ...options.headers };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    let payload: Uint8Array | string | undefined = options.raw;
    if (body !== undefined) payload = JSON.stringify(body);
    if (payload !== undefined) headers["content-type"] = options.contentType ?? "application/json";
    const res = await fetch(`${this.baseUrl}${path}`, { method, headers, body: payload });
    const text = await res.text();
    return { status: res.status, body: (text === "" ? {} : JSON.parse(text)) as T, headers: res.headers };
  }

  get<T = Record<string, unknown>>(path: string) {
    return this.request<T>("GET", path);
  }
  post<T = Record<string, unknown>>(path: string, body?: unknown) {
    return this.request<T>("POST", path, body);
  }
  delete<T = Record<string, unknown>>(path: string) {
    return this.request<T>("DELETE", path);
  }

  async login(username: string, password: string): Promise<Client> {
    const res = await this.post<{ token: string }>("/api/v1/auth/login", { username, password });
    if (res.status !== 200) throw new Error(`login ${username} failed: ${res.status} ${JSON.stringify(res.body)}`);
    return this.as(res.body.token);
  }

  /** Polls a query until `done` holds (rows are visible within a second of ingest; allow some slack). */
  async queryUntil(
    sql: string,
    done: (rows: unknown[][]) => boolean,
    timeoutMs = 5000,
  ): Promise<{ columns: { name: string; type: string }[]; rows: unknown[][] }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await this.post<{ columns: { name: string; type: string }[]; rows: unknown[][] }>("/api/v1/query", {
        sql,
      });
      if (res.status !== 200) throw new Error(`query failed: ${res.status} ${JSON.stringify(res.body)}`);
      if (done(res.body.rows) || Date.now() > deadline) return res.body;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
