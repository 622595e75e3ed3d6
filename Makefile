# The two entry points a newcomer needs: `make run` and `make test`.
# Both create (or reuse) the project's own virtual environment in .venv first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

NODE_ID ?= node1
PORT    ?= 8081
PEERS   ?=
ARGS    ?=
# A TOML file of node options (docs/operations.md); flags in ARGS override it.
CONFIG  ?=
CONFIG_ARG := $(if $(CONFIG),--config $(CONFIG))

.PHONY: run cluster test plots venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m runtime.node $(NODE_ID) $(PORT) $(PEERS) $(CONFIG_ARG) $(ARGS)

# A local cluster: NODES nodes on ports PORT, PORT+1, ... (Ctrl-C stops them all); every node
# reads CONFIG when given (its node-id and port are the cluster's).
NODES ?= 3
cluster: $(STAMP)
	$(PY) -m runtime.local_cluster --nodes $(NODES) --base-port $(PORT) -- $(CONFIG_ARG) $(ARGS)

# Three workers on two cores: many tests wait on real processes, sockets and timers (a
# two-worker run kept the CPUs about 65% busy), so a third keeps them working.
test: $(STAMP)
	$(PY) -m pytest -n 3 $(PYTEST_ARGS)

# The key figures of notebooks/ (simulated) as PNG files in docs/.
plots: $(STAMP)
	$(PY) -m sim.plots docs

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
