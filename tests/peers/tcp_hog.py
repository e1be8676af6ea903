#!/usr/bin/env python3
"""One address trying to hold every ICE-TCP slot of a server (issue 34): opens N connections to HOST:PORT,
reopens every one the server closes, and sends each a junk byte every few seconds (so an idle timer that
any byte resets never fires), until SECONDS pass.

    tcp_hog.py HOST PORT [--connections N] [--seconds S]

Prints one JSON line every second: {"opened", "closed_by_server", "held", "held_2s"} (held_2s: open for
at least 2 s), and a last one with "done": true.
"""
import argparse
import json
import selectors
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--connections", type=int, default=2100)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()

    sel = selectors.DefaultSelector()
    conns = {}  # socket -> opened at
    stats = {"opened": 0, "closed_by_server": 0, "refused": 0}

    def open_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect((args.host, args.port))
        except BlockingIOError:
            pass
        except OSError:
            stats["refused"] += 1
            s.close()
            return
        conns[s] = time.monotonic()
        sel.register(s, selectors.EVENT_READ)
        stats["opened"] += 1

    end = time.monotonic() + args.seconds
    next_report = next_poke = time.monotonic()
    while time.monotonic() < end:
        # At most 100 (re)opened per round (~400/s): the server's refusals are answered at once.
        for _ in range(min(100, args.connections - len(conns))):
            open_one()
        for key, _ in sel.select(timeout=0.1):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                del conns[s]
                s.close()
                stats["closed_by_server"] += 1
        now = time.monotonic()
        if now >= next_poke:
            next_poke = now + 5
            for s in list(conns):
                try:
                    s.send(b"\x05")  # a frame's length, byte by byte: a half frame never completes
                except OSError:
                    pass
        if now >= next_report:
            next_report = now + 1
            held_2s = sum(1 for t in conns.values() if now - t >= 2)
            print(json.dumps({**stats, "held": len(conns), "held_2s": held_2s}), flush=True)
        # Reopening what the server closed at once would spin: a short pause per round.
        time.sleep(0.1)
    now = time.monotonic()
    held_2s = sum(1 for t in conns.values() if now - t >= 2)
    print(json.dumps({**stats, "held": len(conns), "held_2s": held_2s, "done": True}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
