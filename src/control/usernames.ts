/**
 * The folded form of a username, under which names are unique: NFKC (compatibility forms such as
 * fullwidth `ａｄｍｉｎ` become `admin`) then lower case, so `Admin`, `ADMIN` and `ａｄｍｉｎ` are
 * one name. Migration 8 backfills existing rows with PostgreSQL's `lower(normalize(…, NFKC))`,
 * which agrees with this for every name the API accepts (ASCII after NFKC).
 */
export function foldUsername(username: string): string {
  // NFKC again after lowering: a lower-cased character can have a compatibility decomposition.
  return username.normalize("NFKC").toLowerCase().normalize("NFKC");
}
