/** The test S3 server (moto): RUNNEL_TEST_S3_URL (scripts/test.sh), else started here by scripts/s3.sh. */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";

export function s3Url(): string {
  const env = process.env.RUNNEL_TEST_S3_URL;
  if (env) return env;
  const root = new URL("../..", import.meta.url).pathname;
  return execFileSync("bash", [`${root}scripts/s3.sh`], { encoding: "utf8" }).trim();
}

/** Client settings for the test server; moto takes any credentials. */
export function s3ClientConfig(url = s3Url()) {
  return {
    endpoint: url,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "runnel-test", secretAccessKey: "runnel-test-secret" },
  };
}

/** A new, empty bucket of the test's own. */
export async function newBucket(): Promise<string> {
  const bucket = `runnel-${randomBytes(6).toString("hex")}`;
  const client = new S3Client(s3ClientConfig());
  try {
    await client.send(new CreateBucketCommand({ Bucket: bucket }));
  } finally {
    client.destroy();
  }
  return bucket;
}

/**
 * The settings of a process archiving into a new bucket of the test server: what the instances
 * of one test cluster share, since cluster mode refuses an archive of each instance's own.
 */
export interface ArchiveEnv {
  readonly AWS_ENDPOINT_URL: string;
  readonly AWS_ACCESS_KEY_ID: string;
  readonly AWS_SECRET_ACCESS_KEY: string;
  readonly AWS_REGION: string;
  readonly RUNNEL_ARCHIVE_URL: string;
}

export async function sharedArchiveEnv(): Promise<ArchiveEnv> {
  const url = s3Url();
  const { credentials } = s3ClientConfig(url);
  return {
    AWS_ENDPOINT_URL: url,
    AWS_ACCESS_KEY_ID: credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    AWS_REGION: "us-east-1",
    RUNNEL_ARCHIVE_URL: `s3://${await newBucket()}/runnel`,
  };
}
