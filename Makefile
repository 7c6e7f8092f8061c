# Consortia: `make demo` and `make test` set up everything from nothing.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup system demo test unit lint bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	$(PY) -m components.adapters.prefect_template >/dev/null  # the empty Prefect database new workspaces copy
	touch $(STAMP)

setup: $(STAMP)

# Debian packages some tests need (headless Chromium for the dashboard's browser test, iproute2 for
# network namespaces, PostgreSQL for the stores-by-URL tests). Installed when missing and we are root;
# otherwise those tests skip and say why.
system:
	@if command -v chromium >/dev/null 2>&1 && command -v ip >/dev/null 2>&1 \
		&& ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium iproute2 postgresql >/dev/null; \
	else echo "note: chromium/iproute2/postgresql missing and not root: browser, netns and PostgreSQL tests will skip"; fi

demo: setup
	$(VENV)/bin/consortia demo

test: setup system
	$(PY) -m pytest -q --durations=15

unit: setup
	$(PY) -m pytest -q -m "not integration"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports

bench: setup
	$(PY) -m benchmarks

clean:
	rm -rf .consortia
