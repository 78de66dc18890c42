"""The worker runtime and processor registry, as the command line uses them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ledger.app import Ledger
from ledger.cli.app import EXIT_USAGE, CliError
from ledger.errors import InvalidInput
from ledger.processors.base import ProcessorContext
from ledger.processors.builtin import check_builtin_options
from ledger.processors.registry import ProcessorRegistry
from ledger.worker.runtime import Worker

if TYPE_CHECKING:
    from ledger.model import JSON


def check_processor(ledger: Ledger, name: str, options: JSON) -> None:
    """Fail now, with a usage error, unless ``name`` with ``options`` can be built.

    Building the processor once checks its options too (``sleep -o seconds=x``), so a
    mistake is one line at the start instead of every document failing.
    """
    # Here, not at the top: embedders load numpy, which most commands have no use for.
    from ledger.embedders.profiles import ProfileError, profiles_for
    from ledger.sinks.profiles import SinkProfileError
    from ledger.sinks.profiles import profiles_for as sink_profiles_for

    registry = ProcessorRegistry.from_settings(ledger.settings)
    context = ProcessorContext(
        settings=ledger.settings,
        pool=None,
        task_timeout=ledger.settings.task_timeout_seconds,
        vectors=ledger.index,
    )
    try:
        registry.validate(name)
        check_builtin_options(
            name, options, profiles_for(ledger.settings), sink_profiles_for(ledger.settings)
        )
        registry.get(context, name, options)
    except InvalidInput as exc:
        raise CliError(exc.message, EXIT_USAGE) from exc
    except (ProfileError, SinkProfileError) as exc:
        raise CliError(str(exc), EXIT_USAGE) from exc
    except ImportError as exc:
        others = ", ".join(n for n in registry.names() if n != name)
        raise CliError(
            f"processor {name!r} cannot be loaded ({exc}); choose one with --processor: "
            f"{others}, or module:function",
            EXIT_USAGE,
        ) from exc


def make_worker(
    ledger: Ledger,
    *,
    concurrency: int | None,
    batch_ids: Sequence[str] | None = None,
    processors: Sequence[str] = (),
) -> Worker:
    """A worker of the runtime, bound to ``ledger``, that can also run ``processors``."""
    return Worker(ledger, concurrency=concurrency, batch_ids=batch_ids, processors=processors)
