"""``actors/`` must not know how it is hosted: walk its AST and fail on any escape hatch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ACTORS = Path(__file__).resolve().parent.parent / "actors"

FORBIDDEN_MODULES = {"time", "threading", "asyncio", "socket", "uuid", "runtime", "sim", "selectors", "secrets"}
# Module-level functions of `random` share one hidden global state: forbidden.
# `random.Random` (a class: an explicitly seeded instance) is fine.
ALLOWED_RANDOM_ATTRS = {"Random"}
FORBIDDEN_CALLS = {("os", "urandom"), ("os", "getrandom")}


def _sources() -> list[Path]:
    files = sorted(ACTORS.rglob("*.py"))
    assert files, "no sources found under actors/"
    return files


def violations(source: str, name: str) -> list[str]:
    tree = ast.parse(source, name)
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{name}:{node.lineno} imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            if node.level == 0 and module in FORBIDDEN_MODULES:
                found.append(f"{name}:{node.lineno} imports from {node.module}")
            if node.level == 0 and module == "random":
                for alias in node.names:
                    if alias.name not in ALLOWED_RANDOM_ATTRS:
                        found.append(f"{name}:{node.lineno} imports random.{alias.name}")
            if node.level == 0 and module == "os":
                for alias in node.names:
                    if ("os", alias.name) in FORBIDDEN_CALLS:
                        found.append(f"{name}:{node.lineno} imports os.{alias.name}")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "random" and node.attr not in ALLOWED_RANDOM_ATTRS:
                found.append(f"{name}:{node.lineno} uses random.{node.attr}")
            if (node.value.id, node.attr) in FORBIDDEN_CALLS:
                found.append(f"{name}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ACTORS)))
def test_actors_module_uses_only_injected_world(path: Path) -> None:
    assert violations(path.read_text(), path.name) == []


@pytest.mark.parametrize(
    "snippet",
    [
        "import time",
        "import threading",
        "from asyncio import sleep",
        "import socket",
        "from uuid import uuid4",
        "import runtime.node",
        "from sim.host import SimHost",
        "import random\nrandom.random()",
        "import random\nrandom.shuffle(x)",
        "from random import choice",
        "import os\nos.urandom(8)",
    ],
)
def test_checker_catches_each_escape(snippet: str) -> None:
    assert violations(snippet, "snippet.py"), f"not caught: {snippet!r}"


def test_checker_allows_seeded_instances() -> None:
    assert violations("import random\nrng = random.Random('seed/node1')\nrng.random()", "ok.py") == []


# --- blocking calls ----------------------------------------------------------------------
# Inside an actor a blocking wait deadlocks the simulator and stalls the event loop; the
# hosts refuse it at run time (BlockingCallInActorError), this catches it before it runs.

_FUTURE_IMPLEMENTATION = "scheduled.py"
# The driver is the outside world's handle (tests, sim.run): it blocks by design, never
# inside a turn, and the hosts refuse it there at run time.
_DRIVERS = ("kernel/driver.py", "node/driver.py")


def blocking_calls(source: str, name: str) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(source, name)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attr = node.func.attr
        kwargs = {kw.arg: kw.value for kw in node.keywords}
        non_blocking = isinstance(kwargs.get("block"), ast.Constant) and kwargs["block"].value is False
        if attr in ("ask", "stop") and not non_blocking:
            found.append(f"{name}:{node.lineno} blocking .{attr}() (pass block=False or use tell)")
        if attr == "get" and "timeout" in kwargs and name != _FUTURE_IMPLEMENTATION:
            found.append(f"{name}:{node.lineno} blocking Future.get()")
    return found


@pytest.mark.parametrize("path", [p for p in _sources() if str(p.relative_to(ACTORS)) not in _DRIVERS], ids=lambda p: str(p.relative_to(ACTORS)))
def test_actors_never_block(path: Path) -> None:
    assert blocking_calls(path.read_text(), path.name) == []


@pytest.mark.parametrize(
    "snippet",
    ["ref.ask(msg)", "ref.ask(msg, timeout=1)", "ref.stop()", "future.get(timeout=1)", "ref.ask(m, block=True)"],
)
def test_blocking_checker_catches(snippet: str) -> None:
    assert blocking_calls(snippet, "x.py")


def test_blocking_checker_allows_non_blocking_forms() -> None:
    assert blocking_calls("ref.ask(m, block=False)\nref.stop(block=False)\nd.get('k')", "x.py") == []


#: The packages of ``actors/`` bottom up: each may import only those before it (and itself).
LAYERS = ("kernel", "protocol", "store", "cluster", "config", "node")


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "actors" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else None


def upward_imports(path: Path) -> list[str]:
    """Imports from ``path`` into a package above its own (``typing.TYPE_CHECKING`` ones too:
    a type named from above is a dependency all the same)."""
    own = _layer("actors." + ".".join(path.relative_to(ACTORS).with_suffix("").parts))
    if own is None:
        return []
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            layer = _layer(name)
            if layer is not None and layer > own:
                found.append(f"{path.relative_to(ACTORS)}:{node.lineno} imports {name} ({LAYERS[layer]} is above {LAYERS[own]})")
    return found


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ACTORS)))
def test_arrows_point_down(path: Path) -> None:
    assert upward_imports(path) == []


def test_every_actors_module_is_in_a_layer() -> None:
    strays = [p.relative_to(ACTORS) for p in _sources() if p.parent == ACTORS and p.stem not in ("__init__", *LAYERS)]
    assert strays == []
