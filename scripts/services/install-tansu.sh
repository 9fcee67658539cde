#!/usr/bin/env bash
# Installs the tansu Kafka-compatible broker (crates.io) into a cache outside the clone, once.
# Prints the path of the binary. Idempotent: a cached binary of the pinned version is reused.
set -euo pipefail
TANSU_VERSION="${TANSU_VERSION:-0.6.0}"
cache="${WEIR_CACHE:-$HOME/.cache/weir}/tansu-$TANSU_VERSION"
bin="$cache/bin/tansu"
if [ ! -x "$bin" ]; then
  echo "installing tansu $TANSU_VERSION into $cache (about 11 minutes on 2 cores, once)" >&2
  mkdir -p "$cache"
  cargo install tansu --version "$TANSU_VERSION" --locked --features libsql,dynostore \
    --root "$cache" --target-dir "$cache/target" >&2
  rm -rf "$cache/target"
fi
echo "$bin"
