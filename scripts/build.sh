#!/usr/bin/env bash
# `npm run build`: the package as it is published. tsc compiles src/ and bin/ to dist/ (JavaScript
# and declaration files: `bin` and `exports` point there); Vite builds the dashboard into web/dist,
# shipped with it (package.json `files`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/node.sh
rm -rf dist
npx tsc -p tsconfig.build.json
# A first start copies this initialised PGlite cluster instead of running initdb (src/control/pglite-template.ts).
node --input-type=module -e 'await (await import("./dist/src/control/pglite-template.js")).writePgliteTemplate()'
npx vite build web --logLevel warn
