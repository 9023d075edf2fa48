import type { StreamEvent } from "../event.js";
import type { SqlType } from "./values.js";

/** An expression compiled once into a closure; `name` is the DuckDB-style column name it gets without an alias. */
export interface CompiledExpr {
  readonly eval: (row: StreamEvent) => unknown;
  readonly type: SqlType;
  readonly name: string;
}
