"""A real S3 API for the tests: moto's server (`python -m moto.server`) on 127.0.0.1, one per
test worker, and `S3Front`, an aiohttp application in front of it that records what adownload
asked (method, key, Range, If-Match, signed or not, bytes sent) and can break an answer on cue
(cut a body after N bytes, answer 503 SlowDown or 403 AccessDenied), as the fault server does
for HTTP. Buckets are filled with boto3, straight at moto, so that setting up is not recorded.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .support import child_server

_SESSION = web.AppKey("session", aiohttp.ClientSession)

#: Fake credentials: moto accepts any. A distinctive secret, to search every output for.
ACCESS_KEY = "AKIAADOWNLOADTEST"
SECRET_KEY = "s3cret-D0-N0T-SH0W-7f3a"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server as a child process; its endpoint."""
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p"]
    with child_server(lambda port: [*command, str(port)], "moto's server") as port:
        yield f"http://127.0.0.1:{port}"


def boto(endpoint: str) -> Any:
    import boto3  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )


@dataclass
class Asked:
    """One request the front passed on."""

    method: str
    bucket: str
    key: str
    query: dict[str, str]
    range: str | None
    if_match: str | None
    signed: bool
    status: int = 0
    sent: int = 0  # body bytes sent back


@dataclass
class S3Front:
    """The front: `endpoint` for adownload, `asked` for the test, `plan` for faults."""

    upstream: str
    bucket: str
    endpoint: str = ""
    asked: list[Asked] = field(default_factory=list)
    faults: dict[str, list[str]] = field(default_factory=dict)

    def plan(self, key: str, steps: list[str]) -> None:
        """The next requests for `key`, one step each: `cut:N` (the body stops after N
        bytes: the connection is reset), `status:CODE:Name` (an S3 error answer)."""
        self.faults.setdefault(key, []).extend(steps)

    def gets(self, key: str | None = None) -> list[Asked]:
        """The GETs of objects (not listings), of `key` if given."""
        return [
            a
            for a in self.asked
            if a.method == "GET"
            and a.key
            and "list-type" not in a.query
            and (key is None or a.key == key)
        ]

    def put(self, key: str, data: bytes, *, public: bool = False) -> str:
        """Store an object (straight at moto), readable by anyone when `public`; its ETag."""
        extra = {"ACL": "public-read"} if public else {}
        answer = boto(self.upstream).put_object(Bucket=self.bucket, Key=key, Body=data, **extra)
        etag: str = answer["ETag"]
        return etag

    def delete(self, key: str) -> None:
        boto(self.upstream).delete_object(Bucket=self.bucket, Key=key)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        bucket, _, key = request.path.lstrip("/").partition("/")
        asked = Asked(
            request.method,
            bucket,
            key,
            dict(request.query),
            request.headers.get("Range"),
            request.headers.get("If-Match"),
            "Authorization" in request.headers,
        )
        self.asked.append(asked)
        steps = self.faults.get(key)
        step = steps.pop(0) if steps else None
        if step is not None and step.startswith("status:"):
            _, code, name = step.split(":")
            asked.status = int(code)
            body = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f"<Error><Code>{name}</Code><Message>{name}</Message></Error>"
            )
            return web.Response(status=int(code), text=body, content_type="application/xml")
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in ("host", "content-length")
        }
        session = request.app[_SESSION]
        async with session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read() or None,
            allow_redirects=False,
            auto_decompress=False,
        ) as upstream:
            asked.status = upstream.status
            response = web.StreamResponse(status=upstream.status)
            for name, value in upstream.headers.items():
                if name.lower() not in ("transfer-encoding", "connection", "server", "date"):
                    response.headers[name] = value
            await response.prepare(request)
            cut = int(step.split(":")[1]) if step is not None and step.startswith("cut:") else None
            async for chunk in upstream.content.iter_chunked(64 << 10):
                if cut is not None and asked.sent + len(chunk) >= cut:
                    await response.write(chunk[: cut - asked.sent])
                    asked.sent = cut
                    assert request.transport is not None
                    request.transport.abort()  # a reset, mid-body
                    return response
                await response.write(chunk)
                asked.sent += len(chunk)
            await response.write_eof()
            return response


@contextlib.asynccontextmanager
async def s3_front(upstream: str) -> AsyncIterator[S3Front]:
    """A new bucket on moto, and the front for it on 127.0.0.1."""
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    boto(upstream).create_bucket(Bucket=bucket)
    front = S3Front(upstream, bucket)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", front._handle)
    async with aiohttp.ClientSession() as session:
        app[_SESSION] = session
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        front.endpoint = f"http://127.0.0.1:{port}"
        try:
            yield front
        finally:
            await runner.cleanup()


#: Azurite's well-known development account (public, in Microsoft's documentation).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@contextlib.contextmanager
def azurite(root: Path) -> Iterator[str]:
    """Azurite's blob service (Microsoft's emulator, from npm) on 127.0.0.1; its endpoint.
    `.ci/run` installs it; a machine without `azurite-blob` on PATH skips these tests."""
    import shutil

    import pytest

    binary = shutil.which("azurite-blob")
    if binary is None:
        pytest.skip("needs azurite-blob (npm install azurite)")
    options = ["--location", str(root), "--silent", "--skipApiVersionCheck", "--loose"]
    with child_server(
        lambda port: [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), *options],
        "azurite",
    ) as port:
        yield f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"


def azure_container(endpoint: str, name: str) -> Any:
    """A new container on Azurite (with Azure's own SDK); its client, to put blobs with."""
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )
    return service.create_container(name)
