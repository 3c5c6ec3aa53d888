# Connection floods for crates/adieu/tests/e2e/connections.rs (loopback only, bounded in count
# and time, stops by itself).
#
#   python3 flood.py idle HOST PORT SOURCE N SECONDS
#       opens N connections from SOURCE, sends nothing, holds them SECONDS, then prints
#       "opened=<n> closed_by_server=<n>".
#   python3 flood.py slow HOST PORT SOURCE N SECONDS
#       opens N connections from SOURCE and sends a request head one byte every 0.5 s without
#       ever finishing it; prints "opened=<n> closed_by_server=<n> last_close_s=<seconds>" after
#       SECONDS or when the server has closed them all.
import selectors
import socket
import sys
import time

mode, host, port, source, n, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
sel = selectors.DefaultSelector()
socks = []
start = time.monotonic()
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(2)
    try:
        s.connect((host, port))
    except OSError:
        s.close()
        continue
    s.setblocking(False)
    if mode == "slow":
        try:
            s.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        except OSError:
            pass
    sel.register(s, selectors.EVENT_READ)
    socks.append(s)
print(f"connected={len(socks)} after {time.monotonic() - start:.1f}s", file=sys.stderr, flush=True)
opened = len(socks)
closed = 0
last_close = 0.0
begin = time.monotonic()
next_drip = begin + 0.5
while time.monotonic() - begin < seconds and closed < opened:
    for key, _ in sel.select(timeout=0.1):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            sel.unregister(s)
            s.close()
            closed += 1
            last_close = time.monotonic() - begin
    if mode == "slow" and time.monotonic() >= next_drip:
        next_drip += 0.5
        for key in list(sel.get_map().values()):
            try:
                key.fileobj.send(b"a")
            except OSError:
                pass
print(f"opened={opened} closed_by_server={closed} last_close_s={last_close:.2f}", flush=True)
