#!/usr/bin/env python3
"""`run` start-up: from launching the process to its first job window.

Runs `tmux-delegate run` of a job whose agent exits at once, N times, on the
embedded broker (nothing configured) and on a Mosquitto this script starts,
and reads the `window opened` time from the job's events.jsonl. Uses a
private tmux server; the first run of each kind also starts that server.

    cargo build --release && python3 benches/startup.py [--runs 10]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, start_mosquitto  # noqa: E402




def opened_at(state):
    jobs = os.path.join(state, "jobs")
    newest = max(os.listdir(jobs), key=lambda j: os.path.getmtime(os.path.join(jobs, j)))
    with open(os.path.join(jobs, newest, "events.jsonl")) as f:
        for line in f:
            entry = json.loads(line)
            if entry["type"] == "window" and entry["action"] == "opened":
                return entry["ts"]
    sys.exit("no window was opened")


def measure(binary, d, env, broker_lines, runs):
    with open(os.path.join(d, "tmux-delegate.toml"), "w") as f:
        f.write(broker_lines + """
[defaults.tmux]
socket = "td-startup-%d"
keep_failed = false
[agents.quick]
command = ["true"]
""" % os.getpid())
    samples = []
    for _ in range(runs):
        start = time.time()
        subprocess.run([binary, "run", "--json", "--agent", "quick", "--prompt", "x"], cwd=d, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        samples.append((opened_at(env["TMUX_DELEGATE_HOME"]) - start) * 1000)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/release/tmux-delegate")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    d = tempfile.mkdtemp(prefix="td-startup-")
    env = {k: v for k, v in os.environ.items() if k != "TMUX" and not k.startswith("MQTT_")}
    env.update(TMUX_TMPDIR=d, TMUX_DELEGATE_HOME=os.path.join(d, "state"), HOME=d)
    port = free_port()
    broker = start_mosquitto(d, [port])
    try:
        embedded = measure(binary, d, env, "", args.runs)
        mosquitto = measure(binary, d, env, f'[broker]\nhost = "127.0.0.1"\nport = {port}\n', args.runs)
    finally:
        subprocess.run(["tmux", "-L", "td-startup-%d" % os.getpid(), "kill-server"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        broker.kill()
        broker.wait()
        shutil.rmtree(d, ignore_errors=True)
    for name, samples in (("embedded broker", embedded), ("Mosquitto", mosquitto)):
        print(f"{name}: process start -> first window, median {statistics.median(samples):.1f} ms, "
              f"min {min(samples):.1f}, max {max(samples):.1f} ({len(samples)} runs)")


if __name__ == "__main__":
    main()
