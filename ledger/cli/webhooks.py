"""``ledger webhooks``: subscribe URLs to batch events, list and remove them, send a test,
and see what was delivered. The operator's view: every tenant's webhooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli import render
from ledger.cli.app import app, out, run_with_ledger

if TYPE_CHECKING:
    from ledger.app import Ledger
    from ledger.model import Delivery, Webhook

JSON_OPTION = typer.Option(False, "--json", help="Print JSON for scripts (stable keys).")
ID_ARGUMENT = typer.Argument(..., metavar="ID", help="Webhook id (see `ledger webhooks list`).")

webhooks_app = typer.Typer(
    help="Webhooks: HTTP POSTs (Standard Webhooks, signed) when batches complete, pause, "
    "fail too often or stall. Target hosts must be in LEDGER_WEBHOOK_ALLOWED_HOSTS.",
    no_args_is_help=True,
)
app.add_typer(webhooks_app, name="webhooks")


def _webhook_json(hook: Webhook) -> dict[str, Any]:
    return {
        "id": hook.id,
        "tenant": hook.owner,
        "url": hook.url,
        "events": list(hook.events),
        "failure_threshold": hook.failure_threshold,
        "created_at": render.iso(hook.created_at),
    }


def _delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "batch_id": d.batch_id,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": render.iso(d.next_attempt_at),
        "last_status_code": d.last_status_code,
        "last_error": d.last_error,
        "created_at": render.iso(d.created_at),
        "finished_at": render.iso(d.finished_at),
    }


def _table(columns: list[str], rows: list[list[str]]) -> None:
    from rich.table import Table

    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    out.print(table)


@webhooks_app.command("add")
def webhooks_add(
    ctx: typer.Context,
    url: str = typer.Argument(..., metavar="URL", help="http(s) URL to POST events to."),
    event: Annotated[
        list[str],
        typer.Option(
            "--event",
            "-e",
            metavar="EVENT",
            help="batch.completed, batch.paused, batch.failures or batch.stalled (repeatable).",
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    failure_threshold: float | None = typer.Option(
        None,
        "--failure-threshold",
        min=0.0,
        max=0.999999,
        metavar="X",
        help="batch.failures: failed share of finished documents above X (default 0.5).",
        show_default=False,
    ),
    tenant: str | None = typer.Option(
        None, "--tenant", metavar="NAME", help="Whose batches (default: local, keyless ones)."
    ),
    json_output: bool = JSON_OPTION,
) -> None:
    """Subscribe a URL to batch events. The signing secret is shown once: store it now."""
    from ledger.notify.service import Webhooks

    async def work(ledger: Ledger) -> tuple[Webhook, str]:
        return await Webhooks(ledger.runner).create(
            url, event, owner=tenant, failure_threshold=failure_threshold
        )

    hook, secret = run_with_ledger(ctx, work, create=True)
    if json_output:
        render.emit_json({**_webhook_json(hook), "secret": secret})
        return
    out.print(f"Created webhook {hook.id} for {', '.join(hook.events)}.", markup=False)
    out.print("Signing secret (shown only now; verify webhook-signature with it):", markup=False)
    out.print(secret, markup=False)


@webhooks_app.command("list")
def webhooks_list(
    ctx: typer.Context,
    tenant: str | None = typer.Option(None, "--tenant", metavar="NAME", help="Only this tenant's."),
    json_output: bool = JSON_OPTION,
) -> None:
    """List webhooks (never their secrets)."""
    from ledger.notify.service import Webhooks

    async def work(ledger: Ledger) -> list[Webhook]:
        return await Webhooks(ledger.runner).all(owner=tenant)

    hooks = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json([_webhook_json(h) for h in hooks])
        return
    if not hooks:
        out.print("No webhooks. Add one with: ledger webhooks add URL --event batch.completed")
        return
    rows = [
        [h.id, h.owner or "-", h.url, ",".join(h.events), f"{h.failure_threshold:g}"] for h in hooks
    ]
    _table(["ID", "TENANT", "URL", "EVENTS", "FAILURES >"], rows)


@webhooks_app.command("remove")
def webhooks_remove(ctx: typer.Context, webhook_id: str = ID_ARGUMENT) -> None:
    """Remove a webhook; its pending deliveries are not sent."""
    from ledger.notify.service import Webhooks

    async def work(ledger: Ledger) -> None:
        await Webhooks(ledger.runner).remove(webhook_id, owner=None)

    run_with_ledger(ctx, work)
    out.print(f"Removed webhook {webhook_id}.", markup=False)


@webhooks_app.command("test")
def webhooks_test(
    ctx: typer.Context, webhook_id: str = ID_ARGUMENT, json_output: bool = JSON_OPTION
) -> None:
    """Queue a webhook.test event; a running `ledger serve` sends it."""
    from ledger.notify.service import Webhooks

    async def work(ledger: Ledger) -> Delivery:
        return await Webhooks(ledger.runner).test(webhook_id, owner=None)

    delivery = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json(_delivery_json(delivery))
        return
    out.print(
        f"Queued test event {delivery.event_id}; see `ledger webhooks deliveries {webhook_id}`.",
        markup=False,
    )


@webhooks_app.command("deliveries")
def webhooks_deliveries(
    ctx: typer.Context,
    webhook_id: str = ID_ARGUMENT,
    limit: int = typer.Option(20, "--limit", min=1, max=1000, help="How many, newest first."),
    json_output: bool = JSON_OPTION,
) -> None:
    """A webhook's latest deliveries: event, status, attempts, last answer."""
    from ledger.notify.service import Webhooks

    async def work(ledger: Ledger) -> list[Delivery]:
        return await Webhooks(ledger.runner).deliveries(webhook_id, owner=None, limit=limit)

    found = run_with_ledger(ctx, work)
    if json_output:
        render.emit_json([_delivery_json(d) for d in found])
        return
    if not found:
        out.print(f"No deliveries for webhook {webhook_id} yet.", markup=False)
        return
    rows = [
        [
            d.event_id,
            d.event_type,
            d.batch_id or "-",
            d.status,
            str(d.attempts),
            str(d.last_status_code or "-"),
            (d.last_error or "-")[:60],
        ]
        for d in found
    ]
    _table(["EVENT", "TYPE", "BATCH", "STATUS", "ATTEMPTS", "HTTP", "ERROR"], rows)
