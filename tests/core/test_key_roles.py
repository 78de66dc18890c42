"""API key roles: 'tenant' by default, 'operator' on request; the database refuses others."""

from __future__ import annotations

import pytest
import sqlalchemy.exc

from ledger.app import Ledger
from ledger.errors import InvalidInput
from tests.conftest import sql


async def test_roles_are_stored_and_identified(ledger: Ledger) -> None:
    tenant_id, tenant_key = await ledger.keys.create("acme")
    operator_id, operator_key = await ledger.keys.create("ops", role="operator")
    tenant = await ledger.keys.identify(tenant_key)
    operator = await ledger.keys.identify(operator_key)
    assert tenant is not None and (tenant.key_id, tenant.tenant, tenant.role) == (
        tenant_id,
        "acme",
        "tenant",
    )
    assert operator is not None and (operator.key_id, operator.role) == (operator_id, "operator")
    assert {k.id: k.role for k in await ledger.keys.list_keys()} == {
        tenant_id: "tenant",
        operator_id: "operator",
    }
    await ledger.keys.revoke(operator_id)
    assert await ledger.keys.identify(operator_key) is None
    assert await ledger.keys.identify(operator_key[:-1] + "x") is None


async def test_any_keys_counts_revoked_keys(ledger: Ledger) -> None:
    assert await ledger.keys.any_keys() is False
    key_id, _ = await ledger.keys.create("acme")
    await ledger.keys.revoke(key_id)
    assert await ledger.keys.any_keys() is True


async def test_unknown_roles_are_refused(ledger: Ledger, sync_url: str) -> None:
    with pytest.raises(InvalidInput):
        await ledger.keys.create("acme", role="root")
    key_id, _ = await ledger.keys.create("acme")
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        sql(sync_url, "UPDATE api_keys SET role = 'root' WHERE id = :id", id=key_id)
