"""Settings from ``LEDGER_*`` environment variables, validated once at start.

Reading the values that need more than a type lives beside it: the roots callers may
submit from (settings_roots), the operator's allow lists (settings_allowlists) and the
database URL (database_url)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ledger.database_url import async_database_url
from ledger.home import default_home
from ledger.settings_allowlists import processor_entries, webhook_hosts
from ledger.settings_env import (
    DEFAULT_BUSY_TIMEOUT_MS,
    DEFAULT_LEASE_SECONDS,
    ENV_PREFIX,
    database_url_for,
)
from ledger.settings_roots import (
    move_object_roots,
    object_root,
    read_tenant_roots,
    root_entries,
)

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class Settings(BaseSettings):
    """Every knob of the ledger. Each field is read from ``LEDGER_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    home: Path = Field(default_factory=default_home, description="data folder")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file ledger.db in LEDGER_HOME"
    )
    storage_dir: Path | None = Field(
        default=None, description="uploaded files; default: LEDGER_HOME/storage"
    )

    # SQLite durability: NORMAL survives any process crash (WAL); FULL also survives power loss.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    busy_timeout_ms: int = Field(default=DEFAULT_BUSY_TIMEOUT_MS, ge=0)

    lease_seconds: float = Field(default=DEFAULT_LEASE_SECONDS, gt=0)
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=1000)
    backoff_base_seconds: float = Field(default=2.0, ge=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    backoff_cap_seconds: float = Field(default=600.0, ge=0)
    backoff_jitter: float = Field(default=0.25, ge=0, le=1)

    # A document rescheduled because a service answered 429 is not charged an attempt, up
    # to this many throttles in a row; past it each throttle is charged (code rate_limited).
    throttle_limit: int = Field(default=10, ge=0, le=10_000)
    # `ledger search` and GET /search: how long embedding the query may keep retrying a
    # 429 (honouring Retry-After) or a 5xx before the search gives up (503 / exit 4).
    search_embed_deadline_seconds: float = Field(default=10.0, gt=0, le=600)

    breaker_window: int = Field(default=20, ge=1)
    breaker_threshold: float = Field(default=0.8, gt=0, le=1)

    concurrency: int = Field(default=16, ge=1, le=10_000)
    claim_batch: int = Field(default=256, ge=1, le=10_000)
    # Documents a worker leases ahead of free slots (capped at half the concurrency). Off by
    # default: a crashed worker's leases are all charged an attempt, so leasing ahead widens
    # what a crash costs; turn it on for throughput at high concurrency.
    prefetch: int = Field(default=0, ge=0, le=100_000)
    commit_batch: int = Field(default=256, ge=1, le=100_000)
    commit_interval_seconds: float = Field(default=0.02, ge=0)
    poll_seconds: float = Field(default=1.0, gt=0)
    # `ledger ingest --watch`: a changed path is taken once it had no event and kept its
    # size and modification time for this long (a file still being written waits).
    watch_debounce_seconds: float = Field(default=1.0, ge=0.05, le=3600)
    # After a wake-up many workers share (new work announced, leases expiring), each waits a
    # random delay up to this long before claiming, so they do not all hit the database at once.
    wake_jitter_seconds: float = Field(default=0.2, ge=0, le=10)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    # A write the database refuses for want of space or a broken disk (SQLite "database or
    # disk is full", "disk I/O error") is tried this many times within this many seconds in
    # all; then the command stops with exit code 3 instead of retrying for ever.
    write_failure_attempts: int = Field(default=5, ge=1, le=100)
    write_failure_max_wait_seconds: float = Field(default=10.0, ge=0, le=3600)
    # `ledger serve`: an in-process worker loop that stops on an unexpected error is
    # restarted after a delay doubling from the base up to the cap.
    worker_restart_base_seconds: float = Field(default=1.0, gt=0)
    worker_restart_cap_seconds: float = Field(default=60.0, gt=0)
    process_workers: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1)
    task_timeout_seconds: float = Field(default=300.0, gt=0)
    task_memory_limit_mb: int = Field(default=2048, ge=64)
    # Deleting a batch removes at most this many rows of one table per transaction (a
    # chunk's vectors and full-text row go with it), so a huge batch never holds SQLite's
    # write lock for long; stored files go between the transactions.
    delete_step_rows: int = Field(default=2000, ge=1, le=100_000)

    # ---------------------------------------------------------------- HTTP API
    host: str = Field(default="127.0.0.1", description="address the API server binds")
    port: int = Field(default=8000, ge=0, le=65535)
    auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="API keys: 'auto' requires them once any key exists, or when the server "
        "binds a non-loopback address; 'on' always; 'off' (single-user, keys ignored) is "
        "refused on any other address than loopback",
    )
    allowed_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="server folders batches may be submitted from in keyless (single-user) "
        "mode (os.pathsep- or comma-separated); none by default: only uploads are accepted",
    )
    tenant_roots: Annotated[dict[str, list[Path]], NoDecode] = Field(
        default_factory=dict,
        description="server folders each tenant may submit from: inline JSON, or a JSON or "
        "TOML file, mapping tenant -> [folders]; a tenant not named may use no server paths",
    )
    # s3:// entries of LEDGER_ALLOWED_ROOTS and LEDGER_TENANT_ROOTS, moved here when read.
    allowed_object_roots: list[str] = Field(
        default_factory=list,
        description="object prefixes (s3://bucket/prefix) keyless callers may submit from; "
        "give them in LEDGER_ALLOWED_ROOTS",
    )
    tenant_object_roots: dict[str, list[str]] = Field(
        default_factory=dict,
        description="object prefixes each tenant may submit from; give them in LEDGER_TENANT_ROOTS",
    )
    storage_url: str | None = Field(
        default=None,
        description="an object store prefix (s3://bucket/prefix) that files uploaded with "
        "POST /batches/{id}/files are stored in instead of LEDGER_STORAGE_DIR",
    )
    s3_profile: str | None = Field(
        default=None,
        description="the AWS profile (~/.aws/config) object storage is read and written "
        "with; default: the standard AWS variables",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="the S3-compatible endpoint (MinIO, Ceph, R2...); default: AWS_ENDPOINT_URL "
        "or AWS itself",
    )
    tenant_upload_quota_bytes: int = Field(
        default=50 * 1024**3,
        ge=0,
        description="bytes a tenant's unfinished resumable uploads may declare in all "
        "(a deferred length counts as LEDGER_TUS_MAX_BYTES until it is known)",
    )
    header_timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        description="a connection whose request headers have not all arrived this long "
        "after it opened (or after its previous response) is answered 408 and closed",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="JSON request bodies")
    max_upload_bytes: int = Field(
        default=10 * 1024**3, ge=1024, description="one multipart upload request, all files"
    )
    max_upload_files: int = Field(default=1000, ge=1, description="parts in one upload")
    rate_limit_per_minute: int = Field(
        default=600, ge=0, description="requests per client address; 0: no limit"
    )
    sse_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    serve_workers: bool = Field(
        default=False, description="the API server also runs in-process workers"
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="more Host names the API answers to (comma-separated, '*.example.com' "
        "for subdomains), besides the bind host, localhost, 127.0.0.1 and ::1; any other "
        "Host header is refused (DNS rebinding)",
    )
    max_sse_streams_per_key: int = Field(
        default=8, ge=1, le=10_000, description="event streams one API key may hold open"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins (scheme://host[:port], comma-separated) whose browser pages may "
        "call the API; none by default: no CORS headers (same-origin pages need none)",
    )

    # ---------------------------------------------------------------- resumable uploads (tus)
    tus_max_bytes: int = Field(
        default=10 * 1024**3, ge=1, description="largest resumable upload (Tus-Max-Size)"
    )
    tus_expiry_seconds: float = Field(
        default=86_400.0,
        gt=0,
        description="an unfinished upload expires this long after its "
        "creation or last write; then its file is removed",
    )
    tus_cleanup_seconds: float = Field(
        default=300.0,
        gt=0,
        description="how often the server removes expired and terminated uploads (its "
        "maintenance runs at least this often)",
    )
    tus_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="how long one request's hold on an upload lasts "
        "unless renewed (renewed while its bytes arrive)",
    )
    tus_commit_bytes: int = Field(
        default=16 * 1024**2,
        ge=65_536,
        description="during one long PATCH the received "
        "bytes are made durable and counted every this many bytes",
    )
    tus_idle_seconds: float = Field(
        default=30.0,
        gt=0,
        description="a PATCH whose body stalls this long is ended; what arrived is kept",
    )

    # ---------------------------------------------------------------- maintenance
    # One process at a time (the others skip their turn) rescues expired leases, cleans
    # uploads and prunes history; see docs/operations.md.
    retention_days: Annotated[int | None, NoDecode] = Field(
        default=30,
        description="events and attempts of batches finished this many days ago are "
        "pruned (counters, progress and each failed document's last attempt stay); "
        "'off' keeps everything",
    )
    maintenance_interval_seconds: float = Field(
        default=60.0, gt=0, description="how often `ledger serve` and `ledger worker` run it"
    )
    maintenance_runs_kept: int = Field(
        default=100, ge=1, le=100_000, description="maintenance runs whose record is kept"
    )
    sqlite_optimize_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="SQLite: how often maintenance runs PRAGMA optimize and a WAL checkpoint",
    )

    # ------------------------------------------------- operator-defined code and integrations
    # API callers name processors and embedders; only the operator decides what those names
    # run and where they send data (callers never choose code, URLs or secrets).
    processors: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="processors API callers may name, besides the built-ins and installed "
        "'ledger.processors' entry points: comma-separated NAME (an entry point), "
        "module:function, or alias=module:function",
    )
    processor_options: str | None = Field(
        default=None,
        description="the options each processor takes, checked at create and shown by the "
        "dashboard: a JSON or TOML file, or inline JSON, mapping processor -> option -> "
        "{type, required, default, minimum, maximum, enum, description}",
    )
    embedders: str | None = Field(
        default=None,
        description="named embedder profiles: a JSON or TOML file, or inline JSON, mapping "
        "name -> {kind, base_url, model, api_key_env | api_key_file | auth: none, ...}",
    )

    # ---------------------------------------------------------------- webhooks
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="hosts webhooks may be sent to (comma-separated host or host:port, "
        "'*.example.com' for subdomains; no port: any port); none by default: no webhook can "
        "be created, and a delivery to a host no longer listed is not sent",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="one webhook POST, connecting included"
    )
    webhook_retry_hours: float = Field(
        default=24.0, gt=0, description="a delivery not acknowledged this long is marked failed"
    )
    webhook_backoff_base_seconds: float = Field(
        default=5.0, ge=0, description="wait after a delivery's first failed attempt"
    )
    webhook_backoff_cap_seconds: float = Field(
        default=3600.0, ge=0, description="longest wait between two attempts of a delivery"
    )
    webhook_scan_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how often the server looks for events to announce and deliveries due",
    )
    webhook_stall_minutes: float = Field(
        default=30.0,
        gt=0,
        description="batch.stalled: a batch has due documents but none finished this long",
    )

    # ---------------------------------------------------------------- sinks (vector stores)
    sinks: str | None = Field(
        default=None,
        description="named sink profiles: a JSON or TOML file, or inline JSON, mapping "
        "name -> {kind: lancedb, uri, table} or {kind: qdrant, url | path, collection, "
        "api_key_env | api_key_file}, or another installed 'ledger.sinks' kind",
    )
    sink_lease_seconds: float = Field(
        default=300.0,
        gt=0,
        description="how long the sink stage holds a row while writing its store; a row whose "
        "writer died is written again after this",
    )
    sink_scan_seconds: float = Field(
        default=2.0, gt=0, description="how often the sink stage looks for rows due"
    )
    sink_max_attempts: int = Field(
        default=10, ge=1, description="attempts of a row (with backoff) before it is failed"
    )

    @field_validator("retention_days", mode="before")
    @classmethod
    def _retention_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in ("off", "none", ""):
            return None
        return value

    @field_validator("retention_days")
    @classmethod
    def _retention_positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("a number of days (1 or more), or 'off'")
        return value

    @field_validator("processors", mode="before")
    @classmethod
    def _split_processors(cls, value: object) -> object:
        if isinstance(value, str):
            return [p.strip() for p in value.split(",") if p.strip()]
        return value

    @field_validator("processors")
    @classmethod
    def _check_processors(cls, value: list[str]) -> list[str]:
        return processor_entries(value)

    @model_validator(mode="before")
    @classmethod
    def _object_roots(cls, data: object) -> object:
        """Move the s3:// entries of the roots settings to the object roots: a URL is no
        path (``Path`` would fold its ``//``), and the local checks must never see one."""
        return move_object_roots(data)

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        url = object_root(value, "LEDGER_STORAGE_URL")
        return url if url.endswith("/") else url + "/"

    @field_validator("allowed_object_roots")
    @classmethod
    def _check_object_roots(cls, value: list[str]) -> list[str]:
        return [object_root(url, "LEDGER_ALLOWED_ROOTS") for url in value]

    @field_validator("tenant_object_roots")
    @classmethod
    def _check_tenant_object_roots(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {
            tenant: [object_root(url, f"LEDGER_TENANT_ROOTS of {tenant!r}") for url in urls]
            for tenant, urls in value.items()
        }

    @field_validator("allowed_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(str(p)) for p in root_entries(value)]
        return value

    @field_validator("tenant_roots", mode="before")
    @classmethod
    def _tenant_roots(cls, value: object) -> object:
        return read_tenant_roots(value)

    @field_validator("tenant_roots")
    @classmethod
    def _absolute_tenant_roots(cls, value: dict[str, list[Path]]) -> dict[str, list[Path]]:
        real: dict[str, list[Path]] = {}
        for tenant, roots in value.items():
            for root in roots:
                if not root.expanduser().is_absolute():
                    raise ValueError(
                        f"LEDGER_TENANT_ROOTS of {tenant!r} must be absolute paths: {root}"
                    )
            real[tenant] = [Path(os.path.realpath(root.expanduser())) for root in roots]
        return real

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip().rstrip("/") for o in value.split(",") if o.strip()]
        return value

    @field_validator("allowed_hosts", "webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            return [h.strip().lower() for h in value.split(",") if h.strip()]
        return value

    @field_validator("webhook_allowed_hosts")
    @classmethod
    def _check_webhook_hosts(cls, value: list[str]) -> list[str]:
        return webhook_hosts(value)

    @field_validator("allowed_roots")
    @classmethod
    def _absolute_roots(cls, value: list[Path]) -> list[Path]:
        for root in value:
            if not root.expanduser().is_absolute():
                raise ValueError(f"LEDGER_ALLOWED_ROOTS entries must be absolute paths: {root}")
        return [Path(os.path.realpath(root.expanduser())) for root in value]

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if self.auth == "off" and not self.loopback:
            raise ValueError(
                f"LEDGER_AUTH=off is only allowed when LEDGER_HOST is loopback (127.0.0.1), "
                f"not {self.host!r}: create API keys with `ledger keys create --tenant NAME`"
            )
        return self

    def object_roots_for(self, owner: str | None) -> list[str]:
        """The object prefixes (``s3://bucket/prefix``) a caller may submit from, chosen
        like :meth:`roots_for`."""
        if owner is None:
            return list(self.allowed_object_roots)
        return list(self.tenant_object_roots.get(owner, []))

    @cached_property
    def all_object_roots(self) -> list[str]:
        """Every configured object prefix, of every tenant and of keyless use."""
        seen = dict.fromkeys(self.allowed_object_roots)
        for roots in self.tenant_object_roots.values():
            seen.update(dict.fromkeys(roots))
        return list(seen)

    def roots_for(self, owner: str | None) -> list[Path]:
        """The server folders a caller may submit from: the tenant's own roots, or
        LEDGER_ALLOWED_ROOTS for keyless (single-user) use."""
        if owner is None:
            return list(self.allowed_roots)
        return list(self.tenant_roots.get(owner, []))

    @cached_property
    def all_roots(self) -> list[Path]:
        """Every configured root, of every tenant and of keyless use (a worker's check)."""
        seen = dict.fromkeys(self.allowed_roots)
        for roots in self.tenant_roots.values():
            seen.update(dict.fromkeys(roots))
        return list(seen)

    @property
    def loopback(self) -> bool:
        """True when the API server binds a loopback address only."""
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")

    @property
    def auth_required(self) -> bool:
        """Whether API requests must carry a key whatever the database holds ('auto' on
        loopback also requires one once any key exists: see ledger.api.auth)."""
        return self.auth == "on" or (self.auth == "auto" and not self.loopback)

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return None if value is None else async_database_url(value)

    @model_validator(mode="after")
    def _check_heartbeat(self) -> Settings:
        if self.heartbeat_seconds is not None and self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("LEDGER_HEARTBEAT_SECONDS must be shorter than LEDGER_LEASE_SECONDS")
        return self

    @cached_property
    def url(self) -> str:
        """The database URL in force."""
        return database_url_for(self.database_url, self.home)

    @cached_property
    def storage(self) -> Path:
        """The folder for uploaded files."""
        return self.storage_dir or self.home / "storage"

    @cached_property
    def heartbeat_interval(self) -> float:
        """Seconds between lease renewals: a third of the lease unless set."""
        return self.heartbeat_seconds or self.lease_seconds / 3
