"""The site's generated parts, made from the code at build time (an mkdocs hook).

A page asks for one with a marker on a line of its own:

- `<!-- generated: cli adownload -->` (or `mirror`, `cache`): the flags of that command, group
  by group, read from the parser the command itself runs, so the page cannot drift from
  `--help`;
- `<!-- generated: errors -->`: the exception tree, walked from `adownload.DownloadError`'s
  subclasses, each with the first line of its docstring;
- `<!-- generated: options -->`: every keyword of `Downloader`, from the declarations in
  `adownload._model.catalogue` and the defaults of `Downloader`'s signature.
"""

from __future__ import annotations

import argparse
import os
import re
from typing import Any

_MARKER = re.compile(r"^<!-- generated: (\w+)(?: (\w+))? -->$", re.MULTILINE)


def on_page_markdown(markdown: str, **_: Any) -> str:
    return _MARKER.sub(lambda match: _generate(match[1], match[2]), markdown)


def _generate(kind: str, name: str | None) -> str:
    if kind == "cli" and name is not None:
        return _cli_reference(name)
    if kind == "errors":
        return _error_tree()
    if kind == "options":
        return _options_table()
    raise ValueError(f"unknown generated part {kind!r}")


# --- the command line -----------------------------------------------------------------------


def _parser(command: str) -> argparse.ArgumentParser:
    os.environ["COLUMNS"] = "90"  # the usage line, wrapped as on a wide terminal
    if command == "adownload":
        from adownload._cli.flags import build_parser
    elif command == "mirror":
        from adownload._cli.mirror_flags import build_parser
    elif command == "cache":
        from adownload._cli.cache import build_parser
    else:
        raise ValueError(f"unknown command {command!r}")
    return build_parser()


def _cli_reference(command: str) -> str:
    return _parser_reference(_parser(command))


def _parser_reference(parser: argparse.ArgumentParser) -> str:
    formatter = parser._get_formatter()
    lines = ["```text", parser.format_usage().strip(), "```", ""]
    if parser.description:
        lines += [parser.description, ""]
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.help != argparse.SUPPRESS]
        if not actions:
            continue
        title = (group.title or "").capitalize()
        lines += [f"**{title}**", ""]
        if group.description:
            lines += [group.description.strip("()").capitalize() + ".", ""]
        lines += ["| flag | what it does |", "|---|---|"]
        for action in actions:
            described = formatter._expand_help(action) if action.help else ""
            lines.append(f"| {_flags(action)} | {_cell(described)} |")
        lines.append("")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                lines += [f"### `{sub.prog}`", "", _parser_reference(sub), ""]
    return "\n".join(lines)


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    metavar = ""
    if action.nargs != 0:
        metavar = f" {action.metavar or action.dest.upper()}"
        if isinstance(action.metavar, tuple):
            metavar = " " + " ".join(action.metavar)
    return ", ".join(f"`{flag}{metavar}`" for flag in action.option_strings)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# --- the exceptions -------------------------------------------------------------------------


def _error_tree() -> str:
    import adownload
    import adownload.metalink  # MetalinkError is a subclass of InvalidRequestError

    lines: list[str] = []

    def walk(kind: type[BaseException], depth: int) -> None:
        builtins = [
            base.__name__
            for base in kind.__bases__
            if base.__module__ == "builtins" and base is not Exception
        ]
        also = f" (also a `{'`, `'.join(builtins)}`)" if builtins else ""
        public = _public_path(kind)
        summary = (kind.__doc__ or "").strip().split("\n\n")[0]
        summary = " ".join(summary.split())
        lines.append(f"{'    ' * depth}- [`{kind.__name__}`][{public}]{also}: {summary}")
        for child in sorted(kind.__subclasses__(), key=_order):
            if _public_path(child):
                walk(child, depth + 1)

    walk(adownload.DownloadError, 0)
    return "\n".join(lines)


def _public_path(kind: type[BaseException]) -> str:
    import adownload
    import adownload.metalink

    for module in (adownload, adownload.metalink):
        if getattr(module, kind.__name__, None) is kind and kind.__name__ in module.__all__:
            return f"{module.__name__}.{kind.__name__}"
    return ""


def _order(kind: type[BaseException]) -> tuple[int, str]:
    # Bad input first, then the server's answers, the network, time, the disk: the order in
    # which a download meets them.
    return (_FIRST.index(kind.__name__) if kind.__name__ in _FIRST else len(_FIRST), kind.__name__)


_FIRST = [
    "InvalidRequestError",
    "UnsafePathError",
    "DestinationExistsError",
    "HTTPStatusError",
    "FTPReplyError",
    "ChecksumMismatchError",
    "SizeLimitError",
    "TransportError",
    "DownloadTimeout",
    "StorageError",
]


# --- the options ----------------------------------------------------------------------------


def _options_table() -> str:
    import inspect

    import adownload
    from adownload._model.catalogue import KEYWORDS

    parameters = inspect.signature(adownload.Downloader).parameters
    lines = []
    for declared in KEYWORDS:
        default = _default(parameters[declared.name].default)
        facts = [f"Workers and Dask: {declared.travels}."]
        if declared.per_request:
            facts.insert(0, "A `Request` may set its own.")
        if declared.flags:
            facts.append("Flags: " + ", ".join(f"`{flag}`" for flag in declared.flags) + ".")
        lines += [
            f"`{declared.name}` = {default}",
            f":   {declared.help[0].upper()}{declared.help[1:]}",
            "",
            f"    {' '.join(facts)}",
            "",
        ]
    return "\n".join(lines)


def _default(value: object) -> str:
    import enum

    if isinstance(value, enum.Enum):
        return f"`{type(value).__name__}.{value.name}`"
    if callable(value) and hasattr(value, "__qualname__"):
        return f"`{value.__qualname__}`"
    text = repr(value)
    return f"`{text}`" if len(text) < 60 else f"`{type(value).__name__}()`"
