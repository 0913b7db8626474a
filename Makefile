# The two commands: `make demo` and `make test`. Both create the virtualenv and install on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration bench clean tools constraints

# Tools the deploy/ tests run, both from Debian's packages and installed only when missing (so this is idempotent):
# - promtool (`promtool check rules`, `promtool test rules`), from the `prometheus` package;
# - kubectl's `kustomize`, from `kubernetes-client` (Debian's kubectl) when no kubectl is installed.
# Only the binaries are taken: `apt-get download` + `dpkg-deb -x` into .venv/bin, which the tests put first on PATH.
# A plain `apt-get install prometheus` would also install the server, its service and eleven JavaScript packages.
define deb_tool
	@command -v $(1) >/dev/null 2>&1 || test -x $(BIN)/$(1) || { \
	  echo "installing $(1) from Debian's $(2) package"; \
	  work=$$(mktemp -d) && cd $$work && \
	  { apt-get download -q $(2) >/dev/null 2>&1 || { apt-get update -qq && apt-get download -q $(2) >/dev/null; }; } && \
	  dpkg-deb -x $(2)_*.deb root && install -m 0755 root/usr/bin/$(1) $(CURDIR)/$(BIN)/$(1) && \
	  cd $(CURDIR) && rm -rf $$work; }
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(1) $(3) >/dev/null
endef

# constraints.txt pins every package to the set the suite last passed with: a fresh clone installs exactly that.
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt -e '.[dev,demo]'
	touch $(STAMP)

# Move the pins on purpose: the newest releases pyproject.toml's ranges allow (with the bench extra), written back to
# constraints.txt with its header. Then run `make test` before committing the file.
constraints: $(STAMP)
	$(BIN)/pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev,demo,bench]'
	{ sed -n '/^#/p' constraints.txt; $(BIN)/pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt

demo: $(STAMP)
	$(BIN)/gateway demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

tools: $(STAMP)
	$(call deb_tool,promtool,prometheus,--version)
	$(call deb_tool,kubectl,kubernetes-client,kustomize --help)

# Four xdist workers, each with its own embedded broker: the tests mostly wait on brokers, sandboxes and child
# processes, so four overlap well on two cores. worksteal rebalances; tests/conftest.py deals the slow ones out first.
test: lint typecheck tools
	$(BIN)/pytest -n 4 --dist worksteal

unit: $(STAMP)
	$(BIN)/pytest tests/unit connectors

bench: $(STAMP)
	$(BIN)/python bench/unibo_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
