"""One environment, two implementations: both hosts implement the whole driver interface.

``actors.kernel.driver.HostDriver`` declares the calls a driver makes (``ctx``,
``start_node``, ``now``, ``run_for``, ``shutdown``); a host that left one to the base class
would raise ``NotImplementedError`` only when a test on that host first called it.
"""

from __future__ import annotations

import inspect

import pytest

from actors.kernel.driver import HostDriver
from runtime.host import ThreadedLoopHost
from sim.host import SimHost

ABSTRACT = sorted(
    name
    for name, fn in vars(HostDriver).items()
    if inspect.isfunction(fn) and "raise NotImplementedError" in inspect.getsource(fn)
)


def test_the_interface_declares_the_calls_the_issue_names() -> None:
    assert {"ctx", "start_node", "now", "run_for", "shutdown"} <= set(ABSTRACT)


@pytest.mark.parametrize("host_class", [SimHost, ThreadedLoopHost], ids=lambda c: c.__name__)
@pytest.mark.parametrize("name", ABSTRACT)
def test_every_host_implements_every_driver_call(host_class: type, name: str) -> None:
    assert getattr(host_class, name) is not getattr(HostDriver, name), f"{host_class.__name__} leaves {name} to the base"
    # Same first parameters: a driver's call means the same on both hosts.
    base = list(inspect.signature(getattr(HostDriver, name)).parameters)
    ours = list(inspect.signature(getattr(host_class, name)).parameters)
    assert ours[: len(base)] == base
