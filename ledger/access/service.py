"""API keys and the tenants they act as, as a service over the runner."""

from __future__ import annotations

from ledger.access import keys
from ledger.db.runner import Runner
from ledger.model import ApiKey, KeyHolder


class Keys:
    """API keys: made, listed, revoked, and looked up on every request."""

    def __init__(self, db: Runner) -> None:
        self._db = db

    async def create(self, tenant: str, *, role: str = "tenant") -> tuple[str, str]:
        """Make an API key acting as ``tenant`` (role 'tenant' or 'operator'): returns
        (key id, key), the key shown once."""
        return await self._db.run(
            lambda conn, now: keys.create_key(conn, tenant, now=now, role=role)
        )

    async def list_keys(self) -> list[ApiKey]:
        """Every API key (revoked ones too), without the keys themselves."""
        return await self._db.read(lambda conn, now: keys.list_keys(conn))

    async def revoke(self, key_id: str) -> None:
        """Revoke an API key at once; :class:`NotFound` for an unknown id."""
        await self._db.run(lambda conn, now: keys.revoke_key(conn, key_id, now=now))

    async def authenticate(self, plaintext: str) -> str | None:
        """The tenant an API key acts as, or None when it is unknown, revoked or malformed."""
        return await self._db.read(lambda conn, now: keys.authenticate(conn, plaintext))

    async def identify(self, plaintext: str) -> KeyHolder | None:
        """Who an API key is (id, tenant, role); None when unknown, revoked or malformed."""
        return await self._db.read(lambda conn, now: keys.identify(conn, plaintext))

    async def any_keys(self) -> bool:
        """Whether any API key was ever created here (revoked ones included)."""
        return await self._db.read(lambda conn, now: keys.any_keys(conn))
