/**
 * Server-Sent Events plumbing shared by every live endpoint (tail, alerts, operator alerts): the
 * stream headers, a comment line first so clients see the stream open, a keepalive comment every
 * 15 s so proxies keep the connection, one cleanup when the client goes away, and revocation: when
 * the credential the stream was opened with is revoked or its role changes
 * (src/api/auth/connection-guard.ts), the stream sends one `event: error` carrying API.md's error
 * JSON and closes.
 */
import type { FastifyReply, FastifyRequest } from "fastify";
import type { ConnectionGuard } from "./auth/connection-guard.js";

const KEEPALIVE_MS = 15_000;

declare module "fastify" {
  interface FastifyInstance {
    /** Watches open streams and sockets for revoked credentials; set by buildApp. */
    connectionGuard?: ConnectionGuard;
  }
}

export interface EventStream {
  /** Writes raw SSE text (`event:`/`id:`/`data:` lines ending in a blank line); nothing once closed. */
  write(text: string): void;
  /** Ends the stream and runs the cleanup, once. */
  close(): void;
}

export function openEventStream(
  request: FastifyRequest,
  reply: FastifyReply,
  title: string,
  onClose: () => void,
): EventStream {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  res.write(`: ${title}\n\n`);
  const keepalive = setInterval(() => res.write(": keepalive\n\n"), KEEPALIVE_MS);
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    clearInterval(keepalive);
    stopWatching();
    onClose();
    res.end();
  };
  const stopWatching =
    request.server.connectionGuard?.watch(request, (reason) => {
      res.write(`event: error\ndata: ${JSON.stringify(reason.toJSON())}\n\n`);
      close();
    }) ?? (() => {});
  request.raw.on("close", close);
  // Nothing is written after close: a read already under way when a revocation lands must not leak.
  return {
    write: (text) => {
      if (!closed) res.write(text);
    },
    close,
  };
}
