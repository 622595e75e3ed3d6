"""The ``Node`` actor, which wires store and cluster together, and ``spawn_node``."""
