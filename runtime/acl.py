"""Client authentication: the users a node knows, their passwords, and what each may send.

Built once at start-up from ``--requirepass`` / ``--requirepass-file`` (the ``default``
user gets that password and every permission) or ``--aclfile`` (a small subset of
Redis's ACL file syntax, one user per line, below); never changed afterwards, so the
connections on the loop thread read it without locks.

The ACL file subset (anything else on a ``user`` line is an :class:`AclFileError` naming
the line, and the node does not start)::

    user NAME [RULE ...]          one line per user; a user starts off, with no
                                  password, no keys and no categories
    on | off                      enabled or disabled (a disabled user cannot authenticate)
    >PASSWORD                     add a password (a user may have several)
    #SHA256HEX                    add a password by its SHA-256 (64 hex digits)
    nopass                        any password authenticates this user; resetpass: none
    ~PATTERN                      keys matching this Redis glob (* ? [abc] [^a] [a-z] \\x);
                                  allkeys is ~*, resetkeys drops the patterns
    +@read +@write +@admin +@all  categories (allcommands is +@all); -@CAT and
                                  nocommands (-@all) take them away again

Blank lines and lines starting with ``#`` are skipped. Unlike Redis, a file that does not
name ``default`` leaves the default user *off*: connections must authenticate.

Categories are those of :mod:`actors.protocol.kinds` (``@read``: get, mget, ttl, locate;
``@write``: set, delete, mset, expire, persist, incr; ``@admin``: stats, inspect,
remove_node, join); ``ping`` and ``auth`` need none. Over RESP a command's category is
its table row's (:mod:`runtime.resp_commands`).

Invariants (why): passwords are kept only as SHA-256 digests and compared with
:func:`hmac.compare_digest` against every digest of the user (an unknown user costs the
same comparison), so timing does not tell which part was wrong; no password, digest or password-bearing line
is ever in a log line, an exception message or a ``repr``. How connections use this (the
``auth`` request, protected mode, the node's options) is :mod:`runtime.client_auth`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.protocol.errors import ErrorCode
from actors.protocol.txn_messages import Multi
from actors.protocol.kinds import ADMIN, CATEGORIES, KINDS, READ, WRITE, wire_name
from actors.protocol.messages import ErrorReply
from actors.store.scan import glob_bytes, signed_byte

__all__ = [
    "NOAUTH_MESSAGE",
    "NOPERM_KEY_MESSAGE",
    "WRONGPASS_MESSAGE",
    "Acl",
    "AclFileError",
    "User",
    "glob_matcher",
    "noperm_command_message",
]

#: Redis 7.0's texts, word for word (RESP adds the code in front: ``-NOAUTH ...``).
NOAUTH_MESSAGE = "Authentication required."
WRONGPASS_MESSAGE = "invalid username-password pair or user is disabled."
NOPERM_KEY_MESSAGE = "this user has no permissions to access one of the keys used as arguments"

DEFAULT_USER = "default"

_ALL = frozenset(CATEGORIES)
_CATEGORY_NAMES = {"@read": READ, "@write": WRITE, "@admin": ADMIN}
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_GLOB_CHARS = re.compile(r"[*?\[\\]")
#: Compared against when the user is unknown, so that costs what a known one does.
_NO_DIGEST = hashlib.sha256(b"\x00unknown user").digest()


def noperm_command_message(name: str) -> str:
    return f"this user has no permissions to run the '{name}' command"


def _digest(password: bytes) -> bytes:
    return hashlib.sha256(password).digest()


def _secret_bytes(password: str | bytes) -> bytes:
    if type(password) is bytes:
        return password
    return str(password).encode("utf-8", "surrogatepass")  # a JSON string may hold lone surrogates


class AclFileError(ValueError):
    """A line of an ACL file this node does not understand. The message names the file
    and the line number and says what is wrong, but never repeats a password."""

    def __init__(self, line: int, message: str, path: str = "") -> None:
        where = f"{path}:{line}" if path else f"line {line}"
        super().__init__(f"{where}: {message}")
        self.line = line
        self.path = path


def _byte_range(a: str, b: str) -> str:
    """A class range between two bytes as Redis compares them (C's signed ``char``: a
    range from ``?`` to 0xc3 holds 0xc3..0xff and 0x00..``?``)."""
    lo, hi = sorted((signed_byte(a), signed_byte(b)))
    if lo >= 0 or hi < 0:
        return f"{re.escape(chr(lo % 256))}-{re.escape(chr(hi % 256))}"
    return f"{re.escape(chr(lo % 256))}-\xff\x00-{re.escape(chr(hi))}"


def _glob_tokens(pattern: str) -> list[str | None]:
    """Redis's glob (``stringmatchlen``) as tokens: None for ``*``, else a regular
    expression for exactly one character (``?``, ``[abc]``, ``[^abc]``, ``[a-z]``, ``\\x``,
    a literal; an unterminated ``[`` runs to the end)."""
    out: list[str | None] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(None)
        elif c == "?":
            out.append(".")
        elif c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            negate = i < n and pattern[i] == "^"
            if negate:
                i += 1
            parts: list[str] = []
            while i < n and pattern[i] != "]":
                if pattern[i] == "\\" and i + 1 < n:
                    parts.append(re.escape(pattern[i + 1]))
                    i += 2
                elif i + 2 < n and pattern[i + 1] == "-":  # (as Redis: "[a-]" ranges up to "]")
                    parts.append(_byte_range(pattern[i], pattern[i + 2]))
                    i += 3
                else:
                    parts.append(re.escape(pattern[i]))
                    i += 1
            i += 1  # the closing ]
            if parts:
                out.append(f"[{'^' if negate else ''}{''.join(parts)}]")
            else:
                out.append("." if negate else "(?!)")  # [^] is any one character, [] none
        else:
            out.append(re.escape(c))
    return out


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """The whole pattern as one regular expression: the reference :class:`_Glob` is
    tested against (matching with it can backtrack for long on a long key)."""
    return re.compile("".join(".*" if t is None else t for t in _glob_tokens(pattern)), re.DOTALL)


def _fixed(tokens: list[str | None]) -> re.Pattern[str] | None:
    return re.compile("".join(t for t in tokens if t is not None), re.DOTALL) if tokens else None


class _Glob:
    """One key pattern, matched without a backtracking regex: the star-free segments
    between its stars are fixed-width; the first must match at the start, the last at
    the end, and each one between at its leftmost place after the one before (the
    leftmost is never worse). A key so costs at most its length times the pattern's, at
    C speed, however many stars (``*a*a*a*a*b`` against a 1 MB key stays fast: the
    regex for it would backtrack for hours)."""

    __slots__ = ("head", "head_width", "middle", "star", "tail", "tail_width")

    def __init__(self, pattern: str) -> None:
        if not pattern.isascii():  # Redis matches bytes: "?" is one byte of "é"
            pattern = glob_bytes(pattern)
        segments: list[list[str | None]] = [[]]
        for token in _glob_tokens(pattern):
            if token is None:
                segments.append([])
            else:
                segments[-1].append(token)
        self.star = len(segments) > 1
        self.head, self.head_width = _fixed(segments[0]), len(segments[0])
        last = segments[-1] if self.star else []
        self.tail, self.tail_width = _fixed(last), len(last)
        self.middle = tuple(_fixed(seg) for seg in segments[1:-1] if seg)

    def __call__(self, key: str) -> bool:
        if not key.isascii():
            key = glob_bytes(key)
        head = self.head
        if not self.star:
            return head.fullmatch(key) is not None if head is not None else not key
        end = len(key) - self.tail_width
        if end < self.head_width:
            return False
        if head is not None and head.match(key) is None:
            return False
        if self.tail is not None and self.tail.fullmatch(key, end) is None:
            return False
        pos = self.head_width
        for segment in self.middle:
            found = segment.search(key, pos, end)  # type: ignore[union-attr]
            if found is None:
                return False
            pos = found.end()
        return True


def glob_matcher(pattern: str) -> Callable[[str], bool]:
    """Whether a name matches Redis glob ``pattern`` (as ``MATCH`` and key patterns do)."""
    return _Glob(pattern)


@dataclass(frozen=True, slots=True)
class User:
    """One user: enabled or not, its password digests (never shown), its categories and
    key patterns (None: every key)."""

    name: str
    enabled: bool = False
    nopass: bool = False
    digests: tuple[bytes, ...] = field(default=(), repr=False)
    categories: frozenset[str] = frozenset()
    patterns: tuple[str, ...] | None = ()
    #: The patterns compiled: literal prefixes (``app:*``), literal keys, the rest as globs.
    _prefixes: tuple[str, ...] = field(default=(), repr=False, compare=False)
    _exact: frozenset[str] = field(default=frozenset(), repr=False, compare=False)
    _globs: tuple[_Glob, ...] = field(default=(), repr=False, compare=False)
    #: Every category and every key: nothing to check per request.
    all_permitted: bool = field(default=False, compare=False)

    @classmethod
    def build(
        cls,
        name: str,
        *,
        enabled: bool,
        nopass: bool = False,
        digests: Iterable[bytes] = (),
        categories: Iterable[str] = (),
        patterns: Sequence[str] | None = None,
    ) -> User:
        cats = frozenset(categories)
        pats = None if patterns is None or "*" in patterns else tuple(dict.fromkeys(patterns))
        prefixes, exact, others = [], [], []
        for pattern in pats or ():
            if not _GLOB_CHARS.search(pattern):
                exact.append(pattern)
            elif pattern.endswith("*") and not _GLOB_CHARS.search(pattern[:-1]):
                prefixes.append(pattern[:-1])
            else:
                others.append(_Glob(pattern))
        return cls(
            name, enabled, nopass, tuple(digests), cats, pats, tuple(prefixes), frozenset(exact), tuple(others),
            cats == _ALL and pats is None,
        )

    def password_matches(self, password: bytes) -> bool:
        """Constant time in the password: every digest is compared, whatever matched."""
        given = _digest(password)
        matched = False
        for digest in self.digests or (_NO_DIGEST,):
            matched |= hmac.compare_digest(given, digest)
        return (matched and bool(self.digests)) or self.nopass

    def may_access(self, key: str) -> bool:
        if self.patterns is None or key.startswith(self._prefixes) or key in self._exact:
            return True
        for match in self._globs:
            if match(key):
                return True
        return False

    def refusal(self, request: Any) -> ErrorReply | None:
        """The ``noperm`` reply for a request this user may not send, else None (a
        transaction: the first of its requests refused)."""
        if type(request) is Multi:
            for sub in request.requests:
                refused = self.refusal(sub)
                if refused is not None:
                    return ErrorReply(refused.code, refused.message, request.rid)
            return None
        kind = KINDS.get(type(request))
        if kind is None or kind.category is None:
            return None
        if kind.category not in self.categories:
            return ErrorReply(ErrorCode.NOPERM, noperm_command_message(wire_name(request)), request.rid)
        if self.patterns is not None:
            for key in kind.keys(request):
                if not self.may_access(key):
                    return ErrorReply(ErrorCode.NOPERM, NOPERM_KEY_MESSAGE, request.rid)
        return None


#: Stands in for an unknown user, so authenticating one costs what a known one does.
_NOBODY = User.build("", enabled=False)


class Acl:
    """The users of one node (see the module docstring for the file syntax)."""

    def __init__(self, users: Iterable[User]) -> None:
        self.users: dict[str, User] = {user.name: user for user in users}
        if DEFAULT_USER not in self.users:
            self.users[DEFAULT_USER] = User.build(DEFAULT_USER, enabled=False)

    def __repr__(self) -> str:
        return f"<Acl users={sorted(self.users)}>"

    @classmethod
    def requirepass(cls, password: str | bytes) -> Acl:
        """``--requirepass``: the default user, with this password and every permission."""
        if not password:
            raise ValueError("the password is empty")
        digest = _digest(_secret_bytes(password))
        return cls([User.build(DEFAULT_USER, enabled=True, digests=[digest], categories=_ALL)])

    @classmethod
    def from_file(cls, path: str | Path) -> Acl:
        """Parse ``--aclfile``; :class:`AclFileError` for a line it does not understand,
        :class:`OSError` when it cannot be read."""
        raw = Path(path).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise AclFileError(line, "not valid UTF-8", str(path)) from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, path: str = "") -> Acl:
        users: dict[str, User] = {}
        for number, line in enumerate(text.split("\n"), 1):
            tokens = line.split()
            if not tokens or tokens[0].startswith("#"):
                continue
            try:
                user = _parse_user(tokens)
            except ValueError as exc:
                raise AclFileError(number, str(exc), path) from None
            if user.name in users:
                raise AclFileError(number, f"user {user.name!r} is defined twice", path)
            users[user.name] = user
        return cls(users.values())

    @property
    def default_open(self) -> bool:
        """The default user is on and needs no password: connections start authenticated
        (and protected mode applies, as in Redis)."""
        default = self.users[DEFAULT_USER]
        return default.enabled and default.nopass

    def initial_user(self) -> User | None:
        """The user a new connection is, before any ``auth`` (None: must authenticate)."""
        default = self.users[DEFAULT_USER]
        return default if default.enabled and default.nopass else None

    def authenticate(self, name: str | None, password: str | bytes) -> User | None:
        """The user ``name`` (None: default) if it is on and ``password`` is one of its
        own; None otherwise (the caller answers ``wrongpass``, whichever was wrong)."""
        user = self.users.get(DEFAULT_USER if name is None else name)
        secret = _secret_bytes(password)
        if user is None:
            _NOBODY.password_matches(secret)  # the same work as a known user's
            return None
        ok = user.password_matches(secret)
        return user if ok and user.enabled else None


def _parse_user(tokens: list[str]) -> User:
    if tokens[0] != "user":
        raise ValueError("a line must start with 'user' (only 'user NAME RULE ...' lines are supported)")
    if len(tokens) < 2:
        raise ValueError("'user' needs a name")
    name = tokens[1]
    if name[0] in "><#~+-%&@":
        raise ValueError("a user name may not start with a rule character")
    enabled = nopass = False
    digests: list[bytes] = []
    categories: set[str] = set()
    patterns: list[str] = []
    for index, rule in enumerate(tokens[2:], 3):
        head = rule[0]
        lower = rule.lower()
        if head == ">":
            if len(rule) == 1:
                raise ValueError(f"rule {index}: an empty password ('>' alone)")
            digests.append(_digest(_secret_bytes(rule[1:])))
            nopass = False
        elif head == "#":
            if not _HEX64.fullmatch(rule[1:]):
                raise ValueError(f"rule {index}: a '#' password hash must be 64 hexadecimal digits (SHA-256)")
            digests.append(bytes.fromhex(rule[1:]))
            nopass = False
        elif head == "<":
            raise ValueError(f"rule {index}: removing a password ('<') is not supported in a file")
        elif head == "~":
            if len(rule) == 1:
                raise ValueError(f"rule {index}: '~' needs a key pattern")
            patterns.append(rule[1:])
        elif lower in ("on", "off"):
            enabled = lower == "on"
        elif lower == "nopass":
            nopass, digests = True, []
        elif lower == "resetpass":
            nopass, digests = False, []
        elif lower == "allkeys":
            patterns.append("*")
        elif lower == "resetkeys":
            patterns = []
        elif lower in ("allcommands", "+@all"):
            categories |= _ALL
        elif lower in ("nocommands", "-@all"):
            categories.clear()
        elif head in "+-" and lower[1:] in _CATEGORY_NAMES:
            (categories.add if head == "+" else categories.discard)(_CATEGORY_NAMES[lower[1:]])
        elif head in "+-" and lower[1:2] == "@":
            raise ValueError(
                f"rule {index}: unknown category {rule[1:]!r}; supported: @read, @write, @admin, @all"
            )
        elif head in "+-":
            raise ValueError(
                f"rule {index}: single commands are not supported, only the categories "
                "+@read, +@write, +@admin, +@all"
            )
        elif head in "&%" or lower in ("allchannels", "resetchannels", "reset"):
            raise ValueError(f"rule {index}: {_shown(rule)!r} is not supported (no channels or selectors here)")
        else:
            raise ValueError(f"rule {index}: unknown rule {_shown(rule)!r}")
    return User.build(
        name, enabled=enabled, nopass=nopass, digests=digests, categories=categories,
        patterns=None if "*" in patterns else patterns,
    )


def _shown(rule: str) -> str:
    """A rule as an error may quote it (rules that carry a password never reach here)."""
    return rule if len(rule) <= 40 else rule[:40] + "..."
