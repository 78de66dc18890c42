"""The operator's allow lists that callers choose from: LEDGER_PROCESSORS (what code a
processor name may run) and LEDGER_WEBHOOK_ALLOWED_HOSTS (where webhooks may be sent).
An entry that does not parse stops the start, instead of allowing something unintended."""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
# host, host:port, *.domain[:port], [v6][:port], or a bare IPv6 address.
_WEBHOOK_HOST = re.compile(
    r"(?:(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?|[0-9a-f:.]+"
)
_IMPORT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_.]*")


def processor_entries(value: list[str]) -> list[str]:
    """The LEDGER_PROCESSORS entries (NAME, module:function or alias=module:function),
    without spaces; ValueError names the first one that is none of these."""
    for entry in value:
        alias, eq, target = entry.partition("=")
        name = target if eq else alias
        if eq and not _IDENTIFIER.fullmatch(alias.strip()):
            raise ValueError(f"LEDGER_PROCESSORS: alias {alias!r} is not a plain name")
        if not (_IDENTIFIER.fullmatch(name.strip()) or _IMPORT_PATH.fullmatch(name.strip())):
            raise ValueError(
                f"LEDGER_PROCESSORS: {entry!r} is not NAME, module:function or "
                "alias=module:function"
            )
        if eq and ":" not in name:
            raise ValueError(f"LEDGER_PROCESSORS: {entry!r}: an alias needs module:function")
    return [e.replace(" ", "") for e in value]


def webhook_hosts(value: list[str]) -> list[str]:
    """The LEDGER_WEBHOOK_ALLOWED_HOSTS entries; ValueError names the first that is not
    host, host:port, *.domain or an IPv6 address."""
    for entry in value:
        if not _WEBHOOK_HOST.fullmatch(entry):
            raise ValueError(
                f"LEDGER_WEBHOOK_ALLOWED_HOSTS: {entry!r} is not host, host:port, "
                "*.domain or [IPv6 address] (with an optional :port)"
            )
    return value
