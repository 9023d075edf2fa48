import type { ArchiverOptions } from "../../src/archive/archiver.js";
import type { ControlStore } from "../../src/control/types.js";

/**
 * The archiver's view of a shared control database limited to one stream: other suites' streams
 * (and their manifest rows, whose files are elsewhere) are not this test's to recover.
 */
export function scopedControl(control: ControlStore, stream: string): ArchiverOptions["control"] {
  return {
    listStreams: async () => (await control.listStreams()).filter((s) => s.name === stream),
    listArchiveFiles: (s?: string) => control.listArchiveFiles(s ?? stream),
    commitArchiveFile: (f) => control.commitArchiveFile(f),
    replaceArchiveFiles: (s, r, m) => control.replaceArchiveFiles(s, r, m),
    deleteArchiveFiles: (s, p) => control.deleteArchiveFiles(s, p),
    archiveBoundaries: (s) => control.archiveBoundaries(s),
    listImportFiles: (s?: string, id?: string) => control.listImportFiles(s ?? stream, id),
    commitImportChunk: (files) => control.commitImportChunk(files),
    deleteImportFiles: (s, p) => control.deleteImportFiles(s, p),
    updateStreamRollups: (s, change) => control.updateStreamRollups(s, change),
    replaceImportFiles: (s, r, m) => control.replaceImportFiles(s, r, m),
  };
}
