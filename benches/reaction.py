#!/usr/bin/env python3
"""Supervisor reaction benchmark.

1. Failure -> next attempt's window: a job whose agent exits 1 at once, with
   backoff 0 and 101 attempts. For each of the 100 failures, the time from the
   failure transition (`to: retrying`) to the `window opened` entry of the next
   attempt, both from the job's events.jsonl (written by the supervisor as it
   acts). Target: median < 25 ms, p99 < 100 ms.
2. Hang detection: an agent that sends nothing after the wrapper's `started`
   (liveness = "events", idle = 1s), 20 attempts. Latency = the hung
   transition's time minus (the recorded `started` + idle). Target: < 200 ms.

Starts its own Mosquitto (free loopback port) and a private tmux server.

    cargo build --release && python3 benches/reaction.py
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, pct, start_mosquitto  # noqa: E402






def history(state, name):
    jobs = os.path.join(state, "jobs")
    for job in os.listdir(jobs):
        record = json.load(open(os.path.join(jobs, job, "record.json")))
        if record["spec"]["name"] == name:
            with open(os.path.join(jobs, job, "events.jsonl")) as f:
                return [json.loads(line) for line in f]
    sys.exit(f"no job named {name}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/release/tmux-delegate")
    parser.add_argument("--failures", type=int, default=100)
    parser.add_argument("--hangs", type=int, default=20)
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: run `cargo build --release` first")

    d = tempfile.mkdtemp(prefix="td-reaction-")
    port = free_port()
    broker = start_mosquitto(d, [port])
    socket_name = f"td-bench-{os.getpid()}"
    tmpdir = os.path.join(d, "tmux")
    os.makedirs(tmpdir)
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    env.update(TMUX_TMPDIR=tmpdir, TMUX_DELEGATE_HOME=os.path.join(d, "state"), HOME=d)
    with open(os.path.join(d, "tmux-delegate.toml"), "w") as f:
        f.write(f"""[broker]
host = "127.0.0.1"
port = {port}
[defaults.tmux]
socket = "{socket_name}"
keep_failed = false
kill_grace = "1s"
[defaults.retry]
backoff = "0s"
[agents.fail]
command = ["sh", "-c", "exit 1"]
liveness = "events"
[agents.silent]
command = ["sleep", "30"]
liveness = "events"
""")
    try:
        with open(os.path.join(d, "jobs.toml"), "w") as f:
            f.write(f"""[[jobs]]
name = "fail"
agent = "fail"
[jobs.retry]
max_attempts = {args.failures + 1}
[[jobs]]
name = "silent"
agent = "silent"
[jobs.retry]
max_attempts = {args.hangs}
[jobs.timeouts]
idle = "1s"
""")
        subprocess.run([binary, "run", "--json", "jobs.toml"], cwd=d, env=env,
                       stdout=subprocess.DEVNULL, timeout=600)
        state = os.path.join(d, "state")

        fail = history(state, "fail")
        failed_at = {e["attempt"]: e["ts"] for e in fail
                     if e["type"] == "transition" and e["to"] == "retrying"}
        opened_at = {e["attempt"]: e["ts"] for e in fail
                     if e["type"] == "window" and e["action"] == "opened"}
        reaction = [(opened_at[a + 1] - t) * 1000 for a, t in failed_at.items() if a + 1 in opened_at]

        silent = history(state, "silent")
        started = {e["attempt"]: e["ts"] for e in silent
                   if e["type"] == "event" and e["event"] == "started" and "ignored" not in e}
        hung = {e["attempt"]: e["ts"] for e in silent
                if e["type"] == "transition" and "hung" in (e.get("reason") or "")}
        late = [(hung[a] - (started[a] + 1.0)) * 1000 for a in hung if a in started]
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        broker.kill()
        broker.wait()
        shutil.rmtree(d, ignore_errors=True)

    print(f"failure -> next window ({len(reaction)} failures): median {statistics.median(reaction):.1f} ms, "
          f"p99 {pct(reaction, 99):.1f} ms, max {max(reaction):.1f} ms "
          f"(target median < 25, p99 < 100)")
    print(f"hang declared after its idle deadline ({len(late)} hangs): median {statistics.median(late):.1f} ms, "
          f"max {max(late):.1f} ms (target < 200)")


if __name__ == "__main__":
    main()
