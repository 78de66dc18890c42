"""What the sync and the async client share: the server's URL, the key (only ever in the
``Authorization`` header of the HTTP session), the retry rules, the environment, the repr
and the steps of each call (:mod:`ledger.client.flows`). Each subclass makes its own kind
of httpx session and runs the steps' I/O."""

from __future__ import annotations

import os
from typing import Any, Generic, Self, TypeVar

import httpx
from pydantic import SecretStr

from ledger.client import flows, protocol
from ledger.client.protocol import RetryRules

Session = TypeVar("Session", httpx.Client, httpx.AsyncClient)


class ClientBase(Generic[Session]):
    """``Client(url, api_key)``: the server's root URL (``http://127.0.0.1:8000``) and an API
    key (``ledger keys create --tenant NAME``; None in local single-user mode): every call
    acts as the key's tenant. ``timeout`` is per request, in seconds; ``rules`` says how
    patient the client is (:class:`RetryRules`)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr | None = None,
        *,
        timeout: float = 30.0,
        rules: RetryRules | None = None,
    ) -> None:
        self.base_url = protocol.base_url(base_url)
        self.rules = rules or RetryRules()
        self._http: Session = self._session(
            base_url=self.base_url,
            headers=protocol.auth_headers(api_key),
            timeout=timeout,
            follow_redirects=False,  # a redirect must not carry the key elsewhere
        )

    def _session(self, **options: Any) -> Session:
        raise NotImplementedError

    @classmethod
    def from_env(cls, **kwargs: Any) -> Self:
        """From ``LEDGER_URL`` (default ``http://127.0.0.1:8000``) and ``LEDGER_API_KEY``."""
        url = os.environ.get(protocol.URL_VARIABLE) or protocol.DEFAULT_URL
        return cls(url, os.environ.get(protocol.KEY_VARIABLE) or None, **kwargs)

    def _searching(self, query: str, **options: Any) -> flows.Runner:
        """The steps of a search (``options``: those of :func:`protocol.search_params`)."""
        params = protocol.search_params(query, **options)
        return flows.Runner(flows.search(self.rules, self.base_url, params))

    def _streaming(self, batch: str, **options: Any) -> flows.Runner:
        """The steps of a batch's chunk stream (``options``: those of :func:`flows.chunks`)."""
        return flows.Runner(flows.chunks(self.rules, self.base_url, batch, **options))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.base_url!r})"
