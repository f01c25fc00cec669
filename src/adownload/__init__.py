"""adownload: an asynchronous file downloader on aiohttp.

Streams every body to disk in chunks, runs many downloads at once within limits, and never
leaves a truncated file at a final name.

```pycon
>>> import asyncio, adownload
>>> async def main():
...     async with adownload.Downloader(dest="downloads/") as dl:
...         for outcome in await dl.download_many(urls):
...             print(outcome.url, outcome.ok, outcome.path)
>>> asyncio.run(main())
```
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING

from ._cache.fetch import StaleCacheWarning as StaleCacheWarning
from ._cache.store import Cache as Cache
from ._cache.store import CacheEntry as CacheEntry
from ._client.downloader import Downloader as Downloader
from ._client.keywords import DownloaderOptions as DownloaderOptions
from ._client.registry import Registry as Registry
from ._client.registry import RegistryEntry as RegistryEntry
from ._client.sync import download as download
from ._client.sync import download_many as download_many
from ._client.sync import fetch as fetch
from ._client.sync import fetch_many as fetch_many
from ._disk.files import safe_filename as safe_filename
from ._disk.sinks import AiofilesSink as AiofilesSink
from ._disk.sinks import FileSink as FileSink
from ._disk.sinks import GeneratorSink as GeneratorSink
from ._disk.sinks import MemorySink as MemorySink
from ._disk.sinks import Sink as Sink
from ._disk.sinks import SinkOpener as SinkOpener
from ._disk.sinks import file_writer as file_writer
from ._engine.adaptive import HostLimit as HostLimit
from ._model.auth import BasicAuth as BasicAuth
from ._model.auth import DigestAuth as DigestAuth
from ._model.config import Existing as Existing
from ._model.config import Limits as Limits
from ._model.config import Retry as Retry
from ._model.config import Segments as Segments
from ._model.config import Timeout as Timeout
from ._model.errors import ChecksumMismatchError as ChecksumMismatchError
from ._model.errors import ConnectError as ConnectError
from ._model.errors import ConnectTimeout as ConnectTimeout
from ._model.errors import ContentDecodingError as ContentDecodingError
from ._model.errors import DestinationExistsError as DestinationExistsError
from ._model.errors import DownloadError as DownloadError
from ._model.errors import DownloadTimeout as DownloadTimeout
from ._model.errors import FileMismatchError as FileMismatchError
from ._model.errors import FTPReplyError as FTPReplyError
from ._model.errors import HTTPStatusError as HTTPStatusError
from ._model.errors import IncompleteBodyError as IncompleteBodyError
from ._model.errors import InvalidRequestError as InvalidRequestError
from ._model.errors import ProxyError as ProxyError
from ._model.errors import ReadTimeout as ReadTimeout
from ._model.errors import RedirectError as RedirectError
from ._model.errors import RemoteProtocolError as RemoteProtocolError
from ._model.errors import SizeLimitError as SizeLimitError
from ._model.errors import StallError as StallError
from ._model.errors import StorageError as StorageError
from ._model.errors import TotalTimeout as TotalTimeout
from ._model.errors import TransportError as TransportError
from ._model.errors import UnsafePathError as UnsafePathError
from ._model.events import Event as Event
from ._model.events import EventHook as EventHook
from ._model.events import Finished as Finished
from ._model.events import HostLimitChanged as HostLimitChanged
from ._model.events import Progress as Progress
from ._model.events import Queued as Queued
from ._model.events import Retrying as Retrying
from ._model.events import SourceDropped as SourceDropped
from ._model.events import Started as Started
from ._model.options import USE_DEFAULT as USE_DEFAULT
from ._model.pieces import Pieces as Pieces
from ._model.request import Item as Item
from ._model.request import Outcome as Outcome
from ._model.request import Request as Request
from ._version import __version__ as __version__

if _TYPE_CHECKING:
    from ._disk.unpack import unpack as unpack
    from ._mirror.run import MirrorChange as MirrorChange
    from ._mirror.run import MirrorReport as MirrorReport
    from ._mirror.run import mirror as mirror

# Imported on first use: the mirror brings sqlite3 and an HTML parser, which a script that only
# downloads should not pay for at start-up (about 20 ms of it); unpack brings zipfile and
# tarfile (about 5 ms).
_LAZY = {
    "MirrorChange": "._mirror.run",
    "MirrorReport": "._mirror.run",
    "mirror": "._mirror.run",
    "unpack": "._disk.unpack",
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
