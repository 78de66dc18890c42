"""Webhooks: the ledger tells a tenant's HTTP endpoint when its batches complete, pause, fail
too often or stall, following the Standard Webhooks specification.

Everything is a ledger row. A periodic scan (one transaction) turns what the batch rows say
into one delivery row per (webhook, event), keyed by an event id derived from what happened,
so the same fact never gets two ids. A sender claims due deliveries with a lease, POSTs them
outside any transaction, and records each attempt; a delivery is retried with backoff until
acknowledged (2xx) or a day has passed. A killed server leaves rows, not lost messages.
"""
