"""RESP inline commands, what ``telnet``/``nc`` users type: a line split into arguments as
Redis's ``sdssplitargs`` splits them (double quotes with ``\\n``/``\\xHH`` escapes, single
quotes). Sans-IO; :class:`runtime.resp.RespParser` calls it for every line that does not
start a multibulk request."""

from __future__ import annotations

import re

__all__ = ["split_inline"]

_SPECIAL = re.compile(rb"[\"'\x00\x0b\x0c]")
_SPACE = b" \n\r\t\x0b\x0c"  # C isspace(): skipped between arguments
_END = b" \n\r\t"  # what ends an unquoted argument (and \0, handled by truncation)
_ESCAPES = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_HEX = frozenset(b"0123456789abcdefABCDEF")


def split_inline(line: bytes) -> list[bytes] | None:
    """Arguments of an inline command as Redis's ``sdssplitargs`` splits them; None for
    unbalanced quotes (or a closing quote not followed by a space)."""
    if _SPECIAL.search(line) is None:
        return line.split()
    nul = line.find(b"\x00")
    if nul >= 0:
        line = line[:nul]  # C strings end there
    args: list[bytes] = []
    n = len(line)
    i = 0
    while True:
        while i < n and line[i] in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        inq = insq = False
        while True:
            c = line[i] if i < n else None
            if inq:
                if c is None:
                    return None
                if c == 92 and i + 3 < n and line[i + 1] == 120 and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    current.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 92 and i + 1 < n:
                    i += 1
                    current.append(_ESCAPES.get(line[i], line[i]))
                elif c == 34:  # closing "
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                else:
                    current.append(c)
            elif insq:
                if c is None:
                    return None
                if c == 92 and i + 1 < n and line[i + 1] == 39:
                    i += 1
                    current.append(39)
                elif c == 39:  # closing '
                    if i + 1 < n and line[i + 1] not in _SPACE:
                        return None
                    i += 1
                    break
                else:
                    current.append(c)
            else:
                if c is None or c in _END:
                    break
                if c == 34:
                    inq = True
                elif c == 39:
                    insq = True
                else:
                    current.append(c)
            i += 1
        args.append(bytes(current))
