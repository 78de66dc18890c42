"""API keys: each acts as one tenant. Only a SHA-256 of a key is stored.

A key reads ``ldg_<id>_<secret>``. The id is public (listings, revocation, log lines) and
finds the row; the whole key's hash is then compared in constant time. The secret has 256
bits of entropy, so a fast unsalted hash is the right tool (there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ledger.db.models import api_keys
from ledger.errors import InvalidInput, NotFound
from ledger.model import ApiKey, KeyHolder

KEY_PREFIX = "ldg_"
_KEY_RE = re.compile(r"^ldg_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
MAX_TENANT = 200
# 'tenant' keys see their tenant's batches only; 'operator' keys also see process-wide
# figures (/metrics) that mix every tenant's work.
ROLES = ("tenant", "operator")
# Compared against when the id is unknown, so both paths do the same work.
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _check_tenant(tenant: str) -> None:
    if not tenant or len(tenant) > MAX_TENANT or tenant != tenant.strip():
        raise InvalidInput(f"tenant must be 1 to {MAX_TENANT} characters, no outer spaces")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in tenant):
        raise InvalidInput("tenant must not contain control characters")


async def create_key(
    conn: AsyncConnection, tenant: str, *, now: datetime, role: str = "tenant"
) -> tuple[str, str]:
    """Make a key for ``tenant``; returns (key id, key). The key is shown once, never stored."""
    _check_tenant(tenant)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
    key_id = secrets.token_hex(8)
    plaintext = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    await conn.execute(
        insert(api_keys).values(
            id=key_id,
            tenant=tenant,
            prefix=plaintext[: len(KEY_PREFIX) + 8],
            key_sha256=hash_key(plaintext),
            created_at=now,
            role=role,
        )
    )
    return key_id, plaintext


async def list_keys(conn: AsyncConnection) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    rows = (await conn.execute(select(api_keys).order_by(api_keys.c.created_at))).all()
    return [
        ApiKey(
            id=r.id,
            tenant=r.tenant,
            prefix=r.prefix,
            created_at=r.created_at,
            revoked_at=r.revoked_at,
            role=r.role,
        )
        for r in rows
    ]


async def revoke_key(conn: AsyncConnection, key_id: str, *, now: datetime) -> None:
    """Revoke a key at once (idempotent). Unknown ids raise :class:`NotFound`."""
    found = (
        await conn.execute(select(api_keys.c.id).where(api_keys.c.id == key_id))
    ).scalar_one_or_none()
    if found is None:
        raise NotFound(f"no API key {key_id!r}")
    await conn.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def any_keys(conn: AsyncConnection) -> bool:
    """Whether any key was ever made (revoked ones count: keys were wanted here)."""
    return (await conn.execute(select(api_keys.c.id).limit(1))).first() is not None


async def identify(conn: AsyncConnection, plaintext: str) -> KeyHolder | None:
    """Who a valid, unrevoked key is; None for anything else."""
    match = _KEY_RE.match(plaintext)
    key_id = match.group(1) if match else ""
    row = None
    if match:
        row = (
            await conn.execute(
                select(api_keys.c.tenant, api_keys.c.role, api_keys.c.key_sha256).where(
                    api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)
                )
            )
        ).first()
    expected = row.key_sha256 if row is not None else _DUMMY_HASH
    if hmac.compare_digest(hash_key(plaintext), expected) and row is not None:
        return KeyHolder(key_id=key_id, tenant=str(row.tenant), role=str(row.role))
    return None


async def authenticate(conn: AsyncConnection, plaintext: str) -> str | None:
    """The tenant a valid, unrevoked key acts as; None for anything else."""
    holder = await identify(conn, plaintext)
    return holder.tenant if holder is not None else None
