export type { DirectoryLockOptions, LockHolder } from "./dir-lock.js";
export { LogDirectoryLockedError } from "./dir-lock.js";
export type { LocalEventLogStats } from "./local-event-log.js";
export { LocalEventLog } from "./local-event-log.js";
export type { GroupCommitReport, LocalEventLogOptions, RecoveryReport } from "./options.js";
