/**
 * Chart library benchmark behind docs/dashboard.md's choice: builds one page per library with the
 * production build settings, reports each page's JavaScript + CSS (raw and gzip), then opens both
 * in headless Chromium and times 300 updates of a 4 × 300-point chart (data replaced and drawn).
 *
 *   node --import tsx web/bench/charts.ts        # Chromium from scripts/chromium.sh
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { build } from "vite";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(HERE, "../..");
const OUT = join(ROOT, "web/dist-bench");
const LIBS = ["uplot", "echarts"] as const;
const UPDATES = 300;

await build({
  root: HERE,
  logLevel: "warn",
  build: {
    outDir: OUT,
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    rollupOptions: { input: Object.fromEntries(LIBS.map((l) => [l, join(HERE, `${l}.html`)])) },
  },
});

/** Sizes of the assets one page loads (its entry chunk and whatever it imports). */
function sizes(lib: string): { raw: number; gzip: number } {
  const html = readFileSync(join(OUT, `${lib}.html`), "utf8");
  const files = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    if (!file.endsWith(".js")) return;
    const code = readFileSync(join(OUT, file), "utf8");
    for (const m of code.matchAll(/from"\.\/([^"]+)"|import"\.\/([^"]+)"/g)) visit(`assets/${m[1] ?? m[2]}`);
  };
  for (const m of html.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)) visit(m[1]!);
  let raw = 0;
  let gzip = 0;
  for (const f of files) {
    const bytes = readFileSync(join(OUT, f));
    raw += bytes.byteLength;
    gzip += gzipSync(bytes, { level: 9 }).byteLength;
  }
  return { raw, gzip };
}

const server = createServer((req, res) => {
  const path = (req.url ?? "/").split("?")[0]!;
  try {
    const body = readFileSync(join(OUT, path));
    const type = path.endsWith(".js") ? "text/javascript" : path.endsWith(".css") ? "text/css" : "text/html";
    res.writeHead(200, { "content-type": type }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
const executablePath =
  process.env.RUNNEL_TEST_CHROMIUM ??
  execFileSync("bash", [join(ROOT, "scripts/chromium.sh")], { encoding: "utf8" }).trim();
const browser = await chromium.launch({
  executablePath,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
try {
  console.log(`files: ${readdirSync(join(OUT, "assets")).join(", ")}`);
  console.log("| library | JS+CSS raw | gzip | median ms/update | p95 ms/update |");
  console.log("|---|---|---|---|---|");
  for (const lib of LIBS) {
    const page = await browser.newPage();
    await page.goto(`${base}/${lib}.html`);
    await page.waitForFunction("typeof window.update === 'function'");
    // Warm up the JIT, then time each update separately.
    const times = (await page.evaluate(`(async () => {
      for (let i = 1; i <= 50; i++) await window.update(i);
      const out = [];
      for (let i = 0; i < ${UPDATES}; i++) {
        const t0 = performance.now();
        await window.update(100 + i);
        out.push(performance.now() - t0);
      }
      return out;
    })()`)) as number[];
    times.sort((a, b) => a - b);
    const { raw, gzip } = sizes(lib);
    const q = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!.toFixed(2);
    console.log(
      `| ${lib} | ${(raw / 1024).toFixed(1)} KiB | ${(gzip / 1024).toFixed(1)} KiB | ${q(0.5)} | ${q(0.95)} |`,
    );
    await page.close();
  }
} finally {
  await browser.close();
  server.close();
}
