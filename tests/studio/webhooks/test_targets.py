"""The webhook URL policy as pure logic: which URLs may be created, and what a delivery does
with the addresses a name resolves to (a fake resolver stands in for DNS)."""

from __future__ import annotations

from typing import Any

import pytest

from studio.errors import ValidationError
from studio.webhooks.delivery import RESPONSE_EXCERPT_CHARS, response_excerpt
from studio.webhooks.targets import (
    TargetRefused,
    TargetUnresolved,
    target_resolve,
    url_validate,
)


@pytest.fixture(autouse=True)
def _nothing_allowed(settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = ()  # the production default


def resolver(*addresses: str) -> Any:
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return list(addresses)

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


REFUSED = [
    "http://127.0.0.1/hook",
    "http://127.9.9.9:8080/hook",
    "http://[::1]/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1%25eth0]/hook",
    "http://[fe80::1]/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",  # carrier-grade NAT
    "http://[fc00::1]/hook",
    "http://[fd12:3456::1]/hook",
    "http://224.0.0.1/hook",
    "http://[ff02::1]/hook",
    "http://240.0.0.1/hook",
    "http://255.255.255.255/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[::ffff:a00:1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 to 169.254.169.254
    "http://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
    "http://2130706433/hook",  # 127.0.0.1 as one number
    "http://0x7f.1/hook",
    "http://0177.0.0.1/hook",
    "http://localhost/hook",
    "http://LOCALHOST./hook",
    "http://api.localhost/hook",
    "http://metadata/computeMetadata/v1/",
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://Metadata.Google.Internal./computeMetadata/v1/",
    "http://instance-data/latest/",
    "http://instance-data.ec2.internal/latest/",
    "http://printer.local/hook",
    "http://minio:9000/hook",  # a compose service's name
    "http://user:secret@hooks.example.com/hook",
    "https://token@hooks.example.com/hook",
    "ftp://hooks.example.com/hook",
    "file:///etc/passwd",
    "gopher://hooks.example.com/hook",
]


@pytest.mark.parametrize("url", REFUSED)
def test_internal_targets_are_refused_at_creation(url: str) -> None:
    with pytest.raises(ValidationError) as refused:
        url_validate(url)
    assert refused.value.field == "url"


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/studiolo",
        "http://hooks.example.com:8080/a?b=c",
        "http://93.184.216.34/hook",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
        "http://[::ffff:93.184.216.34]/hook",
    ],
)
def test_public_targets_are_accepted(url: str) -> None:
    assert url_validate(url) == url


def test_the_refusal_says_why_and_how_to_allow_it() -> None:
    with pytest.raises(ValidationError) as refused:
        url_validate("http://169.254.169.254/latest/meta-data/")
    assert "link-local" in refused.value.message
    assert "WEBHOOK_ALLOWED_HOSTS" in refused.value.message
    with pytest.raises(ValidationError) as refused:
        url_validate("http://0x7f.1/")
    assert "127.0.0.1" in refused.value.message  # the address the legacy form stands for


def test_the_allow_list_takes_networks_and_names(settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = ("10.20.0.0/16", "127.0.0.1/32", "hooks.corp")
    assert url_validate("http://10.20.3.4/hook")
    assert url_validate("http://127.0.0.1:9/hook")
    assert url_validate("http://hooks.corp/hook")  # a single label, allowed by name
    with pytest.raises(ValidationError):
        url_validate("http://10.21.0.1/hook")  # outside the allowed network
    with pytest.raises(ValidationError):
        url_validate("http://127.0.0.2/hook")


def test_a_name_is_resolved_once_and_the_checked_address_pinned() -> None:
    resolve = resolver("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")
    target = target_resolve("https://hooks.example.com/studiolo", resolve=resolve)
    assert resolve.calls == ["hooks.example.com"]
    assert (target.host, target.address, target.port) == ("hooks.example.com", "93.184.216.34", 443)
    assert target.internal is False


@pytest.mark.parametrize(
    "addresses",
    [
        ("127.0.0.1",),
        ("169.254.169.254",),
        ("10.0.0.5",),
        ("::ffff:10.0.0.5",),
        ("fd00::5",),
        ("93.184.216.34", "10.0.0.5"),  # one refused address refuses the name
        ("fe80::1%eth0",),
    ],
)
def test_a_name_resolving_to_a_refused_address_is_refused_at_delivery(
    addresses: tuple[str, ...],
) -> None:
    with pytest.raises(TargetRefused) as refused:
        target_resolve("https://rebind.example.com/hook", resolve=resolver(*addresses))
    assert refused.value.field == "url"
    assert "rebind.example.com" in refused.value.message


def test_a_name_that_does_not_resolve_is_unresolved_not_refused() -> None:
    def failing(host: str, port: int) -> list[str]:
        raise TargetUnresolved(f"cannot resolve {host}")

    with pytest.raises(TargetUnresolved):
        target_resolve("https://gone.example.com/hook", resolve=failing)
    with pytest.raises(TargetUnresolved):
        target_resolve("https://empty.example.com/hook", resolve=resolver())


def test_a_url_stored_around_the_policy_is_refused_before_any_lookup() -> None:
    resolve = resolver("93.184.216.34")
    with pytest.raises(TargetRefused):
        target_resolve("http://metadata.google.internal/", resolve=resolve)
    assert resolve.calls == []


def test_allowed_internal_targets_are_marked_internal(settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_HOSTS = ("10.0.0.0/8", "hooks.corp.example")
    by_network = target_resolve("http://hooks.example.com/", resolve=resolver("10.1.1.1"))
    assert (by_network.address, by_network.internal) == ("10.1.1.1", True)
    by_name = target_resolve("http://hooks.corp.example/", resolve=resolver("192.168.7.7"))
    assert (by_name.address, by_name.internal) == ("192.168.7.7", True)
    public = target_resolve("http://hooks.corp.example/", resolve=resolver("93.184.216.34"))
    assert public.internal is False
    with pytest.raises(TargetRefused):  # the network allows 10/8, not the rest
        target_resolve("http://hooks.example.com/", resolve=resolver("10.1.1.1", "172.16.0.1"))


def test_a_response_excerpt_is_short_printable_and_on_one_line() -> None:
    body = b"\x1b[31mERROR\x1b[0m\r\n\tsecret=\x00abc " + "é".encode() + b"\xff" + b"x" * 5000
    excerpt = response_excerpt(body)
    assert len(excerpt) == RESPONSE_EXCERPT_CHARS
    assert excerpt.isprintable()
    assert "\n" not in excerpt
    assert "\x1b" not in excerpt
    assert excerpt.startswith("[31mERROR [0m secret= abc é")
