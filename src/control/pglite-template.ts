/**
 * A freshly initialised PGlite data directory, made once by the build and shipped in the package,
 * so that a first start copies it instead of running initdb: initdb is most of an empty data
 * dir's start-up (about 2 s of WebAssembly on this kind of machine, against about 0.5 s to load
 * the template; bench/startup.ts). The template holds an empty cluster and nothing of Runnel's, so
 * the control store's migrations still run on it; it is only used by the PGlite version that made
 * it, and a template that cannot be used is skipped, never a reason not to start.
 */
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { PACKAGE_ROOT } from "../core/package.js";

export interface PgliteTemplate {
  /** The gzip'd tarball `PGlite.dumpDataDir` wrote. */
  readonly archive: string;
  /** `{ "pglite": "<version>" }`: which PGlite made the archive. */
  readonly manifest: string;
}

/** Where the build puts the template: next to the compiled code, inside the package. */
export const PACKAGED_TEMPLATE: PgliteTemplate = {
  archive: join(PACKAGE_ROOT, "dist", "pglite-template.tar.gz"),
  manifest: join(PACKAGE_ROOT, "dist", "pglite-template.json"),
};

interface TemplateManifest {
  readonly pglite: string;
}

/** The version of the PGlite this process loads (its package.json, found from its entry point). */
export function pgliteVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.resolve("@electric-sql/pglite")));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const pkg = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string };
      if (pkg.name === "@electric-sql/pglite" && typeof pkg.version === "string") return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find @electric-sql/pglite's package.json");
    dir = up;
  }
}

/** Runs initdb once, in memory, and writes the result as a template (the build calls this). */
export async function writePgliteTemplate(template: PgliteTemplate = PACKAGED_TEMPLATE): Promise<void> {
  const db = await PGlite.create();
  try {
    const dump = await db.dumpDataDir("gzip");
    await mkdir(dirname(template.archive), { recursive: true });
    await writeFile(template.archive, new Uint8Array(await dump.arrayBuffer()));
    const manifest: TemplateManifest = { pglite: pgliteVersion() };
    await writeFile(template.manifest, `${JSON.stringify(manifest)}\n`);
  } finally {
    await db.close();
  }
}

/** The template's archive when it exists and was made by this PGlite; otherwise undefined. */
export function loadPgliteTemplate(template: PgliteTemplate = PACKAGED_TEMPLATE): Blob | undefined {
  try {
    const manifest = JSON.parse(readFileSync(template.manifest, "utf8")) as Partial<TemplateManifest>;
    if (manifest.pglite !== pgliteVersion()) return undefined;
    return new Blob([readFileSync(template.archive)]);
  } catch {
    return undefined;
  }
}

/**
 * Opens PGlite in `dir` (or in memory), starting a new cluster from the template when there is
 * one and `dir` is new or empty. A template that fails to load leaves nothing behind: the
 * directory is emptied again and initdb runs as it would have without it.
 */
export async function createPglite(dir: string | undefined, template?: PgliteTemplate): Promise<PGlite> {
  if (dir !== undefined) await mkdir(dir, { recursive: true });
  const fresh = dir === undefined || (await readdir(dir)).length === 0;
  const archive = fresh ? loadPgliteTemplate(template) : undefined;
  if (archive !== undefined) {
    try {
      return await PGlite.create({ dataDir: dir, loadDataDir: archive });
    } catch {
      if (dir !== undefined) await emptyDir(dir);
    }
  }
  return PGlite.create({ dataDir: dir });
}

async function emptyDir(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}
