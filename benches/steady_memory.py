#!/usr/bin/env python3
"""Memory stays flat however much goes through: `weir run` over GB of JSON.

Runs `weir run` on the built-in generator (NDJSON lines of about 280 bytes,
decoded like any source's) as fast as it goes, for about GB gigabytes of
events (default 10), through what a production process does with each
event: the archive (Parquet, rolled every 5 s) and two pipelines — the
windows benchmark's job (severity >= warn, 1-minute windows by service and
environment, count and p99) and 5-minute windows by user id (tens of
thousands of keys open). Samples the process's RSS every half second and
prints it over the run; fails when the last third's peak is more than 25 %
above the peak of the first third after warm-up (memory growing with
input), or the run does not account for every event.

    benches/steady_memory.py [GB]

Needs the `weir` binary ($WEIR_BIN, default the release build in the cargo
target folder). Disk: the archive, about 15 % of the input (10 GB: 1.5 GB),
removed at the end. Bounded: it stops when the generator's count is done.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

GB = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
LINE_BYTES = 280  # the generator's lines, on average
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/weir/target"))
WEIR = os.environ.get("WEIR_BIN", os.path.join(TARGET, "release", "weir"))

RULES = """source app = generator(rate: 0, count: {count}, seed: 7, start: "2026-03-01T00:00:00Z", step: 1ms)
  format json fields {{ latency_ms: float, status: int, user_id: string, trace_id: string }}
archive app to "file://{work}/archive" roll every 5s
pipeline win {{
  from app
  | where severity >= warn
  | window tumbling 1m by service, environment {{ n = count(), p99 = quantile(latency_ms, 0.99) }}
  | to out
}}
pipeline users {{
  from app
  | window tumbling 5m by user_id max_keys 1000000 {{ n = count() }}
  | to users
}}
output out = file(path: "{work}/win.ndjson")
output users = file(path: "{work}/users.ndjson")
"""


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
        return int(m.group(1)) / 1024 if m else None
    except OSError:
        return None


def run(work):
    count = int(GB * 1e9 / LINE_BYTES)
    rules = os.path.join(work, "job.rules")
    with open(rules, "w") as f:
        f.write(RULES.format(count=count, work=work))
    print(f"{count:,} events (about {GB:g} GB of NDJSON), archive + 2 pipelines, "
          f"{os.cpu_count()} cores")
    env = dict(os.environ, WEIR_LOG="warn")
    started = time.perf_counter()
    p = subprocess.Popen([WEIR, "run", "--quiet", "--data-dir", os.path.join(work, "data"), rules],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples = []
    while p.poll() is None:
        r = rss_mib(p.pid)
        if r is not None:
            samples.append((time.perf_counter() - started, r))
        time.sleep(0.5)
    err = p.stderr.read().decode(errors="replace")
    secs = time.perf_counter() - started
    if p.returncode != 0:
        sys.exit(f"weir failed ({p.returncode}): {err[-2000:]}")
    done = re.search(r"done: (\d+) events", err)
    if not done or int(done.group(1)) != count:
        sys.exit(f"expected {count} events, weir said: {err[-500:]}")
    print(f"{secs:.1f} s, {count / secs:,.0f} events/s, "
          f"{GB * 1e9 / secs / 2**20:,.0f} MiB/s of NDJSON")
    print("| elapsed | RSS MiB |")
    print("|---|---|")
    step = max(1, len(samples) // 12)
    for t, r in samples[::step]:
        print(f"| {t:5.1f} s | {r:.0f} |")
    # Warm-up: the first 10 % of the run (windows and keys filling up).
    body = [r for t, r in samples if t >= secs * 0.1]
    if len(body) < 6:
        sys.exit("too few samples: make GB larger")
    third = len(body) // 3
    first, last = max(body[:third]), max(body[-third:])
    print(f"peak RSS: first third {first:.0f} MiB, last third {last:.0f} MiB "
          f"({(last / first - 1) * 100:+.1f} %), overall {max(r for _, r in samples):.0f} MiB")
    if last > first * 1.25:
        sys.exit("RSS grows with the input")


def main():
    if not os.path.exists(WEIR):
        sys.exit(f"no weir binary at {WEIR} (cargo build --release, or set WEIR_BIN)")
    work = tempfile.mkdtemp(prefix="weir-steady-")
    try:
        run(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
