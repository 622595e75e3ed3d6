"""The sans-IO peer handshake (actors/kernel/peer_auth.py): who gets in, and what replays to nothing."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.kernel.peer_auth import NONCE_BYTES, Acceptor, Connector, PeerAuthError

HELLO = {"type": "hello", "addr": "127.0.0.1:1", "partitions": 8, "proto": 5}
#: Where A's connection reached B, and the addresses B may be reached at.
TO_B = "10.0.0.2:8081"
B_AT = frozenset({TO_B, "b.example:8081"})
_rng = random.Random(7)


def nonce() -> bytes:
    return _rng.randbytes(NONCE_BYTES)


def pair(secret_a: bytes = b"s3cret", secret_b: bytes = b"s3cret") -> tuple[Connector, Acceptor]:
    return Connector(secret_a, "A", nonce(), HELLO, TO_B), Acceptor(secret_b, "B", nonce(), B_AT)


def test_both_sides_holding_the_secret_authenticate_each_other() -> None:
    a, b = pair()
    hello = a.hello()
    assert hello["node_id"] == "A" and hello["addr"] == HELLO["addr"] and hello["to"] == TO_B
    auth = a.on_challenge(b.on_hello("A", hello))
    assert a.peer_id == "B"
    assert b.on_auth(auth) == "A"


def test_a_connector_without_the_secret_is_refused_by_the_acceptor() -> None:
    a, b = pair(secret_a=b"guess")
    challenge = b.on_hello("A", a.hello())
    with pytest.raises(PeerAuthError, match="does not hold"):
        a.on_challenge(challenge)  # the connector sees the acceptor's proof is not under its key
    forged = {"type": "auth", "proof": bytes(32)}
    with pytest.raises(PeerAuthError, match="wrong auth proof"):
        b.on_auth(forged)


def test_an_acceptor_without_the_secret_is_refused_by_the_connector() -> None:
    a, b = pair(secret_b=b"")
    with pytest.raises(PeerAuthError, match="wrong challenge proof"):
        a.on_challenge(b.on_hello("A", a.hello()))
    assert a.peer_id is None


def test_a_recorded_handshake_replays_to_nothing() -> None:
    a, b = pair()
    hello = a.hello()
    auth = a.on_challenge(b.on_hello("A", hello))
    replay = Acceptor(b"s3cret", "B", nonce(), B_AT)  # a new connection: a fresh acceptor nonce
    replay.on_hello("A", hello)
    with pytest.raises(PeerAuthError):
        replay.on_auth(auth)


def test_the_acceptors_proof_cannot_be_reflected_as_the_connectors() -> None:
    a, b = pair()
    challenge = b.on_hello("A", a.hello())
    with pytest.raises(PeerAuthError):
        b.on_auth({"type": "auth", "proof": challenge["proof"]})


def test_a_proof_does_not_move_to_another_identity() -> None:
    a, b = pair()
    auth = a.on_challenge(b.on_hello("A", a.hello()))
    other = Acceptor(b"s3cret", "B", b._nonce, B_AT)  # same nonces, but the hello claimed to be C
    other.on_hello("C", a.hello())
    with pytest.raises(PeerAuthError):
        other.on_auth(auth)


def test_a_connector_that_expected_another_node_refuses_the_one_it_found() -> None:
    a, b = pair()
    with pytest.raises(PeerAuthError, match="expected node 'C'"):
        a.on_challenge(b.on_hello("A", a.hello()), expect="C")


def test_a_hello_relayed_from_another_address_is_refused() -> None:
    """A stranger S that A dialled passes A's hello on to B: it names S's address, which
    B is not reached at, so B refuses it (and says where it was sent, cut short)."""
    a = Connector(b"s3cret", "A", nonce(), HELLO, "10.0.0.9:7000")  # S's address
    b = Acceptor(b"s3cret", "B", nonce(), B_AT)
    with pytest.raises(PeerAuthError, match="sent to '10.0.0.9:7000', which is not an address of this node"):
        b.on_hello("A", a.hello())
    assert b.peer_id is None
    long = Connector(b"s3cret", "A", nonce(), HELLO, "h" * 260 + ":1")
    with pytest.raises(PeerAuthError) as refused:
        Acceptor(b"s3cret", "B", nonce(), B_AT).on_hello("A", long.hello())
    assert "h" * 100 not in refused.value.message


def test_a_relay_that_rewrites_to_gets_a_challenge_the_connector_refuses() -> None:
    """S rewrites the hello's ``to`` to B's address: B answers, but its proof covers B's
    ``to``, not the address A dialled, so A sends no auth."""
    a = Connector(b"s3cret", "A", nonce(), HELLO, "10.0.0.9:7000")
    b = Acceptor(b"s3cret", "B", nonce(), B_AT)
    challenge = b.on_hello("A", {**a.hello(), "to": TO_B})
    with pytest.raises(PeerAuthError, match="wrong challenge proof"):
        a.on_challenge(challenge)
    assert a.peer_id is None


@pytest.mark.parametrize("to", [None, "", 7, b"10.0.0.2:8081", "x" * 271, "10.0.0.2:8081\n"])
def test_a_hello_without_a_good_to_is_refused(to: object) -> None:
    a, b = pair()
    hello = {**a.hello(), "to": to}
    if to is None:
        del hello["to"]
    with pytest.raises(PeerAuthError, match="needs a 'to'"):
        b.on_hello("A", hello)


def test_any_address_the_acceptor_is_reached_at_will_do() -> None:
    a = Connector(b"s3cret", "A", nonce(), HELLO, "b.example:8081")
    b = Acceptor(b"s3cret", "B", nonce(), B_AT)
    assert b.on_auth(a.on_challenge(b.on_hello("A", a.hello()))) == "A"


def test_auth_before_hello_and_a_second_hello_are_refused() -> None:
    a, b = pair()
    with pytest.raises(PeerAuthError, match="before hello"):
        b.on_auth({"type": "auth", "proof": bytes(32)})
    b.on_hello("A", a.hello())
    with pytest.raises(PeerAuthError, match="second hello"):
        b.on_hello("A", a.hello())


def test_nonces_must_be_host_drawn_bytes_of_the_right_size() -> None:
    with pytest.raises(ValueError):
        Connector(b"k", "A", b"short", HELLO, TO_B)
    with pytest.raises(ValueError):
        Acceptor(b"k", "B", "x" * NONCE_BYTES, B_AT)  # type: ignore[arg-type]


frames = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=40) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["type", "node_id", "nonce", "proof", "to", "x"]), inner, max_size=4),
    max_leaves=10,
)


@given(frames, frames, frames)
def test_no_frame_shape_gets_through_or_raises_anything_but_peer_auth_error(hello: Any, challenge: Any, auth: Any) -> None:
    """Whatever a stranger sends in any of the three places, the handshake fails with
    PeerAuthError (never another exception) and never authenticates it."""
    b = Acceptor(b"s3cret", "B", nonce(), B_AT)
    with pytest.raises(PeerAuthError):
        b.on_hello("X", hello)
        b.on_auth(auth)
    a = Connector(b"s3cret", "A", nonce(), HELLO, TO_B)
    with pytest.raises(PeerAuthError):
        a.on_challenge(challenge)
    assert a.peer_id is None
