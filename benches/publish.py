#!/usr/bin/env python3
"""Publish benchmark: `tmux-delegate publish` vs `mosquitto_pub -q 1`.

Times one QoS 1 event as a whole process (connect, PUBACK, disconnect) against
a Mosquitto this script starts on a free loopback port, plain and TLS, with the
two clients interleaved run by run so both see the same machine state. Prints
medians, p90s and the ratio; the target is a median ratio <= 1.1.

    cargo build --release && python3 benches/publish.py [--runs 200]
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
from benchlib import free_port, pct, start_mosquitto  # noqa: E402




def openssl(args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_pki(d):
    openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=bench CA", "-days", "1"], d)
    openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"], d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName = DNS:localhost, IP:127.0.0.1\n")
    openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "server.crt"], d)


def timed(cmd, env):
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed * 1000




def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--bin", default="target/release/tmux-delegate")
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: run `cargo build --release` first")
    for tool in ("mosquitto", "mosquitto_pub", "openssl"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install mosquitto mosquitto-clients openssl")

    d = tempfile.mkdtemp(prefix="td-bench-")
    make_pki(d)
    plain, tls = free_port(), free_port()
    broker = start_mosquitto(d, [plain, tls], listener_options={
        tls: f"cafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n",
    })
    payload = json.dumps({"job": "bench", "event": "heartbeat", "attempt": 1, "ts": time.time()})
    results = {}
    try:
        for mode, port in (("plain", plain), ("tls", tls)):
            env = dict(os.environ, TMUX_DELEGATE_HOME=os.path.join(d, "state"),
                       MQTT_BROKER="localhost", MQTT_PORT=str(port))
            ref = ["mosquitto_pub", "-h", "localhost", "-p", str(port), "-q", "1",
                   "-t", "python/mqtt/jobs/bench/events", "-m", payload]
            if mode == "tls":
                env["MQTT_CA_CERTS"] = os.path.join(d, "ca.crt")
                ref += ["--cafile", os.path.join(d, "ca.crt")]
            ours = [binary, "publish", "--job", "bench", "--event", "heartbeat"]
            for _ in range(5):  # warm the page cache and the broker
                timed(ref, env), timed(ours, env)
            ref_ms, ours_ms = [], []
            for _ in range(args.runs):
                ref_ms.append(timed(ref, env))
                ours_ms.append(timed(ours, env))
            results[mode] = (ref_ms, ours_ms)
    finally:
        broker.kill()
        broker.wait()
        shutil.rmtree(d, ignore_errors=True)

    print(f"runs per client and mode: {args.runs}")
    print("| mode | mosquitto_pub median (p90) | tmux-delegate publish median (p90) | ratio of medians |")
    print("|---|---|---|---|")
    worst = 0.0
    for mode, (ref_ms, ours_ms) in results.items():
        ratio = statistics.median(ours_ms) / statistics.median(ref_ms)
        worst = max(worst, ratio)
        print(f"| {mode} | {statistics.median(ref_ms):.2f} ms ({pct(ref_ms, 90):.2f}) "
              f"| {statistics.median(ours_ms):.2f} ms ({pct(ours_ms, 90):.2f}) | {ratio:.2f}x |")
    print(f"target <= 1.10x: {'met' if worst <= 1.10 else 'NOT met'} (worst {worst:.2f}x)")


if __name__ == "__main__":
    main()
