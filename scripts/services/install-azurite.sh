#!/usr/bin/env bash
# Installs Azurite, Microsoft's Azure Storage emulator (the npm registry), into
# a cache outside the clone, once, from the lockfile beside this script: the
# Azure Blob endpoint of the archive tests. Prints the path of `azurite-blob`.
# Idempotent: reinstalls only when the lockfile changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dir="${WEIR_CACHE:-$HOME/.cache/weir}/azurite"
stamp="$dir/.weir-installed"
want="$(sha256sum "$here/azurite/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing Azurite into $dir (about 30 s, once)" >&2
  mkdir -p "$dir"
  cp "$here/azurite/package.json" "$here/azurite/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
  echo "$want" > "$stamp"
fi
echo "$dir/node_modules/.bin/azurite-blob"
