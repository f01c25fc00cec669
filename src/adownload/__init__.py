"""adownload: an asynchronous file downloader on aiohttp.

Streams every body to disk in chunks, runs many downloads at once within limits, and never
leaves a truncated file at a final name.

>>> import asyncio, adownload                                         # doctest: +SKIP
>>> async def main():
...     async with adownload.Downloader(dest="downloads/") as dl:
...         for outcome in await dl.download_many(urls):
...             print(outcome.url, outcome.ok, outcome.path)
>>> asyncio.run(main())
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._adaptive import HostLimit as HostLimit
from ._auth import BasicAuth as BasicAuth
from ._auth import DigestAuth as DigestAuth
from ._cache import Cache as Cache
from ._cache import CacheEntry as CacheEntry
from ._config import Existing as Existing
from ._config import Limits as Limits
from ._config import Retry as Retry
from ._config import Segments as Segments
from ._config import Timeout as Timeout
from ._downloader import Downloader as Downloader
from ._downloader import DownloaderOptions as DownloaderOptions
from ._events import Event as Event
from ._events import EventHook as EventHook
from ._events import Finished as Finished
from ._events import HostLimitChanged as HostLimitChanged
from ._events import Progress as Progress
from ._events import Queued as Queued
from ._events import Retrying as Retrying
from ._events import SourceDropped as SourceDropped
from ._events import Started as Started
from ._exceptions import ChecksumMismatchError as ChecksumMismatchError
from ._exceptions import ConnectError as ConnectError
from ._exceptions import ConnectTimeout as ConnectTimeout
from ._exceptions import ContentDecodingError as ContentDecodingError
from ._exceptions import DestinationExistsError as DestinationExistsError
from ._exceptions import DownloadError as DownloadError
from ._exceptions import DownloadTimeout as DownloadTimeout
from ._exceptions import FileMismatchError as FileMismatchError
from ._exceptions import FTPReplyError as FTPReplyError
from ._exceptions import HTTPStatusError as HTTPStatusError
from ._exceptions import IncompleteBodyError as IncompleteBodyError
from ._exceptions import InvalidRequestError as InvalidRequestError
from ._exceptions import ProxyError as ProxyError
from ._exceptions import ReadTimeout as ReadTimeout
from ._exceptions import RedirectError as RedirectError
from ._exceptions import RemoteProtocolError as RemoteProtocolError
from ._exceptions import SizeLimitError as SizeLimitError
from ._exceptions import StallError as StallError
from ._exceptions import StorageError as StorageError
from ._exceptions import TotalTimeout as TotalTimeout
from ._exceptions import TransportError as TransportError
from ._exceptions import UnsafePathError as UnsafePathError
from ._fetch import StaleCacheWarning as StaleCacheWarning
from ._files import safe_filename as safe_filename
from ._models import Item as Item
from ._models import Outcome as Outcome
from ._models import Request as Request
from ._options import USE_DEFAULT as USE_DEFAULT
from ._pieces import Pieces as Pieces
from ._registry import Registry as Registry
from ._registry import RegistryEntry as RegistryEntry
from ._sinks import AiofilesSink as AiofilesSink
from ._sinks import FileSink as FileSink
from ._sinks import GeneratorSink as GeneratorSink
from ._sinks import MemorySink as MemorySink
from ._sinks import Sink as Sink
from ._sinks import SinkOpener as SinkOpener
from ._sinks import file_writer as file_writer
from ._sync import download as download
from ._sync import download_many as download_many
from ._sync import fetch as fetch
from ._sync import fetch_many as fetch_many
from ._version import __version__ as __version__

if _TYPE_CHECKING:
    from ._mirror import MirrorChange as MirrorChange
    from ._mirror import MirrorReport as MirrorReport
    from ._mirror import mirror as mirror
    from ._unpack import unpack as unpack

# Imported on first use: the mirror brings sqlite3 and an HTML parser, which a script that only
# downloads should not pay for at start-up (about 20 ms of it); unpack brings zipfile and
# tarfile (about 5 ms).
_LAZY = {
    "MirrorChange": "._mirror",
    "MirrorReport": "._mirror",
    "mirror": "._mirror",
    "unpack": "._unpack",
}


def __getattr__(name: str) -> object:
    if name == "metalink":  # the module, with defusedxml: only for those who read Metalinks
        import importlib

        return importlib.import_module(".metalink", __name__)
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'adownload' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"metalink"})


__all__ = [  # noqa: RUF022 - plain sorted, as test_api checks
    "AiofilesSink",
    "BasicAuth",
    "Cache",
    "CacheEntry",
    "ChecksumMismatchError",
    "ConnectError",
    "ConnectTimeout",
    "ContentDecodingError",
    "DestinationExistsError",
    "DigestAuth",
    "DownloadError",
    "DownloadTimeout",
    "Downloader",
    "DownloaderOptions",
    "Event",
    "EventHook",
    "Existing",
    "FTPReplyError",
    "FileMismatchError",
    "FileSink",
    "Finished",
    "GeneratorSink",
    "HTTPStatusError",
    "HostLimit",
    "HostLimitChanged",
    "IncompleteBodyError",
    "InvalidRequestError",
    "Item",
    "Limits",
    "MemorySink",
    "MirrorChange",
    "MirrorReport",
    "Outcome",
    "Pieces",
    "Progress",
    "ProxyError",
    "Queued",
    "ReadTimeout",
    "RedirectError",
    "Registry",
    "RegistryEntry",
    "RemoteProtocolError",
    "Request",
    "Retry",
    "Retrying",
    "Segments",
    "Sink",
    "SinkOpener",
    "SizeLimitError",
    "SourceDropped",
    "StaleCacheWarning",
    "StallError",
    "Started",
    "StorageError",
    "Timeout",
    "TotalTimeout",
    "TransportError",
    "USE_DEFAULT",
    "UnsafePathError",
    "__version__",
    "download",
    "download_many",
    "fetch",
    "fetch_many",
    "file_writer",
    "mirror",
    "safe_filename",
    "unpack",
]
