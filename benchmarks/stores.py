"""Object stores: adownload against boto3 (s3transfer, what `aws s3 cp` runs) on moto's S3 server.

Usage: python -m benchmarks.stores [--repeat N] [--python PATH] [--large MIB] [--small N]

Starts moto's server on 127.0.0.1 (`python -m moto.server`), fills a bucket with boto3 (one
large object, N x 64 KiB objects), then, alternating run by run, downloads each set in a fresh
process with each tool into an empty folder:

- `adownload`: `download_many` of the `s3://` URLs (16 at a time; the large object over
  8 range reads), unsigned, as `--no-sign-request` (the bucket is public);
- `boto3`: `download_file` per object (s3transfer's ranged, threaded GETs, as `aws s3 cp`
  does), 16 objects at once in a thread pool (as `aws s3 cp --recursive` with
  `max_concurrent_requests = 16`), unsigned too.
- `s5cmd`, when it is on PATH (`s5cmd --no-sign-request --endpoint-url E cp 's3://b/*' DIR`).

With `--listing N`, it measures instead the mirror of a prefix of N keys and of N/10 keys
(`adownload mirror --dry-run`: the paginated listing and the plan, no body), to show that the
caller's peak RSS does not grow with the number of keys.

Every run is checked (the files' SHA-256). Prints wall time, CPU time (the tool's process and
its children) and peak RSS, medians, and adownload / boto3. moto is a Python server and
bounds both: the ratio compares what each client costs on top of the same server.

Needs the `test` extra (moto[server], boto3, obstore) in the driver interpreter.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .common import KIB, MIB
from .measure import Measurement, measured_process

ADOWNLOAD = """
import sys, adownload
endpoint, dest, *urls = sys.argv[1:]
with_many = len(urls) > 1
options = {"endpoint": endpoint, "region": "us-east-1", "skip_signature": True}
outcomes = adownload.download_many(
    urls, dest=dest, store_options=options,
    limits=adownload.Limits(max_transfers=16, max_per_host=16),
    segments=adownload.Segments(count=8, min_size=8 << 20),
)
failed = [o for o in outcomes if not o.ok]
if failed:
    sys.exit(f"{len(failed)} failed: {failed[0].error}")
"""

BOTO3 = """
import sys, os, boto3
from botocore import UNSIGNED
from botocore.config import Config
from boto3.s3.transfer import TransferConfig
from concurrent.futures import ThreadPoolExecutor
endpoint, dest, bucket, *keys = sys.argv[1:]
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      config=Config(signature_version=UNSIGNED, max_pool_connections=16))
transfer = TransferConfig(max_concurrency=8, multipart_chunksize=8 << 20)
def get(key):
    client.download_file(bucket, key, os.path.join(dest, key), Config=transfer)
with ThreadPoolExecutor(16) as pool:
    list(pool.map(get, keys))
"""


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _moto(python: str) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 for the run; its endpoint."""
    port = _free_port()
    moto = subprocess.Popen(
        [python, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        moto.terminate()
        moto.wait(30)


def _client(endpoint: str) -> Any:
    """boto3's S3 client for moto (which takes any credentials), to fill the buckets."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )


def _fill(endpoint: str, bucket: str, objects: dict[str, bytes]) -> None:
    client = _client(endpoint)
    client.create_bucket(Bucket=bucket)
    for key, data in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=data, ACL="public-read")


def _check(dest: Path, objects: dict[str, bytes]) -> str | None:
    for key, data in objects.items():
        path = dest / key
        if not path.is_file():
            return f"{key} is missing"
        if hashlib.sha256(path.read_bytes()).digest() != hashlib.sha256(data).digest():
            return f"{key} does not hold its bytes"
    return None


def _argv(
    tool: str, python: str, endpoint: str, bucket: str, dest: Path, keys: list[str]
) -> list[str]:
    if tool == "adownload":
        return [python, "-c", ADOWNLOAD, endpoint, str(dest), *(f"s3://{bucket}/{k}" for k in keys)]
    if tool == "boto3":
        return [python, "-c", BOTO3, endpoint, str(dest), bucket, *keys]
    pattern = f"s3://{bucket}/{keys[0]}" if len(keys) == 1 else f"s3://{bucket}/*"
    return ["s5cmd", "--no-sign-request", "--endpoint-url", endpoint, "cp", pattern, f"{dest}/"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--large", type=int, default=1024, help="MiB of the large object")
    parser.add_argument("--small", type=int, default=1000, help="how many 64 KiB objects")
    parser.add_argument("--listing", type=int, default=0, help="keys of the listing measure")
    args = parser.parse_args(argv)
    if args.listing:
        return _listing(args.python, args.listing)
    tools = ["adownload", "boto3"] + (["s5cmd"] if shutil.which("s5cmd") else [])
    with _moto(args.python) as endpoint:
        block = os.urandom(MIB)
        sets = {
            f"1 x {args.large} MiB": ("large", {"large.bin": block * args.large}),
            f"{args.small} x 64 KiB": (
                "small",
                {f"f{n:05d}.bin": os.urandom(64 * KIB) for n in range(args.small)},
            ),
        }
        for bucket, objects in sets.values():
            _fill(endpoint, bucket, objects)
        print(f"{'objects':<16} {'tool':<10} {'wall s':>8} {'CPU s':>8} {'RSS MiB':>8}")
        with tempfile.TemporaryDirectory(prefix="adownload-stores-bench-") as temp:
            work = Path(temp)
            for label, (bucket, objects) in sets.items():
                results: dict[str, list[Measurement]] = {tool: [] for tool in tools}
                keys = list(objects)
                for repetition in range(args.repeat):
                    for tool in tools:
                        dest = work / f"{tool}-{bucket}"
                        shutil.rmtree(dest, ignore_errors=True)
                        dest.mkdir()
                        log = work / f"{tool}-{bucket}-{repetition}.log"
                        argv_ = _argv(tool, args.python, endpoint, bucket, dest, keys)
                        measured = measured_process(argv_, log, timeout=1800)
                        error = (
                            f"exit {measured.exit_code}: {log.read_text()[-500:]}"
                            if measured.exit_code != 0
                            else _check(dest, objects)
                        )
                        if error is not None:
                            print(f"{label}: {tool} failed: {error}")
                            return 1
                        results[tool].append(measured)
                        shutil.rmtree(dest, ignore_errors=True)
                walls = {}
                for tool in tools:
                    runs = results[tool]
                    wall = statistics.median(r.wall_s for r in runs)
                    walls[tool] = wall
                    cpu = statistics.median(r.cpu_s for r in runs)
                    rss = max(r.max_rss_kib for r in runs) / KIB
                    print(f"{label:<16} {tool:<10} {wall:8.2f} {cpu:8.2f} {rss:8.1f}")
                print(f"{label:<16} {'adl/boto3':<10} {walls['adownload'] / walls['boto3']:8.2f}")
    return 0


def _listing(python: str, keys: int) -> int:
    """Peak RSS of `adownload mirror --dry-run` over N/10 keys and over N keys."""
    from concurrent.futures import ThreadPoolExecutor

    with _moto(python) as endpoint:
        client = _client(endpoint)
        sizes = {"tenth": keys // 10, "all": keys}
        for bucket, count in sizes.items():
            client.create_bucket(Bucket=bucket)
            with ThreadPoolExecutor(16) as pool:
                list(
                    pool.map(
                        lambda n, b=bucket: client.put_object(
                            Bucket=b,
                            Key=f"d{n % 100:02d}/k{n:07d}.bin",
                            Body=b"x",
                            ACL="public-read",
                        ),
                        range(count),
                    )
                )
        print(f"{'keys':>8} {'wall s':>8} {'CPU s':>8} {'RSS MiB':>8}")
        with tempfile.TemporaryDirectory(prefix="adownload-listing-bench-") as temp:
            for bucket, count in sizes.items():
                log = Path(temp) / f"{bucket}.log"
                argv = [
                    python,
                    "-m",
                    "adownload",
                    "mirror",
                    "--dry-run",
                    "-q",
                    f"s3://{bucket}/",
                    str(Path(temp) / bucket),
                    "--endpoint-url",
                    endpoint,
                    "--no-sign-request",
                ]
                measured = measured_process(argv, log, timeout=3600)
                if measured.exit_code != 0:
                    print(f"{bucket}: exit {measured.exit_code}: {log.read_text()[-500:]}")
                    return 1
                rss = measured.max_rss_kib / KIB
                print(f"{count:>8} {measured.wall_s:8.2f} {measured.cpu_s:8.2f} {rss:8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
