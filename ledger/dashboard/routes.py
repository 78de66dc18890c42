"""The web dashboard: server-rendered page shells whose data comes from the HTTP API.

The pages hold no batch data of their own. A browser sends no ``Authorization`` header when
it navigates, so every figure on a page is fetched by its script from the tenant-scoped
``/api/v1`` routes with the caller's key (kept in the tab's sessionStorage): the dashboard
can show nothing the key's tenant could not read through the API.

Every asset is served from ``/static`` (vendored, no CDN). No page has an inline script or
style (pages pass data to scripts in data- attributes), so the Content-Security-Policy that
the API adds to every response (``ledger.api.headers``) allows this origin only.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from ledger import __version__
from ledger.api.policy import registry_for
from ledger.settings import Settings

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_PATH = "/static"

# Upload chunk size for the tus client: resumes lose at most one chunk.
UPLOAD_CHUNK_BYTES = 8 * 1024 * 1024


def _page(name: str, keys_required: bool, **context: object) -> Template:
    return Template(
        template_name=f"{name}.html",
        context={
            "page": name,
            "auth_required": keys_required,
            "version": __version__,
            **context,
        },
        headers={"Cache-Control": "no-store"},
    )


@get("/", name="dashboard-batches", include_in_schema=False)
async def batches_page(keys_required: bool) -> Template:
    return _page("batches", keys_required)


@get("/batches/{batch_id:str}", name="dashboard-batch", include_in_schema=False)
async def batch_page(batch_id: str, keys_required: bool) -> Template:
    return _page("batch", keys_required, batch_id=batch_id)


@get("/documents/{document_id:int}", name="dashboard-document", include_in_schema=False)
async def document_page(document_id: int, keys_required: bool) -> Template:
    return _page("document", keys_required, document_id=document_id)


@get("/new", name="dashboard-new", include_in_schema=False)
async def new_page(keys_required: bool, settings: Settings) -> Template:
    # The processors a batch may name: the server refuses any other (422).
    processors = registry_for(settings).names()
    return _page("new", keys_required, chunk_bytes=UPLOAD_CHUNK_BYTES, processors=processors)


@get("/search", name="dashboard-search", include_in_schema=False)
async def search_page(keys_required: bool) -> Template:
    return _page("search", keys_required)


@get("/webhooks", name="dashboard-webhooks", include_in_schema=False)
async def webhooks_page(keys_required: bool) -> Template:
    return _page("webhooks", keys_required)


@get("/workers", name="dashboard-workers", include_in_schema=False)
async def workers_page(keys_required: bool) -> Template:
    return _page("workers", keys_required)


def dashboard_router() -> Router:
    """The pages and their static assets."""
    static = create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC],
        # Revalidate each time (cheap: ETag) so an upgraded server never runs stale scripts.
        cache_control=CacheControlHeader(no_cache=True),
        include_in_schema=False,
    )
    return Router(
        path="/",
        route_handlers=[
            batches_page,
            batch_page,
            document_page,
            new_page,
            search_page,
            webhooks_page,
            workers_page,
            static,
        ],
        include_in_schema=False,
    )


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja templates (autoescaped) from the dashboard's templates folder."""
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine)
