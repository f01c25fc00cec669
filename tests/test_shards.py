"""Cutting requests into shards for a cluster (`_shards`): pure logic, no socket, no Dask."""

from __future__ import annotations

import pytest

from adownload import Request
from adownload._shards import Shards, share_of


def test_an_origins_budget_is_split_among_the_shards_that_run_at_once() -> None:
    assert share_of(6, 2) == (2, 3)
    assert share_of(6, 10) == (6, 1)  # never more shards of an origin than connections
    assert share_of(1, 4) == (1, 1)
    for limit in range(1, 20):
        for workers in range(1, 8):
            shards, each = share_of(limit, workers)
            assert shards * each <= limit


def test_shards_hold_one_origin_each_and_fill_in_order() -> None:
    shards = Shards(size=2, per_origin=1)
    urls = ["http://a/1", "http://b/1", "http://a/2", "http://b/2", "http://a/3"]
    for index, url in enumerate(urls):
        shards.add(index, Request(url))
    first = shards.take()
    assert first is not None
    assert (first.origin, [i for i, _ in first.entries]) == ("http://a:80", [0, 2])
    second = shards.take()
    assert second is not None
    assert [i for i, _ in second.entries] == [1, 3]
    assert shards.take() is None  # a/3 waits in a buffer: not a full shard yet
    assert shards.partial
    shards.flush()
    assert shards.take() is None  # a's one running shard is its limit
    shards.finished(first)
    third = shards.take()
    assert third is not None
    assert [i for i, _ in third.entries] == [4]
    assert shards.buffered == 0
    assert not shards.waiting


def test_a_shard_holds_at_least_one_request() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Shards(size=0, per_origin=1)
