/**
 * Imports as jobs of the running server (POST /api/v1/streams/:name/imports): the uploaded body
 * is spooled to a file under the data directory, then imported in the background while its
 * progress is read at GET /api/v1/streams/:name/imports/:id (docs/storage.md). A job lives in
 * memory; after a restart the status answers from the manifest (state `stored`), and a re-run
 * with the same id continues after the chunks committed already.
 */
import { randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ControlStore } from "../../control/types.js";
import { RunnelError } from "../../core/errors.js";
import type { Principal } from "../../ingest/types.js";
import {
  checkImportId,
  type Importer,
  type ImportProgress,
  type ImportRequest,
  newProgress,
  refuseUnimportable,
} from "./importer.js";
import type { ImportFormat } from "./sources.js";

/** Finished jobs remembered for their status, newest kept. */
const KEEP_FINISHED = 100;

export interface ImportJobsOptions {
  readonly importer: Pick<Importer, "run">;
  readonly control: Pick<ControlStore, "getStream" | "listImportFiles" | "listImportChunks">;
  /** Where uploads are spooled (`<data-dir>/imports`). */
  readonly spoolDir: string;
  readonly now?: () => number;
  readonly onFinished?: (progress: ImportProgress) => void;
}

export interface ImportUpload {
  readonly stream: string;
  /** Default: a new random id. */
  readonly id?: string;
  readonly format: ImportFormat;
  readonly user?: ImportRequest["user"];
  readonly principal: Principal;
  readonly body: Readable;
}

/** A job's status, or what the manifest holds of an import no job remembers (`stored`). */
export type ImportStatus = ImportProgress | (Omit<ImportProgress, "state"> & { state: "stored" });

export class ImportJobs {
  private readonly jobs = new Map<string, { progress: ImportProgress; done: Promise<void> }>();
  private readonly stopping = new AbortController();

  constructor(private readonly options: ImportJobsOptions) {}

  /** Spools the body, then starts the import; resolves once the body is stored, with the job's progress. */
  async start(upload: ImportUpload): Promise<ImportProgress> {
    const id = upload.id ?? randomUUID().replaceAll("-", "").slice(0, 16);
    checkImportId(id);
    const stream = await this.options.control.getStream(upload.stream);
    if (stream === undefined) throw new RunnelError("stream_not_found", `stream "${upload.stream}" does not exist`);
    refuseUnimportable(stream);
    const key = `${upload.stream}/${id}`;
    if (this.jobs.get(key)?.progress.state === "running") {
      throw new RunnelError("conflict", `import ${id} into ${upload.stream} is running already`);
    }
    if (this.stopping.signal.aborted) throw new RunnelError("not_ready", "the server is stopping");
    await mkdir(this.options.spoolDir, { recursive: true });
    const path = join(this.options.spoolDir, `${randomUUID()}.${upload.format}`);
    try {
      await pipeline(upload.body, createWriteStream(path));
    } catch (e) {
      await rm(path, { force: true });
      throw new RunnelError("invalid_input", `the upload did not arrive whole: ${(e as Error).message}`, { cause: e });
    }
    const progress = newProgress({ id, stream: upload.stream }, this.now());
    const request: ImportRequest = {
      stream: upload.stream,
      path,
      format: upload.format,
      id,
      principal: upload.principal,
      signal: this.stopping.signal,
      ...(upload.user !== undefined && { user: upload.user }),
    };
    const done = this.options.importer
      .run(request, progress)
      .then(
        () => undefined,
        () => undefined, // The error is in the progress, which is where its reader looks.
      )
      .finally(async () => {
        await rm(path, { force: true });
        this.options.onFinished?.(progress);
        this.forgetOld();
      });
    this.jobs.set(key, { progress, done });
    return progress;
  }

  async status(stream: string, id: string): Promise<ImportStatus> {
    const job = this.jobs.get(`${stream}/${id}`);
    if (job !== undefined) return job.progress;
    const chunks = await this.options.control.listImportChunks(stream, id);
    if (chunks.length === 0) throw new RunnelError("not_found", `no import ${id} into ${stream}`);
    // Files compaction merged belong to no one import: files and bytes count those still its own.
    const files = await this.options.control.listImportFiles(stream, id);
    const rows = chunks.reduce((n, c) => n + c.chunkRows, 0);
    return {
      id,
      stream,
      state: "stored",
      rowsRead: rows,
      rowsImported: rows,
      rowsSkipped: 0,
      chunks: chunks.length,
      files: files.length,
      bytes: files.reduce((n, f) => n + f.bytes, 0),
      startedAt: new Date(0).toISOString(),
    };
  }

  /** Jobs running now, for metrics and the dashboard. */
  running(): ImportProgress[] {
    return [...this.jobs.values()].map((j) => j.progress).filter((p) => p.state === "running");
  }

  /** Stops running imports after their current chunk, and waits for them. */
  async close(): Promise<void> {
    this.stopping.abort();
    await Promise.all([...this.jobs.values()].map((j) => j.done));
  }

  private forgetOld(): void {
    const finished = [...this.jobs].filter(([, j]) => j.progress.state !== "running");
    for (const [key] of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) this.jobs.delete(key);
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }
}
