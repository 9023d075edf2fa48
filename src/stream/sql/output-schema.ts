/**
 * The JSON Schema of a pipeline's output stream, from the static types of its columns, so the
 * analytics table types each column as the SQL says (a CAST … AS DOUBLE stays DOUBLE even when
 * the first value is integral; window bounds are timestamps, not strings).
 */
import type { CompiledPipeline } from "./compile.js";
import type { SqlType } from "./values.js";

const JSON_TYPES: Readonly<Record<SqlType, Record<string, string> | undefined>> = {
  ANY: undefined,
  BOOLEAN: { type: "boolean" },
  INTEGER: { type: "integer" },
  BIGINT: { type: "integer" },
  DOUBLE: { type: "number" },
  VARCHAR: { type: "string" },
  TIMESTAMP: { type: "string", format: "date-time" },
  TIMESTAMPTZ: { type: "string", format: "date-time" },
};

export function outputSchema(compiled: CompiledPipeline): Record<string, unknown> {
  const properties: Record<string, Record<string, string>> = {};
  compiled.columns.forEach((name, i) => {
    const type = JSON_TYPES[compiled.types[i] ?? "ANY"];
    if (name !== "*" && type !== undefined) properties[name] = type;
  });
  return { type: "object", properties };
}
