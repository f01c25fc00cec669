"""Pure pieces of the command line, no socket: the progress line layout, the time-left
format, error lines that name the URL once, hints for a URL without a scheme, and the
blocking API's keywords held to the `Downloader`'s signature."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from pathlib import Path

import pytest

import adownload
from adownload._cli.progress import Line, format_left, layout
from adownload._cli.shared import scheme_hint
from adownload._model.errors import ConnectError, SizeLimitError
from adownload._model.util import describe_error

LINES = [
    Line("9/33 files", 0.34, "1.5 MiB", "2.4 MiB/s", "8 s left"),
    Line("31/33 files", 0.85, "8.1/9.4 MiB", "2.2 MiB/s", "1 min 4 s left"),
    Line("python-3.13.2-docs-html.zip", 0.12, "1.0/8.0 MiB", "2.0 MiB/s", "4 s", indent="  "),
    Line("stalled.bin", 0.3, "60.0/200.0 KiB", "stalled", "for 4 s", stalled=True, indent="  "),
    Line("unknown-size.bin", None, "5.0 MiB", "1.0 MiB/s", indent="  "),
    Line("done.bin", 1.0, "40.0/40.0 KiB", indent="  "),
]


@pytest.mark.parametrize("width", [20, 40, 60, 80, 120, 200])
@pytest.mark.parametrize("line", LINES, ids=lambda line: line.name)
def test_a_line_never_exceeds_the_width(line: Line, width: int) -> None:
    text = layout(line, width)
    assert text.cell_len <= width
    assert "\n" not in text.plain


def test_what_gives_way_first_on_a_narrow_terminal() -> None:
    line = LINES[1]
    wide, medium, narrow = (layout(line, w).plain for w in (200, 60, 40))
    assert all(part in wide for part in ("31/33 files", "85%", "8.1/9.4 MiB", "2.2 MiB/s"))
    assert "1 min 4 s left" in wide
    assert "85%" in medium
    assert "2.2 MiB/s" in medium
    assert "left" not in medium
    assert "85%" in narrow
    assert "8.1/9.4 MiB" in narrow
    assert "MiB/s" not in narrow
    assert "━" in narrow


def test_a_stall_shows_at_every_width() -> None:
    for width in (30, 40, 60, 80, 200):
        assert "stalled" in layout(LINES[3], width).plain, width


def test_bars_line_up_whatever_the_fields_say() -> None:
    a = layout(Line("a.bin", 0.5, "1 B/2 B", "1 B/s", "1 s left", indent="  "), 100).plain
    b = layout(Line("b.bin", 0.5, "999.9 KiB/1.2 MiB", "999.9 MiB/s", "9 min 59 s left"), 100).plain
    assert a.index("━") == b.index("━")
    assert a.index("%") == b.index("%")


def test_one_time_left_format() -> None:
    assert [format_left(s) for s in (0.4, 8.6, 62, 599, 600, 3599, 3600, 90000)] == [
        "0 s left",
        "9 s left",
        "1 min 2 s left",
        "9 min 59 s left",
        "10 min left",
        "59 min left",
        "1 h 0 min left",
        "25 h 0 min left",
    ]


def test_an_error_line_names_the_url_once() -> None:
    url = "http://127.0.0.1:9/a.bin"
    refused = ConnectError(f"cannot connect for {url}: [Errno 111] refused", url=url)
    assert describe_error(refused, url) == "cannot connect: [Errno 111] refused"
    big = SizeLimitError(f"{url} is 5000 bytes, over the limit of 10", url=url, limit=10)
    assert describe_error(big, url) == "the file is 5000 bytes, over the limit of 10"
    # Another URL (a redirect's target) is kept: it says something new.
    other = ConnectError("cannot connect for http://127.0.0.1:9/b: refused", url=url)
    assert "http://127.0.0.1:9/b" in describe_error(other, url)


def test_a_url_without_a_scheme_gets_a_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert scheme_hint("example.org/a.zip") == "; did you mean http://example.org/a.zip?"
    assert scheme_hint("host/path") == "; did you mean http://host/path?"
    assert scheme_hint("localhost:8000/x") == "; did you mean http://localhost:8000/x?"
    assert scheme_hint("gopher://example.org/") == ""
    assert scheme_hint("not a url") == ""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "urls.txt").write_text("")
    assert scheme_hint("urls.txt") == "; to read URLs from the file urls.txt, use -i urls.txt"


def test_the_blocking_functions_take_every_option_of_the_downloader() -> None:
    signature = inspect.signature(adownload.Downloader)
    expected = {
        name: parameter.annotation
        for name, parameter in signature.parameters.items()
        if name not in ("session", "dest")
    }
    declared = {
        name: hint.__forward_arg__ if isinstance(hint, typing.ForwardRef) else hint
        for name, hint in adownload.DownloaderOptions.__annotations__.items()
    }
    assert declared == expected
    for function in (adownload.download, adownload.download_many, adownload.fetch):
        options = inspect.signature(function).parameters["options"]
        assert options.kind is inspect.Parameter.VAR_KEYWORD


def test_every_keyword_is_declared_once_and_the_declarations_hold() -> None:
    """The catalogue (adownload._model.catalogue) names every keyword of `Downloader`, in its
    order; what it says a `Request` may set, `Request` has; the flags it names, the command
    has; and the docstrings list what it says."""
    from adownload._cli.flags import build_parser
    from adownload._model.catalogue import KEYWORDS
    from adownload._model.options import PER_REQUEST, Options

    names = [declared.name for declared in KEYWORDS]
    assert names == list(inspect.signature(adownload.Downloader).parameters)
    assert len(set(names)) == len(names)
    fields = {field.name for field in dataclasses.fields(adownload.Request)}
    shared = [declared.name for declared in KEYWORDS if declared.per_request]
    assert set(shared) <= fields
    assert set(PER_REQUEST) <= {field.name for field in dataclasses.fields(Options)}
    assert set(PER_REQUEST) == set(shared) - {"dest", "headers"}
    flags = {flag for action in build_parser()._actions for flag in action.option_strings}
    for declared in KEYWORDS:
        assert set(declared.flags) <= flags, (declared.name, set(declared.flags) - flags)
        assert declared.help.endswith("."), declared.name
        assert f"- `{declared.name}`: {declared.help}" in " ".join(
            (adownload.Downloader.__doc__ or "").split()
        )
    assert ", ".join(f"`{name}`" for name in shared[:-1]) in (adownload.Request.__doc__ or "")
