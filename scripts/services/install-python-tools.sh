#!/usr/bin/env bash
# Installs the Python test peers into a virtualenv outside the clone, once:
# moto's S3 server (the S3-compatible endpoint of the archive tests) and duckdb
# (the baseline of the query benchmark), aiosmtpd (the SMTP server of the
# email alert tests) and deltalake (delta-rs for Python: reads the archive as
# a Delta table in the interop test). Prints the venv's bin folder.
set -euo pipefail
venv="${WEIR_CACHE:-$HOME/.cache/weir}/venv"
packages=("moto[server]==5.1.*" "duckdb==1.*" "pytz" "aiosmtpd==1.4.*" "deltalake==1.*")
want="${packages[*]}"
stamp="$venv/.weir-installed"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing $want into $venv" >&2
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}" >&2
  echo "$want" > "$stamp"
fi
echo "$venv/bin"
