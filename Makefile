# Two entry points from a fresh clone with Python 3.11: `make run` and `make test`.
# Both create .venv on first use; torch is installed first and pinned so that pip does not pull
# a different (multi-GB) build while resolving the other dependencies.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
# Extra arguments for snakemake, e.g. `make run SNAKEMAKE_ARGS="--configfile my.yaml --replace-workflow-config"`.
SNAKEMAKE_ARGS ?=

.PHONY: venv run test report lint docs-figures

venv: $(VENV)/.installed

# Reinstall when the dependency list changes.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

# The default config on all cores (profile profiles/default). A run killed with SIGKILL leaves
# Snakemake's directory lock behind; it is cleared first unless a snakemake of this user is
# still running, so that repeating `make run` resumes the sweep.
run: venv
	@pgrep -u "$$(id -u)" -f '[s]nakemake.* --cores' >/dev/null || $(BIN)/snakemake --unlock $(SNAKEMAKE_ARGS) >/dev/null 2>&1 || true
	$(BIN)/snakemake --cores all $(SNAKEMAKE_ARGS)

# The whole test suite, slow tests included.
test: venv
	$(BIN)/python -m pytest

# Self-contained HTML report of the last run.
report: venv
	$(BIN)/snakemake --report results/report.html $(SNAKEMAKE_ARGS)

lint: venv
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .

# Copy the figures, the theorem-check table and the report of the last run into docs/ (shown in
# the README).
# Run after `make run`; commit docs/ to update the README's pictures.
docs-figures:
	test -f results/checks.md || { echo "docs-figures: run 'make run' first (no results/checks.md)" >&2; exit 1; }
	mkdir -p docs/figures
	for png in results/*/figures/*.png; do \
	  exp=$$(basename $$(dirname $$(dirname $$png))); \
	  cp $$png docs/figures/$${exp}__$$(basename $$png); \
	done
	cp results/checks.md docs/checks.md
	$(BIN)/snakemake --report docs/report.html $(SNAKEMAKE_ARGS)
