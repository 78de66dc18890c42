"""Values kept as they are (ledger.cli.plain_values) are the values Typer's conversion gives,
and what Typer checks or converts beyond them is still checked and converted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pytest
import typer

from ledger.cli import app as _cli_app  # noqa: F401  (installs the pass-through)


def _run(*args: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    app = typer.Typer()

    @app.command()
    def show(
        name: str,
        count: int = typer.Option(0, "-c", count=True),
        folder: Annotated[Path | None, typer.Option("--folder")] = None,
        existing: Annotated[Path | None, typer.Option("--existing", exists=True)] = None,
        limit: int = typer.Option(5, "--limit", min=1),
        level: int = typer.Option(3, "--level"),
    ) -> None:
        seen.update(
            name=name, count=count, folder=folder, existing=existing, limit=limit, level=level
        )

    typer.main.get_command(app).main(list(args), standalone_mode=False)
    return seen


def test_plain_values_come_out_as_typer_gives_them(tmp_path: Path) -> None:
    seen = _run("b1", "-cc", "--folder", str(tmp_path / "new"), "--level", "7")
    assert seen == {
        "name": "b1",
        "count": 2,
        "folder": tmp_path / "new",
        "existing": None,
        "limit": 5,
        "level": 7,
    }
    assert type(seen["folder"]) is type(tmp_path) and type(seen["level"]) is int


def test_what_typer_checks_is_still_checked(tmp_path: Path) -> None:
    assert _run("b1", "--existing", str(tmp_path))["existing"] == tmp_path
    with pytest.raises(typer.BadParameter, match="does not exist"):
        _run("b1", "--existing", str(tmp_path / "missing"))
    with pytest.raises(typer.BadParameter):
        _run("b1", "--limit", "0")
    with pytest.raises(typer.BadParameter):
        _run("b1", "--level", "many")
