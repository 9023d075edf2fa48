/**
 * The dashboard's built assets (web/dist, docs/dashboard.md) at `/`. They are files, not API:
 * served from the not-found fallback, so they never appear among the registered routes (the
 * OpenAPI document and the isolation matrix list the API alone), and every path the API or
 * health routes own keeps its JSON answers. A GET of any other path without a file extension is
 * a client-side route and gets index.html.
 *
 * The API's `Content-Security-Policy` allows nothing; pages get one that allows their own origin
 * only (scripts, styles, fetch), still no inline script, no framing.
 */
import { createReadStream, existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { extname, join, normalize, sep } from "node:path";
import type { FastifyReply, FastifyRequest } from "fastify";
import { PACKAGE_ROOT } from "../../core/package.js";

export const WEB_DIST = join(PACKAGE_ROOT, "web", "dist");

/** How to get the dashboard when its assets are missing: the start-up line and the page at `/` say it. */
export const DASHBOARD_MISSING =
  "the dashboard is not built: run `npm run build` in Runnel's source tree (`npm start` builds it); the API works without it";

/** True when `dir` holds a built dashboard (its index.html). */
export function dashboardBuilt(dir: string = WEB_DIST): boolean {
  return existsSync(join(dir, "index.html"));
}

const MISSING_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Runnel: dashboard not built</title></head>
<body><h1>Runnel is running; its dashboard is not built</h1>
<p>${DASHBOARD_MISSING.replace(/`([^`]+)`/g, "<code>$1</code>")}.</p>
<p>The HTTP API is at <code>/api/v1</code>; health at <code>/readyz</code>.</p></body></html>
`;

export const PAGE_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".map": "application/json",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

/** Paths the server answers itself: never shadowed by the dashboard. */
const RESERVED = /^\/(api(\/|$)|healthz$|readyz$|metrics$)/;

/**
 * Returns a fallback that answers GET/HEAD of dashboard paths from `dir` and returns true, or
 * returns false for requests it does not own (the caller then answers 404 as JSON).
 */
export function webFallback(
  dir: string = WEB_DIST,
): (request: FastifyRequest, reply: FastifyReply) => Promise<boolean> {
  const root = normalize(dir + sep);
  return async (request, reply) => {
    if (request.method !== "GET" && request.method !== "HEAD") return false;
    let path: string;
    try {
      path = decodeURIComponent(request.url.split("?")[0] ?? "/");
    } catch {
      return false;
    }
    if (RESERVED.test(path) || path.includes("\0")) return false;
    const ext = extname(path);
    const file = ext === "" ? join(root, "index.html") : normalize(join(root, path));
    if (!file.startsWith(root)) return false;
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) {
      if (ext !== "") return false;
      // A page, not a bare 404: a person opening `/` learns how to get the dashboard.
      await reply
        .status(503)
        .header("content-type", TYPES[".html"])
        .header("content-security-policy", PAGE_CSP)
        .header("cache-control", "no-store")
        .send(request.method === "HEAD" ? undefined : MISSING_PAGE);
      return true;
    }
    reply
      .status(200)
      .header("content-type", TYPES[extname(file)] ?? "application/octet-stream")
      .header("content-length", info.size)
      .header("content-security-policy", PAGE_CSP)
      // Vite names assets by content hash: they never change; index.html must be revalidated.
      .header("cache-control", path.startsWith("/assets/") ? "public, max-age=31536000, immutable" : "no-cache");
    if (request.method === "HEAD") await reply.send();
    else await reply.send(createReadStream(file));
    return true;
  };
}
