/**
 * A record a consumer can never process as it stands (its content, not the system, is at fault): retrying it
 * would wedge the consumer, so it goes to the stream's dead-letter stream and the consumer moves on.
 */
export class PoisonRecordError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PoisonRecordError";
  }
}
