"""Shared by the benchmark scripts: ports, percentiles, a Mosquitto of their own."""

import os
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def start_mosquitto(directory, ports, extra="", listener_options=None):
    """Starts Mosquitto with one listener per port (`listener_options` maps a
    port to lines that configure that listener, e.g. TLS; `extra` holds
    global lines) and waits until every port accepts connections."""
    listener_options = listener_options or {}
    conf = os.path.join(directory, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("user root\nper_listener_settings false\nallow_anonymous true\nset_tcp_nodelay true\n")
        f.write(extra)
        for port in ports:
            f.write(f"listener {port} 127.0.0.1\n")
            f.write(listener_options.get(port, ""))
    proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    proc.kill()
                    sys.exit("mosquitto did not start")
                time.sleep(0.01)
    return proc
