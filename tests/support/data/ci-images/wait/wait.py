"""Wait until HOST:PORT accepts a TCP connection (at most 120 s); exit 0 then, 1 otherwise."""

import socket
import sys
import time

host, _, port = sys.argv[-1].rpartition(":")
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
