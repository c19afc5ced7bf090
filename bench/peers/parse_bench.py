#!/usr/bin/python3
"""Speed of stomp.py's (8.0) own frame parser on an in-memory byte string.

  parse_bench.py FILE [--chunk 1024]                 FILE holds many concatenated server frames
  parse_bench.py --generate FILE [--frames 10000] [--size 200] [--no-content-length]
                                                    writes MESSAGE frames (with content-length unless told)

Runs the library's real receive path with the socket replaced by memory: BaseTransport.__read (the
buffer accumulation and NUL/content-length frame splitting, fed in recv()-sized chunks, 1024 bytes
being stomp.py's default recv_bytes), then parse_frame() and the body decode, as __receiver_loop does.
Only listener dispatch is left out. Prints one JSON line; MB = 10^6 bytes.
"""
import argparse
import json
import time

from stomp import exception, transport, utils


class MemoryTransport(transport.BaseTransport):
    def __init__(self, data, chunk):
        super().__init__()  # auto_decode=True, as stomp.Connection uses
        self.data, self.chunk, self.pos = data, chunk, 0
        self.running = True

    def receive(self):  # stands in for socket.recv(recv_bytes); b"" at the end means "closed"
        c = self.data[self.pos:self.pos + self.chunk]
        self.pos += self.chunk
        return c


def parse_all(data, chunk):
    t = MemoryTransport(data, chunk)
    read, is_eol = t._BaseTransport__read, t._BaseTransport__is_eol
    frames = 0
    try:
        while True:
            for raw in read():  # same per-frame steps as BaseTransport.__receiver_loop
                f = utils.HEARTBEAT_FRAME if is_eol(raw) else utils.parse_frame(raw)
                if f is None:
                    continue
                f.body = utils.decode(f.body)
                if f.cmd != "heartbeat":
                    frames += 1
    except exception.ConnectionClosedException:
        pass
    return frames


def generate(path, n, size, content_length=True):
    body = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    with open(path, "wb") as out:
        for i in range(n):
            length = b"content-length:%d\n" % size if content_length else b""
            out.write(b"MESSAGE\nsubscription:1\ndestination:/topic/bench\n"
                      b"message-id:T_1@@session-bench@@%d\nredelivered:false\n%s\n%s\0"
                      % (i, length, body))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("file")
    p.add_argument("--chunk", type=int, default=1024)
    p.add_argument("--generate", action="store_true")
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--no-content-length", action="store_true")
    a = p.parse_args()
    if a.generate:
        generate(a.file, a.frames, a.size, not a.no_content_length)
        return
    with open(a.file, "rb") as f:
        data = f.read()
    t0 = time.perf_counter()
    frames = parse_all(data, a.chunk)
    secs = time.perf_counter() - t0
    print(json.dumps({"parser": "stomp.py", "bytes": len(data), "frames": frames, "seconds": round(secs, 4),
                      "mb_per_s": round(len(data) / 1e6 / secs, 2), "frames_per_s": round(frames / secs, 1)},
                     separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
