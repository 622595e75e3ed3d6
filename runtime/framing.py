"""Framing: bytes on a connection <-> wire objects, for JSON lines and msgpack.

A connection's framing is chosen from its first non-blank byte: a msgpack map header
(``0x80``-``0x8f``, ``0xde``, ``0xdf``) selects msgpack; anything else selects JSON lines,
so even garbage gets a readable JSON error. Replies use the connection's framing.

Decoders are sans-IO (fed bytes, return items) and never raise on bad input: each item
they return is either a decoded request/:class:`ErrorReply` for one frame, and
``fatal`` is set once the stream cannot be resynchronised (a frame over the size limit,
or corrupt msgpack), after which the server answers the error and closes.

JSON lines: UTF-8, one object per ``\\n``-terminated line (a trailing ``\\r`` is
tolerated, blank lines are skipped). Non-standard ``NaN``/``Infinity`` are rejected.
"""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Protocol

import msgpack

from actors.codec import encode_reply, error_reply, request_or_error
from actors.errors import BadRequestError, ErrorCode, TooLargeError
from actors.messages import Ack, ErrorReply, Reply, Request, Value

__all__ = [
    "Decoder",
    "JsonLinesDecoder",
    "MsgpackDecoder",
    "choose_decoder",
    "encode_json_reply",
    "encode_msgpack_reply",
    "is_msgpack_start",
    "to_jsonable",
]

Item = Request | ErrorReply

_BLANK = b" \t\r\n"


def is_msgpack_start(byte: int) -> bool:
    return 0x80 <= byte <= 0x8F or byte in (0xDE, 0xDF)


class Decoder(Protocol):
    fatal: bool

    def feed(self, data: bytes) -> list[Item]: ...


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1


def _parse_int(text: str) -> int:
    # Values must be representable in every framing: msgpack integers are 64-bit.
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise ValueError(f"integer {text[:20]}... does not fit in 64 bits")
    return value


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


_json_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float)


class JsonLinesDecoder:
    __slots__ = ("_buf", "fatal", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = b""
        self.fatal = False

    def feed(self, data: bytes) -> list[Item]:
        if self.fatal:
            return []
        buf = self._buf + data if self._buf else data
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        items: list[Item] = []
        limit = self.max_bytes
        for line in lines:
            if len(line) > limit:
                return self._too_large(items, len(line))
            if not line.strip(_BLANK):
                continue
            items.append(self._decode_line(line))
        if len(self._buf) > limit:
            return self._too_large(items, len(self._buf))
        return items

    def _too_large(self, items: list[Item], size: int) -> list[Item]:
        self.fatal = True
        self._buf = b""
        exc = TooLargeError(f"request of {size}+ bytes exceeds the limit of {self.max_bytes} bytes")
        items.append(error_reply(exc))
        return items

    @staticmethod
    def _decode_line(line: bytes) -> Item:
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return error_reply(BadRequestError(f"invalid UTF-8 at byte {exc.start}"))
        try:
            obj = _json_decoder.decode(text)
        except ValueError as exc:
            return error_reply(BadRequestError(f"invalid JSON: {exc}"))
        except RecursionError:
            return error_reply(BadRequestError("invalid JSON: nested too deeply"))
        return request_or_error(obj)


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not supported")


class MsgpackDecoder:
    """A stream of msgpack maps. Corrupt input cannot be resynchronised: it is fatal."""

    __slots__ = ("_unpacker", "fatal", "max_bytes")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.fatal = False
        self._unpacker = msgpack.Unpacker(
            raw=False,
            max_buffer_size=max_bytes,
            ext_hook=_reject_ext,
            strict_map_key=True,
        )

    def feed(self, data: bytes) -> list[Item]:
        if self.fatal:
            return []
        items: list[Item] = []
        step = self.max_bytes
        view = memoryview(data)
        # Feed at most one limit's worth at a time and drain in between, so a pipeline of
        # many small requests in one read is fine and only a single oversized one fails.
        for start in range(0, len(view), step):
            try:
                self._unpacker.feed(view[start : start + step])
            except msgpack.BufferFull:
                return self._fail(items, TooLargeError(f"request exceeds the limit of {self.max_bytes} bytes"))
            try:
                for obj in self._unpacker:
                    items.append(request_or_error(obj))
            except msgpack.BufferFull:
                return self._fail(items, TooLargeError(f"request exceeds the limit of {self.max_bytes} bytes"))
            except Exception as exc:  # corrupt stream: any error the unpacker raises
                detail = str(exc) or type(exc).__name__
                return self._fail(items, BadRequestError(f"invalid msgpack: {detail}"))
        return items

    def _fail(self, items: list[Item], exc: BadRequestError | TooLargeError) -> list[Item]:
        self.fatal = True
        items.append(error_reply(exc))
        return items


def choose_decoder(first_byte: int, max_bytes: int) -> JsonLinesDecoder | MsgpackDecoder:
    if is_msgpack_start(first_byte):
        return MsgpackDecoder(max_bytes)
    return JsonLinesDecoder(max_bytes)


# --- encoding replies -------------------------------------------------------------------

_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def to_jsonable(value: Any) -> Any:
    """Make a stored value representable in JSON.

    Values written over msgpack may hold bytes: valid UTF-8 becomes a string, anything
    else becomes ``{"$base64": "..."}``. Non-string map keys become strings.
    """
    t = type(value)
    if t is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"$base64": base64.b64encode(value).decode("ascii")}
    if t is list or t is tuple:
        return [to_jsonable(v) for v in value]
    if t is dict:
        return {_json_key(k): to_jsonable(v) for k, v in value.items()}
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
    return ErrorReply(ErrorCode.INTERNAL, f"reply cannot be encoded: {exc}", getattr(reply, "rid", None))


_ACK_LINE = b'{"type":"ack","success":true}\n'
_MISS_LINE = b'{"type":"response","value":null,"success":false}\n'


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
            try:
                value = _json_encode(reply.value)
            except (TypeError, ValueError):
                pass
            else:
                return b'{"type":"response","value":' + _utf8(value) + b',"success":true}\n'
        elif t is Ack and reply.deleted is None:
            return _ACK_LINE
    obj = encode_reply(reply)
    try:
        text = _json_encode(obj)
    except (TypeError, ValueError):
        try:
            text = _json_encode(to_jsonable(obj))
        except (TypeError, ValueError) as exc:
            text = _json_encode(encode_reply(_unencodable(reply, exc)))
    return _utf8(text) + b"\n"


_packb = msgpack.Packer(use_bin_type=True).pack


def encode_msgpack_reply(reply: Reply) -> bytes:
    """One msgpack map for ``reply``; never raises (an unencodable reply becomes an error)."""
    try:
        return _packb(encode_reply(reply))
    except (TypeError, ValueError, OverflowError) as exc:
        return _packb(encode_reply(_unencodable(reply, exc)))
