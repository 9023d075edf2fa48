/**
 * A freshly initialised PGlite data directory, made once by the build and shipped in the package,
 * so that a first start copies it instead of running initdb: initdb is most of an empty data
 * dir's start-up (about 2 s of WebAssembly on this kind of machine). A plain directory copy (about
 * 40 MB, 1,000 files) then a normal open costs a fraction of that; loading PGlite's own tarball
 * dump (`loadDataDir`) was measured too and spends most of initdb's time writing the files through
 * its WebAssembly file system. The template holds an empty cluster and nothing of Runnel's, so the
 * control store's migrations still run on it; it is only used by the PGlite version that made it,
 * and a template that cannot be used is skipped, never a reason not to start.
 */
import { existsSync, readFileSync } from "node:fs";
import { cp, mkdir, readdir, rename, rm, rmdir, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { PGlite } from "@electric-sql/pglite";
import { PACKAGE_ROOT } from "../core/package.js";

export interface PgliteTemplate {
  /** A data directory PGlite initialised and closed. */
  readonly dir: string;
  /** `{ "pglite": "<version>" }`: which PGlite made it; written last, so its presence means whole. */
  readonly manifest: string;
}

/** Where the build puts the template: next to the compiled code, inside the package. */
export const PACKAGED_TEMPLATE: PgliteTemplate = {
  dir: join(PACKAGE_ROOT, "dist", "pglite-template"),
  manifest: join(PACKAGE_ROOT, "dist", "pglite-template.json"),
};

interface TemplateManifest {
  readonly pglite: string;
  /** Every directory of the template, relative: npm's packing drops empty ones, PostgreSQL needs them. */
  readonly dirs: readonly string[];
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

/** Runs initdb once and keeps the result as the template (the build calls this). */
export async function writePgliteTemplate(template: PgliteTemplate = PACKAGED_TEMPLATE): Promise<void> {
  await rm(template.manifest, { force: true });
  await rm(template.dir, { recursive: true, force: true });
  await mkdir(template.dir, { recursive: true });
  const db = await PGlite.create({ dataDir: template.dir });
  await db.close();
  const entries = await readdir(template.dir, { recursive: true, withFileTypes: true });
  const dirs = entries.filter((e) => e.isDirectory()).map((e) => relative(template.dir, join(e.parentPath, e.name)));
  const manifest: TemplateManifest = { pglite: pgliteVersion(), dirs: dirs.sort() };
  await writeFile(template.manifest, `${JSON.stringify(manifest)}\n`);
}

/** The template's manifest when the template exists whole and was made by this PGlite. */
export function usablePgliteTemplate(template: PgliteTemplate = PACKAGED_TEMPLATE): TemplateManifest | undefined {
  try {
    const manifest = JSON.parse(readFileSync(template.manifest, "utf8")) as Partial<TemplateManifest>;
    const whole = existsSync(join(template.dir, "PG_VERSION")) && Array.isArray(manifest.dirs);
    return manifest.pglite === pgliteVersion() && whole ? (manifest as TemplateManifest) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens PGlite in `dir` (or in memory), starting a new cluster from the template when there is
 * one and `dir` is new or empty. The copy goes to a sibling and is renamed into place, so a crash
 * mid-copy leaves `dir` as it was; a copy that fails leaves nothing behind and initdb runs as it
 * would have without a template.
 */
export async function createPglite(
  dir: string | undefined,
  template: PgliteTemplate = PACKAGED_TEMPLATE,
): Promise<PGlite> {
  if (dir === undefined) return PGlite.create({ loadDataDir: await emptyClusterDump() });
  await mkdir(dir, { recursive: true });
  const manifest = (await readdir(dir)).length === 0 ? usablePgliteTemplate(template) : undefined;
  if (manifest !== undefined && (await copyTemplate(template, manifest, dir))) {
    try {
      return await PGlite.create({ dataDir: dir });
    } catch {
      // A copy PostgreSQL cannot start from (damaged in the package): start as if there were none.
      await emptyDir(dir);
    }
  }
  return PGlite.create({ dataDir: dir });
}

/** An uncompressed dump of a new, empty cluster: made by this process's first in-memory PGlite, loaded by the rest. */
let emptyCluster: Promise<Blob> | undefined;

/**
 * In memory (the tests' control stores, dozens per test file), loading a dump of an empty cluster
 * takes about 0.4 s against initdb's 2.5 s; unlike on disk (see the top of this file), the
 * dump's files are written to memory, not through the WebAssembly file system to a disk.
 */
function emptyClusterDump(): Promise<Blob> {
  if (emptyCluster === undefined) {
    const made = (async () => {
      const db = await PGlite.create();
      try {
        return await db.dumpDataDir("none");
      } finally {
        await db.close();
      }
    })();
    emptyCluster = made;
    // A failed initdb is not kept: the next caller tries again, as it would without the dump.
    made.catch(() => {
      if (emptyCluster === made) emptyCluster = undefined;
    });
  }
  return emptyCluster;
}

/** Copies the template into the empty `dir` (through a sibling renamed into place); false when it could not. */
async function copyTemplate(template: PgliteTemplate, manifest: TemplateManifest, dir: string): Promise<boolean> {
  const staging = `${dir}.template-${process.pid}`;
  try {
    await rm(staging, { recursive: true, force: true });
    await cp(template.dir, staging, { recursive: true });
    for (const sub of manifest.dirs) await mkdir(join(staging, sub), { recursive: true });
    await rmdir(dir);
    await rename(staging, dir);
    return true;
  } catch {
    await rm(staging, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    return false;
  }
}

async function emptyDir(dir: string): Promise<void> {
  for (const entry of await readdir(dir)) await rm(join(dir, entry), { recursive: true, force: true });
}
