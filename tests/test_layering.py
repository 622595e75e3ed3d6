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


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.name)
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
