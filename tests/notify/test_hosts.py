"""The operator's allowed hosts, and which webhook URLs they let through. Pure logic, plus
the check before each send against the real resolver for loopback names."""

from __future__ import annotations

import pytest

from ledger.errors import NotAllowed
from ledger.notify.hosts import (
    Pinned,
    Target,
    check_before_send,
    check_url,
    host_allowed,
    parse_target,
)
from ledger.notify.signing import new_secret, signature

ALLOWED = ["hooks.example.com", "*.example.org", "api.example.net:8443", "[::1]:9000", "10.0.0.5"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/x", True),
        ("http://hooks.example.com:8080/x", True),  # no port in the entry: any port
        ("https://HOOKS.example.com./x", True),  # case and a trailing dot do not matter
        ("https://a.example.org/x", True),
        ("https://a.b.example.org/x", True),
        ("https://example.org/x", False),  # the wildcard is for subdomains only
        ("https://evilexample.org/x", False),
        ("https://api.example.net:8443/x", True),
        ("https://api.example.net/x", False),  # 443 is not 8443
        ("http://[::1]:9000/x", True),
        ("http://[::1]:9001/x", False),
        ("http://10.0.0.5/x", True),
        ("http://10.0.0.6/x", False),
        ("http://hooks.example.com.evil.net/x", False),
    ],
)
def test_allowed_hosts(url: str, allowed: bool) -> None:
    if allowed:
        check_url(url, ALLOWED)
    else:
        with pytest.raises(NotAllowed):
            check_url(url, ALLOWED)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/x",
        "file:///etc/passwd",
        "https://user:pw@hooks.example.com/x",
        "https:///nohost",
        "https://hooks.example.com/a b",
        "https://hooks.example.com:99999/x",
        "https://hooks.example.com/" + "a" * 2000,
    ],
)
def test_urls_that_are_never_webhooks(url: str) -> None:
    with pytest.raises(NotAllowed):
        parse_target(url)


def test_no_entry_allows_everything() -> None:
    assert not host_allowed([], "hooks.example.com", 443)
    assert not host_allowed(["*"], "hooks.example.com", 443)


async def test_the_check_before_sending_resolves_and_rechecks() -> None:
    await check_before_send("http://localhost:8000/x", ["localhost"])
    with pytest.raises(NotAllowed, match="not allowed"):
        await check_before_send("http://localhost:8000/x", ["127.0.0.1"])
    with pytest.raises(NotAllowed, match="does not resolve"):
        await check_before_send("http://no-such-host.invalid/x", ["*.invalid"])


async def test_the_checked_address_is_the_one_to_connect_to() -> None:
    pinned = await check_before_send("http://localhost:8000/x?y=1", ["localhost"])
    assert pinned.address in ("127.0.0.1", "::1")
    assert pinned.host_header == "localhost:8000"
    v6 = Pinned(Target("https", "hooks.example.com", 443), "2001:db8::1")
    assert v6.url("https://hooks.example.com/a/b?c=d") == "https://[2001:db8::1]:443/a/b?c=d"
    assert v6.host_header == "hooks.example.com"


async def test_a_name_that_resolves_to_a_metadata_address_is_refused() -> None:
    async def rebound(host: str, port: int) -> list[str]:
        return ["10.0.0.5", "169.254.169.254"]

    with pytest.raises(NotAllowed, match=r"169\.254\.169\.254"):
        await check_before_send(
            "http://hooks.example.com/x", ["hooks.example.com"], resolver=rebound
        )


def test_signatures_follow_the_standard_webhooks_reference() -> None:
    from datetime import UTC, datetime

    from standardwebhooks.webhooks import Webhook

    secret = new_secret()
    moment = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    expected = Webhook(secret).sign("msg_1", moment, '{"a":1}')
    assert signature(secret, "msg_1", int(moment.timestamp()), '{"a":1}') == expected


@pytest.mark.parametrize("entry", ["host:abc", "*", "*.", "a b", "http://hooks.example.com"])
def test_a_malformed_allowed_host_stops_the_start(entry: str) -> None:
    from pydantic import ValidationError

    from ledger.settings import Settings

    with pytest.raises(ValidationError, match="LEDGER_WEBHOOK_ALLOWED_HOSTS"):
        Settings(webhook_allowed_hosts=entry)  # type: ignore[arg-type]
