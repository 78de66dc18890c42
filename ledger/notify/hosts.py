"""Where webhooks may go: only hosts the operator listed in LEDGER_WEBHOOK_ALLOWED_HOSTS.

A tenant names a URL; the operator decides which hosts may be called. The check runs when a
webhook is created (422 otherwise) and again before every send, after resolving the name:
the list may have changed since, and a name must not lead to a cloud metadata address.
The send then connects to the address that was checked (the name is not resolved twice).
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from ledger.errors import NotAllowed

MAX_URL = 2000
_DEFAULT_PORTS = {"http": 80, "https": 443}
# Never reached through a name, even an allowed one: link-local (cloud metadata services)
# and "any" addresses. An operator who means one lists the address itself.
_FORBIDDEN_NETWORKS = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("0.0.0.0/32"),
    ipaddress.ip_network("::/128"),
)


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower case; an IPv6 address without brackets
    port: int


def parse_target(url: str) -> Target:
    """The scheme, host and port of a webhook URL; :class:`NotAllowed` unless it is a plain
    http(s) URL (no user info, a host, at most :data:`MAX_URL` characters)."""
    if len(url) > MAX_URL or any(ord(ch) <= 32 or ord(ch) == 127 for ch in url):
        raise NotAllowed(f"webhook URL must be at most {MAX_URL} characters, without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise NotAllowed(f"webhook URL is not valid: {exc}") from exc
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise NotAllowed("webhook URL must be http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise NotAllowed("webhook URL must not carry a user name or password")
    host = (parts.hostname or "").lower().rstrip(".")
    if not host:
        raise NotAllowed("webhook URL has no host")
    return Target(scheme, host, port or _DEFAULT_PORTS[scheme])


def _split_pattern(pattern: str) -> tuple[str, int | None]:
    pattern = pattern.strip().lower()
    if pattern.startswith("["):  # [v6] or [v6]:port
        host, _, rest = pattern[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if pattern.count(":") == 1:
        host, _, port = pattern.partition(":")
        return host, int(port) if port.isdigit() else None
    return pattern, None


def host_allowed(patterns: Sequence[str], host: str, port: int) -> bool:
    """Whether ``host``:``port`` matches one of the operator's entries: ``host`` (any port),
    ``host:port``, ``*.example.com`` (any subdomain, not example.com itself)."""
    for entry in patterns:
        name, wanted_port = _split_pattern(entry)
        if wanted_port is not None and wanted_port != port:
            continue
        if name.startswith("*."):
            if host.endswith(name[1:]) and fnmatch.fnmatchcase(host, name):
                return True
        elif name == host:
            return True
    return False


def check_url(url: str, patterns: Sequence[str]) -> Target:
    """The URL's target, or :class:`NotAllowed` when the operator does not allow its host."""
    target = parse_target(url)
    if not host_allowed(patterns, target.host, target.port):
        shown = f"{target.host}:{target.port}"
        raise NotAllowed(
            f"webhook host {shown} is not allowed on this server (the operator lists "
            "allowed hosts in LEDGER_WEBHOOK_ALLOWED_HOSTS)"
        )
    return target


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to for a TCP connection, in the resolver's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def check_before_send(
    url: str, patterns: Sequence[str], *, resolver: Resolver = resolve
) -> Pinned:
    """The check made before each send: the host is still allowed and its name resolves,
    to no link-local or "any" address unless that address itself is what is allowed.

    Returns the address to connect to. The request must go to that address and not resolve
    the name again: a second answer could be another address (DNS rebinding)."""
    target = check_url(url, patterns)
    if _is_ip(target.host):
        # The address itself is on the operator's list.
        return Pinned(target, target.host)
    try:
        addresses = await resolver(target.host, target.port)
    except OSError as exc:
        raise NotAllowed(f"webhook host {target.host} does not resolve: {exc}") from exc
    if not addresses:
        raise NotAllowed(f"webhook host {target.host} does not resolve")
    for raw in addresses:
        address = ipaddress.ip_address(raw.split("%")[0])
        if any(address in network for network in _FORBIDDEN_NETWORKS):
            raise NotAllowed(f"webhook host {target.host} resolves to {address}: refused")
    return Pinned(target, addresses[0].split("%")[0])


@dataclass(frozen=True)
class Pinned:
    """A vetted target and the one address the request goes to."""

    target: Target
    address: str

    def url(self, url: str) -> str:
        """``url`` with its host replaced by the vetted address (the path and query kept)."""
        parts = urlsplit(url)
        host = f"[{self.address}]" if ":" in self.address else self.address
        return parts._replace(netloc=f"{host}:{self.target.port}").geturl()

    @property
    def host_header(self) -> str:
        """The Host header the receiver expects: the name, with the port unless default."""
        name = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
        default = _DEFAULT_PORTS[self.target.scheme] == self.target.port
        return name if default else f"{name}:{self.target.port}"
