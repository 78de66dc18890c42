"""Who is calling: API keys mapped to tenants, and the local single-user mode.

Every controller receives ``owner`` (the caller's tenant) from :func:`provide_owner` and
passes it to every ledger call, which scopes all reads and writes to that tenant; another
tenant's resource answers exactly like a missing one.

When keys are needed:

* ``LEDGER_AUTH=on``: always;
* ``LEDGER_AUTH=auto`` (the default): as soon as one API key was ever created (revoked ones
  count), whatever address the server binds, loopback included (a shared machine's other
  users reach loopback too); before that, only when the server binds a non-loopback address;
* ``LEDGER_AUTH=off``: never; keys are ignored (an explicit operator choice, loopback only).

An ``Authorization`` header, when sent, is always checked (except with ``off``): an unknown,
malformed or revoked key is 401 even where no key is needed. Without a key (local mode)
``owner`` is None (every batch is visible) and only loopback clients are answered.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from ledger.app import Ledger
from ledger.settings import Settings

log = logging.getLogger(__name__)

_CHALLENGE = 'Bearer realm="ledger"'
OPERATOR = "operator"


@dataclass(frozen=True)
class Caller:
    """Who a request comes from: a key's holder, or the local user (no key, tenant None)."""

    tenant: str | None
    role: str | None = None
    key_id: str | None = None
    # Kept in memory only, to re-check an open stream's key (revocation ends the stream).
    key: str | None = field(default=None, repr=False)

    @property
    def local(self) -> bool:
        return self.key is None


class KeyPresence:
    """Whether any API key exists, answered without a query per request.

    Once a key exists it stays true for the process (keys are revoked, never deleted, so
    the answer cannot go back); until then the database is asked at most once a second, so
    a key made by ``ledger keys create`` takes effect within a second.
    """

    RECHECK_SECONDS = 1.0

    def __init__(self) -> None:
        self._exists = False
        self._checked_at = -float("inf")

    async def exists(self, ledger: Ledger) -> bool:
        if self._exists:
            return True
        now = time.monotonic()
        if now - self._checked_at >= self.RECHECK_SECONDS:
            self._checked_at = now
            self._exists = await ledger.keys.any_keys()
        return self._exists


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


def describe_mode(settings: Settings) -> str:
    """One line for the server log saying how callers are identified."""
    if settings.auth_required:
        return "API keys required (Authorization: Bearer KEY); each key acts as its tenant"
    if settings.auth == "off":
        return (
            f"LOCAL SINGLE-USER MODE (LEDGER_AUTH=off): API keys ignored, every batch visible, "
            f"only loopback clients are answered (bound to {settings.host})"
        )
    return (
        f"LOCAL SINGLE-USER MODE until an API key exists: then every request needs one. "
        f"Only loopback clients are answered (bound to {settings.host})"
    )


async def keys_required(state: State) -> bool:
    """Whether a request without a key is refused right now."""
    settings: Settings = state.settings
    if settings.auth == "off":
        return False
    if settings.auth_required:
        return True
    presence: KeyPresence = state.key_presence
    return await presence.exists(state.ledger)


def _unauthorized(detail: str, *, invalid: bool) -> NotAuthorizedException:
    challenge = f'{_CHALLENGE}, error="invalid_token"' if invalid else _CHALLENGE
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": challenge})


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """Who is calling (a dependency of every /api/v1 route and of /metrics)."""
    state = request.app.state
    settings: Settings = state.settings
    header = request.headers.get("authorization")
    if header is not None and settings.auth != "off":
        scheme, _, key = header.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            raise _unauthorized("send an API key as 'Authorization: Bearer KEY'", invalid=True)
        ledger: Ledger = state.ledger
        holder = await ledger.keys.identify(key)
        if holder is None:
            raise _unauthorized("the API key is unknown or revoked", invalid=True)
        return Caller(tenant=holder.tenant, role=holder.role, key_id=holder.key_id, key=key)
    if await keys_required(state):
        raise _unauthorized(
            "send an API key as 'Authorization: Bearer KEY' "
            "(an operator creates keys with `ledger keys create --tenant NAME`)",
            invalid=False,
        )
    client = request.client.host if request.client else None
    if not _is_loopback(client):
        raise PermissionDeniedException(
            detail="this server runs in local single-user mode and answers loopback "
            "clients only; ask its operator to create API keys (`ledger keys create`)"
        )
    return Caller(tenant=None)


def require_operator(caller: Caller, what: str) -> None:
    """Admit the operator only: an API key with the 'operator' role or, while no key
    exists, a loopback client without one (what covers every tenant is theirs to see)."""
    if not caller.local and caller.role != OPERATOR:
        raise PermissionDeniedException(
            detail=f"{what} cover every tenant: they need an operator key "
            "(`ledger keys create --role operator`)"
        )


async def provide_owner(caller: Caller) -> str | None:
    """The caller's tenant; None in local single-user mode (every batch)."""
    return caller.tenant


async def still_allowed(state: State, caller: Caller) -> bool:
    """Whether a caller admitted earlier would be admitted now: an open stream's check."""
    if caller.key is not None:
        ledger: Ledger = state.ledger
        return await ledger.keys.identify(caller.key) is not None
    return not await keys_required(state)
