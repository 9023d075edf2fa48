/**
 * The real PostgreSQL of the integration tests: RUNNEL_TEST_DATABASE_URL (set by scripts/test.sh),
 * else the private cluster scripts/postgres.sh starts (and prints the URL of).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import pg from "pg";

export function postgresServerUrl(): string {
  const fromEnv = process.env.RUNNEL_TEST_DATABASE_URL;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  const script = fileURLToPath(new URL("../../scripts/postgres.sh", import.meta.url));
  return execFileSync("bash", [script], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
}

/** `url` pointing at another database of the same server. */
export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Runs one statement on its own connection (CREATE DATABASE and such). */
export async function onServer(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * A database of its own on the test server, dropped by `drop()`: for a suite whose control rows
 * must not meet other runs', nor migrations other checkouts recorded in the server's shared one.
 */
export async function freshDatabase(server: string, label: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `runnel_test_${label}_${randomBytes(4).toString("hex")}`;
  await onServer(server, `CREATE DATABASE ${name}`);
  return {
    url: withDatabase(server, name),
    // FORCE (PostgreSQL 13+) ends connections a killed child may have left behind.
    drop: () => onServer(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
  };
}
