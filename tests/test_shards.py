"""Cutting requests into shards for a cluster (`_shards`): pure logic, no socket, no Dask."""

from __future__ import annotations

import pytest

from adownload import Request
from adownload._runners.shards import Shards, final_path, share_of


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
    # Distinct names: two requests of one file would not run in two shards at once (below).
    urls = ["http://a/a1", "http://b/b1", "http://a/a2", "http://b/b2", "http://a/a3"]
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


def test_two_requests_of_one_file_never_run_in_two_shards_at_once() -> None:
    shards = Shards(size=2, per_origin=2, dest="/d")
    first = Request("http://a/x/same.bin")
    shards.add(0, first)
    shards.add(1, Request("http://a/other.bin"))
    # Another origin, the same file by another spelling: it waits for the first's shard.
    late = Request("http://b/y/z.bin", path="/d/./same.bin")
    shards.add(2, late)
    shards.add(3, Request("http://b/free.bin"))
    shards.flush()
    a = shards.take()
    b = shards.take()
    assert a is not None
    assert b is not None
    assert [i for i, _ in a.entries] == [0, 1]
    assert [i for i, _ in b.entries] == [3]
    assert shards.take() is None
    assert shards.waiting
    assert shards.finished(b) == []
    assert shards.finished(a) == [(2, late)]
    shards.put_back([(2, late)])
    again = shards.take()
    assert again is not None
    assert again.entries == [(2, late)]
    assert shards.finished(again) == []
    assert not shards.waiting
    assert shards.buffered == 0


def test_one_origins_next_shard_waits_too_and_a_settled_request_is_counted_off() -> None:
    shards = Shards(size=1, per_origin=2, dest="/d")
    shards.add(0, Request("http://a/same.bin"))
    shards.add(1, Request("http://a/same.bin"))  # a shard of its own would race the first
    first = shards.take()
    assert first is not None
    assert shards.take() is None
    released = shards.finished(first)
    assert [i for i, _ in released] == [1]
    shards.settled(len(released))  # the caller failed it itself
    assert shards.buffered == 0
    assert not shards.waiting


def test_the_final_path_is_the_same_whatever_spelled_it() -> None:
    assert final_path(Request("http://h/a/f.zip"), "/d") == "/d/f.zip"
    assert final_path(Request("http://h/f.zip", dest="/e"), "/d") == "/e/f.zip"
    assert final_path(Request("http://g/q", path="/d/sub/../f.zip"), "/x") == "/d/f.zip"
