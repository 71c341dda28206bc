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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runners", type=int, default=4)
    parser.add_argument("--max-parallel", type=int, default=8)
    parser.add_argument("--bin", default="target/release/tmux-delegate")
    args = parser.parse_args()
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
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    broker = subprocess.Popen([mosquitto, "-c", os.path.join(bundle, "mosquitto/mosquitto.conf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
                        '[agents.noop]\ncommand = ["/bin/true", "{prompt}"]\ncomplete_on_exit = true\n')
            env = dict(base_env, HOME=home, TMUX_TMPDIR=os.path.join(home, "tmux"),
                       TMUX_DELEGATE_HOME=os.path.join(home, "state"))
            runners.append(subprocess.Popen(
                [binary, "runner", "--name", f"r{i}", "--max-parallel", str(args.max_parallel)],
                cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
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
        ids = done.stdout.split()
        ends = collections.Counter()
        per_runner = collections.Counter()
        for line in done.stderr.splitlines():
            if ": completed (attempt" in line:
                ends[line.split(":")[0]] += 1
                per_runner[line.rsplit(" on ", 1)[-1].split(")")[0]] += 1
        not_once = [i for i in ids if ends[i] != 1]
        print(f"jobs {args.jobs}, runners {args.runners} x max_parallel {args.max_parallel}")
        print(f"submit --wait exit {done.returncode}; wall {wall:.1f} s; "
              f"{len(ids) / wall:.1f} jobs/s")
        print("per runner: " + ", ".join(f"{r} {n}" for r, n in sorted(per_runner.items())))
        print(f"not completed exactly once: {len(not_once)} (target 0)")
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
