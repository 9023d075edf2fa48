/**
 * How a consumer of the log (a pipeline, a rule) is doing, from its stats: failing (its rounds
 * keep failing and are retried), records it moved to the dead-letter stream, events it dropped as
 * late. The API's `stats.failing`, `stats.deadLetters`, `stats.late` (docs/api.md).
 */
export function ConsumerState({ stats }: { stats?: Readonly<Record<string, unknown>> | undefined }) {
  const failing = stats?.failing as { error?: string; attempts?: number } | undefined;
  const deadLetters = Number(stats?.deadLetters ?? 0);
  const late = Number(stats?.late ?? 0);
  return (
    <span class="row" data-testid="consumer-state">
      {failing ? (
        <span class="error-text" data-state="failing">
          failing ({failing.attempts ?? 1}×): {failing.error}
        </span>
      ) : (
        <span data-state="ok">ok</span>
      )}
      {deadLetters > 0 ? <span class="badge">{deadLetters} dead-lettered</span> : null}
      {late > 0 ? <span class="muted">{late} late</span> : null}
    </span>
  );
}
