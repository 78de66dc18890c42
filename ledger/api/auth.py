"""Who is calling: API keys mapped to tenants, and the local single-user mode.

Every controller receives ``owner`` (the caller's tenant) from :func:`provide_owner` and
passes it to every ledger call, which scopes all reads and writes to that tenant; another
tenant's resource answers exactly like a missing one. In local mode ``owner`` is None (every
batch is visible) and only loopback clients are answered.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException

from ledger.core.ledger import Ledger
from ledger.settings import Settings

log = logging.getLogger(__name__)

_CHALLENGE = 'Bearer realm="ledger"'


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
    return (
        f"LOCAL SINGLE-USER MODE: no API keys, every batch visible, only loopback clients "
        f"are answered (bound to {settings.host}); set LEDGER_AUTH=on to require keys"
    )


async def provide_owner(request: Request[Any, Any, Any]) -> str | None:
    """The caller's tenant (a dependency of every /api/v1 route)."""
    settings: Settings = request.app.state.settings
    if not settings.auth_required:
        client = request.client.host if request.client else None
        if not _is_loopback(client):
            raise PermissionDeniedException(
                detail="this server runs in local single-user mode and answers loopback "
                "clients only; ask its operator to enable API keys (LEDGER_AUTH=on)"
            )
        return None
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException(
            detail="send an API key as 'Authorization: Bearer KEY' "
            "(an operator creates keys with `ledger keys create --tenant NAME`)",
            headers={"WWW-Authenticate": _CHALLENGE},
        )
    ledger: Ledger = request.app.state.ledger
    tenant = await ledger.authenticate(key.strip())
    if tenant is None:
        raise NotAuthorizedException(
            detail="the API key is unknown or revoked",
            headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'},
        )
    return tenant
