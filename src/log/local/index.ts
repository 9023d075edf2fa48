export type { LocalEventLogStats } from "./local-event-log.js";
export { LocalEventLog } from "./local-event-log.js";
export type { GroupCommitReport, LocalEventLogOptions, RecoveryReport } from "./options.js";
