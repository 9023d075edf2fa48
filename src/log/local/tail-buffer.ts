/**
 * The last bytes written to a segment, kept in a fixed ring, so a reader at the tail (a rule task
 * woken by the append it reads) copies them from memory instead of queueing a file read on
 * libuv's thread pool, where it waits behind the log's fdatasyncs, the checkpoint store's writes
 * and DuckDB (docs/benchmarks.md, "Alert latency"). A reader further behind than the ring reads
 * the file as before. The ring is allocated at the first write and never grows; appends copy into
 * it once (the group's encode buffer is reused, so it cannot be kept instead).
 */
export class TailBuffer {
  private ring: Buffer | undefined;
  /** File positions [start, end) held. */
  private start = 0;
  private end = 0;

  constructor(private readonly capacity: number) {}

  /** `buf` was written at file position `at`; a write that does not follow the last starts afresh. */
  written(at: number, buf: Buffer): void {
    const cap = this.capacity;
    if (cap === 0) return;
    this.ring ??= Buffer.allocUnsafe(cap);
    if (at !== this.end) this.start = at;
    const end = at + buf.length;
    // Only the last `cap` bytes of a large write can be held.
    const from = Math.max(at, end - cap);
    let src = buf.subarray(from - at);
    let pos = from % cap;
    while (src.length > 0) {
      const n = Math.min(src.length, cap - pos);
      src.copy(this.ring, pos, 0, n);
      src = src.subarray(n);
      pos = 0;
    }
    this.end = end;
    this.start = Math.max(this.start, end - cap);
  }

  /** The file was truncated at `at`: nothing from there on is held. */
  truncated(at: number): void {
    if (at >= this.end) return;
    this.end = at;
    if (this.start > at) this.start = at;
  }

  /** A copy of the bytes [position, position + length) if all are held, else undefined. */
  read(position: number, length: number): Buffer | undefined {
    const ring = this.ring;
    if (ring === undefined || position < this.start || position + length > this.end) return undefined;
    const cap = this.capacity;
    const out = Buffer.allocUnsafe(length);
    let done = 0;
    let pos = position % cap;
    while (done < length) {
      const n = Math.min(length - done, cap - pos);
      ring.copy(out, done, pos, pos + n);
      done += n;
      pos = 0;
    }
    return out;
  }

  /** Lets the ring go (the segment was sealed: nothing is appended to it any more). */
  release(): void {
    this.ring = undefined;
    this.start = this.end = 0;
  }
}
