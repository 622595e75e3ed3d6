"""RESP (the Redis serialization protocol), sans-IO: a request parser and reply encoders.

Nothing here touches a socket or the node. :class:`RespParser` is fed the bytes a client
sent and returns the commands in them, each a list of byte strings, exactly as a Redis
server reads them:

- **multibulk** requests, what every client library sends: ``*<n>\\r\\n`` then ``n``
  bulk strings ``$<len>\\r\\n<bytes>\\r\\n``; ``*0``/``*-1`` are empty and skipped;
- **inline** commands, what ``telnet``/``nc`` users type: a line (``\\n``, optionally
  ``\\r\\n``) split into arguments as Redis's ``sdssplitargs`` splits them (double
  quotes with ``\\n``/``\\xHH`` escapes, single quotes); blank lines are skipped.

Malformed input is a **protocol error**: ``feed`` returns the commands complete before
it, sets :attr:`RespParser.error` to Redis's message (``Protocol error: invalid bulk
length``, ...) and ignores everything after; the server answers ``-ERR <error>`` and
closes, as Redis does. ``feed`` never raises on any input (the tests fuzz it).

Limits (Redis's, except the last): a header or inline line over 64 KiB without its line
end, more than 1,048,576 arguments, a negative bulk length or one over ``max_bulk``, and
one command over ``max_request_bytes`` on the wire (the node's ``--max-request-bytes``)
are protocol errors, so a client can never make the server buffer more than that.

:class:`HiredisRespParser` gives the same results for every input :class:`RespParser`
accepts, with hiredis's C reader doing most of the work when hiredis is installed;
:func:`new_parser` picks it (``ACTORCACHE_RESP_PARSER=python`` picks the pure one).

Encoders build reply bytes for RESP2 and RESP3 (``HELLO 3``): they differ only in how
nil and maps are written (:func:`null`, :func:`map_reply`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence

from runtime.resp_inline import split_inline

try:
    import hiredis as _hiredis
except ImportError:  # optional: the pure parser does everything on its own
    _hiredis = None

__all__ = [
    "HIREDIS_AVAILABLE",
    "HiredisRespParser",
    "MAX_ARGS",
    "MAX_LINE",
    "NIL2",
    "NIL3",
    "OK",
    "PONG",
    "RespParser",
    "array",
    "bulk",
    "encode_command",
    "error",
    "integer",
    "map_reply",
    "new_parser",
    "null",
    "parse_int",
    "simple",
]

#: Longest header line (``*<n>``, ``$<len>``) or inline command (Redis's PROTO_INLINE_MAX_SIZE).
MAX_LINE = 64 * 1024
#: Most arguments in one multibulk command (Redis 6's limit; 7 allows up to INT_MAX).
MAX_ARGS = 1024 * 1024

_CRLF = b"\r\n"
#: What one argument of a partial command costs besides its bytes: a bytes object's
#: header (33 B on 64-bit CPython) and its slot in the argument list (8 B).
ARG_COST = 41
#: Canonical decimal forms of small lengths and counts: one dict lookup parses them.
_SMALL = {b"%d" % i: i for i in range(10_000)}
_STAR = 42  # '*'
_DOLLAR = 36  # '$'
_ZERO = 48  # '0'


def parse_int(text: bytes) -> int | None:
    """A signed decimal 64-bit integer written as Redis's ``string2ll`` accepts it (no
    sign ``+``, no spaces, no leading zeros), or None."""
    if text.isdigit():
        if (len(text) > 1 and text[0] == _ZERO) or len(text) > 19:
            return None
        value = int(text)
    elif text[:1] == b"-" and text[1:].isdigit() and text[1] != _ZERO and len(text) <= 20:
        value = -int(text[1:])
    else:
        return None
    if -(1 << 63) <= value < (1 << 63):
        return value
    return None


class RespParser:
    """Bytes in, commands out. One per connection; see the module docstring.

    State between feeds: the unparsed tail of the stream (always starting at a command,
    or at an argument of the multibulk command in progress), the arguments of that
    command read so far and how many are still to come. A bulk string split across
    reads is not re-scanned: the tail waits in chunks until enough bytes have arrived.
    """

    __slots__ = (
        "_args", "_chunks", "_cmd_bytes", "_have", "_left", "_need", "_need_line", "error", "max_bulk",
        "max_request_bytes",
    )

    def __init__(self, max_request_bytes: int = 512 << 20, max_bulk: int = 512 << 20) -> None:
        self.max_request_bytes = max_request_bytes
        self.max_bulk = max_bulk
        #: Redis's message once the stream is malformed (then nothing more is parsed).
        self.error: str | None = None
        self._chunks: list[bytes] = []  # the unparsed tail, not yet joined
        self._have = 0  # bytes in _chunks
        self._need = 0  # bytes _chunks must hold before parsing can progress
        self._need_line = False  # the tail waits for a line end (and _need is a lower bound)
        self._args: list[bytes] = []  # arguments of the multibulk command in progress
        self._left = 0  # arguments still to come in it (0: between commands)
        self._cmd_bytes = 0  # wire bytes of it so far

    @property
    def buffered(self) -> int:
        """Memory held for a command not complete yet: its bytes, and one object per
        argument already read (:data:`ARG_COST`; many tiny arguments cost ~6x their wire
        bytes, and the input budget must see that)."""
        return self._have + self._cmd_bytes + ARG_COST * len(self._args)

    @property
    def at_boundary(self) -> bool:
        """Between commands: everything fed so far has been returned (and no error)."""
        return not self._chunks and not self._left and self.error is None

    def feed(self, data: bytes) -> list[list[bytes]]:
        """The commands completed by ``data`` (possibly none)."""
        if self.error is not None:
            return []
        if self._chunks:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                return []
            if self._need_line and b"\n" not in data and self._have <= MAX_LINE + 2:
                return []  # still no line end: do not re-scan what we have
            buf = b"".join(self._chunks)
            self._chunks = []
            self._have = 0
        else:
            buf = bytes(data)
        if not buf:
            return []
        try:
            return self._parse(buf)
        except Exception as exc:  # noqa: BLE001 - a bug must cost a protocol error, never a crash
            self._fail(f"Protocol error: {type(exc).__name__}")
            return []

    def _fail(self, message: str) -> None:
        self.error = message
        self._chunks = []
        self._have = self._need = 0
        self._need_line = False
        self._args = []
        self._left = 0
        self._cmd_bytes = 0

    def _parse(self, buf: bytes) -> list[list[bytes]]:
        out: list[list[bytes]] = []
        pos = 0
        end = len(buf)
        args = self._args
        left = self._left
        cmd_bytes = self._cmd_bytes
        find = buf.find
        limit = self.max_request_bytes
        max_bulk = self.max_bulk
        need = 0
        need_line = False
        while pos < end:
            if not left:
                if buf[pos] != _STAR:
                    # An inline command: one line.
                    nl = find(b"\n", pos)
                    if nl < 0:
                        if end - pos > MAX_LINE:
                            self._fail("Protocol error: too big inline request")
                            return out
                        need = end - pos + 1
                        need_line = True
                        break
                    if nl - pos > MAX_LINE:
                        self._fail("Protocol error: too big inline request")
                        return out
                    line = buf[pos : nl - 1] if nl > pos and buf[nl - 1] == 13 else buf[pos:nl]
                    pos = nl + 1
                    argv = split_inline(line)
                    if argv is None:
                        self._fail("Protocol error: unbalanced quotes in request")
                        return out
                    if argv:
                        out.append(argv)
                    continue
                nl = find(_CRLF, pos)
                if nl < 0:
                    if end - pos > MAX_LINE:
                        self._fail("Protocol error: too big mbulk count string")
                        return out
                    need = end - pos + 1
                    need_line = True
                    break
                if nl - pos > MAX_LINE:
                    self._fail("Protocol error: too big mbulk count string")
                    return out
                count = _SMALL.get(buf[pos + 1 : nl])
                if count is None:
                    count = parse_int(buf[pos + 1 : nl])
                    if count is None or count > MAX_ARGS:
                        self._fail("Protocol error: invalid multibulk length")
                        return out
                cmd_bytes = nl + 2 - pos
                pos = nl + 2
                if count <= 0:
                    continue
                left = count
                args = []
            # Arguments of a multibulk command: "$<len>\r\n<bytes>\r\n" each.
            while left:
                if pos >= end:
                    break
                if buf[pos] != _DOLLAR:
                    got = buf[pos]
                    shown = chr(got) if 32 <= got < 127 else f"\\x{got:02x}"
                    self._fail(f"Protocol error: expected '$', got '{shown}'")
                    return out
                nl = find(_CRLF, pos)
                if nl < 0:
                    if end - pos > MAX_LINE:
                        self._fail("Protocol error: too big bulk count string")
                        return out
                    need = end - pos + 1
                    need_line = True
                    break
                size = _SMALL.get(buf[pos + 1 : nl])  # the common case, a dict lookup
                if size is None or size > max_bulk:
                    if nl - pos > MAX_LINE:
                        self._fail("Protocol error: too big bulk count string")
                        return out
                    size = parse_int(buf[pos + 1 : nl])
                    if size is None or size < 0 or size > max_bulk:
                        self._fail("Protocol error: invalid bulk length")
                        return out
                stop = nl + 2 + size
                total = cmd_bytes + (stop + 2 - pos)
                if total > limit:
                    self._fail(f"Protocol error: request of {total}+ bytes exceeds the limit of {limit} bytes")
                    return out
                if stop + 2 > end:
                    need = stop + 2 - pos
                    break
                if buf[stop] != 13 or buf[stop + 1] != 10:
                    self._fail("Protocol error: expected '\\r\\n' after a bulk string")
                    return out
                args.append(buf[nl + 2 : stop])
                cmd_bytes = total
                pos = stop + 2
                left -= 1
            if left:
                break
            out.append(args)
            args = []
            cmd_bytes = 0
        self._args = args
        self._left = left
        self._cmd_bytes = cmd_bytes
        if pos < end:
            rest = buf[pos:]
            self._chunks = [rest]
            self._have = len(rest)
            self._need = need
            self._need_line = need_line
        return out


# --- the hiredis accelerator ------------------------------------------------------------

HIREDIS_AVAILABLE = _hiredis is not None

#: An aggregate header with a count of 7+ digits: hiredis would allocate a list that big
#: before a single element arrived, so such input goes to the pure parser (which refuses
#: more than MAX_ARGS). Large bulk strings still arriving go there too (see ``_big_bulk``).
_BIG_ARRAY = re.compile(rb"\*[0-9]{7}")  # a literal first byte: a fast scan
_BIG_OTHER = re.compile(rb"[~>%|][0-9]{7}")  # slow: only run where those bytes occur


def _big_aggregate(chunk: bytes) -> bool:
    """An aggregate header of 7+ digits in ``chunk``: hiredis allocates the list as it
    reads the header, so this is checked before hiredis is fed."""
    if _BIG_ARRAY.search(chunk) is not None:
        return True
    if b"~" in chunk or b">" in chunk or b"%" in chunk or b"|" in chunk:
        return _BIG_OTHER.search(chunk) is not None
    return False


def _big_count(chunk: bytes, big_bulk: re.Pattern[bytes]) -> bool:
    return _big_aggregate(chunk) or big_bulk.search(chunk) is not None

#: Encoded sizes of ``*<n>\r\n`` and of a bulk string of ``n`` bytes (``$<n>\r\n...\r\n``), for small n.
_ARRAY_HEADER = [len(b"*%d\r\n" % i) for i in range(10_000)]
_BULK = [len(b"$%d\r\n" % i) + 2 + i for i in range(10_000)]


def _command_size(cmd: list[bytes], buf: bytes, pos: int) -> int | None:
    """The size of ``cmd`` as a canonical multibulk of bulk strings if ``buf`` holds it so
    at ``pos`` (its ``*``, and each element's ``$`` where that puts it), else None: hiredis
    also reads RESP3 aggregates as lists and ``+``, ``(`` and ``=`` elements as bytes, none
    of which a command may hold."""
    n = len(cmd)
    if not n or buf[pos : pos + 1] != b"*":
        return None
    end = pos + (_ARRAY_HEADER[n] if n < 10_000 else len(b"*%d\r\n" % n))
    for arg in cmd:
        if type(arg) is not bytes or buf[end : end + 1] != b"$":
            return None
        m = len(arg)
        end += _BULK[m] if m < 10_000 else len(b"$%d\r\n" % m) + 2 + m
    return end - pos


class HiredisRespParser:
    """:class:`RespParser`'s interface and results, with hiredis's C reader doing the work
    for multibulk requests (what client libraries send); about 5x less parsing time.

    hiredis parses replies, a superset of requests, so this class keeps the stream's
    command boundaries itself (the canonical encoded size of each command it returns)
    and hands the bytes since the last boundary to the pure :class:`RespParser`, for
    good, as soon as anything is not a plain multibulk command: an inline command, a
    non-bulk element, an array of 1,000,000+ elements, a bulk string of 1 MB or more
    still arriving (or of as many digits as ``max_request_bytes``), hiredis raising, or
    more than ``max_request_bytes`` pending. On input :class:`RespParser` accepts the two return
    the same commands; on malformed input the protocol error may differ or come later
    (hiredis does not check the ``\r\n`` after a bulk string). The pure parser is the
    reference and the one fuzzed for errors; this one is fuzzed against it.
    """

    __slots__ = (
        "_big_bulk", "_cap", "_emitted", "_pending", "_pending_args", "_pure", "_reader", "_retained", "_tail", "error",
        "max_bulk", "max_request_bytes",
    )

    def __init__(self, max_request_bytes: int = 512 << 20, max_bulk: int = 512 << 20) -> None:
        if _hiredis is None:
            raise RuntimeError("hiredis is not installed")
        self.max_request_bytes = max_request_bytes
        self.max_bulk = max_bulk
        self.error: str | None = None
        self._cap = max_request_bytes + MAX_LINE
        # Bulk lengths with as many digits as the limits (capped at 1 MB) go to the pure
        # parser, which refuses one over a limit before buffering it.
        digits = min(7, len(str(min(max_request_bytes, max_bulk))))
        self._big_bulk = re.compile(rb"\$[0-9]{%d}" % digits)
        self._reader: object | None = None  # hiredis.Reader while accelerated
        self._pure: RespParser | None = None  # the pure parser while not
        self._retained: list[bytes] = []  # chunks since the last command boundary
        self._pending = 0  # bytes of them not returned as commands yet
        self._pending_args = 0  # '$' among those bytes (arguments hiredis may hold as objects)
        self._emitted = 0  # commands returned since that boundary
        self._tail = b""  # the stream's last 16 bytes (a count split across reads)

    @property
    def buffered(self) -> int:
        """As :attr:`RespParser.buffered`: the pending bytes (kept here and in hiredis's
        reader), and an argument object per ``$`` among them (hiredis builds each
        argument of a partial command as it completes; a ``$`` inside a bulk string is
        counted too, which errs on the safe side)."""
        if self._pure is not None:
            return self._pure.buffered
        return 2 * self._pending + ARG_COST * self._pending_args

    @property
    def accelerated(self) -> bool:
        return self._pure is None

    def feed(self, data: bytes) -> list[list[bytes]]:
        if self.error is not None or not data:
            return []
        try:
            return self._feed(data)
        except Exception as exc:  # noqa: BLE001 - a bug must cost a protocol error, never a crash
            self.error = f"Protocol error: {type(exc).__name__}"
            self._pure = self._reader = None
            self._retained = []
            return []

    def _feed(self, data: bytes) -> list[list[bytes]]:
        pure = self._pure
        if pure is not None:
            if not (pure.at_boundary and data[0] == _STAR):
                out = pure.feed(data)
                self.error = pure.error
                return out
            self._pure = None  # back between commands, and multibulk: accelerate again
        elif self._pending == 0 and data[0] != _STAR:
            return self._to_pure(data)
        base = self._pending
        self._retained.append(data)
        self._pending = base + len(data)
        big = self._big_bulk
        if _big_aggregate(data) or (self._tail and _big_count(self._tail + data[:16], big)):
            return self._fallback()
        reader = self._reader
        if reader is None:
            reader = self._reader = _hiredis.Reader()
        reader.feed(data)
        try:
            out: list[list[bytes]] = list(iter(reader.gets, False))
        except Exception:  # noqa: BLE001 - hiredis's protocol errors, MemoryError: let the pure parser judge
            return self._fallback()
        # Where each command ends in the stream, from its canonical size, checking that it
        # is one (_command_size): hiredis parses replies, a superset of requests.
        bulk = _BULK
        off = -base  # where the next command starts, relative to data
        try:
            for cmd in out:
                if type(cmd) is not list:
                    return self._fallback()
                if off >= 0:
                    if len(cmd) == 3:  # SET key value (unrolled: most of what a cache is sent)
                        a, b, c = cmd
                        if type(a) is bytes and type(b) is bytes and type(c) is bytes:
                            try:
                                p = off + 4
                                q = p + bulk[len(a)]
                                r = q + bulk[len(b)]
                                if data[off] == _STAR and data[p] == _DOLLAR and data[q] == _DOLLAR and data[r] == _DOLLAR:
                                    off = r + bulk[len(c)]
                                    continue
                            except IndexError:  # 10,000 bytes or more, or malformed: the long way
                                pass
                    elif len(cmd) == 2:  # GET key
                        a, b = cmd
                        if type(a) is bytes and type(b) is bytes:
                            try:
                                p = off + 4
                                q = p + bulk[len(a)]
                                if data[off] == _STAR and data[p] == _DOLLAR and data[q] == _DOLLAR:
                                    off = q + bulk[len(b)]
                                    continue
                            except IndexError:
                                pass
                    size = _command_size(cmd, data, off)
                else:  # it began in an earlier read: checked in the stream since the boundary
                    stream = b"".join(self._retained)
                    size = _command_size(cmd, stream, len(stream) - len(data) + off)
                if size is None:
                    return self._fallback()
                off += size
        except IndexError:  # an offset past the read (malformed input): let the pure parser judge
            return self._fallback()
        pending = len(data) - off
        if pending < 0 or (pending and off >= 0 and data[off] != _STAR) or pending > self._cap:
            return self._fallback()
        if pending and big.search(data, max(off, 0)) is not None:
            # A bulk length of 7+ digits in the command still arriving (hiredis holds a bulk
            # string until it is whole; one whole in this read was no risk).
            return self._fallback()
        self._pending = pending
        if pending == 0:
            self._retained = []
            self._emitted = 0
            self._tail = b""
            self._pending_args = 0
        else:
            if off >= 0:  # the partial command began in this read
                self._pending_args = data.count(b"$", off)
            else:
                self._pending_args += data.count(b"$")
            self._emitted += len(out)
            self._tail = (self._tail + data[-16:])[-16:] if len(data) < 16 else data[-16:]
        return out

    def _to_pure(self, data: bytes) -> list[list[bytes]]:
        pure = self._pure = RespParser(self.max_request_bytes, self.max_bulk)
        self._reader = None
        out = pure.feed(data)
        self.error = pure.error
        return out

    def _fallback(self) -> list[list[bytes]]:
        """Re-parse everything since the last boundary with the pure parser, which keeps
        the connection from now on; return what it finds beyond the commands returned
        before this read (the reference decides this read's commands: hiredis's are not
        returned, so input hiredis took and the pure parser refuses runs nothing)."""
        already = self._emitted
        stream = b"".join(self._retained)
        self._retained = []
        self._pending = self._emitted = self._pending_args = 0
        self._tail = b""
        rest = self._to_pure(stream)
        return rest[already:]


def new_parser(max_request_bytes: int = 512 << 20, max_bulk: int = 512 << 20) -> RespParser | HiredisRespParser:
    """The parser a connection uses: hiredis-accelerated when hiredis is installed, unless
    ``ACTORCACHE_RESP_PARSER=python`` asks for the pure one (to compare them)."""
    if HIREDIS_AVAILABLE and os.environ.get("ACTORCACHE_RESP_PARSER", "").lower() not in ("python", "pure"):
        return HiredisRespParser(max_request_bytes, max_bulk)
    return RespParser(max_request_bytes, max_bulk)


# --- encoding ---------------------------------------------------------------------------

OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
NIL2 = b"$-1\r\n"
NIL3 = b"_\r\n"


def null(proto: int) -> bytes:
    """A nil reply: ``$-1`` in RESP2, ``_`` in RESP3."""
    return NIL3 if proto == 3 else NIL2


def simple(text: str) -> bytes:
    return b"+" + _one_line(text).encode("utf-8", "replace") + _CRLF


def error(message: str) -> bytes:
    """An error reply; ``message`` starts with its code (``ERR ...``, ``WRONGTYPE ...``)."""
    return b"-" + _one_line(message).encode("utf-8", "replace") + _CRLF


def integer(value: int) -> bytes:
    return b":%d\r\n" % value


def bulk(data: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(data), data)


def array(items: Sequence[bytes]) -> bytes:
    """An array of already encoded replies."""
    return b"*%d\r\n" % len(items) + b"".join(items)


def map_reply(pairs: Sequence[tuple[bytes, bytes]], proto: int) -> bytes:
    """A map of already encoded keys and values: ``%`` in RESP3, a flat array in RESP2."""
    body = b"".join(k + v for k, v in pairs)
    if proto == 3:
        return b"%%%d\r\n" % len(pairs) + body
    return b"*%d\r\n" % (2 * len(pairs)) + body


def encode_command(args: Iterable[bytes]) -> bytes:
    """A multibulk request, as clients send it."""
    items = list(args)
    return b"*%d\r\n" % len(items) + b"".join(bulk(a) for a in items)


def _one_line(text: str) -> str:
    # Status and error replies are single lines (Redis maps \r and \n to spaces too).
    if "\r" in text or "\n" in text:
        return text.replace("\r", " ").replace("\n", " ")
    return text
