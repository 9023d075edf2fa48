/** Reads a Server-Sent Events endpoint of a running server as raw text, for tests. */
import { request } from "node:http";

export interface SseReader {
  /** Everything received so far. */
  text(): string;
  /** Resolves once the server has ended the stream. */
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens `url` with the token and resolves once the first bytes (the stream's opening comment) arrived. */
export function openSse(url: string, token: string): Promise<SseReader> {
  return new Promise((resolve, reject) => {
    let text = "";
    let endedResolve = (): void => {};
    const ended = new Promise<void>((r) => {
      endedResolve = r;
    });
    const req = request(url, { headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" } }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`SSE ${url} answered ${res.statusCode}`));
        res.resume();
        return;
      }
      res.setEncoding("utf8");
      let opened = false;
      res.on("data", (chunk: string) => {
        text += chunk;
        if (!opened) {
          opened = true;
          resolve({ text: () => text, ended, close: () => req.destroy() });
        }
      });
      res.on("end", endedResolve);
      res.on("close", endedResolve);
    });
    req.on("error", (e) => {
      endedResolve();
      reject(e);
    });
    req.end();
  });
}

/** `promise`, or a rejection naming `what` after `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
