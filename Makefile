# A fresh clone with Python 3.11 needs only: `make venv` (or `make run`), then `make test`.
# The run, report, status and archive targets call the `minnorm` command (src/minnorm/cli.py),
# the same code a user of the installed wheel runs.
# .venv is installed from the lock file requirements.lock: every package at its exact version,
# each file checked against its SHA-256 (`pip install --require-hashes`), then this package
# itself (editable, no dependencies). pyproject.toml keeps the lower bounds for people who
# install into an environment of their own; `make lock` re-resolves the lock from them.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
# `make lock` runs pip-compile (pip-tools) from a venv of its own, so .venv holds the lock only.
PIP_TOOLS := pip-tools==7.6.2
LOCK_VENV := .venv-lock
# `make lock LOCK_FLAGS=--upgrade` moves every pin to the newest release the ranges allow;
# plain `make lock` keeps the current pins and only resolves what pyproject.toml changed.
LOCK_FLAGS ?=
# Extra arguments for snakemake, e.g. `make run SNAKEMAKE_ARGS="--configfile my.yaml --replace-workflow-config"`.
SNAKEMAKE_ARGS ?=
# The config of the last run (written by the workflow when a run starts): `make report` uses it.
LAST_RUN_CONFIG := results/last_run_config.yaml
# Where `make docs` (and `make lint`'s strict build) puts the documentation site (git-ignored).
SITE_DIR := site
# The workflow catalog's copy of the config schema (`make schema` regenerates it).
CATALOG_SCHEMA := workflow/schemas/config.schema.yaml

.PHONY: venv run beyond beyond-plan families families-plan status test report lint lock docs-figures docs schema archive dist

venv: $(VENV)/.installed

# Reinstall when the lock or the package's metadata changes.
$(VENV)/.installed: $(LOCK) pyproject.toml setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

# Re-resolve requirements.lock from pyproject.toml (run dependencies, the dev and slurm extras
# and the build backend) with hashes of every file of each pinned version on the indexes pip
# sees. Commit the result.
lock:
	test -x $(LOCK_VENV)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/python -m pip install $(PIP_TOOLS); }
	CUSTOM_COMPILE_COMMAND="make lock" $(LOCK_VENV)/bin/pip-compile --quiet $(LOCK_FLAGS) --extra dev --extra slurm --all-build-deps \
	  --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links \
	  --output-file $(LOCK) pyproject.toml

# The default config on all cores (profile profiles/default): `minnorm run`. It first checks the
# config files the command reads (minnorm.config.yaml_reader: a YAML error in a --configfile is
# reported with its file, line and column, which Snakemake itself does not give). A run killed
# with SIGKILL leaves Snakemake's directory lock behind; it is removed first only when no
# snakemake process (nor a job of one, nor a `minnorm run`) works in this directory
# (minnorm.workflow.lock_guard), so that repeating `make run` resumes the sweep and never breaks
# into a live one.
run: venv
	$(BIN)/minnorm run --cores all $(SNAKEMAKE_ARGS)

# The studies beyond the paper (config/beyond.yaml; README "Beyond the paper"): `make run` with
# that config in place of the default one. Within 60 minutes on 2 cores (BENCHMARKS.md); `make
# report` afterwards covers them. Extra flags go in SNAKEMAKE_ARGS as for `make run`.
BEYOND_ARGS := --configfile config/beyond.yaml --replace-workflow-config
beyond:
	$(MAKE) run SNAKEMAKE_ARGS="$(BEYOND_ARGS) $(SNAKEMAKE_ARGS)"

# The plan of the cluster-scale studies (config/beyond_cluster.yaml) through the SLURM profile,
# as a dry run: no SLURM needed. See README "Running on a SLURM cluster" to submit it.
beyond-plan: venv
	$(BIN)/minnorm run --profile profiles/slurm --workflow-profile none \
	  --configfile config/beyond_cluster.yaml --replace-workflow-config -n $(SNAKEMAKE_ARGS)

# Other activations and a trained output layer (config/families.yaml; README "Other activations
# and a trained output layer"): `make run` with that config, like `make beyond`.
FAMILIES_ARGS := --configfile config/families.yaml --replace-workflow-config
families:
	$(MAKE) run SNAKEMAKE_ARGS="$(FAMILIES_ARGS) $(SNAKEMAKE_ARGS)"

# The plan of the cluster-scale study over networks (config/families_cluster.yaml) through the
# SLURM profile, as a dry run: no SLURM needed.
families-plan: venv
	$(BIN)/minnorm run --profile profiles/slurm --workflow-profile none \
	  --configfile config/families_cluster.yaml --replace-workflow-config -n $(SNAKEMAKE_ARGS)

# How far the run in this directory has got (run files present per experiment, runs started,
# the latest training log line, whether snakemake still runs); from another terminal, any time.
status:
	@$(BIN)/minnorm status

# The whole test suite, slow tests included.
test: venv
	$(BIN)/python -m pytest

# Self-contained HTML report of the last run, with the config that run used (whatever flags it
# had, from results/last_run_config.yaml), covering the figures and checks tables that exist.
report: venv
	$(BIN)/minnorm report $(SNAKEMAKE_ARGS)

# One zip of the results (report, collected datasets, tables, config, lock file, versions) with
# RO-Crate metadata, to deposit and cite: `make report` first.
archive: venv
	$(BIN)/minnorm archive

# Workflow lint (snakemake, snakefmt), Python lint and format (ruff), the layer contract and
# import cycles (import-linter), types (mypy, every function of src/ annotated), all configured
# in pyproject.toml; and the documentation site built strictly (a broken link or a missing page
# fails).
lint: venv
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(SITE_DIR)

# The documentation site (MkDocs, Material theme) from docs/ into site/; the configuration,
# figures, checks and data-set pages are generated from the schema and registries at build time.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $(SITE_DIR)

# Rewrite the workflow catalog's copy of the config schema after editing
# src/minnorm/config/config.schema.yaml or a data set's own keys (tests/project/test_docs.py).
schema: venv
	$(BIN)/python -m minnorm.workflow.reference catalog-schema $(CATALOG_SCHEMA)

# The wheel and the sdist of this release in dist/ (the wheel carries the workflow).
dist: venv
	$(BIN)/python -m build --no-isolation --outdir dist .

# Copy the figures, the checks and estimates tables, the forest plot and the report of the last
# run into docs/ (shown in the README), then fill the results text of README and docs/*.md in
# from those tables (minnorm.analysis.results_text).
# Run after `make run`; commit docs/ to update the README's pictures.
# The report of the last run goes to DOCS_REPORT: `make docs-figures DOCS_REPORT=docs/report_beyond.html`
# after `make beyond`.
DOCS_REPORT ?= docs/report.html
docs-figures:
	test -f results/checks.md || { echo "docs-figures: run 'make run' first (no results/checks.md)" >&2; exit 1; }
	mkdir -p docs/figures
	for png in results/*/figures/*.png; do \
	  exp=$$(basename $$(dirname $$(dirname $$png))); \
	  cp $$png docs/figures/$${exp}__$$(basename $$png); \
	done
	cp results/checks.md docs/checks.md
	cp results/checks.csv docs/checks.csv
	cp results/estimates.csv docs/estimates.csv
	cp results/forest.png docs/figures/forest.png
	$(BIN)/python -m minnorm.analysis.results_text
	$(BIN)/minnorm report --output $(DOCS_REPORT) $(SNAKEMAKE_ARGS)
