"""Which addresses a webhook may connect to: the one policy both the subscription and every delivery apply."""

from __future__ import annotations

import ipaddress

import pytest

from payments.egress import ADDRESS_REFUSED, NO_RESPONSE, public_error, refusal


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("fd00::1", "private"),
        ("fc00::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.251", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "address"),  # reserved for future use
        ("255.255.255.255", "private"),
        ("100.64.0.1", "not globally routable"),
        ("192.0.2.1", "private"),  # documentation
        ("2001:db8::1", "private"),  # documentation
        ("fec0::1", "site-local"),
        ("::ffff:127.0.0.1", "IPv4-mapped"),
        ("::ffff:8.8.8.8", "IPv4-mapped"),
        ("::127.0.0.1", "reserved"),  # IPv4-compatible
        ("64:ff9b::7f00:1", "embeds"),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:1", "embeds"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::1", "embeds"),  # 6to4 of 127.0.0.1
        ("2002:c0a8:101::1", "embeds"),  # 6to4 of 192.168.1.1
    ],
)
def test_addresses_that_are_not_public(address: str, reason: str) -> None:
    found = refusal(ipaddress.ip_address(address))
    assert found is not None, address
    assert reason in found, (address, found)


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "93.184.215.14", "2606:4700:4700::1111", "2001:4860:4860::8888", "64:ff9b::808:808"]
)
def test_public_addresses(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("recorded", "shown"),
    [
        ("HTTP 503", "HTTP 503"),
        (ADDRESS_REFUSED, ADDRESS_REFUSED),
        (NO_RESPONSE, NO_RESPONSE),
        ("callback deleted", "callback deleted"),
        (None, None),
        ("ConnectError: All connection attempts failed", NO_RESPONSE),
        ("ConnectError: [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)", NO_RESPONSE),
        ("ConnectError: [SSL: CERTIFICATE_VERIFY_FAILED] self-signed certificate", NO_RESPONSE),
        ("RemoteProtocolError: Server disconnected without sending a response.", NO_RESPONSE),
    ],
)
def test_only_generic_delivery_errors_are_shown(recorded: str | None, shown: str | None) -> None:
    assert public_error(recorded) == shown
