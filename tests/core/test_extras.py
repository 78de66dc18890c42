"""Optional parts of the install: a path that needs a missing one names the pip extra."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidInput
from ledger.extras import MissingExtra, require


def test_a_missing_module_names_the_extra_to_install() -> None:
    with pytest.raises(MissingExtra) as caught:
        require("postgres", "json", "ledger_no_such_module", what="PostgreSQL")
    message = caught.value.message
    assert message.startswith("PostgreSQL needs the 'postgres' extra")
    assert "ledger_no_such_module is not installed" in message
    assert "json" not in message.split("(")[1]  # only what is missing is named
    assert message.endswith("pip install 'ledger[postgres]'")
    assert isinstance(caught.value, InvalidInput)  # a usage error: exit code 2, HTTP 400


def test_installed_modules_pass() -> None:
    require("postgres", "json", "sqlite3", what="PostgreSQL")  # nothing raised
