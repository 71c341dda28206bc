#!/usr/bin/env python3
"""Fleet throughput: N jobs over R runners of one pool, nothing lost.

Writes a `broker setup --fleet` bundle (TLS, passwords, ACL), runs Mosquitto
on it, starts R runners (each its own tmux server on a private socket and
its own registry) and submits N jobs whose agent exits at once, then waits
for every retained state to be terminal (`submit --wait`). Reports the wall
time, jobs per second, how many each runner ran and how many jobs did not
complete exactly once (the target: none).

    cargo build --release && python3 benches/fleet.py [--jobs 2000 --runners 4]
"""

import argparse
import collections
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port  # noqa: E402


def log_file(logs, name):
    """Where a process's stderr goes: DIR/NAME.log with --keep-logs, else nowhere."""
    return open(os.path.join(logs, f"{name}.log"), "w") if logs else subprocess.DEVNULL


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runners", type=int, default=4)
    parser.add_argument("--max-parallel", type=int, default=8)
    parser.add_argument("--bin", default="target/release/tmux-delegate")
    parser.add_argument("--broker-queue", type=int, metavar="N",
                        help="Mosquitto's max_queued_messages instead of the bundle's "
                             "(1000 is Mosquitto's default: shows lost messages repaired)")
    parser.add_argument("--keep-logs", metavar="DIR",
                        help="write the broker's, the runners' and submit's logs into DIR")
    args = parser.parse_args()
    # `timeout`, a CI runner or Ctrl-C of a shell: stop through `finally`,
    # never leaving runners, their tmux servers and the broker behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    binary = os.path.abspath(args.bin)
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: run `cargo build --release` first")
    d = tempfile.mkdtemp(prefix="td-fleet-")
    os.chmod(d, 0o755)  # Mosquitto started as root drops to its own user
    port = free_port()
    base_env = {"PATH": os.environ.get("PATH", "")}
    bundle = os.path.join(d, "bundle")
    subprocess.run([binary, "broker", "setup", bundle, "--host", "localhost", "--add-localhost",
                    "--bind", "127.0.0.1", "--port", str(port), "--fleet"],
                   env=dict(base_env, HOME=d), cwd=d, check=True, stdout=subprocess.DEVNULL)
    if args.broker_queue is not None:
        conf_path = os.path.join(bundle, "mosquitto/mosquitto.conf")
        conf = [line for line in open(conf_path).read().splitlines()
                if not line.startswith("max_queued_messages")]
        conf.append(f"max_queued_messages {args.broker_queue}")
        with open(conf_path, "w") as f:
            f.write("\n".join(conf) + "\n")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    logs = os.path.abspath(args.keep_logs) if args.keep_logs else None
    if logs:
        os.makedirs(logs, exist_ok=True)
    broker = subprocess.Popen([mosquitto, "-c", os.path.join(bundle, "mosquitto/mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=log_file(logs, "mosquitto"))
    time.sleep(0.5)
    runner_conf = open(os.path.join(bundle, "runner.toml")).read()
    runners, sockets = [], []
    try:
        for i in range(args.runners):
            home = os.path.join(d, f"r{i}")
            os.makedirs(os.path.join(home, "tmux"))
            sock = f"td-fleet-bench-{os.getpid()}-{i}"
            sockets.append((sock, os.path.join(home, "tmux")))
            with open(os.path.join(home, "tmux-delegate.toml"), "w") as f:
                f.write(runner_conf + f'\n[defaults.tmux]\nsocket = "{sock}"\nkeep_failed = false\n'
                        '[agents.noop]\ncommand = ["/bin/sh", "-c", '
                        f'"echo \\"$DELEGATE_JOB_ID\\" >> {home}/ran", "noop", "{{prompt}}"]\n'
                        'complete_on_exit = true\n')
            env = dict(base_env, HOME=home, TMUX_TMPDIR=os.path.join(home, "tmux"),
                       TMUX_DELEGATE_HOME=os.path.join(home, "state"))
            runners.append(subprocess.Popen(
                [binary, "runner", "--name", f"r{i}", "--max-parallel", str(args.max_parallel)],
                cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=log_file(logs, f"r{i}")))
        time.sleep(2)
        sub = os.path.join(d, "submitter")
        os.makedirs(sub)
        shutil.copy(os.path.join(bundle, "submitter.toml"), os.path.join(sub, "tmux-delegate.toml"))
        with open(os.path.join(sub, "jobs.toml"), "w") as f:
            for i in range(args.jobs):
                f.write(f'[[jobs]]\nname = "n{i}"\nagent = "noop"\nprompt = "{i}"\n\n')
        start = time.monotonic()
        done = subprocess.run([binary, "submit", "jobs.toml", "--wait", "--timeout", "3600"],
                              cwd=sub, env=dict(base_env, HOME=sub), capture_output=True, text=True)
        wall = time.monotonic() - start
        if logs:
            with open(os.path.join(logs, "submit.log"), "w") as f:
                f.write(done.stderr)
        ids = done.stdout.split()
        ends = collections.Counter()
        per_runner = collections.Counter()
        for line in done.stderr.splitlines():
            if ": completed (attempt" in line:
                ends[line.split(":")[0]] += 1
                per_runner[line.rsplit(" on ", 1)[-1].split(")")[0]] += 1
        runs = collections.Counter()
        for i in range(args.runners):
            ran = os.path.join(d, f"r{i}", "ran")
            if os.path.exists(ran):
                runs.update(open(ran).read().split())
        not_once = [i for i in ids if ends[i] != 1 or runs[i] != 1]
        reoffered = sum(1 for line in done.stderr.splitlines()
                        if ": completed (attempt" in line and "(attempt 1 " not in line)
        print(f"jobs {args.jobs}, runners {args.runners} x max_parallel {args.max_parallel}")
        print(f"submit --wait exit {done.returncode}; wall {wall:.1f} s; "
              f"{len(ids) / wall:.1f} jobs/s")
        print("per runner: " + ", ".join(f"{r} {n}" for r, n in sorted(per_runner.items())))
        print(f"agent runs: {sum(runs.values())}; completed at a later attempt: {reoffered}")
        print(f"not run and completed exactly once: {len(not_once)} (target 0)")
    finally:
        for r in runners:
            r.send_signal(signal.SIGINT)
        for r in runners:
            try:
                r.wait(timeout=30)
            except subprocess.TimeoutExpired:
                r.kill()
        for sock, tmpdir in sockets:
            subprocess.run(["tmux", "-L", sock, "kill-server"], env=dict(base_env, TMUX_TMPDIR=tmpdir),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        broker.kill()
        broker.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
