"""runtime.addresses: ``host:port`` parsing and formatting round-trip, IPv6 included."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings, strategies as st

from runtime.addresses import (
    DEFAULT_PORT,
    format_address,
    is_loopback,
    join_host_port,
    parse_address,
    sockaddr_text,
    split_address,
)

SETTINGS = settings(derandomize=True, max_examples=300, deadline=None)

ports = st.integers(1, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
# Host names: labels of letters, digits and hyphens (any case: formatting lower-cases them).
names = st.lists(st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,10}[A-Za-z0-9])?", fullmatch=True), min_size=1, max_size=4).map(".".join)
hosts = ipv4 | ipv6 | names


@SETTINGS
@given(hosts, ports)
def test_a_formatted_address_parses_back_to_its_canonical_host_and_port(host: str, port: int) -> None:
    text = format_address(host, port)
    parsed_host, parsed_port = parse_address(text)
    assert parsed_port == port
    canonical = "127.0.0.1" if host.lower() == "localhost" else host.lower()
    assert parsed_host == canonical
    assert format_address(parsed_host, parsed_port) == text  # canonical form is a fixed point


@SETTINGS
@given(ipv6, ports)
def test_ipv6_is_bracketed_and_a_bare_ipv6_address_with_a_port_is_refused(host: str, port: int) -> None:
    text = join_host_port(host, port)
    assert text == f"[{host}]:{port}"
    assert split_address(text) == (host, port)
    assert split_address(f"[{host}]") == (host, None)
    assert parse_address(f"[{host}]") == (host, DEFAULT_PORT)
    if ":" in host:  # every IPv6 text has one; written bare, its port is ambiguous
        with pytest.raises(ValueError, match=r"write IPv6 addresses as \[addr\]:port"):
            parse_address(f"{host}:{port}")


@SETTINGS
@given(ipv4 | names, ports)
def test_brackets_are_accepted_around_any_host(host: str, port: int) -> None:
    assert parse_address(f"[{host}]:{port}") == parse_address(f"{host}:{port}") == (host, port)
    assert parse_address(f"  {host}:{port}\n") == (host, port)


@SETTINGS
@given(hosts, ports)
def test_a_socket_name_is_written_as_an_address(host: str, port: int) -> None:
    assert sockaddr_text((host, port)) == join_host_port(host, port)
    assert sockaddr_text((host, port, 0, 0)) == join_host_port(host, port)  # IPv6 socket names have four fields
    assert parse_address(sockaddr_text((host, port))) == (host, port)


@SETTINGS
@given(st.text(max_size=30))
def test_any_text_parses_or_raises_value_error_saying_which_address(text: str) -> None:
    try:
        host, port = parse_address(text, "peer address")
    except ValueError as exc:
        assert str(exc).startswith(f"bad peer address {text!r}: ")
    else:
        assert host and 1 <= port <= 65535


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("::1:8081", "write IPv6 addresses as [addr]:port"),
        ("host:0", "port must be 1..65535"),
        ("host:65536", "port must be 1..65535"),
        ("host:x", "port 'x' is not a number"),
        ("host:", "port '' is not a number"),
        (":80", "missing host"),
        ("", "missing host"),
        ("[::1", "missing ']'"),
        ("[::1]8081", "expected ':port' after ']'"),
        ("[]:80", "missing host"),
    ],
)
def test_bad_addresses_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError) as exc:
        parse_address(text)
    assert str(exc.value) == f"bad node address {text!r}: {message}"


def test_tuples_and_defaults() -> None:
    assert parse_address(("::1", 9)) == ("::1", 9)
    assert parse_address("localhost") == ("localhost", DEFAULT_PORT)
    assert split_address("localhost") == ("localhost", None)
    assert format_address(" LocalHost ", 80) == "127.0.0.1:80"
    assert format_address("::1", 80) == "[::1]:80"
    assert sockaddr_text(None) == sockaddr_text("/tmp/sock") == "?"
    for bad in (("h", 0), ("h", "80"), ("h", True)):
        with pytest.raises(ValueError, match="port must be 1..65535"):
            parse_address(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True), ("LOCALHOST", True),
     ("0.0.0.0", False), ("::", False), ("10.1.2.3", False), ("cache.example", False)],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@SETTINGS
@given(st.ip_addresses())
def test_loopback_agrees_with_ipaddress(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert is_loopback(str(address)) is address.is_loopback
    assert is_loopback(f"[{address}]") is address.is_loopback
