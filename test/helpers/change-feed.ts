/** Test access to the control store's change feed. */
import pg from "pg";
import { CHANGE_FEED_APPLICATION } from "../../src/control/change-feed.js";

/** Ends the feeds' LISTEN connections on `url`'s database, as a failover or an operator would. */
export async function terminateFeeds(url: string): Promise<number> {
  const database = new URL(url).pathname.slice(1);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ ok: boolean }>(
      "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND datname = $2",
      [CHANGE_FEED_APPLICATION, database],
    );
    return rows.filter((r) => r.ok).length;
  } finally {
    await client.end();
  }
}
