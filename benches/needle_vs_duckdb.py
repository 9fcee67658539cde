#!/usr/bin/env python3
"""Needle queries over a large archive: Weir against DuckDB on the same files.

Generates EVENTS log events (default 20,000,000) with high-cardinality ids
(a random trace id per event, a million users, random client addresses) and
realistic messages (templates with numbers, ids, paths and addresses in
them, and a rare word a handful of times), archives them with `weir run`,
then runs, with both engines on the same Parquet files (best of REPEAT):

- a needle by id (`trace_id = '…'`),
- a needle by a rare word (`message ILIKE '%deadlock%'`),
- a needle by IP inside one hour,
- the latest 100 errors of one service,
- a grouped count (by service and severity),

and for each needle the same predicate written so that no index can help
(`concat(col, '')`): the full scan it saves. Prints times, ratios, and
Weir's bytes read and row groups skipped (DataFusion's scan metrics from
EXPLAIN ANALYZE), then the text index's size against the data's.

    benches/needle_vs_duckdb.py [EVENTS]

Needs the `weir` binary ($WEIR_BIN, default the release build in the cargo
target folder) and the duckdb module (scripts/services/install-python-tools.sh).
Disk: about 70 bytes of Parquet and, while it is read, 300 bytes of NDJSON
per event (20M events: 1.4 GB and 6 GB).
"""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time

import duckdb

EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000_000
REPEAT = int(os.environ.get("WEIR_BENCH_REPEAT", "3"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/weir/target"))
WEIR = os.environ.get("WEIR_BIN", os.path.join(TARGET, "release", "weir"))
START = 1_772_323_200  # 2026-03-01T00:00:00Z
STEP_MS = 2  # 20M events span about 11 hours

SERVICES = ["checkout", "payments", "inventory", "search", "auth", "gateway", "email", "ledger"]
PATHS = ["/api/v1/orders", "/api/v1/cart", "/api/v1/users", "/checkout", "/search", "/health"]


def generate(path):
    """Writes EVENTS NDJSON events; returns the values the needles look for."""
    rng = random.Random(42)
    rare_at = {EVENTS * k // 7 for k in range(1, 7)}  # six, spread over the hours
    needles = {}
    with open(path, "w", buffering=1 << 20) as out:
        for i in range(EVENTS):
            ms = START * 1000 + i * STEP_MS
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
            svc = SERVICES[rng.getrandbits(3)]
            r = rng.random()
            ip = f"{rng.randint(1, 223)}.{rng.getrandbits(8)}.{rng.getrandbits(8)}.{rng.randint(1, 254)}"
            trace = f"{rng.getrandbits(64):016x}"
            user = f"u{rng.randint(1, 1_000_000)}"
            n = rng.getrandbits(20)
            lat = rng.getrandbits(10) + 1
            if i in rare_at:
                sev, msg = "ERROR", f"deadlock detected while updating order {n}"
            elif r < 0.03:
                sev = "ERROR"
                msg = (f"connection to db-{n % 16}.internal:5432 reset by peer" if r < 0.015
                       else f"timeout after {lat}ms calling inventory for order {n}")
            elif r < 0.10:
                sev = "WARN"
                msg = (f"slow request {PATHS[n % 6]}/{n} took {lat * 10}ms" if r < 0.07
                       else f"retrying payment {rng.getrandbits(64):016x} attempt {n % 5 + 1}")
            elif r < 0.25:
                sev, msg = "DEBUG", f"query took {lat}ms rows={n % 1000}"
            elif r < 0.6:
                sev, msg = "INFO", f"GET {PATHS[n % 6]}/{n} 200 {lat}ms"
            elif r < 0.8:
                sev, msg = "INFO", f"user {user} logged in from {ip}"
            else:
                sev, msg = "INFO", f"cache hit key=session:{rng.getrandbits(32):08x}"
            status = 500 if sev == "ERROR" else 200
            out.write(
                f'{{"timestamp":"{ts}","service":"{svc}","environment":"production",'
                f'"host":"{svc}-{n % 4}","severity":"{sev}","message":"{msg}","latency_ms":{lat},'
                f'"status":{status},"client_ip":"{ip}","user_id":"{user}","trace_id":"{trace}"}}\n')
            if i == EVENTS // 2:
                needles["trace"] = trace
            if i == EVENTS * 7 // 10:
                needles["ip"] = ip
                needles["hour"] = ms // 3_600_000 * 3600
    return needles


def weir_query(archive, sql, repeat):
    out = subprocess.run([WEIR, "query", sql, "--archive", archive, "--format", "json",
                          "--repeat", str(repeat)], check=True, capture_output=True, text=True)
    best = re.search(r"best of \d+: ([\d.]+) ms", out.stderr)
    return (float(best.group(1)) if best else None), json.loads(out.stdout)["rows"]


def scan_metrics(archive, sql):
    """Bytes read and row groups skipped, from EXPLAIN ANALYZE."""
    _, rows = weir_query(archive, "EXPLAIN ANALYZE " + sql, 2)
    text = " ".join(str(r.get("plan", "")) for r in rows)

    def total(name):
        return sum(float(m) for m in re.findall(name + r"=([\d.]+)", text))

    def pruned(name):
        # "NAME=T total → M matched": skipped = T - M.
        return sum(int(t) - int(m) for t, m in re.findall(name + r"=(\d+) total → (\d+) matched", text))

    scanned = re.findall(r"bytes_scanned=([\d.]+ ?[KMG]?B?)", text)
    return {
        "bytes": "+".join(scanned) if scanned else "?",
        "stats": pruned("row_groups_pruned_statistics") + int(total("row_groups_pruned_time_span")),
        "bloom": pruned("row_groups_pruned_bloom_filter") + int(total("row_groups_pruned_bloom_probe")),
        "text": int(total("row_groups_pruned_text_index")),
        "files": int(total("files_pruned_text_index")),
    }


def main():
    # WEIR_BENCH_KEEP=DIR keeps the generated archive in DIR and reuses it
    # when it is there (to compare two builds on the same files).
    keep = os.environ.get("WEIR_BENCH_KEEP")
    work = keep or tempfile.mkdtemp(prefix="weir-needle-bench-")
    try:
        run(work)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def archive_events(work):
    """Generates and archives the events; returns the needles."""
    events = os.path.join(work, "events.ndjson")
    t = time.time()
    needles = generate(events)
    print(f"generated {EVENTS:,} events ({os.path.getsize(events) / 2**30:.2f} GiB NDJSON) in {time.time() - t:.0f} s")
    rules = os.path.join(work, "needle.rules")
    with open(rules, "w") as f:
        f.write(f'source app = file(path: "{events}") format json\n'
                "  fields { latency_ms: float, status: int, client_ip: string, user_id: string, trace_id: string }\n"
                "archive app raw none\n")
    t = time.time()
    subprocess.run([WEIR, "run", rules, "--quiet", "--data-dir", work], check=True,
                   env={**os.environ, "WEIR_LOG": "warn"})
    print(f"archived in {time.time() - t:.0f} s")
    os.remove(events)
    return needles


def run(work):
    saved = os.path.join(work, f"needles-{EVENTS}.json")
    if os.path.exists(saved):
        with open(saved) as f:
            needles = json.load(f)
        print(f"reusing the archive of {EVENTS:,} events in {work}")
    else:
        os.makedirs(work, exist_ok=True)
        needles = archive_events(work)
        with open(saved, "w") as f:
            json.dump(needles, f)
    archive = os.path.join(work, "archive")
    files = [os.path.join(d, n) for d, _, fs in os.walk(archive) for n in fs if n.endswith(".parquet")]
    data = sum(os.path.getsize(f) for f in files)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    glob = f"{archive}/stream=app/*/*/*.parquet"
    con.execute(f"CREATE VIEW app AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true)")
    index = con.execute(
        "SELECT coalesce(sum(octet_length(value)), 0) FROM parquet_kv_metadata(?) "
        "WHERE decode(key) = 'weir.text_index'", [files]).fetchone()[0]
    groups = con.execute(
        "SELECT count(*) FROM (SELECT DISTINCT file_name, row_group_id FROM parquet_metadata(?))",
        [files]).fetchone()[0]
    print(f"archive: {len(files)} files, {groups} row groups, {data / 2**20:.0f} MiB; "
          f"text index {index / 2**20:.2f} MiB ({100 * index / data:.2f} % of the data)")

    hour = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(needles["hour"]))
    hour_end = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(needles["hour"] + 3600))
    in_hour = f"\"timestamp\" >= TIMESTAMP '{hour}Z' AND \"timestamp\" < TIMESTAMP '{hour_end}Z'"
    duck_hour = f"\"timestamp\" >= TIMESTAMPTZ '{hour}Z' AND \"timestamp\" < TIMESTAMPTZ '{hour_end}Z'"
    # (name, Weir SQL, DuckDB SQL, Weir SQL no index can help or None)
    queries = [
        ("needle by id",
         f"SELECT * FROM app WHERE trace_id = '{needles['trace']}'",
         f"SELECT * FROM app WHERE trace_id = '{needles['trace']}'",
         f"SELECT * FROM app WHERE concat(trace_id, '') = '{needles['trace']}'"),
        ("needle by rare word",
         "SELECT * FROM app WHERE message ILIKE '%deadlock%'",
         "SELECT * FROM app WHERE message ILIKE '%deadlock%'",
         "SELECT * FROM app WHERE concat(message, '') ILIKE '%deadlock%'"),
        ("needle by IP in 1 hour",
         f"SELECT * FROM app WHERE client_ip = '{needles['ip']}' AND {in_hour}",
         f"SELECT * FROM app WHERE client_ip = '{needles['ip']}' AND {duck_hour}",
         f"SELECT * FROM app WHERE concat(client_ip, '') = '{needles['ip']}' AND {in_hour}"),
        ("latest 100 errors of X",
         "SELECT * FROM app WHERE service = 'payments' AND severity = 'ERROR' ORDER BY \"timestamp\" DESC LIMIT 100",
         "SELECT * FROM app WHERE service = 'payments' AND severity = 'ERROR' ORDER BY \"timestamp\" DESC LIMIT 100",
         None),
        ("grouped count",
         "SELECT service, severity, count(*) AS n FROM app GROUP BY 1, 2 ORDER BY 1, 2",
         "SELECT service, severity, count(*) AS n FROM app GROUP BY 1, 2 ORDER BY 1, 2",
         None),
    ]
    print(f"\n{'query':<24}{'rows':>6}{'weir ms':>9}{'duckdb':>9}{'ratio':>7}{'scan ms':>9}{'speed-up':>9}"
          f"  weir bytes read; row groups skipped by stats/bloom/text index; files skipped")
    for name, weir_sql, duck_sql, scan_sql in queries:
        weir_ms, rows = weir_query(archive, weir_sql, REPEAT)
        best = float("inf")
        for _ in range(REPEAT):
            t = time.perf_counter()
            duck_rows = con.execute(duck_sql).fetchall()
            best = min(best, time.perf_counter() - t)
        duck_ms = best * 1000
        if len(rows) != len(duck_rows):
            sys.exit(f"{name}: weir returned {len(rows)} rows, duckdb {len(duck_rows)}")
        scan = ""
        if scan_sql:
            scan_ms, scan_rows = weir_query(archive, scan_sql, REPEAT)
            if len(scan_rows) != len(rows):
                sys.exit(f"{name}: the full scan returned {len(scan_rows)} rows, the indexed query {len(rows)}")
            scan = f"{scan_ms:>9.1f}{scan_ms / weir_ms:>8.1f}x"
        else:
            scan = f"{'':>9}{'':>9}"
        m = scan_metrics(archive, weir_sql)
        print(f"{name:<24}{len(rows):>6}{weir_ms:>9.1f}{duck_ms:>9.1f}{weir_ms / duck_ms:>6.2f}x{scan}"
              f"  {m['bytes']}; {m['stats']}/{m['bloom']}/{m['text']}; {m['files']}")


if __name__ == "__main__":
    main()
