"""Object stores as data: which URLs name one (`s3://bucket/key`, `gs://bucket/key`,
`az://container/key`), whether a bucket's name can be one, and the configuration a store is
made with (`StoreConfig`): the caller's `store_options`, and with `trust_env` the standard
variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`) and AWS's shared files for `AWS_PROFILE`.

Nothing here talks to a store; `adownload._protocols.store` does, through obstore.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from yarl import URL

from .errors import InvalidRequestError

__all__ = [
    "STORE_SCHEMES",
    "StoreConfig",
    "canonical",
    "check_bucket",
    "store_config",
]

#: URL schemes of object stores, and the store each names.
STORE_SCHEMES: Final = {"s3": "S3", "gs": "GCS", "az": "Azure"}

# S3: 3 to 63 characters, lower-case letters, digits, dots and hyphens, starting and ending
# with a letter or digit (AWS's rules, which S3-compatible stores follow). GCS allows
# underscores too (and longer names with dots, which are domains); Azure containers allow
# letters, digits and single hyphens.
_NAME_RULES: Final = {
    "s3": re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"),
    "gs": re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$"),
    "az": re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$"),
}

_REGION: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

#: The variables read with `trust_env`, by scheme: each is a configuration key of obstore (its
#: name in lower case), so none is interpreted here.
_VARIABLES: Final = {
    "s3": (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT",
        "AWS_SKIP_SIGNATURE",
        "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
    ),
    "gs": (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_SERVICE_ACCOUNT",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
    ),
    "az": (
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_STORAGE_TOKEN",
        "AZURE_STORAGE_USE_EMULATOR",
        "AZURE_STORAGE_ENDPOINT",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_TENANT_ID",
    ),
}

_PREFIXES: Final = {"s3": ("aws_",), "gs": ("google_",), "az": ("azure_storage_", "azure_")}
_ALIASES: Final = {"endpoint_url": "endpoint", "default_region": "region"}


def canonical(scheme: str, key: str) -> str:
    """A configuration key by obstore's own name: `AWS_ENDPOINT_URL`, `aws_endpoint` and
    `endpoint` are all `endpoint` (for S3), so that two spellings never meet."""
    key = key.lower()
    for prefix in _PREFIXES[scheme]:
        if key.startswith(prefix):
            key = key[len(prefix) :]
            break
    return _ALIASES.get(key, key)


def check_bucket(url: URL, text: str) -> None:
    """Refuse an object store URL whose bucket (or container) cannot be one, or that names
    no object: `InvalidRequestError` naming the URL."""
    scheme = url.scheme.lower()
    bucket = url.raw_host or ""
    if not _NAME_RULES[scheme].match(bucket) or ".." in bucket:
        raise InvalidRequestError(
            f"{bucket!r} is not a valid {STORE_SCHEMES[scheme]} bucket name in {text!r}: 3 to"
            " 63 lower-case letters, digits, dots or hyphens",
            url=text,
        )
    if url.port is not None or url.raw_user is not None or url.raw_password is not None:
        raise InvalidRequestError(
            f"an object store URL names a bucket, not a server: no port or login in {text!r}"
            " (credentials go in store_options or the environment)",
            url=text,
        )


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """The configuration stores are made with: obstore keys and values, by scheme."""

    by_scheme: Mapping[str, Mapping[str, str]]
    #: Whether the environment was read (else no store may read it either).
    trust_env: bool = False
    #: Whether servers' certificates are checked.
    verify: bool = True

    def for_scheme(self, scheme: str) -> dict[str, str]:
        return dict(self.by_scheme.get(scheme, {}))

    def __repr__(self) -> str:  # the values may be secrets
        keys = {scheme: sorted(config) for scheme, config in self.by_scheme.items()}
        return f"StoreConfig({keys})"


def store_config(
    options: Mapping[str, object] | None,
    *,
    trust_env: bool,
    verify: bool = True,
    environ: Mapping[str, str] | None = None,
) -> StoreConfig:
    """The stores' configuration: the standard variables (with `trust_env`), then
    `options` over them. `options` are obstore's keys (`endpoint`, `region`,
    `access_key_id`, `skip_signature`, ...), for every scheme, or a mapping of a scheme to its
    keys (`{"s3": {...}, "az": {...}}`). Without credentials in either, requests are unsigned
    (anonymous, as aws-cli's `--no-sign-request`)."""
    environ = os.environ if environ is None else environ
    by_scheme: dict[str, dict[str, str]] = {scheme: {} for scheme in STORE_SCHEMES}
    if trust_env:
        by_scheme["s3"] = _aws_profile(environ)
        for scheme, names in _VARIABLES.items():
            for name in names:
                value = environ.get(name)
                if value and not (name == "AWS_DEFAULT_REGION" and environ.get("AWS_REGION")):
                    by_scheme[scheme][canonical(scheme, name)] = value
    if options is not None:
        if not isinstance(options, Mapping):
            raise TypeError(f"store_options must be a mapping, not {options!r}")
        for key, given in options.items():
            if key in STORE_SCHEMES:
                if not isinstance(given, Mapping):
                    raise TypeError(f"store_options[{key!r}] must be a mapping, not {given!r}")
                for inner, inner_value in given.items():
                    by_scheme[key][canonical(key, _key(inner))] = _value(inner, inner_value)
            else:
                for scheme in STORE_SCHEMES:
                    by_scheme[scheme][canonical(scheme, _key(key))] = _value(key, given)
    region = by_scheme["s3"].get("region")
    if region is not None and not _REGION.match(region):
        raise InvalidRequestError(
            f"{region!r} is not a region name (us-east-1, eu-west-3, auto...)", url=None
        )
    return StoreConfig(dict(by_scheme.items()), trust_env, verify)


def _key(key: object) -> str:
    if not isinstance(key, str) or not key:
        raise TypeError(f"a store option's name must be a string, not {key!r}")
    return key.lower()


def _value(key: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str | int | float):
        raise TypeError(f"store option {key!r} must be a string, number or bool")
    return str(value)


def _aws_profile(environ: Mapping[str, str]) -> dict[str, str]:
    """Credentials and region of the profile `AWS_PROFILE` (else `default`) in AWS's shared
    files (`~/.aws/credentials`, `~/.aws/config`, or where `AWS_SHARED_CREDENTIALS_FILE` and
    `AWS_CONFIG_FILE` say), as aws-cli reads them; the variables win over them."""
    home = Path(environ.get("HOME") or Path.home())
    profile = environ.get("AWS_PROFILE") or "default"
    found: dict[str, str] = {}
    credentials = Path(environ.get("AWS_SHARED_CREDENTIALS_FILE") or home / ".aws/credentials")
    config = Path(environ.get("AWS_CONFIG_FILE") or home / ".aws/config")
    wanted = {
        "aws_access_key_id": "access_key_id",
        "aws_secret_access_key": "secret_access_key",
        "aws_session_token": "session_token",
        "region": "region",
        "endpoint_url": "endpoint",
    }
    import configparser  # only here: every start-up would pay for it

    for path, section in (
        (config, "default" if profile == "default" else f"profile {profile}"),
        (credentials, profile),
    ):
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error) as exc:
            raise InvalidRequestError(f"cannot read AWS's file {path}: {exc}", url=None) from None
        if parser.has_section(section):
            for name, key in wanted.items():
                value = parser.get(section, name, fallback=None)
                if value:
                    found[key] = value.strip()
    if environ.get("AWS_PROFILE") and not found:
        raise InvalidRequestError(
            f"AWS_PROFILE names {profile!r}, which neither {credentials} nor {config} has",
            url=None,
        )
    return found
