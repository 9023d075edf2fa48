/**
 * WebSocket producer endpoint, `/api/v1/streams/{name}/ws`. Each frame is one batch (a JSON
 * object, a JSON array of objects, or NDJSON); batches are numbered from 1 in the order they
 * arrive, and each gets exactly one answer carrying that number, in order:
 *   {"type":"ack","seq":3,"accepted":1000}            once the batch is durable
 *   {"type":"error","seq":4,"error":"invalid_events","message":…,"details":[…]}   nothing appended
 * A connection keeps at most MAX_IN_FLIGHT batches unacknowledged; past that it stops reading
 * from the socket, so a slow log pushes back on the producer through TCP. A frame larger than the
 * body limit closes the connection with 1009 (message too big). When the credential is revoked or
 * its role changes (src/api/auth/connection-guard.ts) the connection closes with 4401 or 4403 and
 * the error code and message as the reason; frames after that are not read.
 */
import type { FastifyInstance } from "fastify";
import type { RawData, WebSocket } from "ws";
import type { StreamCatalog } from "../../catalog/streams.js";
import { RunnelError } from "../../core/errors.js";
import { SerialQueue } from "../../core/serial-queue.js";
import { parseJsonBody, parseNdjson } from "../../ingest/body.js";
import type { JsonLimits } from "../../ingest/json-limits.js";
import type { Ingestor, Principal } from "../../ingest/types.js";
import type { Metrics } from "../../monitoring/metrics.js";
import { closeCodeOf, closeReasonOf } from "../auth/connection-guard.js";
import { toRunnelError } from "../errors.js";

/** What the endpoint needs of ApiServices (narrow, so a test can put a slow log behind it). */
export interface WebSocketIngestServices {
  readonly ingestor: Ingestor;
  readonly metrics: Metrics;
  readonly streams: Pick<StreamCatalog, "get">;
  readonly config: { readonly limits: { readonly json: JsonLimits } };
}

export const MAX_IN_FLIGHT = 4;
const OPEN_BRACKET = 0x5b;

export function registerWebSocketIngest(app: FastifyInstance, services: WebSocketIngestServices): void {
  app.route<{ Params: { name: string } }>({
    method: "GET",
    url: "/streams/:name/ws",
    // Browsers cannot set headers on a WebSocket, so a token may also come as ?access_token=.
    config: { access: ["admin", "service", "user"], queryToken: true },
    preValidation: async (request) => {
      const stream = await services.streams.get(request.params.name);
      if (!stream) throw new RunnelError("stream_not_found", `stream "${request.params.name}" does not exist`);
    },
    // A plain GET gets a JSON error rather than the plugin's empty 404.
    handler: async () => {
      throw new RunnelError("invalid_input", "this endpoint speaks WebSocket: send an HTTP/1.1 Upgrade request");
    },
    wsHandler: (socket, request) => {
      const session = produceOverSocket(socket, services, request.params.name, request.principal!);
      const stopWatching = request.server.connectionGuard?.watch(request, (reason) => {
        session.revoked = true;
        socket.close(closeCodeOf(reason), closeReasonOf(reason));
      });
      if (stopWatching !== undefined) socket.on("close", stopWatching);
    },
  });
}

function produceOverSocket(
  socket: WebSocket,
  services: WebSocketIngestServices,
  stream: string,
  principal: Principal,
): { revoked: boolean } {
  const { ingestor, metrics } = services;
  const session = { revoked: false };
  let seq = 0;
  let inFlight = 0;
  // Answers leave in sequence order even if a later batch fails validation before an earlier one is durable.
  const answers = new SerialQueue();

  // Binary frames are read as UTF-8 too (and refused if they are not): clients differ in what they send.
  socket.on("message", (data: RawData) => {
    // A frame that arrives after the credential was revoked is never ingested.
    if (session.revoked) return;
    const n = ++seq;
    const bytes = toBuffer(data);
    inFlight++;
    if (inFlight >= MAX_IN_FLIGHT) socket.pause();
    const stopTimer = metrics.ingestRequestDuration.startTimer({ source: "ws" });
    const outcome = (async (): Promise<string> => {
      try {
        const { events, raw } = parseFrame(bytes, services.config.limits.json);
        const result = await ingestor.ingest(stream, events, principal, {
          bytes: bytes.byteLength,
          source: "ws",
          ...(raw !== undefined && { raw }),
        });
        return JSON.stringify({ type: "ack", seq: n, accepted: result.accepted });
      } catch (e) {
        const err = toRunnelError(e);
        metrics.ingestRefusals.inc({ reason: err.code });
        return JSON.stringify({ type: "error", seq: n, ...err.toJSON() });
      } finally {
        stopTimer();
      }
    })();
    void answers.run(async () => {
      const frame = await outcome;
      inFlight--;
      if (socket.readyState === socket.OPEN) {
        socket.send(frame);
        if (inFlight < MAX_IN_FLIGHT && socket.isPaused) socket.resume();
      }
    });
  });
  return session;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function parseFrame(bytes: Buffer, limits: JsonLimits): { events: unknown[]; raw?: Uint8Array[] } {
  let i = 0;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++;
  if (bytes[i] !== OPEN_BRACKET) return parseNdjson(bytes, limits);
  const events = parseJsonBody(bytes, limits) as unknown[];
  if (events.length === 0) throw new RunnelError("invalid_events", "the frame holds no events");
  return { events };
}
