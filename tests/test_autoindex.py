"""Reading directory index pages: which links are entries below the base, and which are not."""

from __future__ import annotations

import pytest
from yarl import URL

from adownload._mirror.autoindex import below, directory_url, parse_index

from .autoindex_server import apache_page, nginx_page

BASE = URL("http://mirror.test/pub/docs/")
ENTRIES: list[tuple[str, int | None]] = [
    ("3.13", None),
    ("a b.txt", 12),
    ("python-3.13.2-docs.zip", 1000),
    ("ünï.txt", 3),
]
HOSTILE = [
    "../",
    "..",
    "/",
    "/etc/",
    "/etc/passwd",
    "/pub/",
    "/pub/docs",
    "/pub/docs/",
    "/pub/secret.txt",
    "../secret.txt",
    "%2e%2e%2fsecret.txt",
    "..%2fsecret.txt",
    "%2e%2e/secret.txt",
    "a%2Fb.txt",
    "a%5Cb.txt",
    "nul%00.txt",
    "bad%ff.txt",
    "http://other.test/pub/docs/x.txt",
    "//other.test/pub/docs/x.txt",
    "https://mirror.test/pub/docs/x.txt",
    "http://mirror.test:8080/pub/docs/x.txt",
    "http://mirror.test/etc/passwd",
    "?C=N;O=D",
    "?C=M;O=A",
    "x.txt?download=1",
    "#top",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "mailto:root@mirror.test",
    "ftp://mirror.test/pub/docs/x.txt",
    "data:text/plain,hi",
]


@pytest.mark.parametrize("style", [nginx_page, apache_page], ids=["nginx", "apache"])
def test_entries_of_nginx_and_apache_pages(style) -> None:
    page = style("/pub/docs/", ENTRIES, [])
    listing = parse_index(page, BASE, BASE)
    assert listing.directories == [(URL("http://mirror.test/pub/docs/3.13/"), ("3.13",))]
    assert [parts for _, parts in listing.files] == [
        ("a b.txt",),
        ("python-3.13.2-docs.zip",),
        ("ünï.txt",),
    ]
    assert str(listing.files[0][0]) == "http://mirror.test/pub/docs/a%20b.txt"


@pytest.mark.parametrize("style", [nginx_page, apache_page], ids=["nginx", "apache"])
def test_hostile_links_are_ignored(style) -> None:
    page = style("/pub/docs/", [("ok.txt", 1)], HOSTILE)
    listing = parse_index(page, BASE, BASE)
    assert listing.directories == []
    assert [str(url) for url, _ in listing.files] == ["http://mirror.test/pub/docs/ok.txt"]


def test_python_http_server_page() -> None:
    page = (
        '<!DOCTYPE HTML>\n<html lang="en">\n<head><title>Directory listing for /</title></head>'
        "<body>\n<h1>Directory listing for /</h1>\n<hr>\n<ul>\n"
        '<li><a href="a.txt">a.txt</a></li>\n<li><a href="sub/">sub/</a></li>\n'
        '<li><a href="link%40">link@</a></li>\n</ul>\n<hr>\n</body>\n</html>\n'
    )
    base = URL("http://127.0.0.1:8000/")
    listing = parse_index(page, base, base)
    assert [parts for _, parts in listing.directories] == [("sub",)]
    assert [parts for _, parts in listing.files] == [("a.txt",), ("link@",)]


def test_links_in_a_subdirectory_page_are_relative_to_that_page() -> None:
    page = nginx_page("/pub/docs/3.13/", [("b.zip", 5), ("deep", None)], ["../../../x"])
    listing = parse_index(page, BASE.join(URL("3.13/")), BASE)
    assert [parts for _, parts in listing.files] == [("3.13", "b.zip")]
    assert [parts for _, parts in listing.directories] == [("3.13", "deep")]


def test_names_are_made_safe_as_in_single_downloads() -> None:
    # A leading dot (a hidden file) is dropped, exactly as safe_filename does for one download.
    assert below(BASE, URL("http://mirror.test/pub/docs/.hidden/con.txt")) == (
        "hidden",
        "_con.txt",
    )
    assert below(BASE, URL("http://mirror.test/pub/docs/...")) is None


def test_directory_url_adds_the_slash_and_drops_the_query() -> None:
    assert directory_url(URL("http://h/pub/docs?x=1")) == URL("http://h/pub/docs/")
    assert directory_url(URL("http://h/pub/docs/")) == URL("http://h/pub/docs/")
