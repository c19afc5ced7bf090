#!/usr/bin/python3
"""stomp.py (8.0) peer for cross-client tests.

  py_peer.py publish   --port P --dest D --count N --body-prefix S [--version 1.0|1.2] ...
  py_peer.py subscribe --port P --dest D --count N [--ack auto|client-individual]
                       [--ready-file F] [--timeout SEC] ...

publish sends bodies S0..S<N-1>, each with a receipt, and prints "published N" once all receipts are in.
subscribe prints each body on its own line and exits 0 after N messages. Exit 1 on timeout or error.
"""
import argparse
import os
import sys
import threading

import stomp


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["publish", "subscribe"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--login", default="guest")
    p.add_argument("--passcode", default="guest")
    p.add_argument("--dest", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--body-prefix", default="msg-")
    p.add_argument("--version", choices=["1.0", "1.2"], default="1.0")
    p.add_argument("--ack", choices=["auto", "client-individual"], default="auto")
    p.add_argument("--ready-file")
    p.add_argument("--timeout", type=float, default=20.0)
    return p.parse_args()


class Peer(stomp.ConnectionListener):
    def __init__(self, args):
        self.args = args
        self.cond = threading.Condition()
        self.receipts = set()
        self.received = 0
        self.done = False
        if args.version == "1.0":
            self.conn = stomp.Connection10([(args.host, args.port)])
        else:  # RabbitMQ wants an existing vhost in the host header
            self.conn = stomp.Connection12([(args.host, args.port)], vhost="/", heartbeats=(0, 0))
        self.conn.set_listener("peer", self)

    def fail(self, why):
        print(f"py_peer: {why}", file=sys.stderr, flush=True)
        os._exit(1)

    def on_error(self, frame):
        self.fail(f"ERROR frame: {frame.headers.get('message')} {frame.body!r}")

    def on_disconnected(self):
        if not self.done:
            self.fail("connection lost")

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.add(frame.headers["receipt-id"])
            self.cond.notify_all()

    def on_message(self, frame):
        with self.cond:
            if self.received >= self.args.count:
                return  # extra message: left unacked (redelivered later with client-individual)
            print(frame.body, flush=True)
            if self.args.ack == "client-individual":
                self.conn.ack(frame.headers["message-id" if self.args.version == "1.0" else "ack"])
            self.received += 1
            self.cond.notify_all()

    def wait_for(self, pred):
        with self.cond:
            self.cond.wait_for(pred)

    def finish(self):
        self.done = True
        try:  # DISCONNECT with a receipt: every ACK sent before it has been processed
            self.conn.disconnect()
        except Exception:
            pass
        os._exit(0)


def main():
    a = parse_args()
    peer = Peer(a)
    # One deadline for the whole run, connect included: on expiry, fail unless already done.
    timer = threading.Timer(a.timeout, lambda: peer.done or peer.fail(f"timeout after {a.timeout}s"))
    timer.daemon = True
    timer.start()
    try:
        peer.conn.connect(a.login, a.passcode, wait=True)
    except Exception as e:
        peer.fail(f"cannot connect to {a.host}:{a.port}: {e!r}")

    if a.mode == "publish":
        for i in range(a.count):
            peer.conn.send(a.dest, f"{a.body_prefix}{i}", headers={"receipt": f"r{i}"})
        peer.wait_for(lambda: len(peer.receipts) >= a.count)
        print(f"published {a.count}", flush=True)
    else:
        peer.conn.subscribe(a.dest, id="1", ack=a.ack, headers={"receipt": "sub-ready"})
        peer.wait_for(lambda: "sub-ready" in peer.receipts)
        if a.ready_file:
            open(a.ready_file, "a").close()
        peer.wait_for(lambda: peer.received >= a.count)
    peer.finish()


if __name__ == "__main__":
    main()
