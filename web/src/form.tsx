/** Forms whose API errors land next to the field they name (`details: [{field}]` or "/field: …" messages). */
import type { ComponentChildren } from "preact";
import { ApiError } from "./api";

/** Maps an API error to the form field it names, or "" for the form as a whole. */
export function fieldOf(error: unknown, fields: readonly string[]): string {
  if (!(error instanceof ApiError)) return "";
  const candidates: string[] = [];
  if (Array.isArray(error.details)) {
    for (const d of error.details as unknown[]) {
      if (d !== null && typeof d === "object" && "field" in d && typeof d.field === "string") candidates.push(d.field);
    }
  }
  candidates.push(error.message);
  for (const c of candidates) {
    const m = /^\/?([A-Za-z_]+)/.exec(c.replace(/^body\//, ""));
    if (m && fields.includes(m[1]!)) return m[1]!;
    // "step \"x\": where …" and "where: …" are about the pattern.
    if (fields.includes("pattern") && /^(step |where|pattern)/.test(c)) return "pattern";
  }
  return "";
}

export function Field({
  label,
  name,
  error,
  errorField,
  children,
}: {
  label: string;
  name: string;
  error: unknown;
  errorField: string;
  children: ComponentChildren;
}) {
  const mine = errorField === name && error instanceof Error;
  return (
    // biome-ignore lint/a11y/noLabelWithoutControl: the control comes in as children
    <label class={mine ? "field invalid" : "field"}>
      {label}
      {children}
      {mine ? (
        <span class="field-error" role="alert" data-testid={`error-${name}`}>
          {error.message}
        </span>
      ) : null}
    </label>
  );
}
