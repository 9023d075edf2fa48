/**
 * The archive in an S3-compatible bucket (`RUNNEL_ARCHIVE_URL=s3://bucket/prefix`), written with
 * the official client. Credentials, region and endpoint come from the usual AWS variables
 * (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL for a non-AWS server,
 * which is then addressed path-style). DuckDB reads local files only, so every file has a local
 * copy in `localDir`: kept from the upload, or downloaded the first time it is needed.
 */
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rename, stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { RunnelError } from "../core/errors.js";
import { type ArchiveLocation, LocalDirLocation } from "./location.js";

export interface S3LocationOptions {
  readonly bucket: string;
  /** Key prefix without slashes at either end ("" for the bucket's root). */
  readonly prefix: string;
  /** Local copies of the files and the staging area. */
  readonly localDir: string;
  /** Client settings; by default from the environment. */
  readonly client?: S3ClientConfig;
}

/** DeleteObjects takes at most this many keys. */
const DELETE_BATCH = 1000;

export class S3Location implements ArchiveLocation {
  readonly localDir: string;
  private readonly local: LocalDirLocation;
  private readonly s3: S3Client;

  constructor(private readonly options: S3LocationOptions) {
    this.localDir = options.localDir;
    this.local = new LocalDirLocation(options.localDir);
    const endpoint = process.env.AWS_ENDPOINT_URL_S3 ?? process.env.AWS_ENDPOINT_URL;
    this.s3 = new S3Client({
      region: process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? "us-east-1",
      ...(endpoint !== undefined && { forcePathStyle: true }),
      ...options.client,
    });
  }

  async open(): Promise<void> {
    await this.local.open();
    try {
      await this.s3.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
    } catch (e) {
      throw new RunnelError(
        "not_ready",
        `the archive bucket ${this.options.bucket} cannot be reached: ${e instanceof Error ? e.name : String(e)}`,
        { cause: e },
      );
    }
  }

  stagingPath(label: string): string {
    return this.local.stagingPath(label);
  }

  async put(staged: string, key: string): Promise<void> {
    const body = await readFile(staged);
    await this.s3.send(
      new PutObjectCommand({
        Bucket: this.options.bucket,
        Key: this.objectKey(key),
        Body: body,
        ContentLength: body.byteLength,
        ContentType: "application/vnd.apache.parquet",
      }),
    );
    // The upload's source becomes the local copy: no download to read it.
    await this.local.put(staged, key);
  }

  async localPath(key: string): Promise<string> {
    const path = await this.local.localPath(key);
    if ((await stat(path).catch(() => undefined))?.isFile()) return path;
    const got = await this.s3.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: this.objectKey(key) }));
    const partial = this.local.stagingPath("download");
    await mkdir(dirname(partial), { recursive: true });
    await pipeline(got.Body as Readable, createWriteStream(partial));
    await mkdir(dirname(path), { recursive: true });
    await rename(partial, path);
    return path;
  }

  async list(prefix: string): Promise<string[]> {
    const base = this.options.prefix === "" ? "" : `${this.options.prefix}/`;
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.s3.send(
        new ListObjectsV2Command({
          Bucket: this.options.bucket,
          Prefix: base + prefix,
          ...(token !== undefined && { ContinuationToken: token }),
        }),
      );
      for (const o of page.Contents ?? []) {
        if (o.Key?.endsWith(".parquet")) keys.push(o.Key.slice(base.length));
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys;
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const res = await this.s3.send(
        new DeleteObjectsCommand({
          Bucket: this.options.bucket,
          Delete: { Objects: batch.map((k) => ({ Key: this.objectKey(k) })), Quiet: true },
        }),
      );
      const failed = res.Errors ?? [];
      if (failed.length > 0) {
        throw new RunnelError("internal", `deleting ${failed.length} archive file(s) failed: ${failed[0]?.Message}`);
      }
    }
    await this.local.delete(keys);
  }

  async clearStaging(): Promise<void> {
    await this.local.clearStaging();
  }

  close(): void {
    this.s3.destroy();
  }

  private objectKey(key: string): string {
    return this.options.prefix === "" ? key : `${this.options.prefix}/${key}`;
  }
}
