"""The client's address, as far as it can be believed.

Behind a load balancer every connection comes from the balancer, which names the client
in `X-Forwarded-For`. That header is believed only from the proxies listed in
SECKILL_TRUSTED_PROXIES: anyone else could write any address into it and so dodge the
per-address limit. The list is read from the right (the hop nearest to us) and the first
address that is not a trusted proxy is the client.
"""

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# An IPv6 subscriber gets a whole /64; limiting single addresses in it would limit nothing.
IPV6_BUCKET_PREFIX = 64


def _parse(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies)


def client_address(
    peer: str | None, forwarded_for: str | None, proxies: Sequence[Network]
) -> Address | None:
    """The client's address: the peer's, or from X-Forwarded-For if the peer is trusted."""
    address = _parse(peer) if peer else None
    if address is None or not forwarded_for or not _trusted(address, proxies):
        return address
    for hop in reversed(forwarded_for.split(",")):
        named = _parse(hop)
        if named is None:
            # A malformed entry: nothing left of it can be believed; the last trusted hop
            # is the best we know.
            return address
        address = named
        if not _trusted(address, proxies):
            return address
    return address


def bucket_name(address: Address) -> str:
    """The per-address bucket's subject: the address, or its /64 for IPv6."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_BUCKET_PREFIX), strict=False))
    return str(address)
