/** Which rollups each stream has, learnt from its definition, by stream and by table name. */
import type { RollupSpec } from "../../control/types.js";

export interface NamedRollup {
  readonly rollup: RollupSpec;
  readonly stream: string;
}

export class RollupRegistry {
  private readonly byStream = new Map<string, readonly RollupSpec[]>();
  private readonly byName = new Map<string, NamedRollup>();

  knows(stream: string): boolean {
    return this.byStream.has(stream);
  }

  learn(stream: string, rollups: readonly RollupSpec[]): void {
    this.forget(stream);
    this.byStream.set(stream, rollups);
    for (const rollup of rollups) this.byName.set(rollup.name, { rollup, stream });
  }

  forget(stream: string): void {
    for (const r of this.byStream.get(stream) ?? []) this.byName.delete(r.name);
    this.byStream.delete(stream);
  }

  /** The stream's rollups, in the order declared (none when it has none or is unknown). */
  of(stream: string): readonly RollupSpec[] {
    return this.byStream.get(stream) ?? [];
  }

  named(name: string): NamedRollup | undefined {
    return this.byName.get(name);
  }

  /** Every rollup's table name. */
  names(): IterableIterator<string> {
    return this.byName.keys();
  }
}
