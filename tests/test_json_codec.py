"""The JSON-lines codec choice (runtime.framing.use_json_codec): orjson and the standard
library decode every line to the same request or error and encode the same reply bytes,
and everything works when orjson, uvloop and hiredis are not installed."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from actors.protocol.messages import Value
from runtime import framing
from runtime.event_loop import event_loop_choice
from runtime.framing import JsonLinesDecoder, json_codec, use_json_codec
from runtime.reply_encoding import encode_json_reply
from runtime.local_cluster import ROOT, NodeProcess

needs_orjson = pytest.mark.skipif(not framing.ORJSON_AVAILABLE, reason="orjson is not installed")


@pytest.fixture(autouse=True)
def _restore_codec() -> Iterator[None]:
    before = json_codec()
    yield
    use_json_codec(before)


def _both(feed: Any) -> tuple[Any, Any]:
    use_json_codec("orjson")
    fast = feed()
    use_json_codec("stdlib")
    return fast, feed()


numbers = st.sampled_from([
    "0", "-0", "-0.0", "1e999", "-1e999", "1E400", "1e-400", "18446744073709551615", "18446744073709551616",
    "-9223372036854775808", "-9223372036854775809", "123456789012345678901234", "0.1", "1.5e-5", "NaN", "Infinity",
    "01", "1.", ".5", "+1", "1e", "5e-324", "1.7976931348623157e308", "9007199254740993",
])
strings = st.sampled_from(['"\\ud800"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"', '"\t"', '"\\u0000"', '"é"', '"\\x"', '""'])
atoms = numbers | strings | st.sampled_from(["true", "false", "null", "[]", "{}"])
values = st.recursive(
    atoms | st.floats().map(repr) | st.integers().map(str) | st.text(max_size=12).map(json.dumps),
    lambda inner: st.lists(inner, max_size=3).map(lambda xs: "[" + ",".join(xs) + "]")
    | st.lists(st.tuples(st.text(max_size=4), inner), max_size=3).map(
        lambda kvs: "{" + ",".join(json.dumps(k) + ":" + v for k, v in kvs) + "}"
    ),
    max_leaves=8,
)
lines = st.builds(
    lambda kind, key, value, pre, post: f'{pre}{{"type":"{kind}","key":{key},"value":{value}}}{post}'.encode(),
    st.sampled_from(["get", "set", "hello", "mget"]),
    st.text(max_size=6).map(json.dumps) | atoms,
    values,
    st.sampled_from(["", " ", "\ufeff", "\x0c"]),
    st.sampled_from(["", " ", "\r", "x", ",{}"]),
)


@needs_orjson
@settings(max_examples=600, deadline=None)
@given(lines | values.map(str.encode) | st.binary(max_size=40))
def test_orjson_and_stdlib_decode_every_line_alike(line: bytes) -> None:
    if b"\n" in line:
        line = line.replace(b"\n", b" ")
    fast, reference = _both(lambda: JsonLinesDecoder(1 << 20).feed(line + b"\n"))
    assert fast == reference


@needs_orjson
@settings(max_examples=600, deadline=None)
@given(st.text() | st.sampled_from(["\ud800", "a\udfff", "\x00\x1f\x7f\u2028\u2029\"\\/", "😀"]))
def test_orjson_and_stdlib_encode_every_string_value_alike(value: str) -> None:
    fast, reference = _both(lambda: encode_json_reply(Value(value, True)))
    assert fast == reference


@needs_orjson
def test_a_big_integer_is_refused_with_either_codec() -> None:
    fast, reference = _both(lambda: JsonLinesDecoder(1 << 20).feed(b'{"type":"set","key":"k","value":18446744073709551616}\n'))
    assert fast == reference and fast[0].code.value == "bad_request" and "64 bits" in fast[0].message


def test_unknown_codecs_and_loops_are_value_errors() -> None:
    with pytest.raises(ValueError):
        use_json_codec("simdjson")
    with pytest.raises(ValueError):
        event_loop_choice("trio")


def test_auto_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORCACHE_JSON_CODEC", "stdlib")
    assert use_json_codec("auto") == "stdlib" and json_codec() == "stdlib"
    monkeypatch.setenv("ACTORCACHE_EVENT_LOOP", "asyncio")
    assert event_loop_choice("auto") == "asyncio"


_WITHOUT_ACCELERATORS = (
    "import sys; sys.modules['orjson'] = sys.modules['uvloop'] = sys.modules['hiredis'] = None; "
    "from runtime.node import main; sys.exit(main())"
)


@pytest.mark.integration
def test_a_node_without_orjson_uvloop_and_hiredis_serves_on_the_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ACTORCACHE_EVENT_LOOP", "ACTORCACHE_JSON_CODEC", "ACTORCACHE_RESP_PARSER"):
        monkeypatch.delenv(name, raising=False)  # auto must find the fallbacks on its own
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['orjson'] = sys.modules['uvloop'] = sys.modules['hiredis'] = None; "
         "from runtime import framing, event_loop as e, resp; print(framing.json_codec(), e.event_loop_choice(), "
         "type(resp.new_parser()).__name__)"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    assert probe.stdout.split() == ["stdlib", "asyncio", "RespParser"]
    usage = subprocess.run(
        [sys.executable, "-c", _WITHOUT_ACCELERATORS, "n", "0", "--json-codec", "orjson"], cwd=ROOT, capture_output=True, text=True
    )
    assert usage.returncode == 2 and "orjson is not installed" in usage.stderr
    with NodeProcess(
        "plain", "--resp-port", "0", command=[sys.executable, "-c", _WITHOUT_ACCELERATORS], stderr=subprocess.DEVNULL
    ) as node:
        with socket.create_connection(("127.0.0.1", node.port), timeout=10) as s:
            s.sendall(b'{"type":"set","key":"k","value":"v\\u00e9"}\n{"type":"get","key":"k"}\n')
            got = b""
            while got.count(b"\n") < 2:
                got += s.recv(4096)
        assert node.resp_port is not None
        with socket.create_connection(("127.0.0.1", node.resp_port), timeout=10) as s:
            s.sendall(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
            said = b""
            while not said.endswith(b"\r\n") or said.count(b"\r\n") < 2:
                said += s.recv(4096)
    assert got == b'{"type":"ack","success":true}\n{"type":"response","value":"v\xc3\xa9","success":true}\n'
    assert said == b'$3\r\nv\xc3\xa9\r\n'
