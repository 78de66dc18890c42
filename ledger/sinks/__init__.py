"""Vector-store sinks: each document's chunks mirrored into LanceDB, Qdrant or a store of a
``ledger.sinks`` entry point, from operator profiles (``LEDGER_SINKS``) only.

``base`` holds the contract, ``profiles`` reads the profiles, ``registry`` builds a sink,
``stage`` and ``writer`` run the stage that mirrors the ledger's sink rows (docs/sinks.md).
"""
