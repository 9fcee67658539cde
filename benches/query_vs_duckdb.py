#!/usr/bin/env python3
"""Weir's SQL over the archive against DuckDB on the same Parquet files, in one run.

Builds an archive with `weir run` (generated events; a second archive of the
same events with whole lines kept gives the NDJSON input's size), then runs
five log queries with both engines, best of REPEAT runs each, and prints the
time ratios and the archive size against the NDJSON input. Then the cost of
a user's scope (the row filter inside every table, docs/security.md): the
same queries with a scope that selects every event, and with one that
selects a sixth of them.

    benches/query_vs_duckdb.py [EVENTS]      (default 2,000,000)

Needs the release `weir` binary ($WEIR_BIN, default the cargo target folder)
and the duckdb module (scripts/services/install-python-tools.sh).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import duckdb

EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
REPEAT = int(os.environ.get("WEIR_BENCH_REPEAT", "3"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/weir/target"))
WEIR = os.environ.get("WEIR_BIN", os.path.join(TARGET, "release", "weir"))

# (name, Weir/DataFusion SQL, DuckDB SQL) — the same question, each dialect's
# spelling of a percentile.
QUERIES = [
    ("count by service",
     "SELECT service, count(*) AS n FROM app GROUP BY service ORDER BY n DESC",
     "SELECT service, count(*) AS n FROM app GROUP BY service ORDER BY n DESC"),
    ("error rate per minute",
     "SELECT date_trunc('minute', timestamp) AS m, avg(CASE WHEN severity IN ('ERROR', 'FATAL') THEN 1.0 ELSE 0.0 END) AS rate FROM app GROUP BY m ORDER BY m",
     "SELECT date_trunc('minute', timestamp) AS m, avg(CASE WHEN severity IN ('ERROR', 'FATAL') THEN 1.0 ELSE 0.0 END) AS rate FROM app GROUP BY m ORDER BY m"),
    ("top-k messages",
     "SELECT message, count(*) AS n FROM app GROUP BY message ORDER BY n DESC LIMIT 10",
     "SELECT message, count(*) AS n FROM app GROUP BY message ORDER BY n DESC LIMIT 10"),
    ("p99 latency by service",
     "SELECT service, approx_percentile_cont(latency_ms, 0.99) AS p99 FROM app GROUP BY service ORDER BY service",
     "SELECT service, approx_quantile(latency_ms, 0.99) AS p99 FROM app GROUP BY service ORDER BY service"),
    ("full-text LIKE",
     "SELECT count(*) AS n FROM app WHERE message LIKE '%timeout%'",
     "SELECT count(*) AS n FROM app WHERE message LIKE '%timeout%'"),
]


def build_archive(work, raw):
    """Archives EVENTS generated events under WORK/archive with `raw RAW`."""
    os.makedirs(work, exist_ok=True)
    rules = os.path.join(work, "gen.rules")
    with open(rules, "w") as f:
        f.write(
            f'source app = generator(rate: 0, count: {EVENTS}, start: "2026-03-01T00:00:00Z", step: 5ms) format json\n'
            '  fields { latency_ms: float, status: int, client_ip: ip, user_id: string, trace_id: string }\n'
            f'archive app roll at 256MB raw {raw}\n'
        )
    t = time.time()
    subprocess.run([WEIR, "run", rules, "--quiet", "--data-dir", work], check=True,
                   env={**os.environ, "WEIR_LOG": "warn"})
    print(f"built the archive of {EVENTS:,} events (raw {raw}) in {time.time() - t:.1f} s")
    archive = os.path.join(work, "archive")
    size = sum(os.path.getsize(os.path.join(d, n))
               for d, _, files in os.walk(archive) for n in files if n.endswith(".parquet"))
    return archive, size


def main():
    work = tempfile.mkdtemp(prefix="weir-query-bench-")
    try:
        run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(work):
    # The same events twice: with whole lines in `_raw` (which gives the
    # NDJSON input's exact size) and as archived by default.
    full, full_bytes = build_archive(os.path.join(work, "full"), "full")
    ndjson_bytes = duckdb.connect().execute(
        f"SELECT sum(strlen(_raw) + 1) FROM read_parquet('{full}/stream=app/*/*/*.parquet')").fetchone()[0]
    archive, parquet_bytes = build_archive(os.path.join(work, "rest"), "rest")
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute(
        f"CREATE VIEW app AS SELECT * FROM read_parquet('{archive}/stream=app/*/*/*.parquet', "
        "hive_partitioning = true, union_by_name = true)")
    print(f"NDJSON input {ndjson_bytes / 2**20:.1f} MiB; archive {parquet_bytes / 2**20:.1f} MiB "
          f"({ndjson_bytes / parquet_bytes:.1f}x smaller; with whole lines kept (raw full) "
          f"{full_bytes / 2**20:.1f} MiB, {ndjson_bytes / full_bytes:.1f}x)")

    print(f"{'query':<24}{'weir ms':>10}{'duckdb ms':>11}{'ratio':>8}")
    ratios = []
    for name, weir_sql, duck_sql in QUERIES:
        out = subprocess.run(
            [WEIR, "query", weir_sql, "--archive", archive, "--format", "json", "--repeat", str(REPEAT)],
            check=True, capture_output=True, text=True)
        weir_ms = float(re.search(r"best of \d+: ([\d.]+) ms", out.stderr).group(1))
        weir_rows = json.loads(out.stdout)["rows"]
        best = float("inf")
        for _ in range(REPEAT):
            t = time.perf_counter()
            duck_rows = con.execute(duck_sql).fetchall()
            best = min(best, time.perf_counter() - t)
        duck_ms = best * 1000
        if len(weir_rows) != len(duck_rows):
            sys.exit(f"{name}: weir returned {len(weir_rows)} rows, duckdb {len(duck_rows)}")
        ratios.append(weir_ms / duck_ms)
        print(f"{name:<24}{weir_ms:>10.1f}{duck_ms:>11.1f}{weir_ms / duck_ms:>7.2f}x")
    geo = 1.0
    for r in ratios:
        geo *= r
    print(f"geometric mean ratio (weir / duckdb): {geo ** (1 / len(ratios)):.2f}x")

    print(f"\nscope cost: {'query':<24}{'none ms':>9}{'all ms':>9}{'ratio':>8}{'checkout ms':>13}")
    worst = 0.0
    for name, weir_sql, _ in QUERIES:
        times = []
        for scope in [None, 'environment!="nowhere"', 'service="checkout"']:
            cmd = [WEIR, "query", weir_sql, "--archive", archive, "--format", "json",
                   "--repeat", str(REPEAT)]
            if scope:
                cmd += ["--scope", scope]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True)
            times.append(float(re.search(r"best of \d+: ([\d.]+) ms", out.stderr).group(1)))
        worst = max(worst, times[1] / times[0])
        print(f"            {name:<24}{times[0]:>9.1f}{times[1]:>9.1f}{times[1] / times[0]:>7.2f}x{times[2]:>13.1f}")
    print(f"worst cost of a scope that selects everything: {worst:.2f}x (target <= 1.10x)")

    # The console's search view: the three queries it sends for a filter
    # over all time (count, volume by severity per bucket, newest 200 rows),
    # run one after the other here (the page sends them at once).
    where = "WHERE (CAST(\"severity\" AS VARCHAR) IN ('WARN', 'ERROR', 'FATAL'))"
    search = [
        f"SELECT count(*) AS n FROM app {where}",
        "SELECT date_bin(INTERVAL '3600 seconds', \"timestamp\", TIMESTAMP '1970-01-01T00:00:00Z') AS t, "
        f"CAST(severity AS VARCHAR) AS severity, count(*) AS n FROM app {where} GROUP BY 1, 2 ORDER BY 1",
        f"SELECT * FROM app {where} ORDER BY \"timestamp\" DESC LIMIT 200",
    ]
    total = 0.0
    for q in search:
        out = subprocess.run([WEIR, "query", q, "--archive", archive, "--format", "json",
                              "--repeat", str(REPEAT)], check=True, capture_output=True, text=True)
        total += float(re.search(r"best of \d+: ([\d.]+) ms", out.stderr).group(1))
    print(f"console search (count + histogram + first page, severity >= warn, all time): "
          f"{total:.0f} ms in sequence (target < 1000 ms)")


if __name__ == "__main__":
    main()
