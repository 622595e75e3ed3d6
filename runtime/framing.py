"""Framing: bytes on a connection <-> wire objects, for JSON lines and msgpack.

A connection's framing is chosen from its first non-blank byte: a msgpack map header
(``0x80``-``0x8f``, ``0xde``, ``0xdf``) selects msgpack; anything else selects JSON lines,
so even garbage gets a readable JSON error. Replies use the connection's framing
(:mod:`runtime.reply_encoding` encodes them).

Decoders are sans-IO (fed bytes, return items) and never raise on bad input: each item
they return is either a decoded request/:class:`ErrorReply` for one frame (a JSON-lines
decoder with ``plain`` set gives id-less plain gets and sets as plain items instead:
:mod:`actors.protocol.edge`), and
``fatal`` is set once the stream cannot be resynchronised (a frame over the size limit,
or corrupt msgpack), after which the server answers the error and closes.

JSON lines: UTF-8, one object per ``\\n``-terminated line (a trailing ``\\r`` is
tolerated, blank lines are skipped). Non-standard ``NaN``/``Infinity`` are rejected.
A ``hello`` (which opens a peer connection, and peers speak msgpack) is fatal on JSON lines.

msgpack: the decoder can also return the raw decoded objects instead of requests
(``feed(data, raw=True)``), stop after a number of frames (``limit``; the rest of the
bytes wait for the next ``feed``), and be reconfigured between frames
(:meth:`MsgpackDecoder.reconfigure`). That is how a connection looks at its first frame
before deciding whether it is a client or a peer connection, and then gives a peer the
peer frame limit.

Buffering is linear in the bytes received, however they are cut: a partial frame waits
as a list of chunks (JSON lines: only the new bytes are searched for the line end, and
the chunks are joined once, when the line is complete; msgpack: the unpacker keeps its
parse state between feeds). ``buffered`` tells how many bytes a partial frame holds.

JSON codec: orjson when it is installed (``ACTORCACHE_JSON_CODEC=stdlib``, or
:func:`use_json_codec`, keeps the standard library's), for what it does exactly as the
standard library would: a line orjson parses is one the stdlib parser gives the same
object for, except integers past 64 bits (orjson reads them as floats), so a line with 19
digits or more, and any line orjson refuses, goes the stdlib way, whose objects and error
messages are the reference; a hit whose value is a string is encoded by orjson (the same
bytes as the stdlib encoder for every string it accepts; a lone surrogate falls back).

Values nested deeper than ``max_depth`` (``--max-value-depth``, :mod:`actors.protocol.value_depth`)
are refused with ``bad_request`` for that request; past what msgpack's unpacker can
nest (1,024 levels) the stream cannot be resynchronised and the error is fatal.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Protocol

import msgpack

from actors.protocol.codec import error_reply, request_or_error
from actors.protocol.errors import BadRequestError, ErrorCode, TooLargeError
from actors.protocol.messages import ErrorReply, Request
from actors.protocol.peer_codec import HELLO
from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH, depth_error
from runtime.reply_encoding import use_fast_dumps

__all__ = [
    "JSON_CODECS",
    "JSON_HELLO_REFUSAL",
    "ORJSON_AVAILABLE",
    "Decoder",
    "JsonLinesDecoder",
    "MsgpackDecoder",
    "choose_decoder",
    "is_msgpack_start",
    "json_codec",
    "use_json_codec",
]

#: A decoded frame: a request (or a plain item, :mod:`actors.protocol.edge`), or the error for it.
Item = Request | ErrorReply | str | tuple[str, Any, None]

_BLANK = b" \t\r\n"


def is_msgpack_start(byte: int) -> bool:
    return 0x80 <= byte <= 0x8F or byte in (0xDE, 0xDF)


class Decoder(Protocol):
    fatal: bool

    @property
    def buffered(self) -> int: ...

    def feed(self, data: bytes) -> list[Item]: ...


class _Fatal(Exception):
    """Raised inside a decoder loop when a frame makes the stream unusable."""

    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.message)
        self.reply = reply


#: Why a ``hello`` on a JSON-lines connection is refused.
JSON_HELLO_REFUSAL = "peer connections speak msgpack: 'hello' must be the first frame, as a msgpack map"


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
#: The decoder's C scanner: ``decode`` wraps it in two Python frames and two regex
#: matches per line (0.75 of 1.45 us for a typical set request).
_scan_once = _json_decoder.scan_once

try:
    import orjson as _orjson
except ImportError:  # optional accelerator: the standard library's codec serves without it
    _orjson = None  # type: ignore[assignment]

ORJSON_AVAILABLE = _orjson is not None
JSON_CODECS = ("auto", "stdlib", "orjson")
#: A line with 19 digits or more may hold an integer past 64 bits, which orjson would read
#: as a float (the stdlib parser refuses it): such a line takes the stdlib path. Counted by
#: deleting the digits (0.2 us for a 150-byte line; a regex for 19 in a row costs 1.9 us),
#: and only in a read with 19 digits or dots in a row somewhere (:data:`_DIGIT_RUN`): an
#: integer past 64 bits is such a run (JSON has no leading zeros), and so is every number
#: with more than 18 digits; a line without one has only numbers the <= 18-digit lines
#: already trust orjson with. One C pass over the whole read finds that out for all its
#: lines (the count per line was a third of decoding a set line).
_DIGITS = b"0123456789"
_MAX_DIGITS = 18
#: Digits and ``.`` -> ``1``, every other byte -> ``0``: ``_DIGIT_RUN in data.translate(_DIGIT_MAP)``.
_DIGIT_MAP = bytes(0x31 if 0x30 <= i <= 0x39 or i == 0x2E else 0x30 for i in range(256))
_DIGIT_RUN = b"1" * (_MAX_DIGITS + 1)
_fast_loads: Any = None  # orjson.loads when orjson is the codec, else None


def use_json_codec(name: str = "auto") -> str:
    """Make ``name`` the JSON-lines codec of this process and return which one it is.

    ``auto``: ``$ACTORCACHE_JSON_CODEC`` when set, else orjson when installed, else the
    standard library. Raises ValueError for an unknown name or orjson when it is not
    installed. Replies and decoded requests are the same with either (module docstring);
    only the CPU they cost differs, which is why the choice exists (``--json-codec``).
    """
    global _fast_loads
    if name == "auto":
        name = os.environ.get("ACTORCACHE_JSON_CODEC", "").lower() or "auto"
        if name == "auto":
            name = "orjson" if ORJSON_AVAILABLE else "stdlib"
    if name not in JSON_CODECS[1:]:
        raise ValueError(f"unknown JSON codec {name!r} (choose from {', '.join(JSON_CODECS)})")
    if name == "orjson":
        if _orjson is None:
            raise ValueError("JSON codec orjson asked for but orjson is not installed")
        _fast_loads = _orjson.loads
        use_fast_dumps(_orjson.dumps)
    else:
        _fast_loads = None
        use_fast_dumps(None)
    return name


def json_codec() -> str:
    """The JSON-lines codec in use: ``orjson`` or ``stdlib``."""
    return "stdlib" if _fast_loads is None else "orjson"


class JsonLinesDecoder:
    """A stream of JSON lines.

    A partial line waits in ``_chunks`` (none of them holds a line end): each feed
    searches only its own bytes for one, so a line sent in many small pieces costs what
    it costs in one (joined once, when complete). A partial line over ``max_bytes`` is
    fatal at once, not when its end arrives.
    """

    __slots__ = ("_chunks", "_held", "fatal", "max_bytes", "max_depth", "plain")

    def __init__(self, max_bytes: int, max_depth: int = DEFAULT_MAX_VALUE_DEPTH) -> None:
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        #: Plain gets and sets come as plain items (:mod:`actors.protocol.edge`), not typed
        #: requests: for a connection that sends them to the node as they are.
        self.plain = False
        self._chunks: list[bytes] = []  # the partial line, in the pieces it came in
        self._held = 0  # bytes in _chunks
        self.fatal = False

    @property
    def buffered(self) -> int:
        """Bytes of a partial line held until its line end arrives."""
        return self._held

    def feed(self, data: bytes) -> list[Item]:
        if self.fatal:
            return []
        limit = self.max_bytes
        items: list[Item] = []
        if self._chunks:
            if not data:
                return items
            nl = data.find(b"\n")
            held = self._held
            if nl < 0:  # still no line end: keep the piece, scan nothing again
                held += len(data)
                if held > limit:
                    return self._too_large(items, held)
                self._chunks.append(data)
                self._held = held
                return items
            # The partial line is complete: join it to this piece, once, and go on as usual.
            self._chunks.append(data)
            data = b"".join(self._chunks)
            self._chunks = []
            self._held = 0
        lines = data.split(b"\n")
        tail = lines.pop()
        # Integers past 64 bits may be in this read only if it has 19 digits in a row.
        wide = _fast_loads is not None and _DIGIT_RUN in data.translate(_DIGIT_MAP)
        for line in lines:
            if len(line) > limit:
                return self._too_large(items, len(line))
            if not line or (line[0] in _BLANK and not line.strip(_BLANK)):  # (no copy of every line)
                continue
            try:
                items.append(self._decode_line(line, wide))
            except _Fatal as fatal:
                return self._fatal(items, fatal.reply)
        if tail:
            if len(tail) > limit:
                return self._too_large(items, len(tail))
            self._chunks.append(tail)
            self._held = len(tail)
        return items

    def _fatal(self, items: list[Item], reply: ErrorReply) -> list[Item]:
        self.fatal = True
        self._chunks = []
        self._held = 0
        items.append(reply)
        return items

    def _too_large(self, items: list[Item], size: int) -> list[Item]:
        exc = TooLargeError(f"request of {size}+ bytes exceeds the limit of {self.max_bytes} bytes")
        return self._fatal(items, error_reply(exc))

    def _decode_line(self, line: bytes, wide: bool = True) -> Item:
        """One complete line; ``wide``: its read has 19 digits in a row (see ``_DIGIT_RUN``)."""
        loads = _fast_loads
        if loads is not None and (not wide or len(line) - len(line.translate(None, _DIGITS)) <= _MAX_DIGITS):
            try:
                obj = loads(line)
            except Exception:  # noqa: BLE001 - the stdlib path below is the reference: it answers
                return self._decode_text(line)
            item = request_or_error(obj, self.max_depth, self.plain)  # (what _item does, a call less)
            return item if type(item) is not ErrorReply else self._refused(obj, item)
        return self._decode_text(line)

    def _decode_text(self, line: bytes) -> Item:
        """The standard library's decoding: the reference for objects and error messages."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            return error_reply(BadRequestError(f"invalid UTF-8 at byte {exc.start}"))
        # Fast path: a line that is exactly one object. Anything else (whitespace around
        # it, trailing data, any error) goes through decode, whose answers and error
        # messages are the reference.
        try:
            obj, end = _scan_once(text, 0) if text[:1] == "{" else (None, -1)
        except (StopIteration, ValueError, RecursionError):
            end = -1
        if end != len(text):
            try:
                obj = _json_decoder.decode(text)
            except ValueError as exc:
                return error_reply(BadRequestError(f"invalid JSON: {exc}"))
            except RecursionError:
                # Deeper than the scanner can go (hundreds of levels): deeper than any
                # --max-value-depth a node accepts (MAX_SUPPORTED_VALUE_DEPTH).
                return error_reply(depth_error(self.max_depth))
        return self._item(obj)

    def _item(self, obj: Any) -> Item:
        item = request_or_error(obj, self.max_depth, self.plain)
        return item if type(item) is not ErrorReply else self._refused(obj, item)

    @staticmethod
    def _refused(obj: Any, item: ErrorReply) -> ErrorReply:
        """``item``, the error for ``obj``; fatal for a peer's ``hello``."""
        if item.code is ErrorCode.UNAUTHORIZED and obj.get("type") == HELLO:
            # Someone is trying to open a peer connection in the wrong framing.
            raise _Fatal(ErrorReply(ErrorCode.UNAUTHORIZED, JSON_HELLO_REFUSAL, item.rid))
        return item


def _reject_ext(code: int, data: bytes) -> Any:
    raise ValueError(f"msgpack extension type {code} is not supported")


class MsgpackDecoder:
    """A stream of msgpack maps. Corrupt input cannot be resynchronised: it is fatal.

    ``feed`` returns one item per complete frame: a request (or the error reply for a
    frame that is not a valid request), or with ``raw=True`` the decoded object itself.
    When the stream turns fatal (a frame over ``max_bytes``, corrupt msgpack) the last
    item is the :class:`ErrorReply` saying why, in both modes (a raw frame is never an
    ``ErrorReply``: the unpacker only builds plain Python objects), and ``fatal`` is set.
    Requests whose value nests deeper than ``max_depth`` get ``bad_request``; raw objects
    are the caller's to check (``decode_peer(obj, max_depth)``).

    Two unpackers, because a partial frame must cost its wire bytes and no more:

    - the *scanner* is fed every byte once and only ``skip()``-s: it finds where frames
      end (and refuses corrupt ones) without building any object, keeping its parse state
      between feeds, so nothing is re-parsed;
    - the *builder* is fed complete frames only, and builds their objects.

    An unpacker fed a partial frame directly would build the elements received so far:
    a 1 MiB frame of empty maps (one byte each) costs ~70 MiB of dicts before it is even
    complete, so 256 half-sent frames would hold 18 GiB while the input budget counts
    256 MiB. Here a partial frame is held twice as bytes (ours and the scanner's buffer).

    The bytes after the last frame handed out wait in ``_chunks`` (joined only when a
    frame completes, so a frame arriving in small pieces costs linear time); ``_ends``
    holds the stream offsets where scanned frames end but were not handed out yet
    (``feed(limit=...)`` stops early: that is how a connection looks at its first frame
    before deciding whether it is a client or a peer).
    """

    __slots__ = (
        "_base", "_builder", "_chunks", "_ends", "_held", "_off", "_scanned", "_scanner", "fatal", "max_bytes",
        "max_depth", "unicode_errors",
    )

    def __init__(
        self, max_bytes: int, *, unicode_errors: str = "strict", max_depth: int = DEFAULT_MAX_VALUE_DEPTH
    ) -> None:
        self.fatal = False
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.unicode_errors = unicode_errors
        self._reset()

    def _reset(self) -> None:
        self._scanner = msgpack.Unpacker(max_buffer_size=self.max_bytes)
        self._builder = msgpack.Unpacker(
            raw=False,
            max_buffer_size=0,  # fed complete frames the scanner already held to max_bytes
            ext_hook=_reject_ext,
            strict_map_key=True,
            unicode_errors=self.unicode_errors,
        )
        self._chunks: list[bytes] = []
        self._off = 0  # where the waiting bytes begin in _chunks[0]
        self._held = 0  # bytes waiting in _chunks (from _off on)
        self._base = 0  # stream offset of the first waiting byte (the end of the last frame handed out)
        self._scanned = 0  # bytes fed to the scanner
        self._ends: list[int] = []

    @property
    def buffered(self) -> int:
        """Bytes held for frames not handed out yet: those received (a partial frame, and
        complete frames a ``limit`` left waiting), plus the scanner's copy of what it has
        not consumed (a partial string or binary: all of it). Objects are only built from
        complete frames, so this is what the decoder holds, between 1x and 2x the partial
        frame's wire bytes."""
        return self._held + self._scanned - self._scanner.tell()

    def reconfigure(self, max_bytes: int, *, unicode_errors: str | None = None) -> None:
        """Change the frame limit (and string decoding) for the frames still to come.

        Only between frames: call it after a ``feed`` that stopped at its ``limit``. Bytes
        not handed out yet are scanned again under the new limit by the next ``feed``.
        """
        rest = bytes(memoryview(self._joined())[self._off :]) if self._chunks else b""
        self.max_bytes = max_bytes
        if unicode_errors is not None:
            self.unicode_errors = unicode_errors
        self._reset()
        if rest:  # waits unscanned: the next feed scans it under the new limit
            self._chunks.append(rest)
            self._held = len(rest)

    def feed(self, data: bytes, *, raw: bool = False, limit: int | None = None) -> list[Any]:
        """Items for every complete frame in the stream so far (at most ``limit`` of them)."""
        if self.fatal:
            return []
        if data:
            self._chunks.append(data)
            self._held += len(data)
        # Bytes not fed to the scanner yet: the new ones, and those a ``limit`` or a
        # reconfigure left behind.
        unscanned = self._base + self._held - self._scanned
        if unscanned and (limit is None or len(self._ends) < limit):
            rest = data if unscanned == len(data) else memoryview(self._joined())[-unscanned:]
            error = self._scan(rest, limit)
            if error is not None:
                return self._fail(self._hand_out(raw, None), error)
        if not self._ends:
            return []
        return self._hand_out(raw, limit)

    def _scan(self, data: bytes | memoryview, want: int | None) -> BadRequestError | TooLargeError | None:
        """Feed ``data`` to the scanner and note where frames end; the error if fatal.

        With ``want``, stop once that many frames are known, leaving the rest unscanned
        (it may be scanned under another limit after a reconfigure): pieces then start at
        one byte and double while no frame completes, so the scanner never reads far into
        the frame after them (a peer's first frame after its hello may be far over the
        client limit).
        """
        scanner = self._scanner
        max_bytes = self.max_bytes
        ends = self._ends
        view = memoryview(data)
        end = len(view)
        pos = 0
        scanned = self._scanned
        start = ends[-1] if ends else self._base  # where the frame in progress began
        skip, tell = scanner.skip, scanner.tell
        step = 1 if want is not None else max_bytes
        try:
            while pos < end:
                # Never more than the frame limit allows next to the partial frame: a
                # pipeline of many small frames is fine, a single oversized one fails.
                piece = view[pos : pos + max(min(max_bytes - (scanned - start), step), 1)]
                scanner.feed(piece)
                scanned += len(piece)
                pos += len(piece)
                found = False
                while True:
                    try:
                        skip()
                    except msgpack.OutOfData:
                        break
                    start = tell()
                    ends.append(start)
                    found = True
                if scanned - start > max_bytes:
                    return TooLargeError(f"request exceeds the limit of {max_bytes} bytes")
                if want is not None:
                    if len(ends) >= want:
                        break
                    if not found:
                        step *= 2
        except msgpack.BufferFull:
            return TooLargeError(f"request exceeds the limit of {max_bytes} bytes")
        except msgpack.StackError:  # nested deeper than the unpacker's stack (1,024 levels)
            return depth_error(self.max_depth)
        except Exception as exc:  # corrupt stream: any error the unpacker raises
            detail = str(exc) or type(exc).__name__
            return BadRequestError(f"invalid msgpack: {detail}")
        finally:
            self._scanned = scanned
        return None

    def _hand_out(self, raw: bool, limit: int | None) -> list[Any]:
        """Build the first ``limit`` (or all) scanned frames and return their items."""
        ends = self._ends
        if not ends:
            return []
        count = len(ends) if limit is None else min(limit, len(ends))
        upto = ends[count - 1]
        del ends[:count]
        buf = self._joined()
        off = self._off
        cut = off + (upto - self._base)
        self._builder.feed(memoryview(buf)[off:cut] if off or cut < len(buf) else buf)
        self._held -= cut - off
        self._base = upto
        if cut == len(buf):
            self._chunks, self._off = [], 0
        else:
            self._off = cut  # the rest stays where it is: draining frame by frame copies nothing
        items: list[Any] = []
        append = items.append
        depth = self.max_depth
        try:
            for obj in self._builder:
                append(obj if raw else request_or_error(obj, depth))
        except Exception as exc:  # what only building finds: invalid UTF-8, an ext type, a non-str map key
            detail = str(exc) or type(exc).__name__
            return self._fail(items, BadRequestError(f"invalid msgpack: {detail}"))
        return items

    def _joined(self) -> bytes:
        """The waiting bytes as one buffer (from ``_off`` on); joined once per new chunk."""
        chunks = self._chunks
        if len(chunks) > 1:
            off = self._off
            joined = b"".join([memoryview(chunks[0])[off:], *chunks[1:]] if off else chunks)
            self._chunks, self._off = [joined], 0
            return joined
        return chunks[0]

    def _fail(self, items: list[Any], exc: BadRequestError | TooLargeError) -> list[Any]:
        if self.fatal:
            return items
        self.fatal = True
        self._reset()  # let go of the partial frame at once
        items.append(error_reply(exc))
        return items


def choose_decoder(
    first_byte: int, max_bytes: int, max_depth: int = DEFAULT_MAX_VALUE_DEPTH
) -> JsonLinesDecoder | MsgpackDecoder:
    if is_msgpack_start(first_byte):
        return MsgpackDecoder(max_bytes, max_depth=max_depth)
    return JsonLinesDecoder(max_bytes, max_depth)


try:
    use_json_codec()
except ValueError:  # a bad $ACTORCACHE_JSON_CODEC: the node's --json-codec says why; importing still works
    use_json_codec("stdlib")
