"""Example actor systems on the framework (``actors/kernel/``), each runnable on both hosts.

An example is written against the kernel only (a test checks its imports): its actors,
its messages and a spawn function. Which host runs it (the asyncio loop host in
``runtime/host.py``, the SimPy host in ``sim/host.py``) is chosen by whoever drives it:
a test, or the example's ``__main__``. See ``docs/framework.md``.
"""
