"""`--scheduler`: both commands' downloads on a Dask cluster, through `DaskRunner`.

Imported only when the flag is given; `distributed` is imported only then too.
"""

from __future__ import annotations

import contextlib
import importlib.util
import ssl
from collections.abc import AsyncIterator
from typing import Any

from .network import NetworkOptions, refuse_untravelling
from .shared import UsageError

__all__ = ["ClusterError", "check_cluster_options", "cluster_runner"]

#: Seconds to reach the scheduler before giving up.
CONNECT_TIMEOUT = 10

#: The messages a Dask client keeps of what it sent, for debugging (Dask's default is 1000):
#: each shard is one (some 66 KiB for 1,000 requests), so the default holds some 66 MiB once
#: a long manifest has sent a thousand shards.
MESSAGE_LOG = 20


class ClusterError(Exception):
    """The scheduler cannot be reached; the message is the one line to show."""


def check_cluster_options(tls: ssl.SSLContext | bool, network: NetworkOptions) -> None:
    """Refuse, before anything runs, what cannot reach the workers."""
    if importlib.util.find_spec("distributed") is None:
        raise UsageError("--scheduler needs Dask's distributed: pip install 'adownload[dask]'")
    refuse_untravelling(
        tls, network, "the cluster's workers", "install the authority on them (their system's"
        " store) and leave the flag out", "--scheduler",
    )  # fmt: skip


@contextlib.asynccontextmanager
async def cluster_runner(address: str, **keywords: Any) -> AsyncIterator[Any]:
    """A `DaskRunner` on the cluster at `address`, with the runner's `keywords`."""
    import dask.config
    from distributed import Client

    from ..distributed import DaskRunner

    try:
        connect: Any = Client  # untyped
        with dask.config.set({"distributed.admin.low-level-log-length": MESSAGE_LOG}):
            client: Any = await connect(address, asynchronous=True, timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # OSError, TimeoutError, a bad address: all say the same
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    async with client:
        yield DaskRunner(client, **keywords)
