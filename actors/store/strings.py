"""Redis's string semantics the read-modify-writes need: a value as the bytes Redis would
hold, integer parsing as ``string2ll``, and INCRBYFLOAT's long double arithmetic.

Redis 7.0 computes INCRBYFLOAT in the C ``long double`` of x86-64 (80-bit extended: a
64-bit significand) and prints the result with ``%.17Lf`` less trailing zeros. Python's
float is a 53-bit double, so ``10.5 + 0.1`` would print ``10.59999999999999964``
where Redis prints ``10.6``. :func:`incr_by_float` does the arithmetic exactly with
fractions and rounds to a 64-bit significand after each step (parse, add), which is what
the FPU does; the printing is exact decimal rounding, as glibc's. Pure functions, no clock.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Any

__all__ = ["as_bytes", "as_int", "incr_by_float", "parse_long_double"]

_MIN, _MAX = -(1 << 63), (1 << 63) - 1
_INT = re.compile(rb"(0|-?[1-9][0-9]*)\Z")
#: strtold's decimal syntax (hex floats are handled apart): sign, digits, point, exponent.
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\Z")
_INF = re.compile(r"[+-]?(inf|infinity)\Z", re.IGNORECASE)
#: Redis's MAX_LONG_DOUBLE_CHARS: longer text is not a number.
_MAX_CHARS = 5 * 1024
#: x86-64 long double: 64-bit significand, exponents down to the subnormals.
_BITS = 64
_MIN_EXP = -16445
_MAX_EXP = 16384
#: Decimal exponents beyond which a number is surely out of range (over ~1.19e4932, or
#: under half the smallest subnormal, ~3.6e-4951): a margin of one either side.
_MIN_ADJUSTED, _MAX_ADJUSTED = -4953, 4933


def as_bytes(value: Any) -> bytes:
    """The bytes a stored value reads as over RESP: bytes as they are, text as UTF-8,
    an integer in decimal, anything else (a JSON client's) as its JSON text."""
    t = type(value)
    if t is bytes:
        return value
    if t is str:
        return value.encode("utf-8", "surrogatepass")
    if t is int:
        return b"%d" % value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8", "surrogatepass")


def as_int(value: Any) -> int | None:
    """The stored value as Redis's ``string2ll`` reads it (a signed 64-bit decimal, no
    sign ``+``, no leading zeros, not ``-0``), or None."""
    if type(value) is int:
        return value if _MIN <= value <= _MAX else None
    if type(value) is str:
        if not value.isascii():
            return None
        value = value.encode("ascii")
    if type(value) is bytes and len(value) <= 20 and _INT.match(value):
        number = int(value)
        return number if _MIN <= number <= _MAX else None
    return None


def _round(exact: Fraction) -> Fraction | None:
    """``exact`` rounded to the nearest long double (ties to even); None past its range."""
    if exact == 0:
        return exact
    sign = -1 if exact < 0 else 1
    x = abs(exact)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1
    # x is in [2**e, 2**(e+1)); keep _BITS significant bits (fewer among the subnormals,
    # whose quantum is 2**_MIN_EXP).
    shift = min(_BITS - 1 - e, -_MIN_EXP)
    scaled = x * (Fraction(2) ** shift)
    q, r = divmod(scaled.numerator, scaled.denominator)
    twice = 2 * r
    if twice > scaled.denominator or (twice == scaled.denominator and q & 1):
        q += 1
    result = Fraction(q) / (Fraction(2) ** shift)
    if result >= Fraction(2) ** _MAX_EXP:
        return None
    return sign * result


def parse_long_double(raw: bytes | str) -> Fraction | None:
    """``raw`` as Redis's ``string2ld`` reads it (the long double nearest, exactly), or
    None: not a number, NaN, out of range, or empty/too long. Infinity is an error too
    (every caller refuses it)."""
    text = raw.decode("ascii", "replace") if type(raw) is bytes else str(raw)
    if not text or len(text) >= _MAX_CHARS or text[0].isspace():
        return None
    match = _DECIMAL.match(text)
    if match:
        if not match.group(1).strip("0."):
            return Fraction(0)  # zero whatever its exponent (0e-99999999999999999999 too)
        try:
            number = Decimal(text)
        except (ValueError, ArithmeticError):
            return None
        # Out of the long double's range by its decimal exponent alone: decided before
        # the exact value is built (``1e400007`` would be a 1.3-million-bit integer).
        if not number.is_zero() and not _MIN_ADJUSTED <= number.adjusted() <= _MAX_ADJUSTED:
            return None
        exact = Fraction(number)
    elif text.lower().lstrip("+-").startswith("0x"):
        try:
            exact = Fraction(float.fromhex(text))
        except (ValueError, OverflowError):
            return None
    else:
        return None
    rounded = _round(exact)
    if rounded is None or (rounded == 0 and exact != 0):
        return None  # ERANGE: overflow, or an underflow to zero
    return rounded


def _format(value: Fraction) -> str:
    """``%.17Lf`` of ``value`` with trailing zeros (and a bare point) removed."""
    with localcontext() as ctx:
        ctx.prec = 6000
        exact = Decimal(value.numerator) / Decimal(value.denominator)
        text = f"{exact.quantize(Decimal(1).scaleb(-17), rounding=ROUND_HALF_EVEN):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text == "-0":
        text = "0" if value == 0 else text
    return text


def _number(raw: bytes | str) -> Fraction | float | None:
    """A long double as ``string2ld`` reads it, infinity included (``math.inf`` signed)."""
    text = raw.decode("ascii", "replace") if type(raw) is bytes else str(raw)
    if _INF.match(text):
        return float("-inf") if text.startswith("-") else float("inf")
    return parse_long_double(text)


def incr_by_float(current: Any, by: str) -> tuple[str | None, str | None]:
    """``(new value as text, None)``, or ``(None, error message)`` in Redis's words and
    order (the stored value is checked before the increment)."""
    base = _number(as_bytes(current)) if current is not None else Fraction(0)
    if base is None:
        return None, "value is not a valid float"
    increment = _number(by)
    if increment is None:
        return None, "value is not a valid float"
    if type(base) is float or type(increment) is float:
        return None, "increment would produce NaN or Infinity"
    total = _round(base + increment)  # type: ignore[operator]
    if total is None:
        return None, "increment would produce NaN or Infinity"
    return _format(total), None
