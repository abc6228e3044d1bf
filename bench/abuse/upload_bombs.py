#!/usr/bin/env python3
"""Decompression bombs against `wardrobe serve` while an honest seller uploads real photos.

40 clients each upload four PNG bombs (a few tens of kilobytes declaring 7000×7000 grey pixels)
to /v1/label, one per request, while one honest client uploads 20 real photos one at a time.
Prints every bomb's status, the honest uploads' statuses and latencies, and the server's peak
resident memory (VmHWM). Standard library only.

usage: upload_bombs.py HOST:PORT SERVER_PID PHOTO_DIR [BOMB.png]
"""
import glob
import json
import os
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib

addr, pid, photo_dir = sys.argv[1], sys.argv[2], sys.argv[3]


def png_bomb(side=7000):
    """A grey PNG of side² zero pixels, compressed as well as zlib can."""
    raw = b"".join(b"\x00" + bytes(side) for _ in range(side))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


bomb = open(sys.argv[4], "rb").read() if len(sys.argv) > 4 else png_bomb()


def upload(name, data):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(f"http://{addr}/v1/label", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status, time.perf_counter() - started


bomb_statuses, honest = [], []
lock = threading.Lock()


def attacker(k):
    for i in range(4):
        status, _ = upload(f"bomb{k}-{i}.png", bomb)
        with lock:
            bomb_statuses.append(status)


def seller():
    for path in sorted(glob.glob(os.path.join(photo_dir, "*")))[:20]:
        honest.append(upload(os.path.basename(path), open(path, "rb").read()))


threads = [threading.Thread(target=attacker, args=(k,)) for k in range(40)] + [threading.Thread(target=seller)]
[t.start() for t in threads]
[t.join() for t in threads]
hwm = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmHWM"))
latencies = sorted(t for _, t in honest)
print(json.dumps({
    "bomb_bytes": len(bomb),
    "bombs": len(bomb_statuses),
    "bomb_statuses": {str(s): bomb_statuses.count(s) for s in sorted(set(bomb_statuses))},
    "honest": len(honest),
    "honest_statuses": {str(s): [h[0] for h in honest].count(s) for s in sorted(set(h[0] for h in honest))},
    "honest_p50_s": round(latencies[len(latencies) // 2], 3),
    "honest_p99_s": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 3),
    "honest_max_s": round(latencies[-1], 3),
    "server_vmhwm_mib": round(hwm / 1024, 1),
}))
