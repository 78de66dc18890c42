"""Adapters of the ledger's index to RAG frameworks, each in its own extra and imported only
when used: :mod:`ledger.integrations.langchain` (``langchain``) and
:mod:`ledger.integrations.llamaindex` (``llamaindex``). Both talk to a running ledger server
through :mod:`ledger.client`, as one tenant (its API key)."""
