/**
 * Backfill into a stream's archive (docs/storage.md, "Importing history"): the request's body is
 * the file (NDJSON, CSV or Parquet), stored whole before anything is imported, then imported as a
 * job whose progress is a resource of its own. 202 once the upload is stored.
 */
import type { FastifyInstance } from "fastify";
import type { ImportUpload } from "../../archive/import/jobs.js";
import { IMPORT_FORMATS, type ImportFormat } from "../../archive/import/sources.js";
import { RunnelError } from "../../core/errors.js";
import { principalOf } from "../app.js";
import type { ApiServices } from "../services.js";

const CONTENT_TYPES: Readonly<Record<string, ImportFormat>> = {
  "application/x-ndjson": "ndjson",
  "application/jsonl": "ndjson",
  "text/csv": "csv",
  "application/vnd.apache.parquet": "parquet",
};

const importQuery = {
  type: "object",
  additionalProperties: false,
  properties: {
    id: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$" },
    format: { type: "string", enum: [...IMPORT_FORMATS] },
    userColumn: { type: "string", minLength: 1, maxLength: 256 },
    user: { type: "string", minLength: 1, maxLength: 256 },
  },
} as const;

interface ImportQuery {
  id?: string;
  format?: ImportFormat;
  userColumn?: string;
  user?: string;
}

export function registerImportRoutes(app: FastifyInstance, services: ApiServices): void {
  const admins = { access: ["admin"] } as const;
  const imports = services.imports;
  const jobs = () => {
    if (imports === undefined) throw new RunnelError("not_ready", "imports are not available on this server");
    return imports;
  };

  // A context of its own: the body is a file of any size, streamed to disk, not parsed.
  app.register(async (raw) => {
    raw.removeAllContentTypeParsers();
    raw.addContentTypeParser("*", (_request, payload, done) => done(null, payload));
    raw.post<{ Params: { name: string }; Querystring: ImportQuery }>(
      "/streams/:name/imports",
      { config: admins, schema: { querystring: importQuery } },
      async (request, reply) => {
        const { id, userColumn, user } = request.query;
        if (userColumn !== undefined && user !== undefined) {
          throw new RunnelError("invalid_input", "give userColumn or user, not both");
        }
        const type = (request.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
        const format = request.query.format ?? CONTENT_TYPES[type];
        if (format === undefined) {
          throw new RunnelError(
            "unsupported_media_type",
            `say the input's format with ?format=ndjson|csv|parquet or its content type (${Object.keys(CONTENT_TYPES).join(", ")})`,
          );
        }
        if (request.body === undefined || request.body === null) {
          throw new RunnelError("invalid_input", "the request's body is the file to import");
        }
        const upload: ImportUpload = {
          stream: request.params.name,
          format,
          principal: await principalOf(request, services),
          body: request.body as ImportUpload["body"],
          ...(id !== undefined && { id }),
          ...(userColumn !== undefined && { user: { column: userColumn } }),
          ...(user !== undefined && { user: { fixed: user } }),
        };
        const progress = await jobs().start(upload);
        const location = `/api/v1/streams/${progress.stream}/imports/${progress.id}`;
        return reply.status(202).header("location", location).send(progress);
      },
    );
  });

  app.get<{ Params: { name: string; id: string } }>("/streams/:name/imports/:id", { config: admins }, async (request) =>
    jobs().status(request.params.name, request.params.id),
  );
}
