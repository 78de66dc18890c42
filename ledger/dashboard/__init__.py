"""The web dashboard served by the API server (pages at ``/``, assets at ``/static``)."""
