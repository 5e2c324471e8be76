"""Which address a request is counted against: X-Forwarded-For only from trusted proxies."""

import ipaddress

import pytest

from app.config import parse_networks
from app.ratelimit.addresses import bucket_name, client_address

PROXIES = parse_networks("10.0.0.0/8, 192.0.2.7")


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "expected"),
    [
        pytest.param("203.0.113.5", None, "203.0.113.5", id="direct"),
        # An untrusted peer cannot name someone else by writing the header itself.
        pytest.param("203.0.113.5", "198.51.100.1", "203.0.113.5", id="untrusted-peer"),
        pytest.param("10.1.2.3", "198.51.100.1", "198.51.100.1", id="trusted-peer"),
        pytest.param("10.1.2.3", None, "10.1.2.3", id="trusted-peer-no-header"),
        # The client may prepend anything; only what our proxies appended counts.
        pytest.param(
            "10.1.2.3", "1.1.1.1, 198.51.100.1, 10.9.9.9", "198.51.100.1", id="proxy-chain"
        ),
        pytest.param("192.0.2.7", "198.51.100.1", "198.51.100.1", id="single-address-proxy"),
        pytest.param("10.1.2.3", "10.2.2.2, 10.3.3.3", "10.2.2.2", id="all-trusted"),
        pytest.param("10.1.2.3", "not-an-address", "10.1.2.3", id="garbage"),
        pytest.param("10.1.2.3", "198.51.100.1, garbage", "10.1.2.3", id="garbage-last"),
        pytest.param("10.1.2.3", "2001:db8::1", "2001:db8::1", id="ipv6-client"),
        pytest.param(None, "198.51.100.1", None, id="no-peer"),
        pytest.param("testclient", None, None, id="peer-not-an-address"),
    ],
)
def test_client_address(peer: str | None, forwarded_for: str | None, expected: str | None) -> None:
    found = client_address(peer, forwarded_for, PROXIES)
    assert (str(found) if found else None) == expected


def test_ipv6_clients_share_a_bucket_per_slash_64() -> None:
    one = bucket_name(ipaddress.ip_address("2001:db8:1:2:aaaa::1"))
    two = bucket_name(ipaddress.ip_address("2001:db8:1:2:bbbb::9"))
    other = bucket_name(ipaddress.ip_address("2001:db8:1:3::1"))
    assert one == two == "2001:db8:1:2::/64"
    assert other != one
    assert bucket_name(ipaddress.ip_address("::ffff:198.51.100.1")) == "198.51.100.1"
    assert bucket_name(ipaddress.ip_address("198.51.100.1")) == "198.51.100.1"
