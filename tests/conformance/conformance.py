#!/usr/bin/python3
"""STOMP broker conformance suite, driven by the stomp.py peer client (plus raw sockets for byte-level cases).

  conformance.py HOST PORT [--login L --passcode P] [--kind rabbitmq|activemq|embedded]
                 [--vhost /] [--only NAME ...] [--list] [-q]

Prints one `PASS name` or `FAIL name: reason` line per case (plus `INFO name: ...` lines recording what the
broker did, unless -q), then `N passed, M failed` alone on the last line; exit status 0 iff M == 0.
--only takes a case name (`topic-fanout-1.2`), a base name (`topic-fanout`: every version) or a glob; repeatable.

Validated against RabbitMQ 3.10.8 (STOMP plugin) and ActiveMQ 5.17.2 via tests/conformance/run.sh. Where those
two brokers genuinely differ the expectation is keyed on --kind, with a comment "observed:" saying what each
one did; --kind embedded (our stomp-broker) gets the behaviour we decided to emulate, said at the same place.

Versions: "1.0" means a pure 1.0 client (CONNECT without accept-version, as ruby-stomp sends) for the raw
cases; stomp.py's Connection10 (which sends accept-version:1.0) for the peer-driven ones. "1.1" / "1.2" send
accept-version:1.1 / 1.2 (stomp.py uses the STOMP command for those).

Every wait has a deadline; a watchdog ends the run (as failed) if the whole thing exceeds --max-seconds.
Destinations are /queue/conf-<run>-<case> and /topic/conf-<run>-<case> (no '/' or '.' inside the name:
RabbitMQ rejects '/' in topic names, ActiveMQ treats '.' as a hierarchy separator).
"""
import argparse
import fnmatch
import logging
import os
import random
import socket
import string
import sys
import threading
import time

import stomp

VERSIONS = ("1.0", "1.1", "1.2")
WAIT = 5.0  # default deadline for one expected event, seconds


class CaseFail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CaseFail(msg)


class Ctx:
    """Per-run settings plus the INFO notes of the case being run."""

    def __init__(self, args):
        self.host = args.host
        self.port = args.port
        self.login = args.login
        self.passcode = args.passcode
        self.kind = args.kind
        self.vhost = args.vhost
        self.run = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(8))
        self.notes = threading.local()

    def info(self, msg):
        self.notes.list.append(msg)

    def queue(self, name):
        return f"/queue/conf-{self.run}-{name}"

    def topic(self, name):
        return f"/topic/conf-{self.run}-{name}"

    def creds(self):
        """login/passcode headers for a raw CONNECT (none when --login is not given)."""
        h = []
        if self.login is not None:
            h.append(("login", self.login))
        if self.passcode is not None:
            h.append(("passcode", self.passcode))
        return h


def vtag(version):
    return version.replace(".", "")


# ----------------------------------------------------------------------------------------------------------
# Raw socket STOMP connection (byte-exact)


def escape(value, version):
    if version == "1.0":
        return value
    value = value.replace("\\", "\\\\").replace("\n", "\\n").replace(":", "\\c")
    if version == "1.2":
        value = value.replace("\r", "\\r")
    return value


_UNESC = {"n": "\n", "c": ":", "\\": "\\", "r": "\r"}


def unescape(value):
    """Lenient decode: valid escapes (\\n \\c \\\\ \\r) are decoded on every version, others kept as is."""
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value) and value[i + 1] in _UNESC:
            out.append(_UNESC[value[i + 1]])
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Frame:
    def __init__(self, cmd, headers, body):
        self.cmd = cmd
        self.headers = headers  # list of (name, raw value) in wire order; value None for a line without ':'
        self.body = body

    def get(self, name, default=None):
        """First occurrence wins (STOMP 1.2), raw (still escaped) value."""
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def hdict(self):
        d = {}
        for k, v in self.headers:
            d.setdefault(k, v)
        return d

    def __repr__(self):
        body = self.body if len(self.body) <= 120 else self.body[:120] + b"..."
        return f"{self.cmd} {self.hdict()} body={body!r}"


class Raw:
    def __init__(self, ctx, timeout=WAIT):
        self.ctx = ctx
        self.sock = socket.create_connection((ctx.host, ctx.port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.t_eof = None
        self.eol_times = []  # monotonic times of bare EOLs (heart-beats) received between frames

    # -- sending
    def send(self, data):
        self.sock.sendall(data)

    @staticmethod
    def encode(cmd, headers=(), body=b"", version="1.2", content_length=True):
        if isinstance(body, str):
            body = body.encode()
        lines = [cmd]
        for k, v in headers:
            v = str(v)
            if cmd not in ("CONNECT", "STOMP", "CONNECTED"):
                v = escape(v, version)
            lines.append(f"{k}:{v}")
        if content_length and body and not any(k == "content-length" for k, _ in headers):
            lines.append(f"content-length:{len(body)}")
        return ("\n".join(lines) + "\n\n").encode() + body + b"\0"

    def send_frame(self, cmd, headers=(), body=b"", version="1.2", content_length=True):
        self.send(self.encode(cmd, headers, body, version, content_length))

    # -- receiving
    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or self.eof:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except OSError:
            data = b""
        if not data:
            self.eof = True
            self.t_eof = time.monotonic()
            return False
        self.buf += data
        return True

    def _strip_eols(self):
        while True:
            if self.buf.startswith(b"\r\n"):
                self.buf = self.buf[2:]
            elif self.buf.startswith(b"\n"):
                self.buf = self.buf[1:]
            else:
                return
            self.eol_times.append(time.monotonic())

    def _parse(self):
        ends = [(i, n) for i, n in ((self.buf.find(b"\n\n"), 2), (self.buf.find(b"\n\r\n"), 3)) if i >= 0]
        if not ends:
            return None
        idx, n = min(ends)
        head, start = self.buf[:idx], idx + n
        lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in head.split(b"\n")]
        cmd = lines[0].decode("utf-8", "replace")
        headers = []
        for ln in lines[1:]:
            s = ln.decode("utf-8", "replace")
            k, sep, v = s.partition(":")
            headers.append((k, v if sep else None))
        f = Frame(cmd, headers, b"")
        cl = f.get("content-length")
        if cl is not None and cl.strip().isdigit():
            end = start + int(cl)
            if len(self.buf) < end + 1:
                return None
            if self.buf[end] != 0:
                raise CaseFail(f"{cmd} frame: byte after content-length body is {self.buf[end:end + 1]!r}, not NUL")
        else:
            end = self.buf.find(b"\0", start)
            if end < 0:
                return None
        f.body = self.buf[start:end]
        self.buf = self.buf[end + 1:]
        return f

    def read_frame(self, timeout=WAIT):
        """Next frame, or None on timeout or EOF (see self.eof). Bare EOLs are counted in eol_times."""
        deadline = time.monotonic() + timeout
        while True:
            self._strip_eols()
            if self.buf and self.buf != b"\r":
                f = self._parse()
                if f is not None:
                    return f
            if not self._fill(deadline):
                return None

    def expect(self, cmd, timeout=WAIT, what=None):
        f = self.read_frame(timeout)
        if f is None:
            raise CaseFail(f"{what or cmd}: " + ("connection closed" if self.eof else f"nothing within {timeout}s"))
        if f.cmd != cmd:
            raise CaseFail(f"{what or cmd}: expected {cmd}, got {f!r}")
        return f

    def wait_eof(self, timeout):
        """Read (and return) frames until EOF; returns (closed, frames)."""
        deadline = time.monotonic() + timeout
        frames = []
        while not self.eof:
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is not None:
                frames.append(f)
            elif time.monotonic() >= deadline:
                break
        return self.eof, frames

    def connect(self, version, extra=(), cmd="CONNECT", heart_beat=None, creds=True):
        """Sends CONNECT for VERSION ("1.0": no accept-version) and returns the CONNECTED frame."""
        h = []
        if version != "1.0":
            h += [("accept-version", version), ("host", self.ctx.vhost)]
        if heart_beat:
            h.append(("heart-beat", heart_beat))
        if creds:
            h += self.ctx.creds()
        h += list(extra)
        self.send_frame(cmd, h)
        return self.expect("CONNECTED", what="CONNECT")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------------------
# stomp.py peer


class Peer(stomp.ConnectionListener):
    """A stomp.py connection that records everything it receives; all waits have deadlines."""

    def __init__(self, ctx, version, auto_decode=True, heartbeats=(0, 0), cond=None):
        self.ctx = ctx
        self.version = version
        self.cond = cond or threading.Condition()  # share one to wait on several peers at once
        self.connected = None
        self.errors = []
        self.receipts = []
        self.messages = []
        self.disconnected = False
        hp = [(ctx.host, ctx.port)]
        common = dict(reconnect_attempts_max=1, auto_decode=auto_decode, timeout=WAIT)
        if version == "1.0":
            self.conn = stomp.Connection10(hp, **common)
        elif version == "1.1":
            self.conn = stomp.Connection11(hp, vhost=ctx.vhost, heartbeats=heartbeats, **common)
        else:
            self.conn = stomp.Connection12(hp, vhost=ctx.vhost, heartbeats=heartbeats, **common)
        self.conn.set_listener("peer", self)

    # listener callbacks (receiver thread)
    def on_connected(self, frame):
        with self.cond:
            self.connected = frame
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.append(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self.cond.notify_all()

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    # driving
    def wait(self, pred, what, timeout=WAIT):
        with self.cond:
            if not self.cond.wait_for(lambda: pred() or self.errors, timeout):
                raise CaseFail(f"{self.version} peer: timeout ({timeout}s) waiting for {what}")
            if self.errors and not pred():
                e = self.errors[0]
                body = e.body if len(e.body) <= 200 else e.body[:200] + "..."
                raise CaseFail(f"{self.version} peer: ERROR while waiting for {what}: "
                               f"{e.headers.get('message')!r} {body!r}")

    def start(self, headers=None):
        try:
            self.conn.connect(self.ctx.login, self.ctx.passcode, wait=False, headers=headers or {})
        except Exception as e:  # noqa: BLE001 - report any connect failure as a case failure
            self.drop()
            raise CaseFail(f"{self.version} peer: cannot connect: {e!r}")
        try:
            self.wait(lambda: self.connected is not None, "CONNECTED")
        except CaseFail:
            self.drop()
            raise
        return self

    def receipt(self, rid, timeout=WAIT):
        self.wait(lambda: rid in self.receipts, f"RECEIPT {rid}", timeout)

    def send(self, dest, body, receipt=None, **headers):
        if receipt:
            headers["receipt"] = receipt
        self.conn.send(dest, body, headers=headers)
        if receipt:
            self.receipt(receipt)

    def subscribe(self, dest, sub_id, ack="auto", **headers):
        rid = f"sub-{sub_id}-{random.randrange(1 << 30)}"
        headers["receipt"] = rid
        self.conn.subscribe(dest, id=sub_id, ack=ack, headers=headers)
        self.receipt(rid)

    def unsubscribe(self, sub_id, **headers):
        rid = f"unsub-{sub_id}-{random.randrange(1 << 30)}"
        headers["receipt"] = rid
        if self.version == "1.0":
            self.conn.unsubscribe(id=sub_id, headers=headers)
        else:
            self.conn.unsubscribe(sub_id, headers=headers)
        self.receipt(rid)

    def wait_messages(self, n, what="messages", timeout=WAIT):
        self.wait(lambda: len(self.messages) >= n, f"{n} {what} (have {len(self.messages)})", timeout)
        return self.messages[:n]

    def _ack_args(self, frame):
        h = frame.headers
        if self.version == "1.2":
            check("ack" in h, f"1.2 MESSAGE for a client-ack subscription has no ack header: {h}")
            return (h["ack"],)
        if self.version == "1.1":
            return (h["message-id"], h["subscription"])
        return (h["message-id"],)

    def ack(self, frame, receipt=True):
        rid = f"ack-{random.randrange(1 << 30)}" if receipt else None
        self.conn.ack(*self._ack_args(frame), receipt=rid)
        if rid:
            self.receipt(rid)

    def nack(self, frame, receipt=True):
        rid = f"nack-{random.randrange(1 << 30)}" if receipt else None
        self.conn.nack(*self._ack_args(frame), receipt=rid)
        if rid:
            self.receipt(rid)

    def close(self, timeout=WAIT):
        """DISCONNECT (with receipt, processed by the broker before it returns), then drop the socket."""
        try:
            if self.conn.is_connected():
                self.conn.disconnect()
                with self.cond:
                    self.cond.wait_for(lambda: self.disconnected, timeout)
        except Exception:  # noqa: BLE001
            pass
        self.drop()

    def drop(self):
        try:
            self.conn.transport.disconnect_socket()
        except Exception:  # noqa: BLE001
            pass


def bodies(frames):
    return [f.body for f in frames]


# ----------------------------------------------------------------------------------------------------------
# Cases. Each is fn(ctx, version) and raises CaseFail; ctx.info() records observations.

CASES = []  # (name, fn, version or None, background)


def case(base, versions=VERSIONS, background=False, when=None):
    def deco(fn):
        for v in versions or (None,):
            CASES.append((f"{base}-{v}" if v else base, fn, v, background, when))
        return fn

    return deco


def hb_pair(value):
    try:
        a, b = value.split(",")
        return int(a), int(b)
    except (AttributeError, ValueError):
        return None


# 1. CONNECT / CONNECTED ------------------------------------------------------------------------------------
@case("connect")
def t_connect(ctx, v):
    if v == "1.0":
        r = Raw(ctx)
        try:
            c = r.connect("1.0")  # no accept-version, no heart-beat
            ctx.info(f"pure 1.0 CONNECTED headers: {c.hdict()}")
            check(c.get("version") in (None, "1.0"), f"1.0 CONNECT answered version:{c.get('version')}")
        finally:
            r.close()
        r = Raw(ctx)
        try:
            c = r.connect("1.0", extra=[("accept-version", "1.0")])
            check(c.get("version") in (None, "1.0"), f"accept-version:1.0 answered version:{c.get('version')}")
        finally:
            r.close()
        return
    # highest common version, whatever the order of the list
    offers = {"1.1": ["1.0,1.1", "1.1", "1.1,1.0"], "1.2": ["1.0,1.1,1.2", "1.2", "1.2,1.0,1.1", "1.1,1.2"]}[v]
    for i, offer in enumerate(offers):
        r = Raw(ctx)
        try:
            h = [("accept-version", offer), ("host", ctx.vhost), ("heart-beat", "1000,2000")] + ctx.creds()
            cmd = "STOMP" if i == 1 else "CONNECT"  # the 1.1+ STOMP command too
            r.send_frame(cmd, h)
            c = r.expect("CONNECTED", what=f"{cmd} accept-version:{offer}")
            check(c.get("version") == v, f"accept-version:{offer} answered version:{c.get('version')}, want {v}")
            check(c.get("server"), f"CONNECTED has no server header: {c.hdict()}")
            hb = hb_pair(c.get("heart-beat"))
            check(hb is not None and min(hb) >= 0, f"CONNECTED heart-beat malformed: {c.get('heart-beat')!r}")
            # observed: RabbitMQ 3.10.8 and ActiveMQ 5.17.2 both answer heart-beat:1000,2000 with
            # heart-beat:2000,1000 (they send every 2000 ms as asked and want ours every 1000 ms). But
            # heart-beat:500,500 gets 1000,1000 from RabbitMQ (whole seconds) and 500,500 from ActiveMQ.
            check(hb == (2000, 1000), f"heart-beat:1000,2000 answered {c.get('heart-beat')!r}, want 2000,1000")
            if i == 0:
                ctx.info(f"CONNECTED to heart-beat:1000,2000 = {c.hdict()}")
        finally:
            r.close()
    # a client that neither sends nor wants heart-beats gets heart-beat:0,0 (observed on both)
    r = Raw(ctx)
    try:
        c = r.connect(v, heart_beat="0,0")
        check(c.get("heart-beat") == "0,0", f"heart-beat:0,0 answered heart-beat:{c.get('heart-beat')!r}")
    finally:
        r.close()


@case("connect-version-mismatch", versions=None, background=True)
def t_connect_mismatch(ctx, _v):
    r = Raw(ctx)
    try:
        r.send_frame("CONNECT", [("accept-version", "9.9"), ("host", ctx.vhost)] + ctx.creds())
        f = r.read_frame(WAIT)
        check(f is not None or r.eof, "no answer to accept-version:9.9")
        if f is not None:
            ctx.info(f"accept-version:9.9 -> {f!r}")
            check(f.cmd == "ERROR", f"accept-version:9.9 answered {f.cmd}, want ERROR")
        t0 = time.monotonic()
        closed, more = r.wait_eof(close_deadline(ctx))
        ctx.info(f"closed after ERROR: {closed}" + (f" ({r.t_eof - t0:.3f}s)" if closed else "")
                 + (f"; further frames {more}" if more else ""))
        check(closed, f"connection not closed {close_deadline(ctx)}s after the version-mismatch ERROR")
    finally:
        r.close()


# 2. receipts -----------------------------------------------------------------------------------------------
@case("receipts")
def t_receipts(ctx, v):
    q = ctx.queue(f"rcpt{vtag(v)}")
    p = Peer(ctx, v).start()
    try:
        p.subscribe(q, "s1")  # waits for the matching receipt-id
        for i in range(5):  # pipelined: receipts must come back, in order
            p.conn.send(q, f"m{i}", headers={"receipt": f"r{i}"})
        p.wait(lambda: len([r for r in p.receipts if r.startswith("r")]) >= 5, "5 SEND receipts")
        got = [r for r in p.receipts if r.startswith("r")]
        check(got == [f"r{i}" for i in range(5)], f"SEND receipts {got}")
        p.wait_messages(5)
    finally:
        p.close()
    # DISCONNECT with receipt: RECEIPT arrives before the connection closes
    r = Raw(ctx)
    try:
        r.connect(v)
        r.send_frame("DISCONNECT", [("receipt", "bye-1")], version=v)
        f = r.expect("RECEIPT", what="DISCONNECT receipt")
        check(f.get("receipt-id") == "bye-1", f"receipt-id {f.get('receipt-id')!r}, want bye-1")
        t0 = time.monotonic()
        closed, more = r.wait_eof(3.0)
        check(not more, f"frames after DISCONNECT receipt: {more}")
        ctx.info(f"RECEIPT headers {f.hdict()}; broker closed the socket: "
                 f"{closed}" + (f" after {time.monotonic() - t0:.3f}s" if closed else " (within 3s)"))
        check(closed, "broker did not close the connection within 3s of the DISCONNECT receipt")
    finally:
        r.close()


# 3. topic fan-out ------------------------------------------------------------------------------------------
@case("topic-fanout")
def t_topic_fanout(ctx, v):
    t = ctx.topic(f"fan{vtag(v)}")
    subs = [Peer(ctx, v).start() for _ in range(3)]
    pub = Peer(ctx, v).start()
    try:
        for i, s in enumerate(subs):
            s.subscribe(t, f"fan-{i}")
        n = 10
        for i in range(n):
            pub.conn.send(t, f"m{i}")
        pub.send(t, "end", receipt="last")
        for i, s in enumerate(subs):
            msgs = s.wait_messages(n + 1)
            check(bodies(msgs) == [f"m{j}" for j in range(n)] + ["end"], f"subscriber {i} got {bodies(msgs)}")
            ids = set()
            for m in msgs:
                h = m.headers
                check(h.get("subscription") == f"fan-{i}", f"MESSAGE subscription {h.get('subscription')!r}")
                check(h.get("destination") == t, f"MESSAGE destination {h.get('destination')!r}, want {t}")
                check(h.get("message-id"), f"MESSAGE without message-id: {h}")
                ids.add(h["message-id"])
            check(len(ids) == n + 1, "message-ids not unique within a subscription")
        ctx.info(f"MESSAGE headers: {dict(sorted(subs[0].messages[0].headers.items()))}")
        if v == "1.0":
            # SUBSCRIBE without id on 1.0: record what (if anything) comes as `subscription`
            x = Peer(ctx, v).start()
            try:
                rid = "noid"
                x.conn.subscribe(t, id=None, headers={"receipt": rid})
                x.receipt(rid)
                pub.send(t, "noid-msg", receipt="last2")
                m = x.wait_messages(1)[0]
                ctx.info(f"1.0 SUBSCRIBE without id -> MESSAGE subscription={m.headers.get('subscription')!r}")
            finally:
                x.close()
    finally:
        for p in subs + [pub]:
            p.close()


# 4b. wildcard topic subscriptions ---------------------------------------------------------------------------
@case("topic-wildcards", versions=("1.0", "1.2"))
def t_topic_wildcards(ctx, v):
    """`*` (one word) everywhere; `#` (zero or more words) on RabbitMQ, `>` (the rest) on ActiveMQ;
    the embedded broker speaks both dialects. Subscriptions only: the SENDs name plain topics."""
    base = ctx.topic(f"wild{vtag(v)}")
    patterns = {"star": f"{base}.events.*"}
    if ctx.kind in ("rabbitmq", "embedded"):
        patterns["hash"] = f"{base}.events.#"
    if ctx.kind in ("activemq", "embedded"):
        patterns["gt"] = f"{base}.events.>"
    sub = Peer(ctx, v).start()
    pub = Peer(ctx, v).start()
    try:
        for name, dest in patterns.items():
            sub.subscribe(dest, name)
        sends = ["events.push", "events.push.tag", "other.push", "eventsx.push", "events.end"]
        for i, tail in enumerate(sends):
            pub.send(f"{base}.{tail}", tail, receipt=f"w{i}")
        want = {"star": ["events.push", "events.end"],
                "hash": ["events.push", "events.push.tag", "events.end"],
                "gt": ["events.push", "events.push.tag", "events.end"]}
        total = sum(len(want[n]) for n in patterns)
        sub.wait(lambda: sum(1 for m in sub.messages if m.body == "events.end") >= len(patterns),
                 "events.end on every wildcard subscription")
        got = {n: [m.body for m in sub.messages if m.headers.get("subscription") == n] for n in patterns}
        for n in patterns:
            check(got[n] == want[n], f"{patterns[n]} got {got[n]}, want {want[n]}")
        check(len(sub.messages) == total, f"{len(sub.messages)} messages, want {total}")
        m = sub.messages[0]
        check(m.headers.get("destination", "").startswith(base + ".events."),
              f"MESSAGE destination {m.headers.get('destination')!r} names the topic sent to")
        ctx.info(f"wildcards {sorted(patterns)}: {got}")
    finally:
        sub.close()
        pub.close()


# 4. queues -------------------------------------------------------------------------------------------------
@case("queue-roundrobin")
def t_queue_rr(ctx, v):
    q = ctx.queue(f"rr{vtag(v)}")
    both = threading.Condition()
    cons = [Peer(ctx, v, cond=both).start() for _ in range(2)]
    pub = Peer(ctx, v).start()
    try:
        for i, c in enumerate(cons):
            c.subscribe(q, f"rr-{i}")

        def total():
            return len(cons[0].messages) + len(cons[1].messages)

        warm = 0
        if ctx.kind == "activemq":
            # observed: once in a dozen runs under load, ActiveMQ 5.17.2 gave all 10 messages to the second
            # consumer although both SUBSCRIBE receipts had arrived (it starts dispatching to a new
            # consumer a little later). So, on ActiveMQ only, send warm-up messages one by one until both
            # consumers have had one; the 10 messages after that must still be shared.
            while not (cons[0].messages and cons[1].messages):
                check(warm < 20, f"20 warm-up messages all went to one consumer: {[bodies(c.messages) for c in cons]}")
                pub.send(q, f"w{warm}", receipt=f"w{warm}")
                warm += 1
                cons[0].wait(lambda: total() >= warm, f"warm-up message {warm}")
        n = 10
        for i in range(n):
            pub.conn.send(q, f"m{i}", headers={"receipt": f"q{i}"})
        pub.wait(lambda: len([r for r in pub.receipts if r.startswith("q")]) >= n, f"{n} SEND receipts")
        cons[0].wait(lambda: total() >= warm + n, f"{n} messages over 2 consumers")
        with both:  # a duplicate delivery would show up right away: give it 0.3 s to appear
            both.wait_for(lambda: total() > warm + n, 0.3)
        check(total() == warm + n, f"{total()} deliveries for {warm + n} messages: "
                                   f"{[bodies(c.messages) for c in cons]}")
        if warm:
            ctx.info(f"{warm} warm-up messages")
        got = [[b for b in bodies(c.messages) if b.startswith("m")] for c in cons]
        every = sorted(got[0] + got[1], key=lambda b: int(b[1:]))
        check(every == [f"m{i}" for i in range(n)], f"messages delivered {got} (duplicates or loss)")
        check(got[0] and got[1], f"not shared: {got}")
        for g in got:
            check(g == sorted(g, key=lambda b: int(b[1:])), f"per-consumer order broken: {g}")
        ctx.info(f"split {len(got[0])}/{len(got[1])}: {got}")
    finally:
        for p in cons + [pub]:
            p.close()


@case("queue-retain")
def t_queue_retain(ctx, v):
    q = ctx.queue(f"keep{vtag(v)}")
    pub = Peer(ctx, v).start()
    try:
        pub.send(q, "kept-0", receipt="k0")
        pub.send(q, "kept-1", receipt="k1")
    finally:
        pub.close()
    c = Peer(ctx, v).start()
    try:
        c.subscribe(q, "keep")
        check(bodies(c.wait_messages(2)) == ["kept-0", "kept-1"], f"got {bodies(c.messages)}")
    finally:
        c.close()


# 5. ack modes ----------------------------------------------------------------------------------------------
def drain_until_marker(ctx, peer, q, marker, what):
    """Send MARKER to queue Q and return every body PEER received before it (queues are FIFO)."""
    s = Peer(ctx, peer.version).start()
    try:
        s.send(q, marker, receipt="marker")
    finally:
        s.close()
    peer.wait(lambda: marker in bodies(peer.messages), f"{what}: marker message")
    b = bodies(peer.messages)
    return b[:b.index(marker)]


def redelivered_check(ctx, frames, what):
    flags = [f.headers.get("redelivered") for f in frames]
    ctx.info(f"{what}: redelivered headers {flags}; headers {dict(sorted(frames[0].headers.items()))}")
    # observed: RabbitMQ 3.10.8 and ActiveMQ 5.17.2 both set redelivered:true on a message redelivered after
    # the consumer holding it unacked went away (and after a NACK on RabbitMQ). Ours must too.
    check(all(f == "true" for f in flags), f"{what}: redelivered header {flags}, want 'true'")


@case("ack-redeliver")
def t_ack_redeliver(ctx, v):
    """Unacked messages go to another consumer after the first disconnects; acked ones do not."""
    q = ctx.queue(f"redel{vtag(v)}")
    mode = "client" if v == "1.0" else "client-individual"
    a = Peer(ctx, v).start()
    try:
        for i in range(3):
            a.conn.send(q, f"m{i}", headers={"receipt": f"s{i}"})
        a.wait(lambda: len(a.receipts) >= 3, "SEND receipts")
        a.subscribe(q, "a", ack=mode)
        msgs = a.wait_messages(3)
        check(bodies(msgs) == ["m0", "m1", "m2"], f"first consumer got {bodies(msgs)}")
        check(all(m.headers.get("redelivered") in (None, "false") for m in msgs),
              f"first delivery flagged redelivered: {[m.headers.get('redelivered') for m in msgs]}")
        if v == "1.2":
            check(all("ack" in m.headers for m in msgs), "1.2 client-individual MESSAGE lacks ack header")
        if mode == "client-individual":  # ack m0 and m2 only
            a.ack(msgs[0])
            a.ack(msgs[2])
    finally:
        a.close()
    b = Peer(ctx, v).start()
    try:
        b.subscribe(q, "b", ack="auto")
        want = ["m1"] if mode == "client-individual" else ["m0", "m1", "m2"]
        got = drain_until_marker(ctx, b, q, "marker", "second consumer")
        check(got == want, f"second consumer got {got} before the marker, want {want}")
        redelivered_check(ctx, b.messages[:len(want)], "redelivery after disconnect")
    finally:
        b.close()


@case("ack-cumulative")
def t_ack_cumulative(ctx, v):
    """ack:client is cumulative: ACK of message 3 acks 1..3."""
    q = ctx.queue(f"cum{vtag(v)}")
    a = Peer(ctx, v).start()
    try:
        for i in range(1, 6):
            a.conn.send(q, f"m{i}", headers={"receipt": f"s{i}"})
        a.wait(lambda: len(a.receipts) >= 5, "SEND receipts")
        a.subscribe(q, "a", ack="client")
        msgs = a.wait_messages(5)
        check(bodies(msgs) == [f"m{i}" for i in range(1, 6)], f"got {bodies(msgs)}")
        a.ack(msgs[2])  # m3
    finally:
        a.close()
    b = Peer(ctx, v).start()
    try:
        b.subscribe(q, "b")
        got = drain_until_marker(ctx, b, q, "marker", "second consumer")
        check(got == ["m4", "m5"], f"after ACK of m3 the queue still held {got}, want ['m4', 'm5']")
    finally:
        b.close()


@case("nack", versions=("1.1", "1.2"))
def t_nack(ctx, v):
    q = ctx.queue(f"nack{vtag(v)}")
    a = Peer(ctx, v).start()
    try:
        # persistent: ActiveMQ discards (rather than dead-letters) a NACKed non-persistent message
        a.send(q, "poison", receipt="s0", confrun=ctx.run, persistent="true")
        a.subscribe(q, "a", ack="client-individual")
        m = a.wait_messages(1)[0]
        check(m.body == "poison", f"got {m.body!r}")
        a.nack(m)
        if ctx.kind == "activemq":
            # observed: ActiveMQ 5.17.2 treats a STOMP NACK as a poison ack: no redelivery; a persistent
            # message goes straight to /queue/ActiveMQ.DLQ (with an original-destination header), a
            # non-persistent one is dropped.
            d = Peer(ctx, v).start()
            try:
                d.subscribe("/queue/ActiveMQ.DLQ", "dlq", ack="client-individual",
                            selector=f"confrun = '{ctx.run}'")
                dm = d.wait_messages(1, "DLQ message")[0]
                check(dm.body == "poison", f"DLQ gave {dm.body!r}")
                ctx.info(f"NACK -> ActiveMQ.DLQ; DLQ MESSAGE headers {dict(sorted(dm.headers.items()))}")
                d.ack(dm)
            finally:
                d.close()
            return
        # observed: RabbitMQ 3.10.8 requeues a NACKed message (basic.nack requeue=true) and redelivers it at
        # once, with redelivered:true. embedded: the same.
        a.wait_messages(2, "redelivery after NACK")
        check(a.messages[1].body == "poison", f"redelivered {a.messages[1].body!r}")
        redelivered_check(ctx, a.messages[1:2], "redelivery after NACK")
        a.ack(a.messages[1])
    finally:
        a.close()


# 6. binary body, header values -----------------------------------------------------------------------------
@case("binary-body")
def t_binary(ctx, v):
    q = ctx.queue(f"bin{vtag(v)}")
    body = bytes(range(256)) + b"\0\0mid\0\n\n\0" + bytes(range(255, -1, -1)) + b"\0"
    p = Peer(ctx, v, auto_decode=False).start()
    try:
        p.subscribe(q, "bin")
        p.send(q, body, receipt="b1")  # stomp.py adds content-length
        m = p.wait_messages(1)[0]
        check(m.body == body, f"body changed: {len(m.body)} bytes, want {len(body)}")
        cl = m.headers.get("content-length")
        check(cl is None or cl == str(len(body)), f"MESSAGE content-length {cl}, want {len(body)}")
        ctx.info(f"MESSAGE content-length:{cl}")
    finally:
        p.close()


@case("header-values")
def t_header_values(ctx, v):
    """Header values with ':' (and on 1.1/1.2 newline, backslash; on 1.2 CR) survive SEND -> MESSAGE."""
    q = ctx.queue(f"hdr{vtag(v)}")
    values = {"x-colon": "a:b::c", "x-url": "http://h:1/p?q=a:b"}
    if v != "1.0":
        values.update({"x-newline": "line1\nline2", "x-backslash": "dir\\file", "x-mix": "k:\\n\n"})
    if v == "1.2":
        values["x-cr"] = "a\rb\r\n"
    r = Raw(ctx)
    try:
        r.connect(v)
        r.send_frame("SUBSCRIBE", [("destination", q), ("id", "h"), ("ack", "auto"), ("receipt", "s")], version=v)
        r.expect("RECEIPT", what="SUBSCRIBE receipt")
        # send with the peer client (stomp.py escapes on 1.1/1.2, writes raw ':' on 1.0)
        p = Peer(ctx, v).start()
        try:
            p.send(q, "hdr", receipt="h1", **values)
        finally:
            p.close()
        m = r.expect("MESSAGE")
        wire = {k: m.get(k) for k in values}
        ctx.info(f"on the wire: {wire}")
        for k, want in values.items():
            got = m.get(k)
            check(got is not None, f"header {k} missing: {m.hdict()}")
            check(unescape(got) == want, f"{k}: wire {got!r} decodes to {unescape(got)!r}, want {want!r}")
            if v != "1.0":  # on 1.1/1.2 the broker must escape what needs escaping
                check(not any(c in got for c in ":\n\r"), f"{k}: not escaped on the wire: {got!r}")
    finally:
        r.close()


# 7. heart-beats --------------------------------------------------------------------------------------------
@case("heartbeat", background=True)
def t_heartbeat(ctx, v):
    r = Raw(ctx)
    try:
        c = r.connect(v, heart_beat="500,500")
        hb = hb_pair(c.get("heart-beat"))
        ctx.info(f"heart-beat:500,500 -> CONNECTED heart-beat:{c.get('heart-beat')} version:{c.get('version')}")
        check(hb is not None, f"CONNECTED heart-beat {c.get('heart-beat')!r}")
        check(hb[0] > 0 and hb[1] > 0, f"broker declined heart-beats: {c.get('heart-beat')}")
        # phase 1: 3 s of EOLs from us every 400 ms; the link must stay up and the broker must send EOLs
        t0 = time.monotonic()
        end = t0 + 3.0
        nxt = t0
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now >= nxt:
                r.send(b"\n")
                last_sent = time.monotonic()
                nxt += 0.4
            f = r.read_frame(max(0.0, min(nxt, end) - time.monotonic()))
            check(f is None, f"unexpected frame while idle: {f!r}")
            if r.eof:
                raise CaseFail(f"broker closed a link kept alive with EOLs after {r.t_eof - t0:.2f}s")
        n = len(r.eol_times)
        gaps = [b - a for a, b in zip(r.eol_times, r.eol_times[1:])]
        ctx.info(f"broker sent {n} EOLs in 3s, gaps {[round(g, 2) for g in gaps]}")
        check(n >= 2, f"broker sent {n} heart-beat EOLs in 3s (promised every {max(hb[0], 500)}ms)")
        # phase 2: fall silent; the broker must drop us (spec: within ~2x-3x the interval)
        t1 = time.monotonic()
        closed, frames = r.wait_eof(5.0)
        ctx.info(f"silent client dropped: {closed}"
                 + (f" {r.t_eof - last_sent:.2f}s after our last EOL ({r.t_eof - t1:.2f}s after we stopped)"
                    if closed else "")
                 + (f"; frames before close {frames}" if frames else ""))
        check(closed, "broker did not close the connection within 5s of the client falling silent")
    finally:
        r.close()


# 8. durable topic subscription ------------------------------------------------------------------------------
@case("durable")
def t_durable(ctx, v):
    t = ctx.topic(f"dur{vtag(v)}")
    name = f"conf-{ctx.run}-dur{vtag(v)}"  # ActiveMQ: client-id == subscriptionName so UNSUBSCRIBE removes it
    conn_h, sub_h = {}, {}
    if ctx.kind in ("rabbitmq", "embedded"):
        sub_h.update({"durable": "true", "auto-delete": "false"})
    if ctx.kind in ("activemq", "embedded"):
        conn_h["client-id"] = name
        sub_h["activemq.subscriptionName"] = name

    a = Peer(ctx, v).start(conn_h)
    try:
        a.subscribe(t, name, **sub_h)
    finally:
        a.close()
    pub = Peer(ctx, v).start()
    try:
        for i in range(3):
            pub.send(t, f"d{i}", receipt=f"d{i}", persistent="true")
    finally:
        pub.close()
    b = Peer(ctx, v).start(conn_h)
    try:
        b.subscribe(t, name, **sub_h)
        got = bodies(b.wait_messages(3, "messages sent while away"))
        check(got == ["d0", "d1", "d2"], f"after resubscribing got {got}")
        ctx.info(f"durable MESSAGE headers {dict(sorted(b.messages[0].headers.items()))}")
        # Remove the durable subscription. observed: RabbitMQ 3.10.8 deletes its queue on UNSUBSCRIBE with
        # durable:true. ActiveMQ 5.17.2 needs UNSUBSCRIBE id (drops the consumer; an UNSUBSCRIBE carrying
        # activemq.subscriptionName while the consumer is active fails with ERROR "Durable consumer is in
        # use"), then UNSUBSCRIBE activemq.subscriptionName (works because client-id == subscriptionName).
        # embedded: one UNSUBSCRIBE with both sets of headers.
        if ctx.kind == "activemq":
            b.unsubscribe(name)
            b.unsubscribe(name, **{"activemq.subscriptionName": name})
        else:
            b.unsubscribe(name, **sub_h)
    finally:
        b.close()


# 9. malformed frames ---------------------------------------------------------------------------------------
def roundtrip_ok(r, v, q, what):
    """SUBSCRIBE + SEND with receipts on open connection R: two RECEIPTs and the MESSAGE arrive (any order)."""
    r.send_frame("SUBSCRIBE", [("destination", q), ("id", "rt"), ("receipt", "rt-s")], version=v)
    r.send_frame("SEND", [("destination", q), ("receipt", "rt-m")], b"fine", version=v)
    frames = []
    while len(frames) < 3:
        f = r.read_frame(WAIT)
        check(f is not None, f"{what}: got {frames} then " + ("close" if r.eof else f"nothing for {WAIT}s"))
        frames.append(f)
    check(sorted(f.cmd for f in frames) == ["MESSAGE", "RECEIPT", "RECEIPT"], f"{what}: got {frames}")
    m = [f for f in frames if f.cmd == "MESSAGE"][0]
    check(m.body == b"fine", f"{what}: got {m!r}")


def malformed(ctx, v, data, what, expect):
    """Send DATA after CONNECT. EXPECT:
    reject      ERROR and/or close; closed within WAIT
    error-open  ERROR, and the same connection stays open and usable
    accept      no ERROR (a RECEIPT for the frame's receipt header), connection stays usable
    any         any of those (liveness only)
    Then, whatever happened, a fresh connection must work."""
    q = ctx.queue(f"mal{vtag(v)}-{random.randrange(1 << 30)}")  # own queues per call
    r = Raw(ctx)
    try:
        r.connect(v)
        r.send(data)
        t0 = time.monotonic()
        f = r.read_frame(WAIT)
        if f is not None:
            ctx.info(f"{what} -> {f!r}")
        elif r.eof:
            ctx.info(f"{what} -> silent close after {r.t_eof - t0:.3f}s")
        else:
            ctx.info(f"{what} -> no answer within {WAIT}s")
        if expect == "any":
            expect = "reject" if f is None or f.cmd == "ERROR" else "accept"
        if expect == "reject":
            check(f is not None or r.eof, f"{what}: neither ERROR nor close within {WAIT}s")
            check(f is None or f.cmd == "ERROR", f"{what}: answered {f!r}, want ERROR or close")
            if f is not None:
                closed, more = r.wait_eof(WAIT)
                ctx.info(f"closed after the ERROR: {closed}" + (f" ({r.t_eof - t0:.3f}s)" if closed else "")
                         + (f"; then {more}" if more else ""))
                check(closed, f"{what}: connection left open {WAIT}s after the ERROR")
        elif expect == "error-open":
            check(f is not None and f.cmd == "ERROR", f"{what}: got {f!r} (eof={r.eof}), want ERROR")
            closed, more = r.wait_eof(1.0)
            check(not closed, f"{what}: connection closed after the ERROR")
            check(not more, f"{what}: more frames after the ERROR: {more}")
            ctx.info("connection left open after the ERROR, and usable")
            roundtrip_ok(r, v, q + "-same", f"same connection after {what}")
        else:  # accept
            check(f is not None and f.cmd == "RECEIPT", f"{what}: got {f!r} (eof={r.eof}), want RECEIPT")
            roundtrip_ok(r, v, q + "-same", f"same connection after {what}")
    finally:
        r.close()
    r = Raw(ctx)  # the broker is still fine for a new connection
    try:
        r.connect(v)
        # own queue: a consumer left on "-same" by the dropped connection could still take the message
        roundtrip_ok(r, v, q + "-fresh", "fresh connection")
    finally:
        r.close()


@case("malformed-header")
def t_malformed_header(ctx, v):
    q = ctx.queue("bad")
    data = f"SEND\ndestination:{q}\nreceipt:bad-r\nthis line has no colon\n\nbody\0".encode()
    # observed: RabbitMQ 3.10.8 drops the connection silently (no ERROR). ActiveMQ 5.17.2 accepts the frame, takes
    # the line as a header with an empty value (it even reappears on the MESSAGE as "this line has no colon:")
    # and sends the RECEIPT. embedded: reject (ERROR and close), like RabbitMQ and the spec.
    malformed(ctx, v, data, "header line without ':'", "accept" if ctx.kind == "activemq" else "reject")


@case("malformed-command")
def t_malformed_command(ctx, v):
    # observed: both answer ERROR. RabbitMQ 3.10.8: message:"Bad command", body 'Could not interpret command
    # "FROBNICATE"', and keeps the connection open and usable. ActiveMQ 5.17.2: message:"Unknown STOMP action:
    # FROBNICATE", body a Java stack trace, then closes at once. embedded: ERROR then close (spec: a server
    # MUST close the connection just after sending ERROR).
    malformed(ctx, v, b"FROBNICATE\nfoo:bar\n\nbody\0", "unknown command",
              "error-open" if ctx.kind == "rabbitmq" else "reject")


@case("malformed-content-length")
def t_malformed_content_length(ctx, v):
    # observed: both close. RabbitMQ silently; ActiveMQ after ERROR "content-length bytes were read and there
    # was no trailing null byte".
    q = ctx.queue("bad")
    data = f"SEND\ndestination:{q}\ncontent-length:2\nreceipt:bad-r\n\nabcdef\0".encode()
    malformed(ctx, v, data, "no NUL after content-length bytes", "reject")


@case("malformed-escape")
def t_malformed_escape(ctx, v):
    # observed: RabbitMQ 3.10.8 silently drops the connection on an undefined escape (\q), on every version.
    # ActiveMQ 5.17.2 accepts the frame (RECEIPT). embedded: not pinned (the 1.2 spec says fatal; the design
    # notes in brokers.md prefer lenient decoding), only liveness is checked.
    q = ctx.queue("bad")
    data = f"SEND\ndestination:{q}\nx-h:a\\qb\nreceipt:bad-r\n\nbody\0".encode()
    expect = {"rabbitmq": "reject", "activemq": "accept"}.get(ctx.kind, "any")
    malformed(ctx, v, data, "undefined escape \\q in a header", expect)


# 10. auth --------------------------------------------------------------------------------------------------
def close_deadline(ctx):
    # observed: RabbitMQ 3.10.8 closes a connection that never completed CONNECT (after a failed login, a
    # version mismatch, or no CONNECT at all) only when its 10 s handshake timeout expires; ActiveMQ closes
    # right after the ERROR. embedded: close right after the ERROR.
    return 12.0 if ctx.kind == "rabbitmq" else WAIT


@case("auth", when=lambda ctx: ctx.login is not None, background=True)
def t_auth(ctx, v):
    r = Raw(ctx)
    try:
        h = [("login", ctx.login), ("passcode", (ctx.passcode or "") + "-wrong")]
        if v != "1.0":
            h = [("accept-version", v), ("host", ctx.vhost)] + h
        r.send_frame("CONNECT", h)
        t0 = time.monotonic()
        f = r.read_frame(WAIT)
        check(f is not None, "no ERROR for a wrong passcode" + (" (closed)" if r.eof else ""))
        check(f.cmd == "ERROR", f"wrong passcode answered {f!r}")
        ctx.info(f"wrong passcode -> {f!r}")
        closed, more = r.wait_eof(close_deadline(ctx))
        ctx.info(f"closed {closed}" + (f" {r.t_eof - t0:.3f}s after CONNECT" if closed else "")
                 + (f"; then {more}" if more else ""))
        check(closed, f"connection left open {close_deadline(ctx)}s after the auth ERROR")
    finally:
        r.close()


# 11. bare EOLs ---------------------------------------------------------------------------------------------
@case("eols")
def t_eols(ctx, v):
    q = ctx.queue(f"eol{vtag(v)}")
    r = Raw(ctx)
    try:
        r.send(b"\n\r\n\n")  # before CONNECT, LF and CRLF
        r.connect(v)
        sub = Raw.encode("SUBSCRIBE", [("destination", q), ("id", "e"), ("receipt", "s")], version=v)
        snd = Raw.encode("SEND", [("destination", q), ("receipt", "m")], b"eol-body", version=v)
        r.send(b"\r\n\n" + sub + b"\n")  # between frames, one write ...
        r.expect("RECEIPT", what="SUBSCRIBE after EOLs")
        r.send(b"\r\n")  # ... and alone, then more
        r.send(b"\n\r\n" + snd + b"\r\n\r\n")
        frames = [r.read_frame(WAIT), r.read_frame(WAIT)]  # RECEIPT and MESSAGE, in either order
        check(None not in frames, f"after EOLs: {frames} (eof={r.eof})")
        check(sorted(f.cmd for f in frames) == ["MESSAGE", "RECEIPT"], f"after EOLs got {frames}")
        m = [f for f in frames if f.cmd == "MESSAGE"][0]
        check(m.body == b"eol-body", f"MESSAGE body {m.body!r}")
        r.send_frame("DISCONNECT", [("receipt", "bye")], version=v)
        r.expect("RECEIPT", what="DISCONNECT receipt")
    finally:
        r.close()


@case("crlf-frame", versions=("1.2",))
def t_crlf_frame(ctx, v):
    """STOMP 1.2: frame lines may end in CRLF."""
    q = ctx.queue("crlf")
    r = Raw(ctx)
    try:
        r.send(f"CONNECT\r\naccept-version:1.2\r\nhost:{ctx.vhost}\r\n".encode()
               + "".join(f"{k}:{val}\r\n" for k, val in ctx.creds()).encode() + b"\r\n\0")
        c = r.expect("CONNECTED", what="CRLF CONNECT")
        check(c.get("version") == "1.2", f"version {c.get('version')}")
        r.send(f"SUBSCRIBE\r\ndestination:{q}\r\nid:c\r\nreceipt:s\r\n\r\n\0".encode())
        f = r.expect("RECEIPT", what="CRLF SUBSCRIBE")
        check(f.get("receipt-id") == "s", f"receipt-id {f.get('receipt-id')!r}")
        r.send(f"SEND\r\ndestination:{q}\r\ncontent-length:4\r\n\r\ncrlf\0".encode())
        m = r.expect("MESSAGE")
        check(m.body == b"crlf", f"body {m.body!r}")
        check(m.get("destination") == q, f"destination {m.get('destination')!r} (CR kept?)")
    finally:
        r.close()


# ----------------------------------------------------------------------------------------------------------


def selected(name, patterns):
    if not patterns:
        return True
    for p in patterns:
        if name == p or fnmatch.fnmatchcase(name, p) or name.rsplit("-", 1)[0] == p and name[-3:] in VERSIONS:
            return True
    return False


def run_case(ctx, name, fn, v):
    ctx.notes.list = []
    t0 = time.monotonic()
    try:
        fn(ctx, v)
        ok, why = True, ""
    except CaseFail as e:
        ok, why = False, str(e)
    except Exception as e:  # noqa: BLE001 - any crash is that case's failure
        ok, why = False, f"{type(e).__name__}: {e}"
    return ok, why, ctx.notes.list, time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--login")
    ap.add_argument("--passcode")
    ap.add_argument("--kind", choices=["rabbitmq", "activemq", "embedded"], default="embedded")
    ap.add_argument("--vhost", default="/", help="CONNECT host header (RabbitMQ needs an existing vhost)")
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-q", "--quiet", action="store_true", help="no INFO lines")
    ap.add_argument("--max-seconds", type=float, default=85.0)
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # stomp.py logs connection errors we provoke on purpose

    ctx = Ctx(args)
    todo = [(n, f, v, bg) for n, f, v, bg, when in CASES if selected(n, args.only) and (when is None or when(ctx))]
    if args.list:
        for n, *_ in todo:
            print(n)
        return 0
    if not todo:
        print(f"no case matches {args.only}", file=sys.stderr)
        return 2

    out_lock = threading.Lock()
    tally = {"pass": 0, "fail": 0}

    def report(name, ok, why, notes, secs):
        with out_lock:
            if not args.quiet:
                for n in notes:
                    print(f"INFO {name}: {n}")
                if secs > 2.0:
                    print(f"INFO {name}: took {secs:.1f}s")
            print(f"PASS {name}" if ok else f"FAIL {name}: {why}", flush=True)
            tally["pass" if ok else "fail"] += 1

    def watchdog():
        with out_lock:
            print(f"FAIL watchdog: run exceeded {args.max_seconds:.0f}s", flush=True)
            print(f"{tally['pass']} passed, {tally['fail'] + 1} failed", flush=True)
            os._exit(1)

    wd = threading.Timer(args.max_seconds, watchdog)
    wd.daemon = True
    wd.start()
    print(f"# conformance: {args.host}:{args.port} kind={args.kind} run={ctx.run} cases={len(todo)}", flush=True)
    t_start = time.monotonic()

    # Slow, mostly-idle cases (heart-beats) run in background threads alongside the rest.
    bg_results = {}
    threads = []
    for n, f, v, bg in todo:
        if bg:
            th = threading.Thread(target=lambda n=n, f=f, v=v: bg_results.__setitem__(n, run_case(ctx, n, f, v)),
                                  daemon=True)
            th.start()
            threads.append((n, th))
    for n, f, v, bg in todo:
        if not bg:
            report(n, *run_case(ctx, n, f, v))
    for n, th in threads:
        th.join(max(0.0, args.max_seconds - (time.monotonic() - t_start)))
        report(n, *bg_results.get(n, (False, "did not finish", [], 0.0)))
    wd.cancel()
    with out_lock:
        print(f"# {time.monotonic() - t_start:.1f}s", flush=True)
        print(f"{tally['pass']} passed, {tally['fail']} failed", flush=True)
    sys.stdout.flush()
    os._exit(0 if tally["fail"] == 0 else 1)


if __name__ == "__main__":
    sys.exit(main())
