"""Which URLs and addresses mediamatch may contact: the SSRF policy shared by media fetching and webhooks.

A URL must be http or https without credentials; its host must resolve only to globally routable
addresses (IPv4-in-IPv6 forms are unwrapped), unless an address lies in ``FetchSettings.allow_networks``.
``resolve`` returns the checked addresses so the caller can connect to exactly one of them (pinning).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from shared.errors import FetchConnectionError, UrlNotAllowed
from shared.settings import FetchSettings

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# Ranges ipaddress does not flag (or flags inconsistently across Python versions) that must stay unreachable.
_DENY = tuple(
    ipaddress.ip_network(n)
    for n in ("0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "198.18.0.0/15", "fec0::/10", "ff00::/8")
)
# Prefixes that embed an IPv4 address in their last 32 bits: IPv4-translated (RFC 2765), NAT64 (RFC 6052/8215).
_EMBEDS_V4 = tuple(ipaddress.ip_network(n) for n in ("::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48"))



@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # ASCII (IDNA) hostname or IP literal, without brackets
    port: int
    host_header: str
    request_target: str

    @classmethod
    def parse(cls, url: str) -> Target:
        if any(ord(c) <= 0x20 or c in "\\\x7f" for c in url):
            raise UrlNotAllowed("URL contains whitespace, control characters or backslashes", url=url[:200])
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise UrlNotAllowed(f"malformed URL: {exc}", url=url[:200]) from exc
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UrlNotAllowed(f"scheme {scheme or '(none)'!r} is not allowed; use http or https", url=url[:200])
        if "@" in parts.netloc:
            raise UrlNotAllowed("URLs with credentials are not allowed", url=url[:200])
        if not parts.hostname:
            raise UrlNotAllowed("URL has no host", url=url[:200])
        try:
            host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise UrlNotAllowed("hostname is not a valid IDNA name", url=url[:200]) from exc
        default_port = 443 if scheme == "https" else 80
        port = port or default_port
        literal = f"[{host}]" if ":" in host else host
        host_header = literal if port == default_port else f"{literal}:{port}"
        path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
        query = quote(parts.query, safe="/?%:@!$&'()*+,;=-._~")
        return cls(scheme, host, port, host_header, f"{path}?{query}" if query else path)


def resolve(target: Target, allow: tuple[Network, ...]) -> list[str]:
    """All addresses of the host, or ``UrlNotAllowed`` if any of them is off limits."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchConnectionError(f"cannot resolve {target.host!r}: {exc}", host=target.host) from exc
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    for text in addresses:
        if not _allowed(ipaddress.ip_address(text), allow):
            raise UrlNotAllowed(f"{target.host!r} resolves to a non-public address", host=target.host)
    if not addresses:
        raise FetchConnectionError(f"{target.host!r} has no address", host=target.host)
    return addresses


def _allowed(addr: _Address, allow: tuple[Network, ...]) -> bool:
    if any(addr in net for net in allow):
        return True
    return not any(_off_limits(a) for a in _forms(addr))


def _forms(addr: _Address) -> list[_Address]:
    """The address and every IPv4 address it carries (mapped, translated, NAT64, 6to4, Teredo)."""
    forms: list[_Address] = [addr]
    if isinstance(addr, ipaddress.IPv6Address):
        forms += [a for a in (addr.ipv4_mapped, addr.sixtofour) if a is not None]
        forms += list(addr.teredo or ())
        if any(addr in net for net in _EMBEDS_V4):
            forms.append(ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF))
    return forms


def _off_limits(a: _Address) -> bool:
    return (
        not a.is_global
        or a.is_private
        or a.is_loopback
        or a.is_link_local
        or a.is_multicast
        or a.is_reserved
        or a.is_unspecified
        or any(a in net for net in _DENY)
    )


def allow_networks(settings: FetchSettings) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(n, strict=False) for n in settings.allow_networks)


def check_url(url: str, settings: FetchSettings) -> list[str]:
    """Refuse ``url`` unless it is allowed; return its checked addresses."""
    return resolve(Target.parse(url), allow_networks(settings))
