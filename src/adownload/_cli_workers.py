"""`--workers N`: the download command's downloads in N processes on this machine, through
`adownload.workers.ProcessRunner`."""

from __future__ import annotations

import ssl

from ._cli_network import NetworkOptions, refuse_untravelling
from ._cli_shared import UsageError

__all__ = ["check_worker_options"]


def check_worker_options(
    tls: ssl.SSLContext | bool,
    network: NetworkOptions,
    *,
    stdout: bool,
    scheduler: str | None,
    content_disposition: bool,
) -> None:
    """Refuse, before anything runs, what worker processes cannot do."""
    if scheduler is not None:
        raise UsageError("--workers and --scheduler both say where the downloads run: give one")
    if stdout:
        raise UsageError("-O - writes here, so it cannot run in worker processes (--workers)")
    if content_disposition:
        # Names that come with the answers could meet in two processes at once.
        raise UsageError(
            "--content-disposition names files only once their answers come, so two worker"
            " processes could write one file: leave out --workers"
        )
    refuse_untravelling(
        tls, network, "worker processes", "leave out --workers to use it", "--workers"
    )
