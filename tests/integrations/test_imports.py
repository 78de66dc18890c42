"""What importing the client brings: none of the server's side (database, web framework,
the core), so an app needs only the ``client`` extra. Without its extra an adapter says
which one to install, in one line: on import (the ``MissingExtra`` the command line and API
turn into a usage error) and in the examples (a line on stderr, exit 2, no traceback); the
framework is hidden from the module lookup the ledger does, as if it were not installed."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.extras import MissingExtra

REPO = Path(__file__).resolve().parents[2]
HIDE = (
    "import importlib.util, runpy, sys\n"
    "real = importlib.util.find_spec\n"
    "hidden = {hidden!r}\n"
    "importlib.util.find_spec = lambda name, package=None: (\n"
    "    None if name.split('.')[0] in hidden else real(name, package))\n"
    "sys.argv = [{path!r}, 'anything']\n"
    "runpy.run_path({path!r}, run_name='__main__')\n"
)


SERVER_SIDE = (
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "alembic",
    "litestar",
    "uvicorn",
    "numpy",
    "ledger.app",
    "ledger.queue",
    "ledger.index",
    "ledger.uploads",
    "ledger.access",
    "ledger.monitoring",
    "ledger.db",
    "ledger.api",
    "ledger.worker",
    "ledger.settings",
)


def test_the_client_imports_nothing_of_the_server() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import sys, ledger.client; print('\\n'.join(sys.modules))"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "httpx" in loaded and "ledger.client.sync" in loaded
    assert not {m for m in loaded for side in SERVER_SIDE if m == side or m.startswith(side + ".")}


@pytest.mark.parametrize(
    ("module", "hidden", "extra"),
    [
        ("ledger.integrations.langchain", "langchain_core", "langchain"),
        ("ledger.integrations.llamaindex", "llama_index", "llamaindex"),
        ("ledger.client", "httpx", "client"),
    ],
)
def test_an_adapter_without_its_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, module: str, hidden: str, extra: str
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name.split(".")[0] == hidden else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.delitem(sys.modules, module, raising=False)  # imported again, then restored
    with pytest.raises(MissingExtra) as missing:
        importlib.import_module(module)
    assert missing.value.message.endswith(f"pip install 'ledger[{extra}]'")
    assert f"({hidden}" in missing.value.message and "is not installed" in missing.value.message


def test_an_example_without_its_extra_says_so_in_one_line() -> None:
    path = str(REPO / "examples" / "rag_langchain.py")
    done = subprocess.run(
        [sys.executable, "-c", HIDE.format(hidden={"langchain_core"}, path=path)],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: this example needs the 'langchain' extra: pip install 'ledger[langchain]'"
    )
