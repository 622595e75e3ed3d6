"""The history of a simulated run: every client operation's invocation and completion.

As in Jepsen, an operation completes in one of three ways, and checkers must treat them
differently:

- ``ok``: acknowledged (a write happened; a read saw ``value``/``found``);
- ``fail``: definitely did not happen (``unavailable``, a refused connection);
- ``info``: indefinite (``timeout``, the coordinator died, the client gave up): it may
  or may not have happened, now or later.

Every write carries a value unique in the run, so a value read or found in the final
state names exactly the write that produced it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["History", "Op"]

#: The kinds of operations that read (every other kind writes).
READ_KINDS = frozenset(("get", "hgetall", "smembers", "scan"))
#: Writes to a field or member of a hash or set (answered with a count, not an ack).
FIELD_WRITES = frozenset(("hset", "hdel", "sadd", "srem"))

OK = "ok"
FAIL = "fail"
INFO = "info"


@dataclass(slots=True)
class Op:
    id: int
    client: int
    node: str
    kind: str  # "get" | "set" | "delete" | "flush" (key "*": every key) | "scan" (key "@scan": a full scan), or on hashes and sets "hset" | "hdel" | "hgetall" | "sadd" | "srem" | "smembers"
    key: str
    consistency: str
    invoked: float
    value: Any = None  # set: the value written; get: the value read; scan: every key returned, sorted
    ttl: float | None = None
    completed: float | None = None
    outcome: str | None = None  # ok | fail | info; None while pending
    found: bool | None = None  # get: whether the key was found
    error: str | None = None
    #: hset/hdel: the hash field written or deleted (a set's member is its ``value``).
    field: str | None = None
    #: The transaction (JSON ``multi``) this get or set was one request of: its ops share
    #: the number, were invoked together and completed together.
    txn: int | None = None

    @property
    def is_write(self) -> bool:
        return self.kind not in READ_KINDS

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


class History:
    def __init__(self) -> None:
        self.ops: list[Op] = []

    def invoke(self, client: int, node: str, kind: str, key: str, consistency: str, now: float, **fields: Any) -> Op:
        op = Op(len(self.ops), client, node, kind, key, consistency, now, **fields)
        self.ops.append(op)
        return op

    @staticmethod
    def complete(op: Op, outcome: str, now: float, **fields: Any) -> None:
        op.outcome = outcome
        op.completed = now
        for name, value in fields.items():
            setattr(op, name, value)

    def counts(self) -> dict[str, int]:
        out = {OK: 0, FAIL: 0, INFO: 0}
        for op in self.ops:
            out[op.outcome or INFO] += 1
        return {"ok": out[OK], "failed": out[FAIL], "timeout": out[INFO]}

    def by_key(self) -> dict[str, list[Op]]:
        out: dict[str, list[Op]] = {}
        for op in self.ops:
            out.setdefault(op.key, []).append(op)
        return out
