/**
 * Revocation as one event. The control store publishes a Revocation once a change that takes
 * credentials away has committed (password change, disable, deletion, role change, API key
 * deletion); the credential cache, open Server-Sent Event streams and WebSocket connections all
 * subscribe here, so a new revoking change cannot reach one of them and miss another.
 *
 * Listeners run synchronously, in subscription order, after the commit; one that throws is
 * reported and does not stop the others or fail the store call that published.
 *
 * @example
 * const revocations = new Revocations();
 * const control = createPgliteControlStore(dir, { revocations });
 * revocations.subscribe((r) => console.log(`${r.userId} lost credentials: ${r.reason}`));
 */
import type { Revocation, RevocationSink } from "../../control/types.js";

export type RevocationListener = (revocation: Revocation) => void;

export class Revocations implements RevocationSink {
  readonly #listeners = new Set<RevocationListener>();

  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {}

  /** Calls `listener` for every revocation from now on; returns the unsubscribe function. */
  subscribe(listener: RevocationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  publish(revocation: Revocation): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(revocation);
      } catch (e) {
        this.onListenerError(e);
      }
    }
  }

  /** Open subscriptions, for tests and leak checks. */
  get size(): number {
    return this.#listeners.size;
  }
}
