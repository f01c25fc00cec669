"""Where one download's bytes go on disk, and the rules for every file it touches there.

A `Target` holds the final path, the `.part` beside it and its `.part.state`: the path lock,
the existing-file policy (`_disk/existing.py`, with the downloader's ledger of what it saved),
adopting a resumable part only when it and its state agree, whose part a file at the `.part`
name is, keeping or discarding the bytes on hand after a failure, and the no-clobber commit.
Nothing else in the package touches the destination directory (`_disk/existing.py` only reads
it). The exchange with the server is `Transfer`'s.
"""

from __future__ import annotations

import asyncio
import logging
import os
from contextlib import AbstractAsyncContextManager
from email.utils import formatdate
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from .._model.config import Existing
from .._model.errors import (
    ChecksumMismatchError,
    DestinationExistsError,
    DownloadError,
    SizeLimitError,
    StorageError,
    UnsafePathError,
)
from . import existing as _existing
from . import files as _files
from . import places as _places
from . import state as _state
from .existing import Skipped
from .sinks import FileSink, Sink, close_quietly
from .state import PartState

if TYPE_CHECKING:
    from .._model.request import Request
    from .._model.verify import Hashes
    from .places import Place

log = logging.getLogger("adownload")

#: A single-stream body larger than this gets its resume state written when it starts, so that
#: even a killed process can continue it. A smaller one is fetched again whole after a kill (one
#: more round trip at most); its state is written only when a failure keeps its part. For a
#: thousand 64 KiB files, writing every state up front was the largest cost of ours (15 % of
#: the event loop's samples: a temporary file, a rename and an unlink per file).
EAGER_STATE = 1 << 20


class Target:
    """One download's place on disk: `path`, its `part`, and the `state` of the bytes on hand.

    `state` describes what the bytes on hand (in the part, or in a caller's sink, which has no
    path) are a prefix or a set of ranges of, when they can be resumed; None otherwise.
    """

    def __init__(
        self, settings: Place, request: Request, url: str, existing: Existing, *, resume: bool
    ) -> None:
        self._settings = settings
        self._request = request
        self._url = url  # for messages: without userinfo
        self.existing = existing
        self._resume = resume
        self.path: Path | None = None
        self.part: Path | None = None
        self.state_file: Path | None = None
        self.state: PartState | None = None
        # Known to have no state file (none found, or removed by us): saves an unlink per file.
        self.state_absent = False
        # Whether the file at the .part name is ours to remove: made by this transfer, adopted
        # with its state, or carrying our mark. Nothing else there is ever deleted.
        self.part_ours = False
        self.replaced = False  # the download replaces a file that was at the target
        #: `Existing.NEWER`: the replaced file's modification time, as an HTTP date.
        self.since: str | None = None
        #: `Existing.CONTINUE`: the size of the file at the final name being continued.
        self.continued: int | None = None
        #: The lock on the target, from `claim()` to `release()`.
        self._held: AbstractAsyncContextManager[None] | None = None

    # --- the target and its part ------------------------------------------------------------

    async def claim(self, target: Path, *, resume: bool = True) -> None:
        """Lock `target` (until `release()`), apply the existing-file policy, and adopt a
        resumable `.part`. Raise `Skipped` when the policy leaves the file alone."""
        assert self._held is None, "a download claims one target"
        held = self._lock(target)
        await held.__aenter__()
        self._held = held
        self.path = target
        target, self.replaced = await _existing.resolve(
            target,
            self.existing,
            saved=self._settings.saved,
            wanted=self._request.expected_digest,
            url=self._url,
        )
        self.path = target
        if self.replaced and self.existing is Existing.NEWER:
            self.since = self._modified(target)
        self.part = part = _files.part_path(target)
        self.state_file = _state.state_path(part)
        self.state_absent = False
        self.part_ours = False
        if not (self._resume and resume):
            # A part with a state beside it, or our mark on it, is a leftover of ours.
            self.part_ours = _files.lexists(self.state_file) or _files.is_marked(part)
            self.discard()
            return
        try:
            state = _state.load(self.state_file)
        except FileNotFoundError:
            # Nothing to resume. A .part without a state is replaced when the body starts, if
            # it is ours (see _existing.make_room_for_part).
            self.state_absent = True
            return
        except _files.SpecialFileError as exc:
            raise self._special(exc.kind, self.state_file) from None
        # A state beside it makes the part ours, whatever else is wrong with the pair.
        self.part_ours = True
        size = _existing.part_size(part, self._url)
        if (
            state is not None
            and state.resumable
            and state.belongs_to(self._request.parsed_url)
            # A part with holes can only be filled by segments, which need the FileSink.
            and not (state.sparse and self._settings.writer != FileSink.open)
            and size is not None
            # The part must hold what the state says it holds, and no more than the file.
            and state.agrees_with(size)
        ):
            self.state = state
            log.debug("found %s to resume", part)
        else:
            self.discard()

    async def release(self) -> None:
        """Let the next download to this target (if any) go on: the end of this one."""
        held, self._held = self._held, None
        if held is not None:
            await held.__aexit__(None, None, None)

    def _modified(self, target: Path) -> str:
        try:
            return formatdate(os.lstat(target).st_mtime, usegmt=True)
        except OSError as exc:
            raise self.storage_error(exc, target) from exc

    async def continue_final(self) -> None:
        """`Existing.CONTINUE` with a file at the final name: copy it to the `.part`, whose end
        the next request asks for. The file itself is left alone until the commit replaces
        it; a part of ours from an earlier run gives way, as the file is what is continued."""
        target, part = self.path, self.part
        if (
            not self.replaced
            or target is None
            or part is None
            or self.existing is not (Existing.CONTINUE)
        ):
            return
        try:
            size = os.lstat(target).st_size
        except OSError as exc:
            raise self.storage_error(exc, target) from exc
        if size == 0:
            return  # nothing to continue: a whole download replaces it
        self.discard()
        try:
            await asyncio.to_thread(_files.copy_to_part, target, part)
        except FileExistsError:
            raise DestinationExistsError(
                f"{part} is in the way of continuing {target}, and adownload did not make it",
                url=self._url,
                path=part,
            ) from None
        except OSError as exc:
            raise self.storage_error(exc, part) from exc
        self.part_ours = True
        _files.mark_part(part)
        state = PartState.of(self._request.parsed_url, None, None, None)
        state.ranges, state.vouched = [(0, size)], True
        self.state, self.continued = state, size
        # Written (without validators, so never resumed) to mark the copy ours on file
        # systems without user attributes: a later run then clears it away.
        self.save_state()

    async def open_part(self, fresh: bool) -> Sink:
        """The sink on the `.part`: continued, or (for a fresh body) created and marked ours."""
        part = self.part
        assert part is not None
        writer = self._settings.writer
        try:
            if not fresh:
                return await writer(part, existing=True)
            try:
                sink = await writer(part, existing=False)
            except FileExistsError:
                # Created with O_EXCL, so finding something costs no extra call when, as almost
                # always, there is nothing: a leftover of ours or a link goes, anything else stays.
                assert self.path is not None
                _existing.make_room_for_part(part, self.path, self.part_ours, self._url)
                sink = await writer(part, existing=False)
            except FileNotFoundError:
                if part.parent not in self._settings.directories:
                    raise
                # The directory went away since this downloader made it: make it again.
                self._settings.directories.discard(part.parent)
                _places.ensure_directory(self._settings, part.parent, self._url)
                sink = await writer(part, existing=False)
            self.part_ours = True
            try:
                marked = _files.mark_part(sink.fileno() if isinstance(sink, FileSink) else part)
            except BaseException:
                await close_quietly(sink)
                self.discard()  # created, never written: an empty part helps no one
                raise
        except _files.SpecialFileError as exc:
            raise self._special(exc.kind, part) from None
        except DownloadError:
            raise
        except OSError as exc:
            raise self.storage_error(exc, part) from exc
        if not marked and self.state_absent:
            # No user attributes on this file system: a state file is the mark instead, so a
            # later run knows the part is ours (resumable or not; a state without validators is
            # discarded, with its part, when it is read).
            self.state = self.state or PartState.of(self._request.parsed_url, None, None, None)
            try:
                self.save_state()
            except BaseException:
                await close_quietly(sink)
                self.discard()  # created, never written: an empty part helps no one
                raise
            if not self.state.resumable:
                self.state = None
        return sink

    def start_fresh(self, state: PartState | None, length: int | None) -> None:
        """A fresh body starts, described by `state` (None: not resumable)."""
        self.state = state
        if state is not None and (length is None or length > EAGER_STATE):
            self.save_state()
        else:
            # Not written now (see EAGER_STATE), and a stale one must not describe this body.
            self.remove_state()

    def bytes_on_hand(self) -> int:
        """Bytes of the file in the part: the done ranges of a segmented part, else its size
        (a part written front to back by one stream is the done prefix)."""
        assert self.part is not None
        state = self.state
        if state is not None and state.sparse and state.length is not None:
            return state.length - sum(end - start for start, end in state.missing())
        try:
            return os.lstat(self.part).st_size
        except FileNotFoundError:
            return 0

    def to_prefix(self) -> int:
        """Bounded ranges failed for the segments of a sparse part: keep its bytes up to the
        first hole, which one stream then continues (an open-ended range, which such servers
        often still answer right) instead of starting over from byte 0. The new end."""
        state = self.state
        assert self.part is not None
        assert state is not None
        assert state.length is not None
        missing = state.missing()
        start = missing[0][0] if missing else state.length
        try:
            os.truncate(self.part, start)
        except OSError as exc:
            raise self.storage_error(exc, self.part) from exc
        state.sparse, state.ranges = False, [(0, start)]
        return start

    async def hash_part(self, hashes: Hashes, length: int) -> None:
        """Feed the first `length` bytes of the part to `hashes`, in a worker thread."""
        assert self.part is not None
        try:
            await asyncio.to_thread(_existing.read_into, self.part, hashes, length)
        except OSError as exc:
            raise self.storage_error(exc, self.part) from exc

    # --- after an attempt -------------------------------------------------------------------

    def keep_or_discard(self, exc: BaseException, written: list[tuple[int, int]] | None) -> None:
        """After a failed attempt: keep a resumable `.part` (with its state), or remove it.
        `written` is what segments wrote (None for one stream: the part's size says)."""
        state = self.state
        if state is None or isinstance(exc, ChecksumMismatchError | SizeLimitError):
            self.discard()
            return
        assert self.state_file is not None
        if written is not None:
            state.ranges = written
            state.sparse = True
        elif not state.sparse:
            state.ranges = [(0, self.bytes_on_hand())]
        if not any(end > start for start, end in state.ranges):
            self.discard()  # nothing written: nothing to resume, and a file in the way
            return
        try:
            self.save_state()
        except StorageError:
            # A part whose state cannot be written (a full disk) cannot be resumed: it would
            # only fill the disk for the next files.
            self.discard()

    def discard(self) -> None:
        """Forget the bytes on hand: remove the `.part` (if ours) and its state."""
        self.state = None
        if self.part is not None and self.part_ours:
            # Only ours: a file someone else put at the .part name is never deleted.
            _files.remove_quietly(self.part)
            self.part_ours = False
        if self.state_file is not None:
            if not self.state_absent:
                _files.remove_quietly(self.state_file)
            self.state_absent = True

    def lay_out(self, ranges: list[tuple[int, int]]) -> None:
        """The part is filled by segments from now on: its state says so, with the `ranges`
        written so far, and is saved."""
        if self.state is not None:
            self.state.sparse = True
            self.note_ranges(ranges)

    def note_ranges(self, ranges: list[tuple[int, int]]) -> None:
        """Save the `ranges` a segmented part holds by now (what a killed process resumes)."""
        if self.state is not None:
            self.state.ranges = ranges
            self.save_state()

    def save_state(self) -> None:
        if self.state is None or self.state_file is None:
            return
        self.state_absent = False
        try:
            _state.save(self.state_file, self.state)
        except OSError as exc:
            raise self.storage_error(exc, self.state_file) from exc

    def remove_state(self) -> None:
        if self.state_file is not None and not self.state_absent:
            _files.remove_quietly(self.state_file)
            self.state_absent = True

    def commit(self) -> Path:
        """Move the complete part to its final name, never over a file that appeared meanwhile
        (but under OVERWRITE); the path it now has. Raise `Skipped` if SKIP meets such a file."""
        part, target = self.part, self.path
        assert part is not None
        assert target is not None
        overwrite = self.existing is Existing.OVERWRITE or self.replaced
        _files.unmark_part(part)
        while True:
            # Without overwrite, a link at the target makes the commit fail (it never replaces),
            # so the check waits for that failure instead of costing an lstat per file.
            if overwrite and _files.is_symlink(target):
                self._refuse_symlink(target)
            try:
                _files.commit(part, target, overwrite=overwrite)
            except FileExistsError:
                if _files.is_symlink(target):
                    self._refuse_symlink(target)
                # The file appeared while we were downloading.
                if self.existing is Existing.RENAME:
                    target = _files.free_name(target)
                    continue
                self.discard()
                if self.existing is Existing.SKIP:
                    raise Skipped(target) from None
                raise DestinationExistsError(
                    f"{target} appeared during the download", url=self._url, path=target
                ) from None
            except OSError as exc:
                raise self.storage_error(exc, target) from exc
            self.part_ours = False  # it is the file now
            self._settings.saved.record(os.path.abspath(target), self._url)
            self.path = target
            self.remove_state()
            return target

    def storage_error(self, exc: OSError, path: Path | None = None) -> StorageError:
        return _existing.storage_error(exc, path or self.path or Path("."), self._url)

    # --- inside ------------------------------------------------------------------------------

    def _lock(self, target: Path) -> AbstractAsyncContextManager[None]:
        # Two downloads to one file in this downloader run one after the other; the second then
        # meets the first one's file and applies its existing-file policy to it. The key drops
        # `.part` suffixes, so that `data` (whose part is `data.part`) and a download *to*
        # `data.part` take turns too, instead of racing for one name.
        key = os.path.abspath(target)
        while key.endswith(_files.PART_SUFFIX):
            key = key[: -len(_files.PART_SUFFIX)]
        return self._settings.path_locks.hold(key)

    def _special(self, kind: str, path: Path) -> UnsafePathError:
        return _existing.special(kind, path, self._url)

    def _refuse_symlink(self, target: Path) -> NoReturn:
        raise UnsafePathError(
            f"refusing to replace the symbolic link at {target}", url=self._url, path=target
        )
