export type { LocalEventLogStats } from "./local-event-log.js";
export { LocalEventLog } from "./local-event-log.js";
export type { LocalEventLogOptions, RecoveryReport } from "./options.js";
