PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1

.PHONY: install demo test lint clean stack
.DEFAULT_GOAL := demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

DEMO_ORDER := --product SKU-001 --quantity 2 --customer cust-42 --payment-method tok_visa
DEMO_CART := --line SKU-002:1 --line SKU-003:3 --customer cust-42 --payment-method tok_visa

demo: install
	@export FLOWFORGE_DB_PATH=.flowforge/demo.sqlite3 FLOWFORGE_RETRY_DELAYS=0.2; \
	$(PY) -m storage reset; \
	echo; echo "== 1. an order that completes"; \
	$(PY) -m flows.fulfill $(DEMO_ORDER); \
	echo; echo "== 2. FAIL_AT=warehouse: the warehouse keeps failing, everything is undone"; \
	FAIL_AT=warehouse $(PY) -m flows.fulfill $(DEMO_ORDER); \
	echo; echo "== 3. FAIL_AT=payment:1: the first charge attempt fails, the retry succeeds"; \
	FAIL_AT=payment:1 $(PY) -m flows.fulfill $(DEMO_ORDER); \
	echo; echo "== 4. a cart: two products, one charge, one shipment"; \
	$(PY) -m flows.fulfill $(DEMO_CART); \
	echo; echo "== snapshot"; $(PY) -m storage snapshot; \
	echo; echo "== audit"; $(PY) -m storage audit

STACK_ARGS ?=

stack: install
	$(PY) -m deployments.stack $(STACK_ARGS)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .flowforge .pytest_cache .ruff_cache
