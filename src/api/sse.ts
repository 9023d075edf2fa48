/**
 * Server-Sent Events plumbing shared by every live endpoint (tail, alerts, operator alerts): the
 * stream headers, a comment line first so clients see the stream open, a keepalive comment every
 * 15 s so proxies keep the connection, and one cleanup when the client goes away.
 */
import type { FastifyReply, FastifyRequest } from "fastify";

const KEEPALIVE_MS = 15_000;

export interface EventStream {
  /** Writes raw SSE text (`event:`/`id:`/`data:` lines ending in a blank line). */
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
    onClose();
    res.end();
  };
  request.raw.on("close", close);
  return { write: (text) => void res.write(text), close };
}
