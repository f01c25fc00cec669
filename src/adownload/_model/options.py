"""`Options`: every per-download option, declared once, with its default and its check.

A `Downloader` holds one `Options` (its defaults); a `Request` may override the fields named in
`PER_REQUEST`, and `Options.for_request` gives the options one download runs with. A request
field left at `USE_DEFAULT` takes the downloader's value; any other value replaces it, `None`
included where None means something (`Request(max_size=None)`: no size limit for this file,
whatever the downloader's). Adding an option is one field here (its type, default and check),
its declaration in `catalogue.KEYWORDS` (what it does, its flags, whether a request may set it,
whether it travels), one keyword of `Downloader` (whose default is read from `DEFAULTS`), and
its flag in the CLI's table (whose default is read from `DEFAULTS` too); the command hands the
options it parsed to the library as they are (`Options.keywords`).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias

from .auth import BasicAuth, DigestAuth, check_auth
from .catalogue import KEYWORDS
from .config import Existing, Retry, Segments, Timeout
from .proxy import Proxy, parse_proxy


class _UseDefault(enum.Enum):
    USE_DEFAULT = "USE_DEFAULT"

    def __repr__(self) -> str:
        return "USE_DEFAULT"


#: A `Request` field at this value takes the downloader's option (as httpx's USE_CLIENT_DEFAULT).
USE_DEFAULT: Final = _UseDefault.USE_DEFAULT
UseDefault: TypeAlias = Literal[_UseDefault.USE_DEFAULT]

#: The options a `Request` replaces for its own file: the per-request keywords of the catalogue
#: that are options of one download (`dest` and `headers`, also a request's, are not replaced
#: but placed and added).
PER_REQUEST: Final = tuple(
    declared.name
    for declared in KEYWORDS
    if declared.per_request and declared.name not in ("dest", "headers")
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """The options of one download; see `Downloader` for what each one does."""

    timeout: Timeout = Timeout()  # noqa: RUF009 (frozen)
    existing: Existing = Existing.SKIP
    content_disposition: bool = False
    max_redirects: int = 10
    retry: Retry = Retry()  # noqa: RUF009 (frozen)
    resume: bool = True
    max_size: int | None = None
    verify_digests: bool = True
    allow_downgrade: bool = False
    decode_content: bool = False
    segments: Segments = Segments()  # noqa: RUF009 (frozen)
    splice: bool = True
    #: Given as a URL string; kept parsed (see `check_proxy`).
    proxy: Proxy | None = None
    #: Given as a (login, password) pair or an auth object; kept as the object.
    auth: BasicAuth | DigestAuth | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "proxy", check_proxy(self.proxy))
        object.__setattr__(self, "auth", check_auth(self.auth))
        for name, kind in (
            ("timeout", Timeout),
            ("existing", Existing),
            ("retry", Retry),
            ("segments", Segments),
        ):
            check_kind(name, getattr(self, name), kind, TypeError)
        if isinstance(self.max_redirects, bool) or not isinstance(self.max_redirects, int):
            raise TypeError(f"max_redirects must be an int, not {self.max_redirects!r}")
        if self.max_redirects < 0:
            raise ValueError(f"max_redirects must be 0 or more, not {self.max_redirects}")
        check_max_size(self.max_size, ValueError)

    def for_request(self, overrides: Any) -> Options:
        """These options with the `PER_REQUEST` fields `overrides` (a `Request`) sets."""
        changes = {
            name: value
            for name in PER_REQUEST
            if (value := getattr(overrides, name)) is not USE_DEFAULT
        }
        return dataclasses.replace(self, **changes) if changes else self

    def keywords(self) -> dict[str, Any]:
        """These options as `Downloader` keywords, one per field."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def check_kind(name: str, value: object, kind: type, error: Callable[[str], Exception]) -> None:
    if not isinstance(value, kind):
        raise error(f"{name} must be an adownload.{kind.__name__}, not {value!r}")


def check_proxy(value: object) -> Proxy | None:
    """A proxy option (None, a URL string, or a `Proxy`) as a `Proxy`; `InvalidRequestError`
    for a malformed one."""
    if value is None or isinstance(value, Proxy):
        return value
    return parse_proxy(value)


def check_max_size(value: object, error: Callable[[str], Exception]) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise error(f"max_size must be a number of bytes or None, not {value!r}")


#: Every option at its default: where `Downloader`'s keywords and the command's flags read it.
DEFAULTS: Final = Options()
