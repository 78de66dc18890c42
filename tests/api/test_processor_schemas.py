"""Declared processor options: the operator declares what each processor takes
(LEDGER_PROCESSOR_OPTIONS), POST /batches checks a batch's options against it at create
(422, nothing created), and GET /processors lists every allowed processor with them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger.api.app import create_app
from ledger.settings import Settings
from tests.api.conftest import Server, start_server, stop_server

HERE = "tests.dashboard.processors"
DECLARED = {
    "thumb": {
        "width": {"type": "integer", "minimum": 16, "maximum": 4096, "required": True},
        "format": {"type": "string", "enum": ["png", "webp"], "default": "png"},
        "sharpen": {"type": "boolean", "description": "after scaling"},
    }
}


@pytest.fixture(scope="module")
def declared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("declared"),
        {
            "LEDGER_AUTH": "on",
            "LEDGER_PROCESSORS": f"thumb={HERE}:skips,free={HERE}:skips",
            "LEDGER_PROCESSOR_OPTIONS": json.dumps(DECLARED),
        },
        tenants=("acme",),
    )
    yield srv
    stop_server(srv)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({}, "option width is required by processor thumb"),
        ({"width": "wide"}, "option width must be of type integer"),
        ({"width": True}, "option width must be of type integer"),
        ({"width": 8}, "option width must be at least 16"),
        ({"width": 64, "format": "gif"}, "option format must be one of png, webp"),
        ({"width": 64, "colour": "red"}, "unknown thumb options: colour"),
    ],
)
async def test_options_that_do_not_fit_the_declaration_are_422(
    declared_server: Server, options: dict[str, Any], reason: str
) -> None:
    batch_id = f"thumb-{uuid.uuid4().hex[:8]}"
    async with declared_server.client("acme") as client:
        body = {"id": batch_id, "processor": "thumb", "options": options}
        refused = await client.post("/api/v1/batches", json=body)
        assert refused.status_code == 422, refused.text
        assert reason in refused.json()["detail"]
        assert (await client.get(f"/api/v1/batches/{batch_id}")).status_code == 404
        good = {"width": 64, "format": "webp", "sharpen": False}
        fine = await client.post("/api/v1/batches", json={**body, "options": good})
        assert fine.status_code == 201, fine.text
        assert fine.json()["options"] == good


async def test_processors_are_listed_with_their_declared_options(declared_server: Server) -> None:
    async with declared_server.client() as anonymous:
        assert (await anonymous.get("/api/v1/processors")).status_code == 401
    async with declared_server.client("acme") as client:
        answer = await client.get("/api/v1/processors")
        assert answer.status_code == 200, answer.text
        listed = {p["name"]: p["options"] for p in answer.json()["items"]}
        assert {"ingest", "noop", "sleep", "thumb", "free"} <= set(listed)
        assert listed["thumb"]["width"] == {
            "type": "integer", "required": True, "minimum": 16, "maximum": 4096,
        }  # fmt: skip
        assert listed["thumb"]["format"]["enum"] == ["png", "webp"]
        assert listed["sleep"]["seconds"]["type"] == "number"
        assert listed["noop"] == {}
        # Undeclared: any options, the processor's own to check.
        assert listed["free"] is None and listed["ingest"] is None
        anything = {"processor": "free", "options": {"whatever": [1, 2]}}
        assert (await client.post("/api/v1/batches", json=anything)).status_code == 201
        # Built-ins keep their own checks beside the declaration.
        sleepy = {"processor": "sleep", "options": {"seconds": 0, "seed": 7}}
        assert (await client.post("/api/v1/batches", json=sleepy)).status_code == 201
        noisy = {"processor": "noop", "options": {"x": 1}}
        refused = await client.post("/api/v1/batches", json=noisy)
        assert refused.status_code == 422 and "unknown noop options: x" in refused.text


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"thumb": {"width": {"type": "pixels"}}}, "thumb.width needs a type"),
        ({"thumb": {"width": {"type": "integer", "max": 3}}}, "thumb.width: unknown max"),
        ({"thumb": {"width": {"type": "integer", "default": "x"}}}, "must be of type integer"),
        ({"thumb": ["width"]}, "'thumb' must map option names"),
    ],
)
def test_a_bad_declaration_stops_the_start(
    tmp_path: Path, declared: dict[str, Any], message: str
) -> None:
    settings = Settings(home=tmp_path, processor_options=json.dumps(declared))
    with pytest.raises(ValueError, match=message):
        create_app(settings)
