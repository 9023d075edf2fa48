import type { AppendRecord } from "../../src/log/types.js";

export { FakeLog as FakeEventLog } from "../helpers/fake-log.js";

export function event(key: string, fields: Record<string, unknown>, timestamp = Date.now()): AppendRecord {
  return { key, timestamp, value: new TextEncoder().encode(JSON.stringify({ user_id: key, ...fields })) };
}
