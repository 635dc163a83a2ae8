"""Where a webhook may send: the one URL policy, at creation and again at every delivery.

A webhook makes the studio's worker send a request to a URL a team admin typed, from inside
the deployment's network. Without a policy that is server-side request forgery: a hook aimed
at 127.0.0.1, 10.0.0.5, 169.254.169.254 (cloud metadata) or another team's model would make
the studio call it and show the answer in the delivery log. So:

- at creation (`url_validate`): http or https only, no credentials in the URL, and a host that
  is neither a refused address (`address_refusal`) nor a refused name (`name_refusal`:
  localhost, cloud metadata names, single-label names such as compose's `minio`);
- at delivery (`target_resolve`): the host name is resolved once, every address it has is
  checked, and the request goes to exactly the checked address (`PinnedTarget`), never through
  a second lookup that a DNS server could answer differently (DNS rebinding).

`WEBHOOK_ALLOWED_HOSTS` (studio/config.py) lets a deployment with internal receivers through:
each entry is a host name, allowed whatever it resolves to, or an IP network (`10.1.2.0/24`,
`127.0.0.1`) whose addresses are allowed. Addresses allowed only through it are "internal":
the delivery log keeps their status code and nothing of their answer.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from studio.errors import ValidationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses it resolves to (getaddrinfo's answer, in its order)
Resolver = Callable[[str, int], list[str]]

MAX_URL_LENGTH = 2000
ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

# Names that reach a cloud's instance metadata service or this host, whatever DNS says.
REFUSED_NAMES = frozenset(
    {
        "localhost",
        "metadata",  # GCP's short name, and a common alias for 169.254.169.254
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",  # AWS
        "instance-data.ec2.internal",
        "metadata.azure.com",
        "metadata.platformequinix.com",
        "metadata.packet.net",
        "metadata.tencentyun.com",
        "kubernetes.default.svc",
    }
)
# Suffixes of names that are never public: RFC 6761's .localhost, mDNS's .local, ICANN's
# private-use .internal (GCP's and EC2's internal names), Kubernetes' cluster-local names.
REFUSED_SUFFIXES = (".localhost", ".local", ".internal", ".cluster.local", ".svc")

# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64, RFC 6052 / 8215):
# 64:ff9b::10.0.0.1 reaches 10.0.0.1 through a NAT64 gateway.
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))


def _ipv4_inside(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form stands for (mapped, 6to4, Teredo, NAT64), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    if any(address in prefix for prefix in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_refusal(address: IPAddress) -> str:
    """Why a receiver at `address` is refused ("" when it is a public unicast address)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            return "an IPv6 address with a zone"
        embedded = _ipv4_inside(address)
        if embedded is not None:
            why = address_refusal(embedded)
            return f"an IPv6 form of {embedded}, {why}" if why else ""
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        # 100.64.0.0/10 (carrier-grade NAT) is neither private nor global, and so on.
        return "a reserved or non-public address"
    return ""


def name_refusal(host: str) -> str:
    """Why a receiver named `host` (lower case, no trailing dot) is refused, before any
    lookup ("" when the name may be looked up)."""
    if host in REFUSED_NAMES:
        return "a name for this host or a cloud metadata service"
    if host.endswith(REFUSED_SUFFIXES):
        return "a local or internal name"
    if "." not in host:
        # `minio`, `redis`, `web`: compose's and search domains' names for internal services.
        return "a single-label name (use a fully qualified name)"
    return ""


@dataclass(frozen=True)
class AllowList:
    """WEBHOOK_ALLOWED_HOSTS, parsed: host names, and networks."""

    names: frozenset[str]
    networks: tuple[IPNetwork, ...]

    def allows_name(self, host: str) -> bool:
        return host in self.names

    def allows_address(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


@functools.cache
def _allow_list(entries: tuple[str, ...]) -> AllowList:
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(host_normalise(entry))
    return AllowList(frozenset(names), tuple(networks))


def allow_list() -> AllowList:
    return _allow_list(tuple(getattr(settings, "WEBHOOK_ALLOWED_HOSTS", ())))


def host_normalise(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _literal_address(host: str) -> IPAddress | None:
    """The address `host` spells, in any form the resolver would also accept: `10.0.0.1`,
    `::1`, and the legacy IPv4 forms `2130706433`, `0x7f.1`, `0177.0.0.1` (inet_aton's)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def _refusal_message(host: str, why: str, *, address: IPAddress | None = None) -> str:
    target = host if address is None or str(address) == host else f"{host} ({address})"
    return (
        f"url: {target} is {why}; webhooks may only call public receivers "
        "(a deployment allows internal ones with WEBHOOK_ALLOWED_HOSTS)"
    )


def url_validate(url: str) -> str:
    """The URL, stripped, if a webhook may be created with it; ValidationError (field `url`)
    otherwise. No lookup happens here: names are checked again, resolved, at each delivery."""
    url = url.strip()
    if not url or len(url) > MAX_URL_LENGTH:
        raise ValidationError(f"url: 1-{MAX_URL_LENGTH} characters", field="url")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValidationError("url: must not contain spaces or control characters", field="url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise ValidationError(f"url: {exc}", field="url") from exc
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise ValidationError("url: only http:// and https:// URLs are allowed", field="url")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValidationError(
            "url: must not carry credentials (user:password@); verify deliveries with the "
            "signature instead",
            field="url",
        )
    host = host_normalise(parts.hostname or "")
    if not host:
        raise ValidationError("url: a host is required", field="url")
    allowed = allow_list()
    if allowed.allows_name(host):
        return url
    address = _literal_address(host)
    if address is not None:
        why = "" if allowed.allows_address(address) else address_refusal(address)
        if why:
            raise ValidationError(_refusal_message(host, why, address=address), field="url")
        return url
    why = name_refusal(host)
    if why:
        raise ValidationError(_refusal_message(host, why), field="url")
    return url


@dataclass(frozen=True)
class PinnedTarget:
    """A checked URL and the one address the request must go to."""

    url: str
    host: str  # as written in the URL, normalised
    address: str  # the checked IP address to connect to
    port: int
    internal: bool  # allowed only through WEBHOOK_ALLOWED_HOSTS: keep nothing of its answer


class TargetRefused(ValidationError):
    """The URL, or an address its name resolves to now, is not a receiver a webhook may call."""


class TargetUnresolved(Exception):
    """The name does not resolve (now): a transient failure, retried like a refused connection."""


def system_resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetUnresolved(f"cannot resolve {host}: {exc}") from exc
    return [str(info[4][0]) for info in infos]


def target_resolve(url: str, *, resolve: Resolver | None = None) -> PinnedTarget:
    """Check `url` as at creation, resolve its host once, check every address it resolves to
    (one refused address refuses the URL: the client could pick any of them), and pin the
    first. Raises TargetRefused, or TargetUnresolved when the lookup fails."""
    try:
        url = url_validate(url)
    except ValidationError as exc:
        raise TargetRefused(exc.message, field="url") from exc
    parts = urlsplit(url)
    host = host_normalise(parts.hostname or "")
    port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
    allowed = allow_list()
    literal = _literal_address(host)
    found = [str(literal)] if literal is not None else (resolve or system_resolve)(host, port)
    addresses = _parse_addresses(found)
    if not addresses:
        raise TargetUnresolved(f"{host} has no address")
    internal = False
    for address in addresses:
        if allowed.allows_name(host) or allowed.allows_address(address):
            internal = internal or bool(address_refusal(address))
            continue
        why = address_refusal(address)
        if why:
            raise TargetRefused(_refusal_message(host, why, address=address), field="url")
    return PinnedTarget(url=url, host=host, address=str(addresses[0]), port=port, internal=internal)


def _parse_addresses(found: Iterable[str]) -> list[IPAddress]:
    addresses: list[IPAddress] = []
    for text in found:
        try:
            address = ipaddress.ip_address(text)  # "fe80::1%eth0" keeps its zone: refused
        except ValueError:
            continue  # not an address at all: nothing to connect to
        if address not in addresses:
            addresses.append(address)
    return addresses
