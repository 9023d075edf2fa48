# Sourced by the project's scripts (start.sh, test.sh, build.sh, .ci/run): makes `node` a Node.js
# the package supports (package.json `engines`: ^22.22.0 || >=24.6.0; tested on 24). When the
# system's Node is older, Node 24 comes from the npm registry (the `node` package ships the real
# binary) into .runnel/node, once, and goes first on PATH for everything after, npm included.
# Not a program of its own: `source scripts/node.sh` from the project's root.

runnel_node_supported() {
  command -v node >/dev/null 2>&1 && node -e '
    const [major, minor] = process.versions.node.split(".").map(Number);
    process.exit(major > 24 || (major === 24 && minor >= 6) || (major === 22 && minor >= 22) ? 0 : 1);'
}

if ! runnel_node_supported; then
  RUNNEL_NODE_DIR="$PWD/.runnel/node"
  if [ ! -x "$RUNNEL_NODE_DIR/node_modules/node/bin/node" ]; then
    echo "Node.js $(node --version 2>/dev/null || echo 'is missing') is older than Runnel needs; installing Node 24 into .runnel/node" >&2
    mkdir -p "$RUNNEL_NODE_DIR"
    # The node package's preinstall fetches the platform's binary: npm's allowScripts must let it run.
    [ -f "$RUNNEL_NODE_DIR/package.json" ] ||
      printf '{ "private": true, "allowScripts": { "node": true } }\n' >"$RUNNEL_NODE_DIR/package.json"
    npm install --prefix "$RUNNEL_NODE_DIR" --no-audit --no-fund --loglevel=error node@24 >&2
  fi
  export PATH="$RUNNEL_NODE_DIR/node_modules/node/bin:$PATH"
  runnel_node_supported || {
    echo "could not provide a supported Node.js (have $(node --version)); install Node 24 LTS" >&2
    exit 1
  }
fi
