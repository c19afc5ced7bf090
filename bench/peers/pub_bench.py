#!/usr/bin/python3
"""Publish throughput of stomp.py (8.0) with a receipt on every SEND.

  pub_bench.py --port P --dest D --count N --size BYTES --mode pipelined|sync [--version 1.0|1.2]

pipelined: sends everything with receipt headers, at most --window receipts outstanding, and stops the
clock at the last receipt; sync: waits for each receipt before the next send. Prints one JSON line.
"""
import argparse
import json
import os
import sys
import threading
import time

import stomp


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--login", default="guest")
    p.add_argument("--passcode", default="guest")
    p.add_argument("--dest", default="/topic/bench")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--mode", choices=["pipelined", "sync"], default="pipelined")
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--version", choices=["1.0", "1.2"], default="1.0")
    a = p.parse_args()

    cond = threading.Condition()
    acked = 0

    class Listener(stomp.ConnectionListener):
        def on_receipt(self, frame):
            nonlocal acked
            with cond:
                acked += 1
                cond.notify()

        def on_error(self, frame):
            print(f"pub_bench: ERROR frame: {frame.headers.get('message')}", file=sys.stderr, flush=True)
            os._exit(1)

    if a.version == "1.0":
        conn = stomp.Connection10([(a.host, a.port)])
    else:
        conn = stomp.Connection12([(a.host, a.port)], vhost="/", heartbeats=(0, 0))
    conn.set_listener("bench", Listener())
    conn.connect(a.login, a.passcode, wait=True)

    body = "x" * a.size
    window = 1 if a.mode == "sync" else a.window
    t0 = time.perf_counter()
    for i in range(a.count):
        with cond:
            if not cond.wait_for(lambda: i - acked < window, timeout=30):
                sys.exit(f"pub_bench: no receipt for 30 s ({acked}/{i} acked)")
        conn.send(a.dest, body, headers={"receipt": str(i)})
    with cond:
        if not cond.wait_for(lambda: acked == a.count, timeout=30):
            sys.exit(f"pub_bench: missing receipts ({acked}/{a.count})")
    secs = time.perf_counter() - t0
    conn.disconnect()
    print(json.dumps({"client": "stomp.py", "mode": a.mode, "count": a.count, "size": a.size,
                      "seconds": round(secs, 4), "msgs_per_s": round(a.count / secs, 1)},
                     separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
