"""Every parser of a stranger's input, fuzzed (hypothesis): each returns a value or its
documented error and nothing else, a name never leaves its folder, and where it fits a round
trip holds.

CI runs the quick profile. The long one (100,000 examples a test) is for a soak run:

    ADOWNLOAD_FUZZ=long .venv/bin/python -m pytest tests/test_fuzz.py -p no:randomly
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import string
import tempfile
from http.cookies import Morsel
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aioftp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from yarl import URL

from adownload import InvalidRequestError, metalink
from adownload._cache.store import record_from
from adownload._cli.input import RejectedEntry, parse_lines, request_for
from adownload._cli.shared import parse_rate, parse_size
from adownload._client.registry import Registry
from adownload._disk.files import name_from_url, safe_filename
from adownload._disk.state import _parse as parse_state
from adownload._mirror.autoindex import parse_index
from adownload._mirror.ftp_list import _entry
from adownload._model.auth import NetrcSyntaxError, parse_netrc
from adownload._model.errors import DownloadError
from adownload._model.names import plain_name
from adownload._model.proxy import NoProxy, parse_proxy
from adownload._model.request import parse_url
from adownload._model.verify import parse_checksum, parse_digest_fields, parse_legacy_digest
from adownload._protocols.base import range_answer, retry_after
from adownload._protocols.ftp.client import Client, mdtm_date, translate_ftp_errors
from adownload._protocols.http.answer import MAX_DUPLICATES, duplicates, name_from_disposition
from adownload._protocols.http.cookies import read_cookies, save_cookies

settings.register_profile(
    "quick",
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,  # CI sees the same examples every run; the long profile explores
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    max_examples=100_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "medium",
    max_examples=5_000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("ADOWNLOAD_FUZZ", "quick"))

# Text as strangers write it: any character, and the ones parsers stumble on, more often.
TRICKY = "0123456789²٣¹\u00a0 \t\r\n\x00\x1b\x85\u202e/\\.:;=,\"'<>&%#?@-_*[]"
text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(TRICKY), max_size=80)
wire_text = st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=80)  # header bytes


def is_safe_name(name: str) -> bool:
    """One plain path component that stays in its folder."""
    return (
        bool(name)
        and name not in (".", "..")
        and not name.startswith(".")
        and not any(ch in name for ch in "/\\\x00")
        and safe_filename(name, fallback="") == name
    )


# --- HTTP headers --------------------------------------------------------------------------


@given(st.one_of(
    wire_text,
    text.map(lambda name: f'attachment; filename="{name}"'),
    text.map(lambda name: f"attachment; filename*=UTF-8''{quote(name)}"),
    st.tuples(wire_text, text).map(lambda pair: f"{pair[0]}; filename={pair[1]}"),
))  # fmt: skip
def test_content_disposition_gives_a_safe_name_or_none(header: str) -> None:
    name = name_from_disposition(header)
    assert name is None or is_safe_name(name), name


@given(text)
def test_a_safe_name_is_its_own_safe_name(name: str) -> None:
    safe = safe_filename(name)
    assert safe_filename(safe) == safe
    assert is_safe_name(safe) or safe == "download"


@pytest.mark.parametrize(("name", "safe"), [("A\x1f:", "download"), ("A:.", "download"),
                                            ("b\x00:x", "x"), (" .C:.a", "a")])  # fmt: skip
def test_a_drive_a_control_character_hid_is_still_a_drive(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


@given(st.one_of(text, text.map(lambda path: "http://127.0.0.1/" + path)))
def test_a_url_gives_a_safe_name_or_a_clear_error(raw: str) -> None:
    try:
        url = parse_url(raw)
    except InvalidRequestError:
        return
    assert is_safe_name(name_from_url(url))


counts = st.integers(min_value=0, max_value=10_000)


@given(
    st.one_of(
        wire_text,
        st.from_regex(r"\Abytes (\d{1,5}|²)-(\d{1,5}|٣)/(\d{1,5}|\*)\Z"),
    ),
    st.none() | counts,
    counts,
    st.none() | counts,
    st.none() | counts,
)
def test_content_range_is_a_range_that_answers_the_request_or_none(
    value: str, announced: int | None, offset: int, stop: int | None, length: int | None
) -> None:
    found = range_answer(value, announced, offset, stop, length)
    if found is None:
        return
    first, last, total = found
    assert first == offset <= last
    assert stop is None or last >= stop
    assert total is None or last < total
    assert length is None or total == length
    assert announced is None or announced == last - first + 1


http_dates = st.datetimes().map(lambda d: d.strftime("%a, %d %b %Y %H:%M:%S GMT"))


@given(st.one_of(wire_text, counts.map(str), http_dates))
def test_retry_after_is_seconds_or_none(value: str) -> None:
    seconds = retry_after(value)
    assert seconds is None or (isinstance(seconds, float) and seconds >= 0)


@given(wire_text)
def test_digest_headers_give_known_digests_only(value: str) -> None:
    for found in (parse_digest_fields(value), parse_legacy_digest(value)):
        assert set(found) <= set(hashlib.algorithms_available)
        assert all(isinstance(digest, bytes) for digest in found.values())


@given(st.binary(min_size=32, max_size=32), wire_text)
def test_a_repr_digest_reads_back_what_it_says(digest: bytes, noise: str) -> None:
    encoded = base64.b64encode(digest).decode()
    header = f"{noise.replace(',', '')}=:x:, sha-256=:{encoded}:"
    assert parse_digest_fields(header)["sha256"] == digest
    assert parse_legacy_digest(f"SHA-256={encoded}")["sha256"] == digest


@given(st.lists(st.dictionaries(
    st.sampled_from(["url", "pri", "rel"]),
    st.one_of(text, text.map(lambda path: URL("http://127.0.0.1/").join(URL(quote(path))))),
), max_size=40))  # fmt: skip
def test_link_duplicates_are_plain_mirrors(links: list[dict[str, Any]]) -> None:
    mirrors = duplicates(links)
    assert len(mirrors) <= MAX_DUPLICATES
    for url in mirrors:
        assert url.scheme in ("http", "https", "ftp")
        assert url.host
        assert url.raw_user is None
        assert url.raw_password is None


# --- documents ------------------------------------------------------------------------------


def _xml(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


xml_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"]) | st.sampled_from(TRICKY[:20]),
    max_size=40,
)
metalink_file = st.tuples(xml_text, xml_text, xml_text, xml_text, xml_text, xml_text).map(
    lambda f: (
        f'<file name="{_xml(f[0])}"><size>{_xml(f[1])}</size>'
        f'<hash type="sha-256">{_xml(f[2])}</hash>'
        f'<pieces length="{_xml(f[3])}" type="sha-1"><hash>{_xml(f[2])}</hash></pieces>'
        f'<url priority="{_xml(f[4])}">{_xml(f[5])}</url>'
        "<url>http://127.0.0.1/f</url></file>"
    )
)


@given(st.one_of(
    st.binary(max_size=200),
    st.lists(metalink_file, max_size=3).map(
        lambda files: ('<metalink xmlns="urn:ietf:params:xml:ns:metalink">'
                       + "".join(files) + "</metalink>").encode()
    ),
    st.tuples(xml_text, xml_text, xml_text).map(
        lambda f: (
            '<metalink version="3.0" xmlns="http://www.metalinker.org/"><files>'
            f'<file name="{_xml(f[0])}"><size>{_xml(f[1])}</size><verification>'
            f'<pieces length="4" type="sha1"><hash piece="{_xml(f[2])}">'
            f'{"0" * 40}</hash></pieces></verification><resources>'
            f'<url type="http" preference="{_xml(f[2])}">http://127.0.0.1/f</url>'
            "</resources></file></files></metalink>"
        ).encode()
    ),
))  # fmt: skip
def test_a_metalink_is_files_in_their_folder_or_a_metalink_error(document: bytes) -> None:
    try:
        files = metalink.parse(document)
    except metalink.MetalinkError:
        return
    assert files
    for file in files:
        assert all(is_safe_name(part) for part in file.name.split("/"))
        assert 1 <= len(file.urls) <= metalink.MAX_URLS
        assert file.size is None or file.size >= 0


cookie_token = st.text(
    alphabet=string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~", min_size=1, max_size=12
)
#: Names http.cookies reserves ("path", "version", ...) are skipped on reading, with a warning.
kept_name = cookie_token.filter(lambda name: not Morsel().isReservedKey(name))
cookie_value = st.text(alphabet=string.ascii_letters + string.digits + "-._~", max_size=12)
host_name = st.from_regex(r"\A[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}\Z")
cookie_line = st.tuples(
    host_name, st.booleans(), kept_name, cookie_value, st.sampled_from(["0", "4102444800"])
)


@given(st.lists(st.one_of(wire_text, cookie_line.map(lambda c: "\t".join(
    [c[0], "TRUE" if c[1] else "FALSE", "/", "FALSE", c[4], c[2], c[3]]
))), max_size=6))  # fmt: skip
def test_a_cookie_file_is_cookies_or_a_clear_error(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory, "cookies.txt")
        path.write_text("\n".join(lines), encoding="utf-8", errors="surrogateescape")
        try:
            cookies = read_cookies(path)
        except InvalidRequestError:
            return
    for morsel, origin in cookies:
        assert morsel.key
        assert origin.host


@given(st.lists(cookie_line, min_size=1, max_size=5, unique_by=lambda c: (c[0], c[2])))
def test_cookies_saved_read_back_the_same(cookies: list[tuple[str, bool, str, str, str]]) -> None:
    lines = [
        "\t".join([host, "FALSE", "/", "FALSE", expiry, name, value])
        for host, _, name, value, expiry in cookies
    ]

    async def round_trip(directory: str) -> list[tuple[str, str, str]]:
        import aiohttp

        source, saved = Path(directory, "in.txt"), Path(directory, "out.txt")
        source.write_text("\n".join(lines) + "\n")
        jar = aiohttp.CookieJar(unsafe=True)
        for morsel, origin in read_cookies(source):
            jar.update_cookies({morsel.key: morsel}, origin)
        save_cookies(jar, saved)
        return sorted((o.host or "", m.key, m.value) for m, o in read_cookies(saved))

    with tempfile.TemporaryDirectory() as directory:
        back = asyncio.run(round_trip(directory))
    assert back == sorted((host, name, value) for host, _, name, value, _ in cookies)


netrc_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]),
    min_size=1,
    max_size=16,
)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@given(st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(["machine", "default", "login", "password", "account",
                              "macdef", "#", "\n", '"', "\\", "h", "x y"]), max_size=20)
    .map(lambda words: " ".join(words).encode()),
))  # fmt: skip
def test_a_netrc_is_logins_or_a_syntax_error_naming_a_line(data: bytes) -> None:
    try:
        hosts, default = parse_netrc(data)
    except NetrcSyntaxError as exc:
        assert exc.line >= 1
        assert str(exc).endswith(f"line {exc.line}")
        return
    for login, password in [*hosts.values(), *([default] if default else [])]:
        assert not any(ch in login + password for ch in "\r\n\x00")


@given(
    st.dictionaries(netrc_value, st.tuples(netrc_value, netrc_value), max_size=5),
    st.none() | st.tuples(netrc_value, netrc_value),
)
def test_netrc_logins_written_read_back_the_same(
    hosts: dict[str, tuple[str, str]], default: tuple[str, str] | None
) -> None:
    lines = [
        f"machine {_quoted(host)} login {_quoted(login)} password {_quoted(password)}"
        for host, (login, password) in hosts.items()
    ]
    if default is not None:
        lines.append(f"default login {_quoted(default[0])} password {_quoted(default[1])}")
    assert parse_netrc("\n".join(lines).encode()) == (hosts, default)


@given(st.one_of(
    text,
    st.lists(text, max_size=8).map(lambda hrefs: "".join(f'<a href="{h}">x</a>' for h in hrefs)),
))  # fmt: skip
def test_an_index_page_lists_names_inside_its_base_only(html: str) -> None:
    base = URL("http://127.0.0.1/pub/")
    listing = parse_index(html, base, base)
    for url, parts in [*listing.files, *listing.directories]:
        assert parts
        assert all(is_safe_name(part) for part in parts)
        assert url.host == "127.0.0.1"
        assert url.raw_path.startswith("/pub/")


# --- FTP ------------------------------------------------------------------------------------


class _Lines:
    """What aioftp's client reads a reply from: a stream of lines."""

    def __init__(self, lines: list[bytes]) -> None:
        self._lines = lines

    async def readline(self) -> bytes:
        return self._lines.pop(0) if self._lines else b""

    def close(self) -> None:
        pass


reply_line = st.one_of(
    st.binary(max_size=40).map(lambda b: b + b"\r\n"),
    st.tuples(st.sampled_from(["211", "211-", "220", "2²1", "550", "abc"]), wire_text).map(
        lambda pair: (pair[0] + pair[1].replace("\n", "")).encode("latin-1") + b"\r\n"
    ),
)


@given(st.lists(reply_line, max_size=12))
def test_an_ftp_reply_is_a_code_and_lines_or_our_error(lines: list[bytes]) -> None:
    client = Client(encoding="utf-8")
    client._stream = _Lines(lines)  # type: ignore[assignment]

    async def read() -> None:
        with translate_ftp_errors("ftp://127.0.0.1/a"):
            code, info = await client.parse_response()
            assert isinstance(code, str)
            assert isinstance(info, list)

    with contextlib.suppress(DownloadError):
        asyncio.run(read())


@given(st.one_of(
    wire_text.map(lambda t: "Entering Passive Mode (" + t + ")"),
    st.lists(st.integers(-5, 300), min_size=0, max_size=8).map(
        lambda n: "Entering Passive Mode (" + ",".join(map(str, n)) + ")"
    ),
    wire_text.map(lambda t: "Entering Extended Passive Mode (|||" + t + "|)"),
))  # fmt: skip
def test_pasv_and_epsv_replies_are_an_address_or_our_error(reply: str) -> None:
    # aioftp parses them; what reaches a caller is an address or, through the one
    # translation of aioftp's errors, a RemoteProtocolError.
    for parse in (Client.parse_pasv_response, Client.parse_epsv_response):
        try:
            with translate_ftp_errors("ftp://127.0.0.1/a"):
                _, port = parse(reply)
        except DownloadError:
            continue
        assert isinstance(port, int)


@given(st.one_of(
    st.binary(max_size=80),
    st.tuples(st.sampled_from(["-rw-r--r--", "drwxr-xr-x", "lrwxrwxrwx"]), wire_text,
              st.sampled_from(["1000", "²", "-5", ""]), wire_text).map(
        lambda f: f"{f[0]} 1 ftp ftp {f[2]} Dec  1 12:00 {f[1]}{f[3]}".encode("latin-1")),
    st.tuples(st.sampled_from(["file", "dir", "cdir", "OS.unix=symlink"]),
              st.sampled_from(["10", "²", "x", ""]), wire_text).map(
        lambda f: f"type={f[0]};size={f[1]};modify=20261201120000; {f[2]}".encode("latin-1")),
))  # fmt: skip
def test_a_listing_line_is_a_plain_entry_or_none(line: bytes) -> None:
    client = aioftp.Client()
    for parse in (client.parse_list_line, client.parse_mlsx_line):
        entry = _entry(line, parse)
        if entry is not None:
            # The server's own name (the URL needs it as it is), one plain component; the
            # mirror saves it under its safe name.
            assert plain_name(entry.name)
            assert "/" not in entry.name
            assert entry.name not in (".", "..")
            local = safe_filename(entry.name)
            assert is_safe_name(local) or local == "download"
            assert entry.size is None or entry.size >= 0


@given(wire_text)
def test_an_mdtm_date_is_an_http_date_or_none(value: str) -> None:
    date = mdtm_date(value)
    assert date is None or date.endswith(" GMT")


# --- proxies, state, records, registries, input files, options --------------------------------


@given(st.one_of(
    wire_text,
    st.tuples(st.sampled_from(["http", "https", "socks5", "socks5h", "x", ""]), wire_text).map(
        lambda pair: f"{pair[0]}://user:s3cret@{pair[1]}"),
))  # fmt: skip
def test_a_proxy_url_is_a_proxy_shown_without_its_password_or_a_clear_error(value: str) -> None:
    try:
        proxy = parse_proxy(value)
    except InvalidRequestError as exc:
        assert "s3cret" not in str(exc)
        return
    assert "s3cret" not in proxy.shown


@given(st.one_of(wire_text, st.lists(wire_text, max_size=5)), wire_text)
def test_a_no_proxy_list_is_a_list_or_a_clear_error(value: str | list[str], host: str) -> None:
    try:
        rules = NoProxy.parse(value)
    except InvalidRequestError:
        return
    assert isinstance(rules.matches(host), bool)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)
state_like = st.fixed_dictionaries(
    {
        "version": st.sampled_from([1, 2, 3, "2", None]),
        "url": st.sampled_from(["http://127.0.0.1/a", 5]),
        "length": json_values,
        "ranges": st.lists(st.lists(json_values, max_size=3), max_size=3),
        "sparse": json_values,
    }
)


@given(st.one_of(json_values, state_like))
def test_a_resume_state_is_a_state_or_none(data: Any) -> None:
    state = parse_state(data)
    if state is not None:
        for start, end in state.ranges:
            assert 0 <= start < end
            assert state.length is None or end <= state.length


record_like = st.fixed_dictionaries(
    {
        "url": json_values,
        "sha256": st.sampled_from(["0" * 64, "../../x", "A" * 64]) | text,
        "name": st.sampled_from(["a.zip", "../../../x", ".hidden", "a/b"]) | text,
        "size": json_values,
    }
)


@given(st.one_of(json_values, record_like))
def test_a_cache_record_is_a_record_inside_the_cache_or_none(data: Any) -> None:
    record = record_from(json.loads(json.dumps(data)) if _jsonable(data) else data)
    if record is not None:
        assert is_safe_name(record.name)
        assert len(record.sha256) == 64
        assert record.size >= 0


def _jsonable(data: Any) -> bool:
    try:
        json.dumps(data)
    except (ValueError, TypeError):
        return False
    return True


@given(st.lists(st.one_of(
    wire_text,
    st.tuples(text, st.sampled_from(["http://127.0.0.1/a", "ftp://x/y", "nope"]),
              st.sampled_from(["", "0" * 64, "md5:" + "0" * 32, "²" * 64])).map(" ".join),
), max_size=5).map("\n".join))  # fmt: skip
def test_a_registry_file_is_a_registry_or_a_clear_error(content: str) -> None:
    try:
        registry = Registry.parse(content)
    except InvalidRequestError:
        return
    for entry in registry.entries():
        assert entry.name


@given(st.lists(st.one_of(
    st.binary(max_size=60).map(lambda b: b + b"\n"),
    st.sampled_from([b"http://127.0.0.1/a\n", b"  out=../x\n", b"  dir=/etc\n", b"  out=a\n",
                     b"  split=\xc2\xb2\n", b"  dir=a/../..\n", b"\tchecksum=sha-256=x\n"]),
), max_size=10))  # fmt: skip
def test_an_input_file_is_requests_inside_dest_or_rejected_entries(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        dest = Path(directory, "d")
        dest.mkdir()
        try:
            entries = list(parse_lines(lines))
        except ValueError:
            return
        for entry in entries:
            try:
                request = request_for(entry, dest, source="list.txt")
            except RejectedEntry as exc:
                assert str(exc).startswith("list.txt:")
                continue
            where = request.path if request.path is not None else request.dest
            assert where is not None
            inside = os.path.realpath(where)
            assert inside == os.path.realpath(dest) or inside.startswith(
                os.path.realpath(dest) + os.sep
            )


@given(st.one_of(wire_text, st.from_regex(r"\A(sha256|md5|sha-1|x):[0-9a-fA-F²]{0,70}\Z")))
def test_a_checksum_is_an_algorithm_and_hex_or_a_clear_error(value: str) -> None:
    try:
        name, digest = parse_checksum(value)
    except InvalidRequestError:
        return
    assert len(digest) == 2 * hashlib.new(name).digest_size
    int(digest, 16)


@given(st.one_of(wire_text, st.from_regex(r"\A[0-9²]{1,6}(\.[0-9]{1,3})?[kKmMgG²]?\Z")))
def test_sizes_and_rates_are_numbers_or_usage_errors(value: str) -> None:
    for parse in (parse_size, parse_rate):
        try:
            number = parse(value)
        except ValueError:  # documented: the flags' checks turn it into a usage error
            continue
        assert isinstance(number, int)
        assert number >= 0


@pytest.mark.parametrize("value", ["²", "٣", "1²", "\u00b2\u00b3"])
def test_digits_that_are_not_ascii_are_no_numbers(value: str) -> None:
    # The class of defect hypothesis found first: str.isdigit() takes these.
    assert retry_after(value) is None
    assert duplicates([{"url": URL("http://127.0.0.1/m"), "pri": value}])[0].host == "127.0.0.1"


# --- object stores ---------------------------------------------------------------------------


@given(st.sampled_from(["s3", "gs", "az"]), text, text)
def test_an_object_store_url_is_a_bucket_and_a_key_or_a_clear_error(
    scheme: str, bucket: str, key: str
) -> None:
    raw = f"{scheme}://{bucket}/{key}"
    try:
        url = parse_url(raw)
    except InvalidRequestError:
        return
    from adownload._protocols.store.exchange import object_key

    assert url.scheme == scheme
    assert url.raw_host
    assert url.raw_host == url.raw_host.lower()
    try:
        found = object_key(url, raw)
    except InvalidRequestError:
        return
    assert found
    assert not found.endswith("/")
    assert not any(ord(c) < 32 for c in found)


@given(st.lists(st.one_of(text, st.sampled_from(["", ".", "..", "a", "\x01"])), max_size=6))
def test_a_listing_goes_on_past_a_bad_key(segments: list[str]) -> None:
    from adownload._mirror.store_list import skip_past

    key = "/".join(segments)
    after = skip_past(key)
    bad = any(
        s in ("", ".", "..") or any(ord(c) < 32 or 127 <= ord(c) < 160 for c in s)
        for s in key.split("/")
    )
    if not bad:
        assert after is None
        return
    assert after is not None
    assert after > key
    assert all(part not in ("", ".", "..") for part in after.split("/"))


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_REGION",
                "AWS_ENDPOINT_URL",
                "AWS_DEFAULT_REGION",
                "AZURE_STORAGE_ACCOUNT_NAME",
                "GOOGLE_APPLICATION_CREDENTIALS",
                "HOME",
            ]
        ),
        text,
    ),
    st.dictionaries(text, st.one_of(text, st.booleans(), st.integers())),
)
def test_store_config_is_keys_and_strings_or_a_type_error(
    environ: dict[str, str], options: dict[str, Any]
) -> None:
    from adownload._model.stores import store_config

    environ["HOME"] = "/nonexistent-home"
    try:
        config = store_config(options, trust_env=True, environ=environ)
    except (TypeError, InvalidRequestError):
        return
    for scheme in ("s3", "gs", "az"):
        for key, value in config.for_scheme(scheme).items():
            assert key == key.lower()
            assert isinstance(value, str)
    assert "secret" not in repr(config).lower() or "secret" in repr(list(options)).lower()
