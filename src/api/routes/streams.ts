/** Streams and ingestion (API.md): the catalogue, the ingest endpoint, and a scoped live tail. */
import type { FastifyInstance } from "fastify";
import { hotWindowOf } from "../../archive/hot-window.js";
import type { ColumnTypes } from "../../catalog/columns.js";
import { describeRollup, parseRollup } from "../../catalog/rollup-spec.js";
import { parseStreamSpec } from "../../catalog/stream-spec.js";
import type { StreamDefinition } from "../../control/types.js";
import { RunnelError } from "../../core/errors.js";
import { DEFAULT_MAX_FUTURE_SKEW_MS } from "../../ingest/event-time.js";
import { IDEMPOTENCY_HEADER, IdempotencyStore, idempotencyTag } from "../../ingest/idempotency.js";
import { NdjsonBody, principalOf } from "../app.js";
import type { ApiServices } from "../services.js";
import { streamTail } from "./tail.js";

export function describeStream(stream: StreamDefinition) {
  return {
    name: stream.name,
    partitions: stream.partitions,
    timestampField: stream.timestampField,
    ...(stream.schema !== undefined && { schema: stream.schema }),
    ...(stream.retentionMs !== undefined && { retentionMs: stream.retentionMs }),
    ...(stream.derivedFrom !== undefined && { derivedFrom: stream.derivedFrom }),
    analytics: stream.analytics !== false,
    ...(stream.analytics !== false && { analyticsHotMs: hotWindowOf(stream) }),
    ...(stream.archiveRetentionMs !== undefined && { analyticsArchiveMs: stream.archiveRetentionMs }),
    maxFutureSkewMs: stream.maxFutureSkewMs ?? DEFAULT_MAX_FUTURE_SKEW_MS,
    ...(stream.rollups !== undefined && { rollups: stream.rollups.map(describeRollup) }),
    createdAt: stream.createdAt,
  };
}

function describeColumns(types: ColumnTypes) {
  return { columns: [...types.byKey.values()].map(({ name, type }) => ({ name, type })) };
}

export function registerStreamRoutes(app: FastifyInstance, services: ApiServices): void {
  const { streams, config, metrics } = services;
  // Who may call each route (src/api/auth/access.ts). Ingest is open to every role: the ingestor
  // decides per event what the role may write (docs/security.md).
  const admins = { config: { access: ["admin"] } } as const;
  const signedIn = { config: { access: "authenticated" } } as const;
  const dataReaders = { config: { access: ["admin", "analyst", "user"] } } as const;

  app.post("/streams", admins, async (request, reply) => {
    const spec = parseStreamSpec(request.body, config.log.defaultPartitions);
    const created = await streams.create(spec);
    return reply.status(201).send(describeStream(created));
  });

  app.get("/streams", signedIn, async () => {
    return { streams: (await streams.list()).map(describeStream) };
  });

  app.get<{ Params: { name: string } }>("/streams/:name", signedIn, async (request) => {
    const stream = await streams.get(request.params.name);
    if (!stream) throw new RunnelError("stream_not_found", `stream "${request.params.name}" does not exist`);
    const described = describeStream(stream);
    if (described.rollups === undefined) return described;
    // The rollup ratio: rows each rollup took in, and rows it keeps for them.
    const stats = await services.analytics.rollupStats(stream.name);
    const rollups = described.rollups.map((r) => {
      const s = stats.find((x) => x.name === r.name);
      return { ...r, rowsIn: s?.rowsIn ?? 0, rowsKept: s?.rowsKept ?? 0 };
    });
    return { ...described, rollups };
  });

  // Adding a rollup to a stream that has data (docs/rollups.md): 202, built in the background.
  app.post<{ Params: { name: string } }>("/streams/:name/rollups", admins, async (request, reply) => {
    const rollup = parseRollup(request.body, "");
    const stream = await streams.addRollup(request.params.name, rollup);
    const added = stream.rollups?.find((r) => r.name === rollup.name);
    if (added === undefined) throw new RunnelError("internal", `rollup ${rollup.name} was not added`);
    reply.header("location", `/api/v1/streams/${encodeURIComponent(stream.name)}`);
    return reply.status(202).send(describeRollup(added));
  });

  app.delete<{ Params: { name: string; rollup: string } }>(
    "/streams/:name/rollups/:rollup",
    admins,
    async (request, reply) => {
      const stream = await streams.removeRollup(request.params.name, request.params.rollup);
      const removed = stream.rollups?.find((r) => r.name === request.params.rollup);
      return reply.status(202).send(removed === undefined ? {} : describeRollup(removed));
    },
  );

  app.delete<{ Params: { name: string } }>("/streams/:name", admins, async (request, reply) => {
    const stream = await streams.get(request.params.name);
    if (!stream) throw new RunnelError("stream_not_found", `stream "${request.params.name}" does not exist`);
    if (stream.derivedFrom !== undefined) {
      throw new RunnelError(
        "conflict",
        `stream "${stream.name}" belongs to pipeline "${stream.derivedFrom}"; delete the pipeline`,
      );
    }
    const readers = services.pipelines.readersOf(stream.name);
    if (readers.length > 0) {
      throw new RunnelError(
        "conflict",
        `pipelines read stream "${stream.name}": ${readers.join(", ")}; delete them first`,
      );
    }
    await streams.delete(stream.name);
    return reply.status(204).send();
  });

  app.post<{ Params: { name: string } }>("/streams/:name/events", signedIn, async (request, reply) => {
    const stopTimer = metrics.ingestRequestDuration.startTimer({ source: "http" });
    try {
      const principal = await principalOf(request, services);
      const body = request.body;
      if (body === undefined) throw new RunnelError("invalid_json", "the request body is empty");
      const events = body instanceof NdjsonBody ? body.events : Array.isArray(body) ? body : [body];
      if (events.length === 0) throw new RunnelError("invalid_events", "the request holds no events");
      const raw = body instanceof NdjsonBody ? body.raw : undefined;
      const stream = request.params.name;
      const key = request.headers["idempotency-key"];
      if (typeof key !== "string" || services.idempotency === undefined) {
        const result = await services.ingestor.ingest(stream, events, principal, {
          bytes: request.bodyBytes,
          source: "http",
          ...(raw !== undefined && { raw }),
        });
        return { accepted: result.accepted };
      }
      IdempotencyStore.checkKey(key);
      const hash = IdempotencyStore.hashBody(request.headers["content-type"] ?? "", request.rawBody ?? Buffer.alloc(0));
      const scope = `${principal.userId}/${stream}`;
      const answer = await services.idempotency.run(
        scope,
        key,
        hash,
        async () => {
          const result = await services.ingestor.ingest(stream, events, principal, {
            bytes: request.bodyBytes,
            source: "http",
            headers: { [IDEMPOTENCY_HEADER]: idempotencyTag(scope, key, events.length) },
            ...(raw !== undefined && { raw }),
          });
          return { status: 200, body: { accepted: result.accepted } };
        },
        stream,
      );
      if (answer.replayed) reply.header("idempotent-replayed", "true");
      return reply.status(answer.status).send(answer.body);
    } catch (e) {
      const code = e instanceof RunnelError ? e.code : "internal";
      if (code !== "invalid_events" && code !== "event_too_large" && code !== "user_blocked" && code !== "forbidden") {
        metrics.ingestRefusals.inc({ reason: code });
      }
      throw e;
    } finally {
      stopTimer();
    }
  });

  app.get<{ Params: { name: string } }>("/streams/:name/columns", signedIn, async (request) => {
    const stream = await streams.get(request.params.name);
    if (!stream) throw new RunnelError("stream_not_found", `stream "${request.params.name}" does not exist`);
    return describeColumns(await streams.columns.typesOf(stream.name));
  });

  app.patch<{ Params: { name: string } }>("/streams/:name/columns", admins, async (request) => {
    const stream = await streams.get(request.params.name);
    if (!stream) throw new RunnelError("stream_not_found", `stream "${request.params.name}" does not exist`);
    return describeColumns(await streams.columns.widen(stream.name, request.body));
  });

  app.get<{ Params: { name: string } }>("/streams/:name/tail", dataReaders, async (request, reply) => {
    const principal = await principalOf(request, services);
    const stream = await streams.get(request.params.name);
    if (!stream) throw new RunnelError("stream_not_found", `stream "${request.params.name}" does not exist`);
    return streamTail(request, reply, services, stream, principal);
  });
}
