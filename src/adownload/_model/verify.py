"""Checksums the caller expects and digests the server announces (RFC 9530, RFC 3230)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ChecksumMismatchError, InvalidRequestError

# RFC 9530's registry (the active entries) and RFC 3230's names, as hashlib calls them.
_HTTP_ALGORITHMS = {"sha-256": "sha256", "sha-512": "sha512"}
_SFV_MEMBER = re.compile(r"^\s*([a-z0-9_*.-]+)\s*=\s*:([A-Za-z0-9+/=]*):\s*$")


def hash_name(algorithm: str) -> str | None:
    """hashlib's name for `algorithm` (`sha-256`, `SHA256`, `sha_256` are `sha256`), or None
    when hashlib has no such algorithm."""
    name = algorithm.strip().lower().replace("-", "").replace("_", "")
    name = {"sha3256": "sha3_256", "sha3512": "sha3_512"}.get(name, name)
    return name if name in hashlib.algorithms_available else None


_BARE_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def parse_checksum(text: str, *, url: str | None = None) -> tuple[str, str]:
    """Split `"sha256:<hex>"` into hashlib's algorithm name and the lower-case hex digest.

    `sha-256`, `SHA256` and aria2c's `sha-256=<hex>` spellings are accepted; any algorithm
    hashlib has works. 64 hex digits alone are a SHA-256, as pooch and `Registry` read them.
    Raises `InvalidRequestError` (a ValueError) for anything else.

    ```pycon
    >>> parse_checksum("E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")[0]
    'sha256'
    ```
    """
    if not isinstance(text, str):
        raise InvalidRequestError(f"checksum must be a string like 'sha256:<hex>', not {text!r}")
    if _BARE_SHA256.fullmatch(text.strip()):
        return "sha256", text.strip().lower()
    algorithm, sep, digest = text.strip().partition(":")
    if not sep:
        algorithm, sep, digest = text.strip().partition("=")
    if not sep or not digest:
        raise InvalidRequestError(
            f"checksum must look like 'sha256:<hex digest>', not {text!r}", url=url
        )
    name = hash_name(algorithm)
    if name is None:
        raise InvalidRequestError(f"unknown checksum algorithm {algorithm!r} in {text!r}", url=url)
    digest = digest.strip().lower()
    size = hashlib.new(name).digest_size
    if size == 0 or not re.fullmatch(r"[0-9a-f]+", digest) or len(digest) != 2 * size:
        raise InvalidRequestError(
            f"the {name} checksum must be {2 * size} hex digits, not {digest!r}", url=url
        )
    return name, digest


def parse_digest_fields(value: str) -> dict[str, bytes]:
    """Content-Digest / Repr-Digest (RFC 9530): `sha-256=:<base64>:, sha-512=:<base64>:`.

    Returns {hashlib name: digest} for the algorithms we know; others and malformed members are
    left out (an unknown algorithm is no reason to fail a download).
    """
    found: dict[str, bytes] = {}
    for member in value.split(","):
        match = _SFV_MEMBER.match(member)
        if match and match.group(1) in _HTTP_ALGORITHMS:
            try:
                found[_HTTP_ALGORITHMS[match.group(1)]] = base64.b64decode(
                    match.group(2), validate=True
                )
            except binascii.Error:
                continue
    return found


def parse_legacy_digest(value: str) -> dict[str, bytes]:
    """The `Digest` header of RFC 3230: `SHA-256=<base64>,SHA-512=<base64>`."""
    found: dict[str, bytes] = {}
    for member in value.split(","):
        name, sep, encoded = member.strip().partition("=")
        algorithm = _HTTP_ALGORITHMS.get(name.strip().lower())
        if sep and algorithm:
            try:
                found[algorithm] = base64.b64decode(encoded.strip(), validate=True)
            except binascii.Error:
                continue
    return found


class Hashes:
    """Several running hashes of one byte stream."""

    __slots__ = ("_hashers",)

    def __init__(self, algorithms: Iterable[str]) -> None:
        self._hashers: dict[str, Any] = {name: hashlib.new(name) for name in set(algorithms)}

    def __bool__(self) -> bool:
        return bool(self._hashers)

    def update(self, data: bytes) -> None:
        for hasher in self._hashers.values():
            hasher.update(data)

    def digest(self, algorithm: str) -> bytes:
        result: bytes = self._hashers[algorithm].digest()
        return result


def check(
    hashes: Hashes,
    expected: Mapping[str, bytes],
    *,
    source: str,
    url: str,
) -> None:
    """Raise `ChecksumMismatchError` unless every expected digest matches."""
    for algorithm, digest in expected.items():
        actual = hashes.digest(algorithm)
        if actual != digest:
            raise ChecksumMismatchError(
                f"{source} mismatch for {url}: expected {algorithm} {digest.hex()}, "
                f"got {actual.hex()}",
                url=url,
                algorithm=algorithm,
                expected=digest.hex(),
                actual=actual.hex(),
                source=source,
            )


#: One expected digest: where it came from, {algorithm: digest}, and its scope ("full": the
#: whole file; "partial": one response's body only).
Expected = tuple[str, dict[str, bytes], str]
#: No hashes at all (falsy, so never updated): shared by every body that checks no digest.
NO_HASHES = Hashes(())


def expected_digests(
    checksum: tuple[str, str] | None, announced: Iterable[Expected]
) -> tuple[Hashes, Hashes, list[Expected]]:
    """The digests to check (the caller's `checksum`, then those the server `announced`) and
    the hashes to compute for them: of the whole file, and of one response's body."""
    expected: list[Expected] = []
    if checksum is not None:
        expected.append(("checksum", {checksum[0]: bytes.fromhex(checksum[1])}, "full"))
    expected.extend(announced)
    if not expected:  # the common case: nothing to hash
        return NO_HASHES, NO_HASHES, expected
    full = Hashes(a for _, d, scope in expected if scope == "full" for a in d)
    partial = Hashes(a for _, d, scope in expected if scope == "partial" for a in d)
    return full, partial, expected


def check_all(expected: list[Expected], full: Hashes, partial: Hashes, *, url: str) -> None:
    """Raise `ChecksumMismatchError` unless every expected digest matches its hashes."""
    for source, digests, scope in expected:
        check(full if scope == "full" else partial, digests, source=source, url=url)
