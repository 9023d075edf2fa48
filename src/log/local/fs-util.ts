/** Names of the local log's files and directories. */

/** Kafka-style segment name: the base offset, zero-padded to 20 digits. */
export function segmentFileName(baseOffset: number, extension: ".log" | ".index" | ".timeindex"): string {
  return `${String(baseOffset).padStart(20, "0")}${extension}`;
}

const SEGMENT_NAME = /^(\d{20})\.log$/;

export function parseSegmentFileName(name: string): number | undefined {
  const m = SEGMENT_NAME.exec(name);
  return m === null ? undefined : Number(m[1]);
}

/**
 * Stream and group names become directory and file names. Percent-encoding keeps any name
 * filesystem-safe and reversible; a leading dot is escaped too, because dot-names are reserved
 * for the log's own temporary directories.
 */
export function encodeName(name: string): string {
  const encoded = encodeURIComponent(name);
  return encoded.startsWith(".") ? `%2E${encoded.slice(1)}` : encoded;
}

export function decodeName(encoded: string): string {
  return decodeURIComponent(encoded);
}
