"""The HTTP API application: lifespan, dependencies, limits, errors and OpenAPI.

Run it with ``serve(settings)``, or ``uvicorn --factory ledger.api.app:from_env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Router
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.rate_limit import RateLimitConfig
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from ledger import storage
from ledger.api.auth import (
    KeyPresence,
    describe_mode,
    keys_required,
    provide_caller,
    provide_owner,
)
from ledger.api.batches import BatchController, UploadController
from ledger.api.chunks import ChunkController
from ledger.api.deletion import DeletionController, finish_interrupted
from ledger.api.documents import DocumentController
from ledger.api.errors import EXCEPTION_HANDLERS
from ledger.api.events import batch_events
from ledger.api.guard import Guard
from ledger.api.headers import SecurityHeaders
from ledger.api.maintenance import maintenance_runs
from ledger.api.ops import health, prometheus_metrics
from ledger.api.processors import list_processors
from ledger.api.search import search
from ledger.api.streams import StreamQuota
from ledger.api.swagger import LocalSwaggerRenderPlugin
from ledger.api.throughput import batch_throughput
from ledger.api.tus_protocol import EXPOSED_HEADERS, REQUEST_HEADERS
from ledger.api.uploads import TusController, tus_options
from ledger.api.webhooks import WebhookController
from ledger.api.workers import list_workers
from ledger.app import Ledger
from ledger.dashboard.routes import STATIC_PATH, dashboard_router, template_config
from ledger.embedders.profiles import profiles_for
from ledger.maintenance.run import run_forever, runner_name
from ledger.notify.sender import WebhookSender
from ledger.processors.option_schemas import declared_for
from ledger.settings import Settings
from ledger.sinks.profiles import profiles_for as sink_profiles_for
from ledger.sinks.stage import SinkStage
from ledger.worker.supervisor import WorkerSupervisor

log = logging.getLogger("ledger.api")

API_PREFIX = "/api/v1"


def _provide_ledger(state: State) -> Ledger:
    ledger: Ledger = state.ledger
    return ledger


def _provide_settings(state: State) -> Settings:
    settings: Settings = state.settings
    return settings


async def _provide_keys_required(state: State) -> bool:
    return await keys_required(state)


def _openapi(settings: Settings) -> OpenAPIConfig:
    # 'auto' needs keys as soon as one exists: the docs say so unless keys are off.
    secured = settings.auth != "off"
    return OpenAPIConfig(
        title="ledger",
        version="1",
        description="Batch document processing ledger: batches, documents, progress, events."
        + ("" if secured else " This server runs in local single-user mode (no API keys)."),
        path="/schema",
        render_plugins=[LocalSwaggerRenderPlugin(), JsonRenderPlugin(), YamlRenderPlugin()],
        components=Components(
            security_schemes={
                "apiKey": SecurityScheme(
                    type="http", scheme="bearer", description="an API key from `ledger keys`"
                )
            }
        )
        if secured
        else Components(),
        security=[{"apiKey": []}] if secured else None,
        use_handler_docstrings=True,
    )


def create_app(
    settings: Settings | None = None,
    *,
    ledger: Ledger | None = None,
    run_workers: bool = False,
) -> Litestar:
    """The API application.

    Without ``ledger`` the app opens one on ``settings`` when it starts and closes it when
    it stops (the schema must be current: ``ledger db upgrade``). With ``run_workers`` it
    also runs in-process workers for as long as it serves.
    """
    settings = settings or Settings()
    profiles_for(settings)  # a bad LEDGER_EMBEDDERS stops the start, with its message
    sink_profiles_for(settings)  # and so does a bad LEDGER_SINKS
    declared_for(settings)  # so does a bad LEDGER_PROCESSOR_OPTIONS

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = ledger is None
        app.state.ledger = await Ledger.open(settings) if ledger is None else ledger
        await asyncio.to_thread(storage.prepare, settings.storage)
        level = logging.INFO if settings.auth_required else logging.WARNING
        log.log(level, "ledger API: %s", describe_mode(settings))
        worker: WorkerSupervisor | None = None
        task: asyncio.Task[Any] | None = None
        app.state.workers = None
        if run_workers:
            worker = WorkerSupervisor(app.state.ledger, concurrency=settings.concurrency)
            app.state.workers = worker
            task = asyncio.create_task(worker.run(), name="ledger-worker")
            task.add_done_callback(_report_worker_end)
        # Maintenance (lease rescue, upload cleanup, retention): a pass at start, then every
        # interval, whenever no other process is running one. Uploads expire on the tus
        # cleanup schedule, so that one caps the interval here.
        interval = min(settings.maintenance_interval_seconds, settings.tus_cleanup_seconds)
        cleanup = asyncio.create_task(
            run_forever(app.state.ledger, runner=runner_name("serve"), interval=interval),
            name="ledger-maintenance",
        )
        # Webhook deliveries: scanned for and sent by every server (leases share the work).
        webhooks = asyncio.create_task(
            WebhookSender(app.state.ledger).run(), name="ledger-webhooks"
        )
        # Sink rows: mirrored into the vector stores by every server (leases share the work).
        sinks = asyncio.create_task(SinkStage(app.state.ledger).run(), name="ledger-sinks")
        # Deletions a stopped process left half-done: finished in the background.
        deletions = asyncio.create_task(
            finish_interrupted(app.state.ledger), name="ledger-deletions"
        )
        try:
            yield
        finally:
            for chore in (cleanup, webhooks, sinks, deletions):
                chore.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await chore
            if worker is not None and task is not None:
                worker.stop(graceful=True)
                with contextlib.suppress(asyncio.CancelledError):
                    try:
                        await asyncio.wait_for(task, settings.shutdown_grace_seconds + 5)
                    except TimeoutError:
                        log.error("workers did not stop within the grace period")
            if owned:
                await app.state.ledger.close()

    middleware = []
    if settings.rate_limit_per_minute:
        middleware.append(
            RateLimitConfig(
                rate_limit=("minute", settings.rate_limit_per_minute),
                exclude=["/health", "/metrics", "/schema", STATIC_PATH],
            ).middleware
        )
    api = Router(
        path=API_PREFIX,
        route_handlers=[
            BatchController,
            ChunkController,
            DeletionController,
            DocumentController,
            batch_events,
            batch_throughput,
            list_processors,
            search,
            WebhookController,
            list_workers,
            maintenance_runs,
        ],
        request_max_body_size=settings.max_body_bytes,
    )
    uploads = Router(
        path=API_PREFIX,
        route_handlers=[tus_options, UploadController, TusController],
        request_max_body_size=settings.max_upload_bytes,
    )
    app = Litestar(
        route_handlers=[api, uploads, health, prometheus_metrics, dashboard_router()],
        dependencies={
            "ledger": Provide(_provide_ledger, sync_to_thread=False),
            "settings": Provide(_provide_settings, sync_to_thread=False),
            "caller": Provide(provide_caller),
            "owner": Provide(provide_owner),
            "keys_required": Provide(_provide_keys_required),
        },
        state=State(
            {
                "settings": settings,
                "key_presence": KeyPresence(),
                "stream_quota": StreamQuota(settings.max_sse_streams_per_key),
            }
        ),
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=middleware,
        openapi_config=_openapi(settings),
        template_config=template_config(),
        cors_config=_cors(settings),
        request_max_body_size=settings.max_body_bytes,
        debug=False,
    )
    # Around everything Litestar does (unmatched paths, CORS, error pages included): the
    # host and cross-site checks first, then the security headers on whatever is answered.
    app.asgi_handler = SecurityHeaders(Guard(app.asgi_handler, settings))
    return app


def _cors(settings: Settings) -> CORSConfig | None:
    """Browser pages from ``settings.cors_origins`` may call the API, resumable uploads
    included (tus needs its headers allowed and exposed). None: same-origin only."""
    if not settings.cors_origins:
        return None
    return CORSConfig(
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST", "PATCH", "HEAD", "DELETE", "OPTIONS"],
        allow_headers=list(REQUEST_HEADERS),
        expose_headers=list(EXPOSED_HEADERS),
        max_age=600,
    )


def _report_worker_end(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("in-process workers ended on an error", exc_info=task.exception())


def from_env() -> Litestar:
    """App factory for ``uvicorn --factory``: settings from LEDGER_* variables."""
    settings = Settings()
    return create_app(settings, run_workers=settings.serve_workers)


def serve(settings: Settings | None = None, *, run_workers: bool | None = None) -> None:
    """Run the API with uvicorn on ``settings.host``:``settings.port`` (with in-process
    workers if ``run_workers``, by default ``settings.serve_workers``)."""
    import uvicorn

    from ledger.api.server import protocol_with_header_timeout

    settings = settings or Settings()
    if run_workers is None:
        run_workers = settings.serve_workers
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings, run_workers=run_workers),
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or None,
        log_level="info",
        http=protocol_with_header_timeout(settings.header_timeout_seconds),
    )
