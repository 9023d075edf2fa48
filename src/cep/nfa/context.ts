/** What a `where` condition may read of the partial match it would extend. */
export interface MatchContext {
  /** Events already taken by `step` in this partial match, oldest first (FlinkCEP's getEventsForPattern). */
  events(step: string): readonly Readonly<Record<string, unknown>>[];
  /** The first event of the partial match, if any. */
  first(): Readonly<Record<string, unknown>> | undefined;
  /** The latest event of the partial match, if any. */
  prev(): Readonly<Record<string, unknown>> | undefined;
}

const NONE: readonly Readonly<Record<string, unknown>>[] = [];

/** For conditions evaluated where no partial match exists yet (the start state). */
export const EMPTY_MATCH: MatchContext = {
  events: () => NONE,
  first: () => undefined,
  prev: () => undefined,
};
