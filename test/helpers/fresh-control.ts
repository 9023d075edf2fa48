/**
 * A control store on a PostgreSQL database of its own for one suite: created before its tests,
 * closed and dropped after them. The server's shared database may hold other checkouts'
 * migrations, and a killed child's connections are ended by the drop.
 */
import { after, before } from "node:test";
import { createPostgresControlStore } from "../../src/control/index.js";
import type { ControlStore } from "../../src/control/types.js";
import { freshDatabase } from "./postgres.js";

export interface FreshControl {
  /** The store, open from `before` to `after`. */
  readonly control: ControlStore;
  /** The database's URL, for child processes (RUNNEL_TEST_DATABASE_URL). */
  readonly url: string;
}

/** Call inside a `describe`; `server` is the test server's URL. */
export function freshControl(server: string, label: string): FreshControl {
  let database: Awaited<ReturnType<typeof freshDatabase>> | undefined;
  let store: ControlStore | undefined;
  before(async () => {
    database = await freshDatabase(server, label);
    store = createPostgresControlStore(database.url);
    await store.open();
  });
  after(async () => {
    await store?.close();
    await database?.drop();
  });
  return {
    get control() {
      if (store === undefined) throw new Error("the control store opens in before()");
      return store;
    },
    get url() {
      if (database === undefined) throw new Error("the database is created in before()");
      return database.url;
    },
  };
}
