#!/usr/bin/env python3
"""`status --tmux` with 500 jobs: what tmux runs every `status-interval`.

Makes a registry of 500 job records (copies of the committed v1 fixture with
their own ids and a mix of states), then times N runs of
`tmux-delegate status --tmux` against it, beside N runs of
`tmux-delegate --version` (the same process start-up with no registry read)
as the reference. The target is < 20 ms per run.

    cargo build --release && python3 benches/status_line.py [--jobs 500] [--runs 50]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import pct  # noqa: E402

STATES = ["running"] * 6 + ["waiting", "completed", "completed", "failed", "retrying", "cancelled"]


def make_registry(root, jobs, fixture):
    with open(fixture) as f:
        record = json.load(f)
    os.makedirs(os.path.join(root, "jobs"), mode=0o700)
    for n in range(jobs):
        job_id = f"bench-job-{n:04d}"
        record["id"] = job_id
        record["state"] = STATES[n % len(STATES)]
        d = os.path.join(root, "jobs", job_id)
        os.makedirs(d, mode=0o700)
        with open(os.path.join(d, "record.json"), "w") as f:
            json.dump(record, f, indent=2)


def timed(argv, env, runs):
    samples = []
    out = b""
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(argv, env=env, stdout=subprocess.PIPE, check=True).stdout
        samples.append((time.perf_counter() - start) * 1000)
    return samples, out.decode().strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/release/tmux-delegate")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "record-v1.json")
    with tempfile.TemporaryDirectory() as d:
        make_registry(os.path.join(d, "state"), args.jobs, fixture)
        env = {"PATH": os.environ["PATH"], "HOME": d, "TMUX_DELEGATE_HOME": os.path.join(d, "state")}
        line_ms, line = timed([binary, "status", "--tmux"], env, args.runs)
        ref_ms, _ = timed([binary, "--version"], env, args.runs)
    med, ref = statistics.median(line_ms), statistics.median(ref_ms)
    print(f"status --tmux, {args.jobs} jobs: {line!r}")
    print(f"  median {med:.1f} ms, p99 {pct(line_ms, 99):.1f} ms (target < 20 ms)")
    print(f"  reference (--version, no registry read): median {ref:.1f} ms; ratio {med / ref:.2f}x")


if __name__ == "__main__":
    main()
