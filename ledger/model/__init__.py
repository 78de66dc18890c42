"""One record type per concept, shared by the services and the API's response bodies.

msgspec Structs with no I/O: the core maps each table row to its record in one place, the
faces render the records, and the API sends them as they are (or as their public view,
where a record holds what clients must not see).
"""

from __future__ import annotations

from ledger.model.access import ApiKey, KeyHolder
from ledger.model.activity import Throughput, ThroughputMinute, WorkerInfo
from ledger.model.batch import (
    JSON,
    Batch,
    BatchSpec,
    FailureGroup,
    Page,
    Progress,
    QueueDepth,
    SinkProgress,
    SourceSpec,
    SubmitResult,
    UnchangedSkip,
    totals,
)
from ledger.model.document import (
    AttemptInfo,
    AttemptView,
    DocumentInfo,
    Event,
    EventView,
    IndexedDocument,
)
from ledger.model.maintenance import MaintenanceRun
from ledger.model.search import Plan, PlanGroup, SearchHit
from ledger.model.upload import Upload, UploadSpec
from ledger.model.webhook import Delivery, DeliveryView, Outgoing, SendResult, Webhook, WebhookView
from ledger.model.work import (
    ChildFile,
    ClaimedDocument,
    Cleanup,
    CompleteResult,
    ErrorInfo,
    Outcome,
)

__all__ = [
    "JSON",
    "ApiKey",
    "AttemptInfo",
    "AttemptView",
    "Batch",
    "BatchSpec",
    "ChildFile",
    "ClaimedDocument",
    "Cleanup",
    "CompleteResult",
    "Delivery",
    "DeliveryView",
    "DocumentInfo",
    "ErrorInfo",
    "Event",
    "EventView",
    "FailureGroup",
    "IndexedDocument",
    "KeyHolder",
    "MaintenanceRun",
    "Outcome",
    "Outgoing",
    "Page",
    "Plan",
    "PlanGroup",
    "Progress",
    "QueueDepth",
    "SearchHit",
    "SendResult",
    "SinkProgress",
    "SourceSpec",
    "SubmitResult",
    "Throughput",
    "ThroughputMinute",
    "UnchangedSkip",
    "Upload",
    "UploadSpec",
    "Webhook",
    "WebhookView",
    "WorkerInfo",
    "totals",
]
