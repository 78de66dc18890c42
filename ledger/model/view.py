"""Public views generated from a record's own fields.

A record that holds something clients must not see (a storage path, an internal id) is
declared as its public view plus those fields, so the view is never a second, hand-kept list
of fields: it is the record's base class, and :func:`view` copies the shared fields across.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

V = TypeVar("V", bound=msgspec.Struct)


def view(record: msgspec.Struct, cls: type[V], **changes: Any) -> V:
    """``record`` as ``cls``: one of its bases, or a view that adds ``changes`` (fields the
    record does not have, such as a secret shown once)."""
    values = {n: getattr(record, n) for n in cls.__struct_fields__ if n not in changes}
    return cls(**values, **changes)
