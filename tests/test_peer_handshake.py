"""The sans-IO peer handshake (actors/kernel/peer_auth.py): who gets in, and what replays to nothing."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.kernel.peer_auth import NONCE_BYTES, Acceptor, Connector, PeerAuthError

HELLO = {"type": "hello", "addr": "127.0.0.1:1", "partitions": 8, "proto": 5}
_rng = random.Random(7)


def nonce() -> bytes:
    return _rng.randbytes(NONCE_BYTES)


def pair(secret_a: bytes = b"s3cret", secret_b: bytes = b"s3cret") -> tuple[Connector, Acceptor]:
    return Connector(secret_a, "A", nonce(), HELLO), Acceptor(secret_b, "B", nonce())


def test_both_sides_holding_the_secret_authenticate_each_other() -> None:
    a, b = pair()
    hello = a.hello()
    assert hello["node_id"] == "A" and hello["addr"] == HELLO["addr"]
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
    replay = Acceptor(b"s3cret", "B", nonce())  # a new connection: a fresh acceptor nonce
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
    other = Acceptor(b"s3cret", "B", b._nonce)  # same nonces, but the hello claimed to be C
    other.on_hello("C", a.hello())
    with pytest.raises(PeerAuthError):
        other.on_auth(auth)


def test_a_connector_that_expected_another_node_refuses_the_one_it_found() -> None:
    a, b = pair()
    with pytest.raises(PeerAuthError, match="expected node 'C'"):
        a.on_challenge(b.on_hello("A", a.hello()), expect="C")


def test_auth_before_hello_and_a_second_hello_are_refused() -> None:
    a, b = pair()
    with pytest.raises(PeerAuthError, match="before hello"):
        b.on_auth({"type": "auth", "proof": bytes(32)})
    b.on_hello("A", a.hello())
    with pytest.raises(PeerAuthError, match="second hello"):
        b.on_hello("A", a.hello())


def test_nonces_must_be_host_drawn_bytes_of_the_right_size() -> None:
    with pytest.raises(ValueError):
        Connector(b"k", "A", b"short", HELLO)
    with pytest.raises(ValueError):
        Acceptor(b"k", "B", "x" * NONCE_BYTES)  # type: ignore[arg-type]


frames = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=40) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["type", "node_id", "nonce", "proof", "x"]), inner, max_size=4),
    max_leaves=10,
)


@given(frames, frames, frames)
def test_no_frame_shape_gets_through_or_raises_anything_but_peer_auth_error(hello: Any, challenge: Any, auth: Any) -> None:
    """Whatever a stranger sends in any of the three places, the handshake fails with
    PeerAuthError (never another exception) and never authenticates it."""
    b = Acceptor(b"s3cret", "B", nonce())
    with pytest.raises(PeerAuthError):
        b.on_hello("X", hello)
        b.on_auth(auth)
    a = Connector(b"s3cret", "A", nonce(), HELLO)
    with pytest.raises(PeerAuthError):
        a.on_challenge(challenge)
    assert a.peer_id is None
