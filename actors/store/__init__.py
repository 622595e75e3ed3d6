"""One node's data: the keyspace, expiry, eviction, read-modify-write semantics, and
the ``Store`` and ``Janitor`` actors that own them."""
