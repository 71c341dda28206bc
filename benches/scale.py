#!/usr/bin/env python3
"""Scale benchmark: one supervisor with many concurrent jobs.

1. Starts `tmux-delegate run` with N jobs (default 500) whose agents sleep,
   on a Mosquitto this script starts and a private tmux server, and waits
   until every job is running.
2. Idle cost: the supervisor's RSS (VmRSS) and its CPU share over 10 s with
   nothing happening but its own ticks.
3. Event throughput: publishes signed events (each job's key from its 0600
   record) at a fixed rate with paho-mqtt (the original tool's client) to the
   running jobs, and measures each event's delay from its `ts` to the
   supervisor recording it (`ts - sent` in events.jsonl).
4. Ctrl-C: every job is cancelled and every window closed.

Targets (SPEC 9): < 40 MB RSS and < 5 % of a core idle with 500 jobs;
1,000 events/s end to end with p99 < 10 ms.

    pip install paho-mqtt && cargo build --release && python3 benches/scale.py [--jobs 500]
"""

import argparse
import hashlib
import hmac
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, pct, start_mosquitto  # noqa: E402

try:
    import paho.mqtt.client as mqtt
except ImportError:
    sys.exit("needs paho-mqtt: pip install paho-mqtt")






def proc_stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def signed(job, kind, key, seq):
    event = {"job": job, "event": kind, "attempt": 1, "seq": seq, "ts": time.time()}
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    event["sig"] = hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()
    return json.dumps(event)


def load(port, jobs, kind, rate, seconds):
    """Publishes `rate` events/s for `seconds`, round robin over jobs."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}-{kind}",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    total = rate * seconds
    start = time.perf_counter()
    for i in range(total):
        job, key = jobs[i % len(jobs)]
        client.publish(f"python/mqtt/jobs/{job}/events", signed(job, kind, key, i + 1), qos=1)
        due = start + (i + 1) / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.perf_counter() - start
    time.sleep(1.0)
    client.loop_stop()
    client.disconnect()
    return total / elapsed


def delays(state, ids, kind):
    out = []
    for job in ids:
        with open(os.path.join(state, "jobs", job, "events.jsonl")) as f:
            for line in f:
                entry = json.loads(line)
                if entry.get("type") == "event" and entry.get("event") == kind and "sent" in entry \
                        and "ignored" not in entry and entry.get("signature") == "valid":
                    out.append((entry["ts"] - entry["sent"]) * 1000)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default="target/release/tmux-delegate")
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    d = tempfile.mkdtemp(prefix="td-scale-")
    state = os.path.join(d, "state")
    port = free_port()
    broker = start_mosquitto(d, [port], extra="max_queued_messages 100000\n")
    sock = f"td-scale-{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if k != "TMUX" and not k.startswith("MQTT_")}
    env.update(TMUX_TMPDIR=d, TMUX_DELEGATE_HOME=state, HOME=d)
    with open(os.path.join(d, "tmux-delegate.toml"), "w") as f:
        f.write(f"""[broker]
host = "127.0.0.1"
port = {port}
[defaults.tmux]
socket = "{sock}"
keep_failed = false
kill_grace = "2s"
[defaults.timeouts]
start = "5m"
[agents.idle]
command = ["sleep", "3600"]
liveness = "events"
""")
    with open(os.path.join(d, "jobs.toml"), "w") as f:
        for i in range(args.jobs):
            f.write(f'[[jobs]]\nname = "j{i}"\nagent = "idle"\n')
    run_log = open(os.path.join(d, "run.jsonl"), "w")
    started = time.monotonic()
    run = subprocess.Popen([binary, "run", "--json", "jobs.toml"], cwd=d, env=env,
                           stdout=run_log, stderr=subprocess.DEVNULL)
    try:
        while True:
            with open(os.path.join(d, "run.jsonl")) as f:
                running = sum(1 for line in f if '"to":"running"' in line)
            if running >= args.jobs:
                break
            if run.poll() is not None or time.monotonic() - started > 600:
                sys.exit(f"only {running} of {args.jobs} jobs reached running")
            time.sleep(0.5)
        ramp = time.monotonic() - started
        time.sleep(2)
        ticks = os.sysconf("SC_CLK_TCK")
        cpu0, t0 = proc_stat(run.pid), time.monotonic()
        time.sleep(10)
        cpu1, t1 = proc_stat(run.pid), time.monotonic()
        idle_cpu = (cpu1 - cpu0) / ticks / (t1 - t0) * 100
        rss = rss_kb(run.pid) / 1024

        ids = sorted(os.listdir(os.path.join(state, "jobs")))[:50]
        jobs = []
        for job in ids:
            with open(os.path.join(state, "jobs", job, "record.json")) as f:
                jobs.append((job, bytes.fromhex(json.load(f)["event_key"])))
        results = {}
        for kind in ("heartbeat", "progress"):
            achieved = load(port, jobs, kind, args.rate, args.seconds)
            results[kind] = (achieved, delays(state, ids, kind))
        rss_after = rss_kb(run.pid) / 1024

        stop_started = time.monotonic()
        run.send_signal(signal.SIGINT)
        code = run.wait(timeout=300)
        stopped = time.monotonic() - stop_started
    finally:
        if run.poll() is None:
            run.kill()
        subprocess.run(["tmux", "-L", sock, "kill-server"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        broker.kill()
        broker.wait()
        shutil.rmtree(d, ignore_errors=True)

    print(f"{args.jobs} jobs running after {ramp:.1f} s")
    print(f"idle: RSS {rss:.1f} MB, CPU {idle_cpu:.2f} % of a core over 10 s (targets < 40 MB, < 5 %)")
    for kind, (achieved, ms) in results.items():
        print(f"{kind}: offered {achieved:.0f} events/s, recorded {len(ms)} of {args.rate * args.seconds}; "
              f"delay median {statistics.median(ms):.2f} ms, p99 {pct(ms, 99):.2f} ms, max {max(ms):.2f} ms")
    print(f"RSS after the load: {rss_after:.1f} MB")
    print(f"Ctrl-C: all {args.jobs} jobs stopped and run exited ({code}) in {stopped:.1f} s")


if __name__ == "__main__":
    main()
