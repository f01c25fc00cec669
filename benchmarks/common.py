"""Constants every part of the benchmark shares: sizes, the loopback address, the
concurrency, the throttle and the drivers' exit statuses."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
LOOPBACK = "127.0.0.1"

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

CONCURRENCY = 16
SMALL_FILE_SIZE = 64 * KIB
# nginx size suffixes are binary: "20m" is 20 MiB/s (about 21.0 MB/s) per connection.
LIMIT_RATE = "20m"
LIMIT_RATE_BYTES = 20 * MIB
# The delaying proxy holds each direction's bytes this long: a 50 ms round trip.
ONE_WAY_DELAY = 0.025
WRITE_CHUNK = 4 * MIB

EXIT_NOT_AVAILABLE = 3  # the driver scripts' "feature not there yet"
EXIT_MISSING = 4  # the driver scripts' "package not importable"

#: The metalink scenarios' mirrors: (name, nginx limit_rate per connection, corrupt copy).
MIRRORS = (("fast", "8m", False), ("medium", "4m", False), ("slow", "2m", False),
           ("corrupting", "4m", True))  # fmt: skip
#: Connections for the one file of a metalink scenario, for every tool.
METALINK_CONNECTIONS = 6
METALINK_PIECE = 1 * MIB
#: The throttling server: 429 above this many requests in hand, each taking SERVICE_S.
THROTTLE_LIMIT = 4
SERVICE_S = 0.02
#: Further tries per file in adaptive-429, for every tool (each with its own backoff).
THROTTLE_RETRIES = 20
