#!/usr/bin/env bash
# The whole test suite: formatting, lints, every test, and a benchmark smoke run.
# Installs what it needs first: the tansu Kafka-compatible broker (crates.io,
# cached under ~/.cache/weir), stunnel4 for the Kafka TLS tests,
# prometheus-alertmanager for the alert tests, prometheus for promtool and
# chromium for the console's browser test (Debian), the console's npm
# packages (locked), Azurite (npm, locked: the Azure Blob endpoint), and the
# Python peers
# (moto's S3 server, aiosmtpd, duckdb) in a virtualenv under ~/.cache/weir.
# Usage: scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# A stable target folder outside the clone, so repeated runs are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
mkdir -p "$CARGO_TARGET_DIR"

echo "== toolchain"
cargo --version
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== services"
apt_install() {
  echo "installing $1 (Debian)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get install -y "$1" >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y "$1" >/dev/null; }
}
if ! command -v stunnel4 >/dev/null 2>&1 && ! command -v stunnel >/dev/null 2>&1; then
  apt_install stunnel4
fi
if ! command -v prometheus-alertmanager >/dev/null 2>&1; then
  apt_install prometheus-alertmanager
fi
# promtool (Debian's prometheus package) lints every /metrics endpoint.
if ! command -v promtool >/dev/null 2>&1; then
  apt_install prometheus
fi
# The console's browser test drives Debian's Chromium with playwright-core.
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi

echo "== console"
# Its locked npm packages; the committed bundle (console/dist, embedded in the
# binary) must be exactly what the sources build.
(cd console && npm ci --no-audit --no-fund --loglevel=error && node build.mjs && git diff --exit-code -- dist)
WEIR_PYTHON_BIN="$(scripts/services/install-python-tools.sh)"
export WEIR_PYTHON_BIN
WEIR_AZURITE="$(scripts/services/install-azurite.sh)"
export WEIR_AZURITE
WEIR_TANSU="$(scripts/services/install-tansu.sh)"
export WEIR_TANSU
"$WEIR_TANSU" --version

echo "== disk"
# The shared target folder keeps every old test binary and incremental cache:
# drop incremental caches no build touched for 6 hours (they grow by
# gigabytes a day) and test binaries older than 3 days (libraries stay).
for profile in debug release ci-bench; do
  # A fresh machine (or a cleaned folder) has none of them yet.
  [ -d "$CARGO_TARGET_DIR/$profile" ] || continue
  find "$CARGO_TARGET_DIR/$profile/incremental" -mindepth 1 -maxdepth 1 -mmin +360 -exec rm -rf {} + 2>/dev/null || true
  # Test and benchmark binaries (NAME-HASH): keep the newest two of each name
  # (the `weir` binary and its unit tests share a name).
  find "$CARGO_TARGET_DIR/$profile/deps" -maxdepth 1 -type f -executable -regextype posix-extended \
    -regex '.*/[a-z0-9_]+-[0-9a-f]{16}' -printf '%T@ %p\n' 2>/dev/null | sort -rn |
    awk '{ n = $2; sub(/.*\//, "", n); sub(/-[0-9a-f]+$/, "", n); if (seen[n]++ >= 2 || $1 < limit) print $2 }' \
      limit="$(( $(date +%s) - 3 * 86400 ))" | xargs -r rm -f || true
done
du -sh "$CARGO_TARGET_DIR" 2>/dev/null || true

echo "== fmt"
cargo fmt --all --check

echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed;' "$log" | awk '{s+=$1} END {print s+0}')
if [ "$status" -ne 0 ]; then
  echo "tests: $passed passed, $failed failed"
  exit "$status"
fi

echo "== benchmark smoke (every benchmark harness runs, small; no timing asserted)"
# Built with the test build's dev profile, whose dependencies are already
# compiled: an optimised build of DataFusion (the ci-bench profile) would add
# about 29 minutes to a clean CI run for figures nobody reads here. The
# figures to quote come from `cargo bench` (see README).
WEIR_BENCH_EVENTS=200000 cargo bench --locked --profile dev --bench e2e_throughput -- --quick
WEIR_BENCH_EVENTS=50000 cargo bench --locked --profile dev --bench kafka_throughput
WEIR_BENCH_KEYS=10000 cargo bench --locked --profile dev --bench alerts_throughput
WEIR_BENCH_LINES=200000 cargo bench --locked --profile dev --bench ship_throughput
# JSON logs to windows against DuckDB, clean and dirty input, 1 and all
# cores: window counts checked against the generator's.
WEIR_BIN="$CARGO_TARGET_DIR/debug/weir" WEIR_BENCH_SMOKE=1 \
  "$WEIR_PYTHON_BIN/python" benches/windows_vs_duckdb.py 100000

echo "tests: $passed passed, $failed failed"
