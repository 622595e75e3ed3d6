"""The simulated world: the same actors on a SimPy environment with virtual time."""
