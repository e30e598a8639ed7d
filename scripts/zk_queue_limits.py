#!/usr/bin/env python3
"""Helper of scripts/zk-queue-limits.sh (kazoo): builds farm-shaped backlogs and probes them.

Znodes exactly as PROTOCOL.md §2 lays them out, under the connect string's chroot:
/tasks/<id> = a queued TaskRecord (~100 B of JSON), /data/<id> = the payload at version 0,
one multi{create /data, create /tasks} per task (§5.4), ids `<client-id>-<8 digits>`.

  fill   HOSTS/CHROOT N --payload small|large [--ephemeral --hold] [--per-multi K]
  ls     HOSTS/CHROOT PATH             getChildren with kazoo: count, reply bytes, or the error
  serve  HOSTS [--timeout S]           wait until a read is answered; print seconds waited
  lat    HOSTS/CHROOT [--n N]          latency of create+delete of one task pair (p50/p99 ms)

Every command prints one JSON object on stdout.
"""
import argparse
import json
import os
import random
import sys
import threading
import time

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError
import logging

logging.basicConfig(level=logging.CRITICAL)

JUTE_MAXBUFFER = 0xFFFFF  # server and Java-client default (1,048,575 bytes)

SMALL = b'{"kind":"sleep","ms":0}'  # the no-op task, 23 bytes


def large_payload():
    # A valid 64 KiB echo task: {"kind":"echo","message":"xxxx..."} of exactly 65,536 bytes.
    head, tail = b'{"kind":"echo","message":"', b'"}'
    return head + b"x" * (65536 - len(head) - len(tail)) + tail


def record(client_id):
    return json.dumps(
        {"client": client_id, "state": "queued", "attempt": 0,
         "submitted_ms": int(time.time() * 1000), "timeout_ms": 0},
        separators=(",", ":")).encode()


def reply_bytes(names):
    """Bytes of a getChildren reply frame (what a client's length check sees): ReplyHeader
    (xid 4 + zxid 8 + err 4) + vector count 4 + per child a 4-byte length and the name."""
    return 16 + 4 + sum(4 + len(n.encode()) for n in names)


def client(hosts, timeout=30.0):
    zk = KazooClient(hosts=hosts, timeout=timeout, connection_retry={"max_tries": -1, "delay": 0.2,
                                                                     "max_delay": 1})
    zk.start(timeout=120)
    return zk


def cmd_fill(a):
    zk = client(a.hosts, a.session_timeout)
    payload = large_payload() if a.payload == "large" else SMALL
    cid = a.client_id
    mode = dict(ephemeral=a.ephemeral)
    t0 = time.time()
    window = threading.BoundedSemaphore(a.window)
    errors = []
    done = [0]

    def on_done(res):
        try:
            out = res.get()
            bad = [r for r in out if isinstance(r, Exception)]
            if bad:
                errors.append(repr(bad[0]))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        done[0] += 1
        window.release()

    i = a.start
    end = a.start + a.n
    while i < end and not errors:
        k = min(a.per_multi, end - i)
        t = zk.transaction()
        for j in range(i, i + k):
            tid = "%s-%08d" % (cid, j)
            t.create("/data/" + tid, payload, **mode)
            t.create("/tasks/" + tid, record(cid), **mode)
        window.acquire()
        t.commit_async().rawlink(on_done)
        i += k
    for _ in range(a.window):
        window.acquire()
    secs = time.time() - t0
    out = {"created_tasks": i - a.start, "secs": round(secs, 2),
           "tasks_per_s": round((i - a.start) / max(secs, 1e-9)), "errors": errors[:3],
           "session": hex(zk.client_id[0]) if zk.client_id else None}
    print(json.dumps(out), flush=True)
    if a.hold:
        # Keep the session (and its ephemerals) alive until told to stop (stdin closes or
        # SIGTERM), reconnecting across server restarts as a real client would.
        try:
            sys.stdin.read()
        except KeyboardInterrupt:
            pass
        if a.hold == "close":
            zk.stop()
        else:  # "kill": leave without closing, like a killed client (the session times out)
            os._exit(0)
    zk.stop()
    return 1 if errors else 0


def cmd_ls(a):
    zk = client(a.hosts)
    t0 = time.time()
    try:
        names = zk.get_children(a.path)
        secs = time.time() - t0
        rb = reply_bytes(names)
        print(json.dumps({"client": "kazoo", "ok": True, "children": len(names), "reply_bytes": rb,
                          "over_jute_maxbuffer": rb > JUTE_MAXBUFFER, "ms": round(secs * 1000)}))
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"client": "kazoo", "ok": False, "error": "%s: %s" % (type(e).__name__, e)}))
    zk.stop()


def cmd_serve(a):
    t0 = time.time()
    deadline = t0 + a.timeout
    while time.time() < deadline:
        zk = KazooClient(hosts=a.hosts, timeout=10, connection_retry=None, command_retry=None)
        try:
            zk.start(timeout=2)
            zk.get_children("/")
            zk.stop()
            print(json.dumps({"serving_after_s": round(time.time() - t0, 2)}))
            return 0
        except (KazooTimeoutError, KazooException, Exception):  # noqa: BLE001
            try:
                zk.stop()
            except Exception:  # noqa: BLE001
                pass
            time.sleep(0.1)
    print(json.dumps({"serving_after_s": None}))
    return 1


def cmd_lat(a):
    zk = client(a.hosts)
    lat = []
    payload = SMALL
    for j in range(a.n):
        tid = "lat-%08d" % j
        t0 = time.perf_counter()
        t = zk.transaction()
        t.create("/data/" + tid, payload, ephemeral=True)
        t.create("/tasks/" + tid, record("lat"), ephemeral=True)
        t.commit()
        t = zk.transaction()
        t.delete("/tasks/" + tid)
        t.delete("/data/" + tid)
        t.commit()
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    print(json.dumps({"create_delete_p50_ms": round(lat[len(lat) // 2], 2),
                      "p99_ms": round(lat[int(len(lat) * 0.99)], 2)}))
    zk.stop()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fill")
    f.add_argument("hosts")
    f.add_argument("n", type=int)
    f.add_argument("--payload", choices=["small", "large"], default="small")
    f.add_argument("--client-id", default="client-%08x" % random.getrandbits(32))
    f.add_argument("--start", type=int, default=1)
    f.add_argument("--per-multi", type=int, default=1)
    f.add_argument("--window", type=int, default=256)
    f.add_argument("--ephemeral", action="store_true")
    f.add_argument("--hold", choices=["close", "kill"], default=None)
    f.add_argument("--session-timeout", type=float, default=30.0)
    s = sub.add_parser("ls")
    s.add_argument("hosts")
    s.add_argument("path")
    v = sub.add_parser("serve")
    v.add_argument("hosts")
    v.add_argument("--timeout", type=float, default=600)
    la = sub.add_parser("lat")
    la.add_argument("hosts")
    la.add_argument("--n", type=int, default=300)
    a = p.parse_args()
    return {"fill": cmd_fill, "ls": cmd_ls, "serve": cmd_serve, "lat": cmd_lat}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main())
