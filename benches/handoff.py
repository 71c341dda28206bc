#!/usr/bin/env python3
"""In-window event benchmark: `publish` inside a job window against a broker
50 ms of round trip away (a delay proxy on loopback adding 25 ms each way),
handed to the wrapper's open connection (the 0600 unix socket) vs its own
fresh TLS connection (the fallback, forced by unsetting the socket variable).

A job's agent publishes `--events` progress events each way and records the
wall time of each `publish` process; the result is in round trips (50 ms).
The target is <= 1.2 round trips per in-window event.

    cargo build --release && python3 benches/handoff.py [--events 30]
"""

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import free_port, pct, start_mosquitto  # noqa: E402
from publish import make_pki  # noqa: E402

DELAY = 0.025  # each way


async def pump(reader, writer):
    """Copies one direction, each chunk delivered DELAY after it arrived."""
    queue = asyncio.Queue()

    async def deliver():
        loop = asyncio.get_running_loop()
        while True:
            due, data = await queue.get()
            if data is None:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(data)
            await writer.drain()
        writer.close()

    task = asyncio.create_task(deliver())
    loop = asyncio.get_running_loop()
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            await queue.put((loop.time() + DELAY, data))
    finally:
        await queue.put((0, None))
        await task


def start_proxy(listen_port, target_port):
    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, up_writer), pump(up_reader, client_writer),
                             return_exceptions=True)

    async def serve():
        server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
        async with server:
            await server.serve_forever()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()


AGENT = """#!/bin/sh
# $1: how many events; DELEGATE_PUBLISH_SOCKET decides the path.
out="$BENCH_OUT"
i=0
while [ "$i" -lt "$1" ]; do
  s=$(date +%s%N)
  "$TMUX_DELEGATE_BIN" publish --event progress --message "$i" || exit 3
  e=$(date +%s%N)
  echo $(( (e - s) / 1000 )) >> "$out"
  i=$((i + 1))
done
"""


def run_job(binary, home, env, events, mode):
    out = os.path.join(home, f"{mode}.us")
    agent = os.path.join(home, f"agent-{mode}.sh")
    body = AGENT if mode == "socket" else AGENT.replace(
        'out="$BENCH_OUT"', 'out="$BENCH_OUT"\nunset DELEGATE_PUBLISH_SOCKET')
    with open(agent, "w") as f:
        f.write(body.replace("$BENCH_OUT", out))
    os.chmod(agent, 0o755)
    with open(os.path.join(home, "tmux-delegate.toml"), "a") as f:
        f.write(f'\n[agents.bench-{mode}]\ncommand = ["{agent}", "{{prompt}}"]\n'
                'complete_on_exit = true\n')
    done = subprocess.run([binary, "run", "--json", "--agent", f"bench-{mode}",
                           "--prompt", str(events)], cwd=home, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=600)
    if done.returncode != 0:
        sys.exit(f"the {mode} job failed: {done.stderr.decode()}")
    with open(out) as f:
        return [int(line) / 1000 for line in f if line.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--bin", default="target/release/tmux-delegate")
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: run `cargo build --release` first")
    d = tempfile.mkdtemp(prefix="td-handoff-")
    make_pki(d)
    tls, proxied = free_port(), free_port()
    broker = start_mosquitto(d, [tls], listener_options={
        tls: f"cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n",
    })
    start_proxy(proxied, tls)
    home = os.path.join(d, "home")
    os.makedirs(home)
    socket_name = f"td-handoff-{os.getpid()}"
    with open(os.path.join(home, "tmux-delegate.toml"), "w") as f:
        f.write(f'[broker]\nhost = "localhost"\nport = {proxied}\ntls = true\n'
                f'ca_certs = "{d}/ca.crt"\nconnect_timeout = "10s"\n'
                f'[defaults.tmux]\nsocket = "{socket_name}"\nkeep_failed = false\n')
    env = {"PATH": os.environ.get("PATH", ""), "HOME": home,
           "TMUX_DELEGATE_HOME": os.path.join(d, "state"),
           "TMUX_TMPDIR": os.path.join(d, "tmux")}
    os.makedirs(env["TMUX_TMPDIR"])
    results = {}
    try:
        for mode in ("socket", "own"):
            results[mode] = run_job(binary, home, env, args.events, mode)
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        broker.kill()
        broker.wait()
        shutil.rmtree(d, ignore_errors=True)
    rtt = 2 * DELAY * 1000
    print(f"events per mode: {args.events}; broker round trip {rtt:.0f} ms (delay proxy)")
    print("| path | median (p90) | round trips (median) |")
    print("|---|---|---|")
    for mode, label in (("socket", "wrapper's connection (unix socket)"),
                        ("own", "own TLS connection (fallback)")):
        ms = results[mode]
        print(f"| {label} | {statistics.median(ms):.1f} ms ({pct(ms, 90):.1f}) "
              f"| {statistics.median(ms) / rtt:.2f} |")
    ratio = statistics.median(results["socket"]) / rtt
    print(f"target <= 1.2 round trips in the window: {'met' if ratio <= 1.2 else 'NOT met'}"
          f" ({ratio:.2f})")


if __name__ == "__main__":
    main()
