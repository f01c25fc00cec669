"""Object store listings for the mirror: the keys below a prefix, page by page.

The store's paginated listing (S3's ListObjectsV2, GCS's and Azure's own, through obstore) is
read a page at a time, each page within `Timeout.read`; a key's `/` are folders below the
prefix, as aws-cli's `sync` sees them. A key is a stranger's name: the lister keeps it only
when each of its components is a plain name, and makes each safe (`Lister.walk_store`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import unquote

from yarl import URL

from .._model.util import redact

if TYPE_CHECKING:
    from .._engine.settings import Settings

#: Keys asked for per page (S3's largest page).
PAGE = 1000


class BadKey(Exception):
    """A key the store's client cannot read as a path (an empty, `.` or `..` segment): the
    listing skipped the keys from `key` up to `resumed_after`."""

    def __init__(self, key: str, resumed_after: str) -> None:
        super().__init__(key)
        self.key = key
        self.resumed_after = resumed_after


#: An object as the listing shows it: its key after the prefix, size, time (an HTTP date), ETag.
Object = tuple[str, int, str | None, str | None]


async def list_prefix(settings: Settings, base: URL) -> AsyncIterator[Object | BadKey]:
    """Each object below the prefix `base` (`s3://bucket/docs/`); a `BadKey` for a key that
    cannot be read, after which the listing goes on past it."""
    import obstore
    from obstore.exceptions import InvalidPathError

    from .._protocols.store.exchange import http_date, translate_store_errors
    from .._protocols.store.stores import stores_of

    shown = redact(str(base))
    stores = stores_of(
        settings.pools, settings.stores, settings.network, verify=settings.stores.verify
    )
    store = stores.get(base, shown, settings.options.proxy)
    prefix = unquote(base.raw_path[1:])
    read = settings.options.timeout.read
    offset: str | None = None
    with translate_store_errors(shown):
        while True:
            pages = obstore.list(
                store, prefix=prefix or None, offset=offset, chunk_size=PAGE
            ).__aiter__()
            try:
                while True:
                    try:
                        async with asyncio.timeout(read):
                            page = await pages.__anext__()
                    except StopAsyncIteration:
                        return
                    for meta in page:
                        key = meta["path"]
                        if not key.startswith(prefix):
                            continue
                        rest = key[len(prefix) :]
                        if not rest or rest.endswith("/"):
                            continue  # the prefix itself, or a folder marker
                        modified = http_date(meta["last_modified"])
                        yield rest, int(meta["size"]), modified, meta.get("e_tag")
                        offset = key
            except InvalidPathError as exc:
                bad = _bad_key(str(exc))
                after = None if bad is None else skip_past(bad)
                if bad is None or after is None or (offset is not None and after <= offset):
                    raise
                yield BadKey(bad, after)
                offset = after


def _bad_key(message: str) -> str | None:
    match = re.search(r'Path "([^"]*)"', message)
    return match[1] if match else None


def skip_past(key: str) -> str | None:
    """A readable key past every key that shares `key`'s first unreadable segment (an empty,
    `.` or `..` one, or one with a control character): where a listing goes on after it.

    >>> skip_past("p//double.txt"), skip_past("p/a/../evil.txt"), skip_past("p/ctl\x01.txt")
    ('p/0', 'p/a/.0', 'p/ctl ')
    """
    segments = key.split("/")
    for index, segment in enumerate(segments):
        head = "/".join(segments[:index])
        head = head + "/" if head else ""
        if segment == "":
            return head + "0"  # "0" follows "/": past every "p//..."
        if segment in (".", ".."):
            return head + ".0"
        for at, char in enumerate(segment):
            if ord(char) < 32:
                return head + segment[:at] + " "  # " " follows every C0 control character
            if 127 <= ord(char) < 160:
                return head + segment[:at] + "\u00a0"  # and no-break space DEL and C1
    return None
