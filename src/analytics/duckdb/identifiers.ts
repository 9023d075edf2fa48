/** Quotes an identifier for DuckDB: any field name, even one holding quotes, stays one identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
