"""The object stores of a downloader: one obstore store per scheme, bucket and proxy, made
with its first URL, holding the connection pool and the credentials.

- Without the environment's trust, every key obstore would read from the environment is given
  here, so none is: anonymous unless credentials were given.
- The proxy is the library's choice, as for HTTP (`proxy`, `no_proxy`, and the environment
  only with `trust_env`), made for the store's endpoint: an http or https proxy is handed to
  obstore, a SOCKS one refused. obstore's client would otherwise read `HTTP_PROXY` and its
  kin from the environment by itself, whatever `trust_env` says; a direct store is therefore
  given a proxy that excludes every host it talks to (`_DIRECT`), which turns that off.
"""

from __future__ import annotations

import datetime
import re
from typing import TYPE_CHECKING, Any

from obstore.exceptions import BaseError, UnknownConfigurationKeyError

from ..._model.errors import InvalidRequestError
from ..._model.stores import STORE_SCHEMES, StoreConfig

if TYPE_CHECKING:
    from yarl import URL

    from ..._model.proxy import Proxy
    from ..network import Network

__all__ = ["Stores", "endpoint_of", "first_line", "make_store", "stores_of"]


class Stores:
    """A downloader's stores, one per scheme, bucket and proxy, made with its first URL
    (obstore's store holds the connection pool and the credentials)."""

    __slots__ = ("_config", "_endpoints", "_made", "_network", "_verify")

    def __init__(self, config: StoreConfig, network: Network, *, verify: bool) -> None:
        self._config = config
        self._network = network
        self._verify = verify
        self._made: dict[tuple[str, str, Proxy | None], Any] = {}
        self._endpoints: dict[str, URL] = {}  # by scheme, read from the config once

    def get(self, url: URL, shown: str, proxy: Proxy | None) -> Any:
        """The store of `url`'s bucket, reached through `proxy` (the request's or the
        downloader's) or the environment's, unless `no_proxy` names its endpoint."""
        bucket = url.raw_host or ""
        endpoint = self._endpoints.get(url.scheme)
        if endpoint is None:
            endpoint = self._endpoints[url.scheme] = endpoint_of(url.scheme, self._config)
        chosen = self._network.proxy_for(endpoint, proxy)
        if chosen is not None and chosen.kind != "http":
            raise InvalidRequestError(
                f"{shown}: object stores are reached through an http or https proxy, not"
                f" {chosen.shown}",
                url=shown,
            )
        key = (url.scheme, bucket, chosen)
        store = self._made.get(key)
        if store is None:
            store = self._made[key] = make_store(
                url.scheme,
                bucket,
                self._config,
                endpoint=endpoint,
                verify=self._verify,
                shown=shown,
                proxy=chosen,
            )
        return store

    async def close(self) -> None:
        self._made.clear()  # obstore's pools close with their stores


def stores_of(
    pools: dict[str, Any], config: StoreConfig, network: Network, *, verify: bool
) -> Stores:
    """The downloader's stores from its `pools` (by protocol), made with its first URL."""
    stores = pools.get("store")
    if stores is None:
        stores = pools["store"] = Stores(config, network, verify=verify)
    assert isinstance(stores, Stores)
    return stores


#: What a store reached directly is given as its proxy: a proxy no request goes through, as
#: every host it could talk to is excluded (the endpoint's, added per store, the clouds' and
#: every address), which keeps obstore's client from taking one from the environment.
#: (Its exclusions take hosts, domains and address blocks, not "*".)
_DIRECT = {
    "proxy_url": "http://127.0.0.1:9",
    "proxy_excludes": "amazonaws.com,googleapis.com,windows.net,0.0.0.0/0,::/0",
}


def endpoint_of(scheme: str, config: StoreConfig) -> URL:
    """Where the stores of `scheme` are reached: the configured endpoint, else the cloud's."""
    from yarl import URL

    keys: Any = config.for_scheme(scheme)
    given = keys.get("endpoint") or keys.get("base_url")
    if given:
        return URL(given)
    if scheme == "s3":
        return URL(f"https://s3.{keys.get('region') or 'us-east-1'}.amazonaws.com")
    if scheme == "gs":
        return URL("https://storage.googleapis.com")
    return URL(f"https://{keys.get('account_name') or 'account'}.blob.core.windows.net")


def make_store(
    scheme: str,
    bucket: str,
    config: StoreConfig,
    *,
    endpoint: URL,
    verify: bool,
    shown: str,
    proxy: Proxy | None = None,
) -> Any:
    """An obstore store for `bucket` at `endpoint` (`endpoint_of`), through the http `proxy`
    or directly. Without the environment's trust, every key it would read from the environment
    is given here, so none is: anonymous unless credentials were given."""
    from obstore.store import AzureStore, GCSStore, S3Store

    keys: Any = config.for_scheme(scheme)  # obstore's TypedDicts, by key
    client: Any = {}
    if endpoint.scheme == "http":
        client["allow_http"] = True
    if not verify:
        client["allow_invalid_certificates"] = True
    if proxy is None:
        host = endpoint.host or ""
        client["proxy_url"] = _DIRECT["proxy_url"]
        client["proxy_excludes"] = ",".join(filter(None, (host, _DIRECT["proxy_excludes"])))
    else:
        login = proxy.login
        client["proxy_url"] = str(
            proxy.url
            if login is None
            else proxy.url.with_user(login).with_password(proxy.password or "")
        )
    retry: Any = {"max_retries": 0, "retry_timeout": datetime.timedelta(seconds=1)}
    try:
        if scheme == "s3":
            if not config.trust_env:
                region = keys.setdefault("region", "us-east-1")
                keys.setdefault("endpoint", f"https://s3.{region}.amazonaws.com")
            if "access_key_id" not in keys:
                keys.setdefault("skip_signature", "true")
            return S3Store(bucket, config=keys, client_options=client, retry_config=retry)
        if scheme == "gs":
            if not any(k.startswith(("service_account", "application_")) for k in keys):
                keys.setdefault("skip_signature", "true")
            return GCSStore(bucket, config=keys, client_options=client, retry_config=retry)
        return AzureStore(bucket, config=keys, client_options=client, retry_config=retry)
    except UnknownConfigurationKeyError as exc:
        key = getattr(exc, "key", None) or quoted(str(exc))
        raise InvalidRequestError(
            f"unknown {STORE_SCHEMES[scheme]} store option {key!r} for {shown}", url=shown
        ) from None
    except BaseError as exc:
        raise InvalidRequestError(
            f"cannot use the {STORE_SCHEMES[scheme]} store of {shown}: {first_line(exc)}",
            url=shown,
        ) from None


def first_line(exc: BaseException) -> str:
    """obstore's first line, without what could carry a secret: the query of a URL (an Azure
    SAS token travels there) and any word that names a key, token or signature."""
    line = str(exc).split("\n", 1)[0]
    line = re.sub(r"(https?://[^\s?]+)\?\S*", r"\1", line)
    return re.sub(r"(?i)(key|secret|token|signature|credential)\S*", r"\1…", line)[:200]


def quoted(text: str) -> str:
    match = re.search(r"'([^']+)'", text)
    return match[1] if match else "?"
