/**
 * The dashboard's build (docs/dashboard.md): `npm run build:web` writes web/dist, which the
 * server serves at `/`. Preact's JSX is compiled by Vite's own esbuild (no framework plugin).
 * `npm run dev:web` serves the pages with hot reload and proxies the API to a running Runnel.
 */
import { defineConfig } from "vite";

export default defineConfig({
  root: import.meta.dirname,
  esbuild: { jsx: "automatic", jsxImportSource: "preact" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // No inline script: the pages' Content-Security-Policy allows only same-origin files.
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
  server: {
    proxy: {
      "/api": { target: process.env.RUNNEL_URL ?? "http://127.0.0.1:8080", changeOrigin: false },
    },
  },
});
