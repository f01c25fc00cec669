"""Request headers as data: layers merged, later ones winning. No aiohttp: the downloader
builds its headers before it opens a session."""

from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDict

__all__ = ["merge_headers"]


def merge_headers(*layers: Mapping[str, str] | None) -> CIMultiDict[str]:
    """Header layers merged, later ones winning."""
    merged: CIMultiDict[str] = CIMultiDict()
    for layer in layers:
        if layer:
            merged.update(layer)
    return merged
