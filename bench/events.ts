/** The benchmarks' typical event: ~92 bytes of JSON with a user_id, varied so partitions and column types are exercised. */
export function typicalEvent(n: number): Record<string, unknown> {
  return {
    user_id: `user_${n % 997}`,
    event_type: n % 5 === 0 ? "purchase" : "view",
    amount: (n % 10_000) / 100,
    page: `/p/${n % 313}`,
    ts: 1_764_000_000_000 + n,
  };
}
