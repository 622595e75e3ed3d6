"""Many nodes as one cache: placement, membership and failure detection, request
coordination, and the ``Replicator`` actor (hints, anti-entropy, streaming)."""
