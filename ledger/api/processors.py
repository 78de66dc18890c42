"""The processors an API caller may name, with the options each one declares."""

from __future__ import annotations

from typing import Any

from litestar import get
from msgspec import Struct

from ledger.api.auth import Caller
from ledger.api.errors import ERROR_RESPONSES
from ledger.api.policy import registry_for
from ledger.processors.option_schemas import declared_for
from ledger.settings import Settings


class ProcessorOut(Struct, kw_only=True):
    name: str
    # option -> {type, required, default, minimum, maximum, enum, description}; null when
    # the processor declares none (it then takes any options and checks them itself)
    options: dict[str, dict[str, Any]] | None


class Processors(Struct, kw_only=True):
    items: list[ProcessorOut]


@get(
    "/processors",
    operation_id="listProcessors",
    responses=ERROR_RESPONSES,
    tags=["batches"],
    summary="The processors a batch may name, with their declared options",
)
async def list_processors(settings: Settings, caller: Caller) -> Processors:
    """Built-ins, installed entry points and the operator's ``LEDGER_PROCESSORS``; options
    as declared in ``LEDGER_PROCESSOR_OPTIONS`` (``POST /batches`` checks them). Names
    only: no processor code is imported. Callers only: ``caller`` admits the request as
    every /api/v1 route does."""
    declared = declared_for(settings)
    return Processors(
        items=[
            ProcessorOut(
                name=name,
                options=(
                    {k: spec.as_json() for k, spec in declared[name].items()}
                    if name in declared
                    else None
                ),
            )
            for name in registry_for(settings).names()
        ]
    )
