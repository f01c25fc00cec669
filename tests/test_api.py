"""The public surface: exports, lifecycle misuse, bad input, the blocking layer, pickling."""

from __future__ import annotations

import asyncio
import os
import pickle
import types
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

import adownload
from adownload import (
    DestinationExistsError,
    Downloader,
    DownloadError,
    HTTPStatusError,
    IncompleteBodyError,
    InvalidRequestError,
    Limits,
    ReadTimeout,
    Request,
    StorageError,
    Timeout,
)

from .servers import Server
from .support import listing, payload


def test_all_lists_exactly_the_public_names() -> None:
    # Submodules are not names of the API (adownload.cli appears once the command is imported).
    # dir(), not vars(): the mirror's names are imported on first use.
    public = {
        name
        for name in dir(adownload)
        if not name.startswith("_") and not isinstance(getattr(adownload, name), types.ModuleType)
    }
    assert sorted(adownload.__all__) == adownload.__all__
    assert set(adownload.__all__) == public | {"__version__"}


def test_version_comes_from_the_installed_metadata() -> None:
    from importlib.metadata import version

    assert adownload.__version__ == version("adownload")


# --- lifecycle -----------------------------------------------------------------------------


async def test_use_before_open_is_a_runtime_error(server: Server) -> None:
    dl = Downloader()
    with pytest.raises(RuntimeError, match="not open"):
        await dl.download(server("/files/a.bin"))
    with pytest.raises(RuntimeError, match="not open"):
        await dl.download_many([server("/files/a.bin")])


async def test_a_closed_downloader_cannot_be_used_or_reopened(server: Server, dest: Path) -> None:
    dl = Downloader(dest=dest)
    async with dl:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        await dl.download(server("/files/a.bin"))
    with pytest.raises(RuntimeError, match="cannot be reopened"):
        async with dl:
            pass
    assert listing(dest) == []


async def test_opening_twice_is_a_runtime_error() -> None:
    async with Downloader() as dl:
        with pytest.raises(RuntimeError, match="already open"):
            await dl.__aenter__()


async def test_a_closed_borrowed_session_is_refused() -> None:
    session = aiohttp.ClientSession()
    await session.close()
    with pytest.raises(RuntimeError, match="closed"):
        async with Downloader(session=session):
            pass


# --- bad input: a clear error each, and nothing on disk touched --------------------------

BAD_URLS = [
    ("", "empty URL"),
    ("   ", "empty URL"),
    ("not a url", "not absolute"),
    ("/relative/path.zip", "not absolute"),
    ("gopher://example.org/a.zip", "unsupported URL scheme 'gopher'"),
    ("file:///etc/passwd", "unsupported URL scheme 'file'"),
    ("http://", "no host"),
    ("http://exa mple.org/\r\nX: y", "control characters"),
    ("http://[::1/a.zip", "malformed URL"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
async def test_bad_urls_raise_a_clear_error(url: str, message: str, dest: Path) -> None:
    async with Downloader(dest=dest) as dl:
        with pytest.raises(InvalidRequestError, match=message) as caught:
            await dl.download(url)
    assert isinstance(caught.value, ValueError)
    assert listing(dest) == []


async def test_bad_items_become_failed_outcomes_next_to_good_ones(
    server: Server, dest: Path
) -> None:
    items = ["gopher://x/a", server("/files/good.bin"), 42, "", URL("http://h")]
    async with Downloader(dest=dest, timeout=Timeout(connect=0.5)) as dl:
        outcomes = await dl.download_many(items[:4])  # type: ignore[arg-type]
    assert [o.ok for o in outcomes] == [False, True, False, False]
    assert all(isinstance(o.error, InvalidRequestError) for i, o in enumerate(outcomes) if i != 1)
    assert "not 42" in str(outcomes[2].error)
    assert outcomes[2].request is None
    assert listing(dest) == ["good.bin"]


async def test_a_single_url_is_not_mistaken_for_a_list(server: Server) -> None:
    async with Downloader() as dl:
        with pytest.raises(TypeError, match="use download"):
            await dl.download_many(server("/files/a.bin"))


async def test_an_error_in_the_callers_iterable_propagates(server: Server, dest: Path) -> None:
    def items():
        yield server("/files/a.bin")
        raise LookupError("the list broke")

    async with Downloader(dest=dest) as dl:
        with pytest.raises(LookupError, match="the list broke"):
            await dl.download_many(items())


async def test_destination_directory_that_is_a_file_is_a_clear_error(
    server: Server, dest: Path
) -> None:
    (dest / "file").write_bytes(b"keep")
    async with Downloader() as dl:
        outcomes = await dl.download_many([server("/files/a.bin")], dest=dest / "file")
    assert isinstance(outcomes[0].error, InvalidRequestError)
    assert "is not a directory" in str(outcomes[0].error)
    assert (dest / "file").read_bytes() == b"keep"


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: Limits(max_transfers=0), ValueError),
        (lambda: Limits(max_per_host=-1), ValueError),
        (lambda: Limits(max_transfers=2.5), TypeError),  # type: ignore[arg-type]
        (lambda: Timeout(read=-1), ValueError),
        (lambda: Timeout(connect=0), ValueError),
        (lambda: Timeout(total=float("inf")), ValueError),
        (lambda: Timeout(read="5"), TypeError),  # type: ignore[arg-type]
        (lambda: Downloader(limits=5), TypeError),  # type: ignore[arg-type]
        (lambda: Downloader(existing="skip"), TypeError),  # type: ignore[arg-type]
        (lambda: Downloader(max_redirects=-1), ValueError),
        (lambda: Request("http://h/a", existing="skip"), InvalidRequestError),  # type: ignore[arg-type]
        (lambda: Request("http://h/a", "p", sink=adownload.MemorySink()), InvalidRequestError),
    ],
)
def test_bad_options_are_refused_when_made(make, error) -> None:
    with pytest.raises(error):
        make()


# --- the blocking layer -------------------------------------------------------------------


def test_blocking_download_and_download_many(threaded_server: Server, dest: Path) -> None:
    outcome = adownload.download(threaded_server("/files/one.bin"), dest=dest / "one.bin")
    assert outcome.ok
    assert (dest / "one.bin").read_bytes() == payload("one.bin", 1024)
    outcomes = adownload.download_many(
        [threaded_server("/files/two.bin"), threaded_server("/status/404/three.bin")],
        dest=dest,
    )
    assert [o.ok for o in outcomes] == [True, False]
    with pytest.raises(HTTPStatusError):
        adownload.download(threaded_server("/status/410/gone.bin"), dest=f"{dest}/")
    assert listing(dest) == ["one.bin", "two.bin"]


async def test_blocking_calls_work_inside_a_running_event_loop_as_in_a_notebook(
    threaded_server: Server, dest: Path, tmp_path: Path
) -> None:
    # A Jupyter cell runs inside the kernel's event loop: the blocking functions run their own
    # loop in a worker thread there (blocking this one meanwhile), as pooch and parfive do.
    asyncio.get_running_loop()  # this test runs inside one
    outcome = adownload.download(threaded_server("/files/nb.bin", size=2000), dest=dest)
    assert outcome.ok
    [many] = adownload.download_many([threaded_server("/files/nb2.bin", size=30)], dest=dest)
    assert many.ok
    with pytest.raises(HTTPStatusError):
        adownload.download(threaded_server("/status/404/gone.bin"), dest=dest)
    path = adownload.fetch(threaded_server("/files/nb3.bin", size=50), cache=tmp_path / "cache")
    assert path.read_bytes() == payload("nb3.bin", 50)
    assert listing(dest) == ["nb.bin", "nb2.bin"]
    assert (dest / "nb.bin").read_bytes() == payload("nb.bin", 2000)


# --- errors carry their context and survive pickling --------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        DownloadError("x", url="http://h/a"),
        HTTPStatusError("HTTP 404", url="http://h/a", status=404, reason="Not Found"),
        ReadTimeout("slow", url="http://h/a", phase="read", seconds=3.0),
        IncompleteBodyError("short", url="http://h/a", expected=10, received=4),
        DestinationExistsError("exists", url="http://h/a", path=Path("/tmp/a")),
        StorageError("full", url="http://h/a", path=Path("/tmp/a"), errno=28),
    ],
)
def test_errors_survive_pickling_with_their_attributes(error: DownloadError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert vars(clone) == vars(error)
    if isinstance(error, OSError):
        assert isinstance(clone, OSError)
        assert (clone.errno, clone.filename) == (error.errno, error.filename)


async def test_check_only_reads_the_answer_and_writes_nothing(
    server: Server, tmp_path: Path
) -> None:
    async with adownload.Downloader(dest=tmp_path) as dl:
        outcome = await dl.download(adownload.Request(server("/files/one.bin"), check_only=True))
        with pytest.raises(adownload.HTTPStatusError) as failed:
            await dl.download(adownload.Request(server("/status/404/x.bin"), check_only=True))
    assert outcome.ok
    assert outcome.status == 200
    assert outcome.size > 0
    assert outcome.path is None
    assert failed.value.status == 404
    assert os.listdir(tmp_path) == []


def test_the_public_annotations_resolve_at_runtime() -> None:
    """`typing.get_type_hints` works on every public class and function (serializers and
    validators call it), but `Downloader` and `DownloaderOptions`: their `session` and
    `cookies` name aiohttp's types, and `import adownload` leaves aiohttp for the first open
    downloader."""
    import inspect
    import typing

    failed = {}
    for name in adownload.__all__:
        value = getattr(adownload, name)
        if not (inspect.isclass(value) or inspect.isfunction(value)) or name in (
            "Downloader",
            "DownloaderOptions",
        ):
            continue
        try:
            typing.get_type_hints(value)
            if inspect.isclass(value):
                typing.get_type_hints(value.__init__)
        except Exception as exc:
            failed[name] = repr(exc)
    assert failed == {}
