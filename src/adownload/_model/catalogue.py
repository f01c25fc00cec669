"""Every keyword of `Downloader`, declared once: what it does, the command's flags that set it,
whether a `Request` may set it for one file, and whether it travels to worker processes and
Dask.

A keyword's default and check live with its value (`Options` for the per-download ones,
`Limits`, `Timeout`, `Retry`, `Segments` for the groups, the network keywords in
`adownload._protocols.opening`); this table says the rest, and everything that describes a
keyword reads it: `Downloader`'s and `Request`'s docstrings (`describe`), `Options.for_request`
(which fields a request overrides), the command's flags (their help), and the documentation's
options table. Tests hold it to `Downloader`'s signature, to `Request`'s fields and to the
command's parser, name by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["KEYWORDS", "Keyword", "describe", "keyword"]


@dataclass(frozen=True, slots=True)
class Keyword:
    """One keyword of `Downloader`."""

    name: str
    #: What it does, for a reader of the docstring, `--help` and the documentation.
    help: str
    #: The flags of `adownload` that set it (the groups: every flag that sets a field of it).
    flags: tuple[str, ...] = ()
    #: A `Request` may set its own for one file.
    per_request: bool = False
    #: Whether it reaches worker processes and Dask (`ProcessRunner`, `DaskRunner`).
    travels: str = "yes"


KEYWORDS: Final = (
    Keyword(
        "dest",
        "the directory files go into unless a call or a `Request` says otherwise (default: the"
        " current directory).",
        ("-d", "-P", "--dir", "--directory-prefix"),
        per_request=True,
        travels="yes: a directory every worker sees at the same path",
    ),
    Keyword(
        "limits",
        "files in flight in all, connections per host, an overall rate and adaptive per-host"
        " limits (`Limits`).",
        ("-j", "-x", "--adaptive", "--limit-rate"),
        travels="yes: split among the workers, so the whole run keeps them",
    ),
    Keyword(
        "timeout",
        "connect, idle-read, total and minimum-speed limits per file (`Timeout`).",
        ("--connect-timeout", "-T", "-m", "--lowest-speed-limit", "--speed-time"),
        per_request=True,
    ),
    Keyword(
        "existing",
        "what to do when a target file exists (`Existing`; default `SKIP`: leave it alone and"
        " do not download it again).",
        ("--skip-existing", "--overwrite", "--rename", "--fail-if-exists", "--existing", "-N"),
        per_request=True,
    ),
    Keyword(
        "headers",
        "request headers sent with every request (a `Request`'s are added to these).",
        ("-H", "-A", "-U"),
        per_request=True,
    ),
    Keyword(
        "content_disposition",
        "name files as the server's Content-Disposition header says, made safe and inside the"
        " destination directory. Off by default: a URL's name is predictable.",
        ("--content-disposition",),
    ),
    Keyword(
        "writer",
        "opens the sink for each file (`FileSink.open`; `AiofilesSink.open` or"
        " `GeneratorSink.open` are the alternatives).",
        travels="when it pickles (the built-in ones do)",
    ),
    Keyword(
        "max_redirects",
        "redirects followed per request (default: 10).",
        ("--max-redirs",),
    ),
    Keyword(
        "session",
        "an `aiohttp.ClientSession` to borrow instead of opening one (never closed by the"
        " downloader).",
        travels="no: a session belongs to its event loop",
    ),
    Keyword(
        "on_event",
        "called with each `Event` (queued, started, progress, retrying, finished) of every"
        " download; see `adownload.Event`.",
        ("-q", "--json", "--no-progress"),
        travels="stays with the caller: the workers' events come back to it",
    ),
    Keyword(
        "retry",
        "when and how often to try again (`Retry`: 4 attempts, exponential backoff with jitter).",
        ("-t", "--retry", "--retry-wait", "--retry-max-time"),
    ),
    Keyword(
        "resume",
        "keep the `.part` of a failed download (when the server gave validators) and continue"
        " it later, in this run or the next (default: on).",
        ("-c", "--no-continue"),
    ),
    Keyword(
        "max_size",
        "the largest file accepted, in bytes: refused from its Content-Length before any byte"
        " is written, and checked while streaming (default: None, no limit).",
        ("--max-filesize",),
        per_request=True,
    ),
    Keyword(
        "verify_digests",
        "check the Content-Digest, Repr-Digest or Digest a server sends (default: on).",
    ),
    Keyword(
        "allow_downgrade",
        "follow a redirect from https to plain http (default: off).",
    ),
    Keyword(
        "decode_content",
        "ask for and decode a compressed Content-Encoding (default: off, the bytes on disk are"
        " the bytes sent). Decoded downloads are not resumed; `max_size` caps the decoded"
        " size, so a decompression bomb stops at the limit.",
        ("--compressed",),
    ),
    Keyword(
        "segments",
        "how a large file is split over several connections (`Segments`).",
        ("-s", "-k"),
        per_request=True,
    ),
    Keyword(
        "splice",
        "on Linux, move a large (4 MiB or more) plain-http or FTP body from the socket to the"
        " file inside the kernel, with `splice(2)`, when nothing needs to see the bytes (no"
        " checksum or digest, no rate limit, no `min_speed`, the default `writer`); default: on.",
    ),
    Keyword(
        "proxy",
        "the proxy every request goes through, as a URL: `http://` or `https://` (TLS to the"
        " proxy), with CONNECT for https targets; `socks4://`, `socks4a://`, `socks5://` or"
        " `socks5h://` (the proxy looks names up). Credentials go in the URL and are never"
        " shown.",
        ("--proxy", "--all-proxy"),
        per_request=True,
    ),
    Keyword(
        "no_proxy",
        'hosts reached directly whatever the proxy: "a.example, .b.example, 127.0.0.1,'
        ' 10.0.0.0/8", or a list; `*` for all. A name covers its subdomains.',
        ("--noproxy",),
    ),
    Keyword(
        "trust_env",
        "read the environment as curl does: `http_proxy`, `https_proxy`, `all_proxy` and"
        " `no_proxy` (upper case too, but not `HTTP_PROXY`), and logins from `$NETRC` or"
        " `~/.netrc` (default: off, the library reads no environment unless asked; the command"
        " always reads it). `proxy` and `no_proxy` win over the variables.",
    ),
    Keyword(
        "auth",
        "credentials for the servers: a (login, password) pair or `BasicAuth` for basic,"
        " `DigestAuth` for digest; the login of ftp:// URLs too. Sent only to the origin of"
        " each request's own URL, never past a redirect to another host nor to a mirror"
        " elsewhere.",
        ("-u", "--password", "--digest"),
        per_request=True,
    ),
    Keyword(
        "netrc",
        "a `.netrc` file to take logins from, by host, for requests that bring none of their"
        " own; False: none, even with `trust_env`.",
        ("--netrc", "--no-netrc", "--netrc-file"),
    ),
    Keyword(
        "cookies",
        "a Netscape `cookies.txt` file (as curl, wget and aria2c write) to start the cookie jar"
        " with, or an aiohttp cookie jar to use; `save_cookies` writes the jar back.",
        ("--load-cookies", "-b"),
        travels="a file: yes; a jar: no",
    ),
    Keyword(
        "verify",
        "check servers' certificates (True), with this `ssl.SSLContext`, or not at all (False).",
        ("--no-check-certificate", "--ca-certificate"),
        travels="True or False: yes; an `ssl.SSLContext`: no",
    ),
    Keyword(
        "store_options",
        "how object stores (`s3://`, `gs://`, `az://` URLs) are reached, as obstore's"
        " configuration keys: `endpoint`, `region`, `access_key_id`, `secret_access_key`,"
        ' `session_token`, `skip_signature`, ... (for every scheme, or under `"s3"`,'
        ' `"gs"`, `"az"`). With `trust_env`, the standard variables (`AWS_*`,'
        " `GOOGLE_APPLICATION_CREDENTIALS`, `AZURE_STORAGE_*`) and AWS's shared files come"
        " first. Without credentials, requests are unsigned (public buckets). Needs the"
        " `cloud` extra.",
        ("--endpoint-url", "--region", "--no-sign-request"),
    ),
)

_BY_NAME: Final = {declared.name: declared for declared in KEYWORDS}


def keyword(name: str) -> Keyword:
    """The declaration of the keyword `name`."""
    return _BY_NAME[name]


def describe(names: tuple[str, ...] | None = None) -> str:
    """The keywords (all, or `names`) as a Markdown list, for a docstring."""
    chosen = KEYWORDS if names is None else tuple(keyword(name) for name in names)
    return "\n".join(f"- `{declared.name}`: {declared.help}" for declared in chosen)
