"""The actor framework stands on its own: its modules import nothing of the cache.

The framework is the kernel (``actors/kernel/``), the simulator's host, scheduler, clocks
and network with its faults, and the runtime's loop host, loop scheduler and peer
transport (with the ``host:port`` parsing it uses). Each may import the standard library,
third-party packages and other framework modules, nothing else of this repository
(``TYPE_CHECKING`` imports count too: a type named from the cache is a dependency all the
same). The example systems in ``examples/`` are
written against the kernel only. The cache's bindings to the hosts live outside this set
(``sim/cache_host.py``, ``runtime/cache_host.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.test_layering import blocking_calls, violations

ROOT = Path(__file__).resolve().parent.parent

#: Top-level packages of this repository: an import of one of them is checked.
OURS = {"actors", "runtime", "sim", "examples", "tests", "bench", "notebooks"}

KERNEL = sorted((ROOT / "actors" / "kernel").rglob("*.py"))
FRAMEWORK_HOSTS = [
    ROOT / "sim" / f"{name}.py" for name in ("host", "scheduler", "clock", "network", "link_models", "wire", "serving", "disk")
] + [ROOT / "runtime" / f"{name}.py" for name in ("host", "loop_scheduler", "addresses")]
#: The peer transport: the links, one link's state machine, its frames' bytes, who may peer,
#: and the TLS it may speak.
PEER_TRANSPORT = [
    ROOT / "runtime" / f"{name}.py" for name in ("peers", "peer_link", "peer_frames", "peer_compress", "peer_trust", "tls")
]
EXAMPLES = sorted((ROOT / "examples").rglob("*.py"))
#: An example's ``__main__`` picks the host it runs on: it may import the framework's hosts too.
EXAMPLE_SYSTEMS = [p for p in EXAMPLES if p.name != "__main__.py"]
EXAMPLE_MAINS = [p for p in EXAMPLES if p.name == "__main__.py"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


FRAMEWORK = {module_name(p) for p in [*KERNEL, *FRAMEWORK_HOSTS, *PEER_TRANSPORT]} | {"actors"}
EXAMPLE_MAY_IMPORT = {"actors", "actors.kernel", "examples"}


def _is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module ``source`` imports, with its line: ``from a import b`` is ``a``, and
    ``a.b`` too when ``b`` is a module of ours. Relative imports are resolved from ``module``."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{a.name}") for a in node.names if _is_module(f"{base}.{a.name}"))
    return found


def foreign_imports(source: str, module: str, allowed: set[str], prefixes: tuple[str, ...] = (), is_package: bool = False) -> list[str]:
    """Imports of this repository's modules that are neither in ``allowed`` nor under one of ``prefixes``."""
    return [
        f"{module}:{lineno} imports {name}"
        for lineno, name in imported_modules(source, module, is_package)
        if name.split(".")[0] in OURS and name not in allowed and not name.startswith(prefixes)
    ]


def foreign_imports_of(path: Path, allowed: set[str], prefixes: tuple[str, ...] = ()) -> list[str]:
    return foreign_imports(path.read_text(), module_name(path), allowed, prefixes, path.name == "__init__.py")


@pytest.mark.parametrize("path", [*KERNEL, *FRAMEWORK_HOSTS], ids=lambda p: str(p.relative_to(ROOT)))
def test_framework_module_imports_nothing_of_the_cache(path: Path) -> None:
    assert foreign_imports_of(path, FRAMEWORK) == []


@pytest.mark.parametrize("path", PEER_TRANSPORT, ids=lambda p: str(p.relative_to(ROOT)))
def test_peer_transport_imports_nothing_of_the_cache(path: Path) -> None:
    assert foreign_imports_of(path, FRAMEWORK) == []


@pytest.mark.parametrize("path", EXAMPLE_SYSTEMS, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_are_written_against_the_kernel_only(path: Path) -> None:
    assert foreign_imports_of(path, EXAMPLE_MAY_IMPORT, ("actors.kernel.", "examples.")) == []


@pytest.mark.parametrize("path", EXAMPLE_SYSTEMS, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_use_only_the_injected_world_and_never_block(path: Path) -> None:
    """The rules ``tests/test_layering.py`` holds ``actors/`` to: no clock, thread, socket or
    global randomness but through ``Ctx``, no blocking call in an actor."""
    source = path.read_text()
    assert violations(source, path.name) + blocking_calls(source, path.name) == []


@pytest.mark.parametrize("path", EXAMPLE_MAINS, ids=lambda p: str(p.relative_to(ROOT)))
def test_an_example_s_main_runs_it_on_the_framework_s_hosts_only(path: Path) -> None:
    assert foreign_imports_of(path, FRAMEWORK | EXAMPLE_MAY_IMPORT, ("actors.kernel.", "examples.")) == []


def test_there_is_an_example() -> None:
    assert EXAMPLE_SYSTEMS and EXAMPLE_MAINS, "no example system (with a __main__) under examples/"


@pytest.mark.parametrize(
    "snippet",
    [
        "from actors.node.system import spawn_node",
        "from actors.config import NodeConfig",
        "import actors.protocol.peer_messages",
        "from actors.protocol import peer_messages",
        "from actors import config",
        "from runtime.connection import DEFAULT_PEER_FRAME_BYTES",
        "from sim.runner import Runner",
        "from ..node import system",
        "if TYPE_CHECKING:\n    from actors.store.actor import Store",
    ],
)
def test_checker_catches_each_cache_import(snippet: str) -> None:
    assert foreign_imports(snippet, "actors.kernel.probe", FRAMEWORK), f"not caught: {snippet!r}"


def test_checker_allows_the_framework_and_the_outside_world() -> None:
    source = (
        "import simpy\nfrom pykka import ActorRef\nfrom actors.kernel import Ctx\n"
        "from actors.kernel.driver import HostDriver\nfrom sim.network import SimNetwork\nfrom .clock import SkewedClock\n"
    )
    assert imported_modules(source, "sim.host")[-1] == (6, "sim.clock")
    assert foreign_imports(source, "sim.host", FRAMEWORK) == []


def test_examples_checker_refuses_the_hosts() -> None:
    assert foreign_imports("from sim.host import SimHost", "examples.counter.replica", EXAMPLE_MAY_IMPORT, ("actors.kernel.", "examples."))
