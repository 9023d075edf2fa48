/** `runnel --version`: the version in the package's own package.json, found from this module up. */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

// Walking up finds the package root from the sources (src/cli/) and from a compiled or installed copy alike.
export function packageVersion(from: string = import.meta.url): string {
  for (let dir = dirname(fileURLToPath(from)); ; dir = dirname(dir)) {
    const file = join(dir, "package.json");
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, "utf8")) as { name?: unknown; version?: unknown };
      if (pkg.name === "runnel" && typeof pkg.version === "string") return pkg.version;
    }
    if (dirname(dir) === dir) throw new Error("runnel's package.json was not found above its modules");
  }
}
