#!/usr/bin/python3
"""Memory a STOMP broker holds per connection: opens N connections (CONNECT, wait for
CONNECTED; with --subscribe also SUBSCRIBE to one topic and wait for its RECEIPT), lets the broker
settle, and prints one JSON line with the resident memory of the broker's processes before and
after, and the difference per connection.

  broker_conn_mem.py --port P --connections N [--subscribe TOPIC] [--settle S] PID...

Connections are opened in batches of --batch (default 200), each batch's CONNECTED awaited before
the next, so a broker that bounds unauthenticated connections (stomp-broker: 1,000) is never asked
for more at once. Heart-beats are 0,0: the connections are idle after CONNECTED. Nothing but the
standard library; the broker's PIDs are given (RabbitMQ: every process of the node).
"""
import argparse
import json
import selectors
import socket
import sys
import time


def proc_kb(pids, name, key):
    """The sum over PIDS of /proc/PID/NAME's "KEY: N kB" line (a process gone counts 0)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/{name}") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def rss_kb(pids):
    return proc_kb(pids, "status", "VmRSS")


def private_dirty_kb(pids):
    return proc_kb(pids, "smaps_rollup", "Private_Dirty")


def frames_until(sock, buf, want, deadline):
    """Reads until `want` complete frames (NUL-terminated) arrived; returns their commands."""
    cmds = []
    while len(cmds) < want:
        while b"\0" in buf:
            frame, _, rest = bytes(buf).partition(b"\0")
            buf[:] = rest
            text = frame.lstrip(b"\r\n")
            if text:
                cmds.append(text.split(b"\n", 1)[0].decode(errors="replace"))
            if len(cmds) >= want:
                return cmds
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"waited for {want} frames, got {cmds}")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed by broker after {cmds}")
        buf += chunk
    return cmds


def open_batch(port, n, topic, login, passcode):
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nheart-beat:0,0\nlogin:" + login.encode() +
                  b"\npasscode:" + passcode.encode() + b"\n\n\0")
        socks.append(s)
    deadline = time.monotonic() + 60
    for i, s in enumerate(socks):
        buf = bytearray()
        cmds = frames_until(s, buf, 1, deadline)
        if cmds[0] != "CONNECTED":
            raise RuntimeError(f"expected CONNECTED, got {cmds[0]}")
        if topic:
            s.sendall(f"SUBSCRIBE\nid:0\ndestination:{topic}\nack:auto\nreceipt:r{i}\n\n\0".encode())
    if topic:
        for s in socks:
            cmds = frames_until(s, bytearray(), 1, deadline)
            if cmds[0] != "RECEIPT":
                raise RuntimeError(f"expected RECEIPT, got {cmds[0]}")
    return socks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--subscribe", default="")
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--login", default="guest")
    ap.add_argument("--passcode", default="guest")
    ap.add_argument("pids", nargs="+", type=int)
    a = ap.parse_args()

    before = rss_kb(a.pids)
    before_pd = private_dirty_kb(a.pids)
    socks = []
    t0 = time.monotonic()
    while len(socks) < a.connections:
        socks += open_batch(a.port, min(a.batch, a.connections - len(socks)), a.subscribe, a.login, a.passcode)
    opened_s = time.monotonic() - t0
    time.sleep(a.settle)
    after = rss_kb(a.pids)
    after_pd = private_dirty_kb(a.pids)
    # Still connected? A broker that dropped idle connections would look cheap.
    alive = 0
    for s in socks:
        s.setblocking(False)
        try:
            alive += 0 if s.recv(1) == b"" else 1
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    for s in socks:
        s.close()
    n = len(socks)
    print(json.dumps({
        "connections": n, "alive": alive, "subscribed": bool(a.subscribe), "open_s": round(opened_s, 2),
        "rss_before_kb": before, "rss_after_kb": after,
        "kb_per_connection": round((after - before) / n, 2),
        "private_dirty_before_kb": before_pd, "private_dirty_after_kb": after_pd,
        "private_dirty_kb_per_connection": round((after_pd - before_pd) / n, 2),
    }))
    return 0 if alive == n else 1


if __name__ == "__main__":
    sys.exit(main())
