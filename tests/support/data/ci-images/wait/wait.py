"""Wait until HOST:PORT accepts a TCP connection, as wait-for-it does: `wait.py HOST:PORT [-t N]`
(gitlab-ci-local passes `docker:2376 -t 30`); exit 0 then, 1 after N seconds (default 120)."""

import socket
import sys
import time

args = sys.argv[1:]
seconds = float(args[args.index("-t") + 1]) if "-t" in args else 120.0
target = next(arg for arg in args if ":" in arg)
host, _, port = target.rpartition(":")
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit(1)
