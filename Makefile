# make install  - virtual environment (.venv) with the package, the demo renderer and the test tools
# make test     - install, then run the default test suite (CPU, offline)
# make demo     - install, then build the demo corpus and train + run the tiny SAGA-SR model on it (CPU)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install test test-slow demo
install: $(VENV)/.installed
$(VENV)/.installed: setup.py install.sh
	VENV=$(VENV) bash install.sh
	touch $@

test: install
	$(PY) -m pytest

test-slow: install
	$(PY) -m pytest -m slow

demo: install
	$(PY) -m saga_hsmad.demo
