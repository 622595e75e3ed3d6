"""actorcache's actors: the framework underneath and the cache built on it.

- ``actors.kernel``: the actor framework (scheduled actors, ``Ctx``, the host driver
  interface). It imports nothing of the cache; another actor system can run on it.
- ``actors.protocol``: the cache's vocabulary: requests, replies, peer messages, their
  codecs, errors, versions and records.
- ``actors.store``: one node's data: the keyspace, expiry, eviction and the ``Store`` actor.
- ``actors.cluster``: placement, membership, failure detection, coordination, replication.
- ``actors.node``: the ``Node`` actor wiring them together, and ``spawn_node``.
- ``actors.config``: ``NodeConfig``, every default in one place.

Arrows point down the list (a package imports only those above it). Hosted unchanged on
the asyncio loop (``runtime``) and on SimPy (``sim``); nothing here imports either, reads
a real clock, uses global randomness, threads or sockets. Importing this package imports
nothing, so ``import actors.kernel`` loads the framework alone.
"""
