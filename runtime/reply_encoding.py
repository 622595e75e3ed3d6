"""Replies -> bytes, in a connection's framing: JSON lines or msgpack.

The other half of :mod:`runtime.framing` (which decodes requests). Encoders never raise:
a reply that cannot be encoded becomes an ``internal`` error reply. JSON replies are the
standard library's bytes; a hit whose value is a string is encoded by orjson when
:func:`runtime.framing.use_json_codec` chose it (:func:`use_fast_dumps`), the same bytes
for every string it accepts (a lone surrogate falls back). A multi-value reply of many
items can be encoded item by item against a byte budget (:func:`encode_values_reply`).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Sequence
from typing import Any, Callable

import msgpack

from actors.protocol.codec import encode_reply
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import ACK, Ack, ErrorReply, Reply, Value, Values

__all__ = [
    "VALUES_PIECEWISE",
    "encode_json_acks",
    "encode_json_reply",
    "encode_msgpack_reply",
    "encode_values_reply",
    "to_jsonable",
    "use_fast_dumps",
]

_fast_dumps: Any = None  # orjson.dumps when orjson is the JSON codec, else None


def use_fast_dumps(dumps: Callable[[Any], bytes] | None) -> None:
    """Encode string hits with ``dumps`` (orjson's), or None: the standard library's."""
    global _fast_dumps
    _fast_dumps = dumps


_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def to_jsonable(value: Any) -> Any:
    """Make a stored value representable in JSON.

    Values written over msgpack may hold bytes: valid UTF-8 becomes a string, anything
    else becomes ``{"$base64": "..."}``; non-finite floats become null. Non-string map
    keys become strings (of two keys that become the same string, the later value wins,
    as in a dict display). Iterative (an explicit stack): no value can make it recurse.
    """
    t = type(value)
    if t is not list and t is not tuple and t is not dict:
        return _jsonable_scalar(value)
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(value, holder, 0)]  # (source, target, slot in target)
    pop = stack.pop
    push = stack.append
    while stack:
        source, target, slot = pop()
        if type(source) is dict:
            out: Any = {_json_key(k): v for k, v in source.items()}
            slots: Any = list(out.items())
        else:
            out = list(source)
            slots = enumerate(out)
        target[slot] = out
        for index, item in slots:
            t = type(item)
            if t is list or t is tuple or t is dict:
                push((item, out, index))
            elif t is bytes or t is float:
                out[index] = _jsonable_scalar(item)
    return holder[0]


def _jsonable_scalar(value: Any) -> Any:
    t = type(value)
    if t is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"$base64": base64.b64encode(value).decode("ascii")}
    if t is float and not math.isfinite(value):
        return None
    return value


def _json_key(key: Any) -> str:
    if type(key) is str:
        return key
    if type(key) is bytes:
        return key.decode("utf-8", "backslashreplace")
    return str(key)


def _unencodable(reply: Reply, exc: Exception) -> ErrorReply:
    """The error replacing ``reply``; it echoes the request's id only when the id itself
    encodes (both ways): a client's id nested past the encoders' depth (which no decoder
    checks: only values are held to --max-value-depth) would make this reply fail too, and
    the connection would be cut off for one request."""
    rid = getattr(reply, "rid", None)
    if rid is not None and type(rid) in (list, dict, tuple):
        try:
            _json_encode(to_jsonable(rid))
            _packb(rid)
        except Exception:  # noqa: BLE001 - RecursionError, ValueError (msgpack's depth), TypeError
            rid = None
    return ErrorReply(ErrorCode.INTERNAL, f"reply cannot be encoded: {exc}", rid)


_ACK_LINE = b'{"type":"ack","success":true}\n'
_MISS_LINE = b'{"type":"response","value":null,"success":false}\n'


def encode_json_acks(replies: Sequence[Reply], most: int) -> bytes | None:
    """The JSON lines of ``replies`` when every one is the shared ``ACK`` (a batch of plain
    sets: the commonest batch of all), at most ``most`` of them: one constant line repeated,
    no reply encoded one by one (``list.count`` finds them by identity). Else None."""
    n = len(replies)
    if 1 < n <= most and replies[0] is ACK and replies.count(ACK) == n:
        return _ACK_LINE * n
    return None


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of encoder output; a lone surrogate (valid as a JSON escape, not as
    UTF-8) makes us fall back to the ASCII-escaped form, which carries it faithfully."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(json.loads(text), ensure_ascii=True, separators=(",", ":")).encode("ascii")


def encode_json_reply(reply: Reply) -> bytes:
    """One JSON line for ``reply``; never raises (an unencodable reply becomes an error)."""
    # Fast paths for the two most common replies; byte-identical to the general path.
    if reply.rid is None:
        t = type(reply)
        if t is Value:
            if not reply.found:
                return _MISS_LINE
            dumps = _fast_dumps
            if dumps is not None and type(reply.value) is str:
                try:
                    return b'{"type":"response","value":' + dumps(reply.value) + b',"success":true}\n'
                except TypeError:  # a lone surrogate: the stdlib path escapes it
                    pass
            try:
                value = _json_encode(reply.value)
            except (TypeError, ValueError, RecursionError):
                pass
            else:
                return b'{"type":"response","value":' + _utf8(value) + b',"success":true}\n'
        elif t is Ack and reply.deleted is None and reply.applied is None:
            return _ACK_LINE
    try:
        obj = encode_reply(reply)
        try:
            text = _json_encode(obj)
        except (TypeError, ValueError):
            text = _json_encode(to_jsonable(obj))
        return _utf8(text) + b"\n"
    except Exception as exc:  # noqa: BLE001 - never raise: one error reply instead (RecursionError too)
        return _json_encode(encode_reply(_unencodable(reply, exc))).encode("utf-8") + b"\n"


_packb = msgpack.Packer(use_bin_type=True).pack
_packer = msgpack.Packer(use_bin_type=True)

#: A multi-value reply (``mget``) of more items than this is encoded item by item
#: (:func:`encode_values_reply`), so that one reply far over a client's output limit is
#: never built whole: a 5 KB ``mget`` naming a large key 1,000 times would otherwise
#: build its whole reply before the limit is looked at.
VALUES_PIECEWISE = 16


def encode_values_reply(reply: Values, use_msgpack: bool, budget: int) -> bytes | int:
    """``reply`` encoded item by item, or, as soon as the bytes encoded pass ``budget``,
    their count so far (the caller cuts the client off; the rest is never built).

    The bytes are :func:`encode_msgpack_reply`'s, or :func:`encode_json_reply`'s except
    that a value with a lone surrogate is ASCII-escaped alone rather than the whole line
    (the same JSON). Never raises: an unencodable item makes the reply one error.
    """
    items = reply.items
    rid = reply.rid
    size = 0
    parts: list[bytes] = []
    append = parts.append
    try:
        for key, value, found in items:
            item = {"key": key, "value": value, "found": found}
            if use_msgpack:
                part = _packb(item)
            else:
                try:
                    text = _json_encode(item)
                except (TypeError, ValueError):
                    text = _json_encode(to_jsonable(item))
                part = _utf8(text)
            append(part)
            size += len(part)
            if size > budget:
                return size
        if use_msgpack:
            head = (
                _packer.pack_map_header(3 if rid is None else 4)
                + _packb("type") + _packb("response") + _packb("success") + _packb(True)
                + _packb("values") + _packer.pack_array_header(len(items))
            )
            tail = b"" if rid is None else _packb("id") + _packb(rid)
            return head + b"".join(parts) + tail
        tail = b"]}\n" if rid is None else b'],"id":' + _utf8(_json_encode(to_jsonable(rid))) + b"}\n"
        return b'{"type":"response","success":true,"values":[' + b",".join(parts) + tail
    except Exception as exc:  # noqa: BLE001 - never raise: one error reply instead
        error = _unencodable(reply, exc)
        return encode_msgpack_reply(error) if use_msgpack else encode_json_reply(error)


def encode_msgpack_reply(reply: Reply) -> bytes:
    """One msgpack map for ``reply``; never raises (an unencodable reply becomes an error)."""
    try:
        return _packb(encode_reply(reply))
    except Exception as exc:  # noqa: BLE001 - never raise (TypeError, OverflowError, nesting past the packer's limit)
        return _packb(encode_reply(_unencodable(reply, exc)))
