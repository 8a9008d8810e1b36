#!/usr/bin/env bash
# Node 24 LTS for the tests when the machine's node is older than package.json's engines (22.12):
#   source scripts/node24.sh         puts it first on PATH in this shell (.ci/run)
#   bash scripts/node24.sh CMD ARGS  runs CMD with it first on PATH (npm test)
# It is the official binary from the npm registry's node-<os>-<arch> package, unpacked once into
# .node/ (git-ignored). A machine whose node is new enough keeps its own, and nothing is fetched.

node24_path () {
  local root dir os arch
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  dir="$root/.node"
  if node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 12) ? 0 : 1)' 2>/dev/null; then
    return 0
  fi
  if [ ! -x "$dir/package/bin/node" ]; then
    os="$(node -p process.platform 2>/dev/null || uname -s | tr '[:upper:]' '[:lower:]')"
    arch="$(node -p process.arch 2>/dev/null || echo x64)"
    rm -rf "$dir" && mkdir -p "$dir"
    (cd "$dir" && npm pack --silent "node-$os-$arch@24" >/dev/null && tar xzf node-*.tgz && rm node-*.tgz) || {
      echo "node24: could not fetch node-$os-$arch@24 from the npm registry" >&2
      return 1
    }
  fi
  echo "node24: node $(node --version 2>/dev/null || echo none) is older than 22.12: using Node $("$dir/package/bin/node" --version) from the npm registry (.node/)" >&2
  export PATH="$dir/package/bin:$PATH"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  node24_path
else
  set -euo pipefail
  node24_path
  exec "$@"
fi
