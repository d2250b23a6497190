# fid: `make demo` runs the pipeline offline; `make test` sets up .venv and runs every test.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.fid-installed
DEMO_DIR ?= demo-output

.PHONY: test demo bench clean-demo

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,train]'
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/pytest -q

demo: $(STAMP)
	$(PY) -m dataset_db.demo --out $(DEMO_DIR)

bench: $(STAMP)
	$(PY) bench/import_urls.py

clean-demo:
	rm -rf $(DEMO_DIR)
