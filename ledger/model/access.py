"""API keys as listed and as resolved: never the key itself nor its hash."""

from __future__ import annotations

from datetime import datetime

from msgspec import Struct


class ApiKey(Struct, frozen=True):
    """An API key as listed: never the key itself, only its public id and first characters."""

    id: str
    tenant: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    role: str = "tenant"


class KeyHolder(Struct, frozen=True):
    """Who a valid, unrevoked API key is: its public id, its tenant and its role."""

    key_id: str
    tenant: str
    role: str  # 'tenant' or 'operator' (see keys.ROLES)
