"""runtime/acl.py: the ACL file subset, password checks, permissions and the per-connection
gate (issue 13, item 1). The parser is fuzzed: no input crashes it, and a line it does not
understand is an AclFileError naming that line and never repeating a password."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import (
    Ack,
    Auth,
    Delete,
    ErrorReply,
    Expire,
    Get,
    Inspect,
    MGet,
    MSet,
    Ping,
    RemoveNode,
    Set,
    Stats,
)
from runtime.acl import Acl, AclFileError, User
from runtime.client_auth import AuthGate

FILE = """\
# operators
user default off
user admin on >adminpw ~* +@all
user reader on >readpw allkeys +@read
user writer on >w1 >w2 ~app:* ~cfg:[a-c]? +@read +@write
user hashed on #{digest} allkeys +@read
user nobody off >nopw allkeys +@all
user guest on nopass ~public:* +@read
"""


def _acl() -> Acl:
    return Acl.parse(FILE.format(digest=hashlib.sha256(b"hashedpw").hexdigest()), "users.acl")


def test_users_and_passwords() -> None:
    acl = _acl()
    assert acl.authenticate("admin", "adminpw") is acl.users["admin"]
    assert acl.authenticate("admin", b"adminpw") is acl.users["admin"]
    assert acl.authenticate("admin", "wrong") is None
    assert acl.authenticate("writer", "w1") and acl.authenticate("writer", "w2")
    assert acl.authenticate("hashed", "hashedpw") is acl.users["hashed"]
    assert acl.authenticate("nobody", "nopw") is None  # off
    assert acl.authenticate("stranger", "adminpw") is None
    assert acl.authenticate(None, "") is None  # default is off
    assert acl.authenticate("guest", "anything") is acl.users["guest"]
    assert acl.initial_user() is None and not acl.default_open
    assert acl.users["admin"].all_permitted and not acl.users["reader"].all_permitted


def test_secrets_never_shown() -> None:
    acl = _acl()
    shown = repr(acl) + repr(list(acl.users.values())) + repr(Auth("admin", "adminpw"))
    assert "adminpw" not in shown and "digest" not in shown and hashlib.sha256(b"adminpw").digest().hex() not in shown


def test_requirepass_is_the_default_user_with_everything() -> None:
    acl = Acl.requirepass("s3cret")
    assert acl.initial_user() is None
    assert acl.authenticate(None, "s3cret") is acl.authenticate("default", "s3cret") is acl.users["default"]
    assert acl.users["default"].all_permitted
    assert acl.authenticate(None, "s3cre") is None
    with pytest.raises(ValueError):
        Acl.requirepass("")


def test_a_file_without_default_leaves_it_off_and_default_nopass_is_open() -> None:
    assert Acl.parse("user a on >p +@all").initial_user() is None
    open_acl = Acl.parse("user default on nopass allkeys +@all")
    assert open_acl.default_open and open_acl.initial_user() is open_acl.users["default"]


@pytest.mark.parametrize(
    ("user", "request_", "refused"),
    [
        ("reader", Get("k"), None),
        ("reader", MGet(("a", "b")), None),
        ("reader", Set("k", 1), "this user has no permissions to run the 'set' command"),
        ("reader", Expire("k", None), "this user has no permissions to run the 'persist' command"),
        ("reader", Stats(), "this user has no permissions to run the 'stats' command"),
        ("writer", RemoveNode("n2"), "this user has no permissions to run the 'remove_node' command"),
        ("writer", Set("app:1", 1), None),
        ("writer", Delete("cfg:bx"), None),
        ("writer", Delete("cfg:dx"), "this user has no permissions to access one of the keys used as arguments"),
        ("writer", MSet((("app:1", 1), ("other", 2))),
         "this user has no permissions to access one of the keys used as arguments"),
        ("writer", Inspect("app:1"), "this user has no permissions to run the 'inspect' command"),
        ("guest", Get("public:x"), None),
        ("guest", Get("private"), "this user has no permissions to access one of the keys used as arguments"),
        ("admin", RemoveNode("n2"), None),
    ],
)
def test_permissions(user: str, request_: object, refused: str | None) -> None:
    reply = _acl().users[user].refusal(request_)
    if refused is None:
        assert reply is None
    else:
        assert reply == ErrorReply(ErrorCode.NOPERM, refused, None)


def test_glob_patterns_as_redis() -> None:
    user = Acl.parse(r"user u on nopass ~a*b ~c?d ~[^x]y ~e\*f ~g[0-9] +@read").users["u"]
    for key, ok in [
        ("ab", True), ("a-long-b", True), ("ba", False), ("cxd", True), ("cd", False),
        ("zy", True), ("xy", False), ("e*f", True), ("eff", False), ("g5", True), ("gx", False),
    ]:
        assert user.may_access(key) is ok, key


def test_many_stars_against_a_long_key_do_not_backtrack() -> None:
    """As one regex, ``*a*a*a*a*a*a*a*a*b`` against 200,000 ``a``s backtracks for hours
    (Redis had the same bug: CVE-2022-36021); matched segment by segment it is one scan."""
    user = User.build("u", enabled=True, patterns=["*a*a*a*a*a*a*a*a*b", "x?*?y*[ab]?z"], categories=["read"])
    assert not user.may_access("a" * 200_000)
    assert user.may_access("a" * 200_000 + "b")
    assert user.may_access("xQQy" + "a" * 100_000 + "bQz")


def test_gate_answers_auth_in_order_and_refuses_before_it() -> None:
    gate = AuthGate(_acl())
    out = gate.admit([
        Get("k", 1), Ping(2), Auth("reader", "bad", 3), Auth("reader", "readpw", 4), Get("k", 5), Set("k", 1, rid=6),
    ])
    assert out == [
        ErrorReply(ErrorCode.NOAUTH, "Authentication required.", 1),
        Ping(2),
        ErrorReply(ErrorCode.WRONGPASS, "invalid username-password pair or user is disabled.", 3),
        Ack(4),
        Get("k", 5),
        ErrorReply(ErrorCode.NOPERM, "this user has no permissions to run the 'set' command", 6),
    ]
    assert gate.counters["auth_failures"] == 1
    # A failed auth later leaves the connection as it was.
    assert gate.admit([Auth("admin", "nope"), Get("k")]) == [
        ErrorReply(ErrorCode.WRONGPASS, "invalid username-password pair or user is disabled."), Get("k"),
    ]
    # An all-permitted user's batch passes as the same list.
    gate.admit([Auth("admin", "adminpw")])
    batch = [Set("k", 1), Stats()]
    assert gate.admit(batch) is batch


# --- the parser under fuzzing ----------------------------------------------------------

BAD_LINES = [
    ("users a on", "must start with 'user'"),
    ("user", "needs a name"),
    ("user >pw on", "rule character"),
    ("user a on >", "empty password"),
    ("user a on #abc", "64 hexadecimal"),
    ("user a on +get", "single commands"),
    ("user a on +@dangerous", "unknown category"),
    ("user a on &chan", "not supported"),
    ("user a on %R~k", "not supported"),
    ("user a on ~", "needs a key pattern"),
    ("user a on sideways", "unknown rule 'sideways'"),
]


@pytest.mark.parametrize(("line", "why"), BAD_LINES)
def test_bad_lines_name_the_line(line: str, why: str) -> None:
    with pytest.raises(AclFileError, match=why) as info:
        Acl.parse(f"user ok on >secretpw +@all\n\n{line}\n", "users.acl")
    assert info.value.line == 3 and str(info.value).startswith("users.acl:3: ")
    assert "secretpw" not in str(info.value)


def test_duplicate_user() -> None:
    with pytest.raises(AclFileError, match="line 2: user 'a' is defined twice"):
        Acl.parse("user a on\nuser a off")


_TOKENS = st.sampled_from(
    ["user", "on", "off", "nopass", "resetpass", "allkeys", "resetkeys", "+@read", "+@write", "+@admin",
     "+@all", "-@read", "allcommands", "nocommands", "~*", "~a*", "~[", "~[^", "~\\", "~[a-", ">pw", "#", "&x", "+x"]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_TOKENS, st.text(max_size=12)), max_size=8).map(" ".join) | st.text(max_size=200))
def test_no_line_crashes_the_parser(text: str) -> None:
    try:
        acl = Acl.parse(text)
    except AclFileError as exc:
        assert exc.line >= 1 and str(exc).startswith(f"line {exc.line}: ")
        return
    for user in acl.users.values():
        assert isinstance(user, User)
        user.may_access("some:key")  # every pattern compiled
        assert acl.authenticate(user.name, "pw") in (None, user)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_no_file_crashes_the_loader(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("acl") / "users.acl"
    path.write_bytes(data)
    try:
        Acl.from_file(path)
    except AclFileError as exc:
        assert str(exc).startswith(f"{path}:{exc.line}: ")


@settings(max_examples=600, deadline=None)
@given(
    st.lists(st.text(alphabet="ab:*?[]^-\\", min_size=1, max_size=8), min_size=1, max_size=4),
    st.lists(st.text(alphabet="ab:*?[]^-\\", max_size=6), max_size=8),
)
def test_compiled_patterns_agree_with_one_regex_per_pattern(patterns: list[str], keys: list[str]) -> None:
    """The fast paths (literal prefixes, literal keys, one combined regex) decide as the
    patterns one by one would."""
    from runtime.acl import _glob_regex

    user = User.build("u", enabled=True, patterns=patterns, categories=["read"])
    for key in keys + patterns:
        expected = "*" in patterns or any(_glob_regex(p).fullmatch(key) for p in patterns)
        assert user.may_access(key) is expected, (patterns, key)


# --- the gate against a model -------------------------------------------------------------

#: Written out independently of the kinds table: what each request needs.
_NEEDS = {Get: "read", MGet: "read", Set: "write", Delete: "write", MSet: "write", Expire: "write",
          Stats: "admin", Inspect: "admin", RemoveNode: "admin"}
_USERS = {  # name: (password, enabled, categories, key prefixes or None for all)
    "admin": ("adminpw", True, {"read", "write", "admin"}, None),
    "reader": ("readpw", True, {"read"}, None),
    "app": ("apppw", True, {"read", "write"}, ("app:",)),
    "off": ("offpw", False, {"read", "write", "admin"}, None),
}
_MODEL_ACL = "\n".join(
    f"user {name} {'on' if on else 'off'} >{pw} "
    + ("allkeys " if prefixes is None else " ".join(f"~{p}*" for p in prefixes) + " ")
    + " ".join(f"+@{c}" for c in sorted(cats))
    for name, (pw, on, cats, prefixes) in _USERS.items()
)
_keys = st.sampled_from(["app:1", "app:", "other", "ap", "app:x:y"])
_requests = st.one_of(
    st.builds(Get, _keys), st.builds(Set, _keys, st.just(1)), st.builds(Delete, _keys),
    st.builds(MGet, st.lists(_keys, min_size=1, max_size=3).map(tuple)),
    st.builds(MSet, st.lists(st.tuples(_keys, st.just(1)), min_size=1, max_size=3).map(tuple)),
    st.builds(Expire, _keys, st.just(None)), st.builds(Stats), st.builds(Inspect, _keys),
    st.builds(RemoveNode, st.just("n2")), st.builds(Ping),
    st.just(ErrorReply(ErrorCode.BAD_REQUEST, "undecodable")),
    st.builds(Auth, st.sampled_from([None, "admin", "reader", "app", "off", "ghost"]),
              st.sampled_from(["adminpw", "readpw", "apppw", "offpw", "nope", ""])),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(_requests, min_size=1, max_size=6), max_size=6))
def test_the_gate_agrees_with_a_model(reads: list[list[object]]) -> None:
    gate = AuthGate(Acl.parse(_MODEL_ACL))
    user: str | None = None
    for read in reads:
        out = gate.admit(list(read))
        assert len(out) == len(read)
        for item, got in zip(read, out):
            if type(item) is Auth:
                entry = _USERS.get(item.user or "default")
                if entry is not None and entry[1] and item.password == entry[0]:
                    user = item.user
                    assert got == Ack(item.rid)
                else:
                    assert type(got) is ErrorReply and got.code is ErrorCode.WRONGPASS
            elif type(item) in (Ping, ErrorReply):
                assert got is item
            elif user is None:
                assert type(got) is ErrorReply and got.code is ErrorCode.NOAUTH
            else:
                _, _, cats, prefixes = _USERS[user]
                keys = {Get: lambda r: (r.key,), Set: lambda r: (r.key,), Delete: lambda r: (r.key,),
                        Expire: lambda r: (r.key,), Inspect: lambda r: (r.key,), MGet: lambda r: r.keys,
                        MSet: lambda r: tuple(k for k, _ in r.entries)}.get(type(item), lambda r: ())(item)
                allowed = _NEEDS[type(item)] in cats and (
                    prefixes is None or all(k.startswith(prefixes) for k in keys)
                )
                if allowed:
                    assert got is item
                else:
                    assert type(got) is ErrorReply and got.code is ErrorCode.NOPERM


def test_bench_auth_gate_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import auth_gate

    assert auth_gate.main(["--rounds", "1", "--requests", "320"]) == 0
    assert "all-permitted" in capsys.readouterr().out
