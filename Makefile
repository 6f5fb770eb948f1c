# Thin wrapper around the `edgebench` CLI. Every target sets up the virtual environment it needs.
TARGET ?= cpu
SUITE  ?= quick
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# Power source overriding the target's [power], e.g. POWER=emulated-ina219 or POWER=um25c:port=/dev/rfcomm0
POWER  ?=
# Extra flags for `edgebench bench`, e.g. ARGS="--quiet --backend torch".
ARGS   ?=
# The stopping rule over the suite's [protocol] stopping: STOPPING=statistical (or fixed)
STOPPING ?=
# DRY_RUN=1: print the jobs and the estimated measuring time; build and measure nothing
DRY_RUN ?=

STAMP := $(VENV)/.installed

.PHONY: bench test lint report compare runs history venv clean

# Old and new board Pythons (3.8 = JetPack 5, 3.13 = Pi OS Trixie) with numpy and onnxruntime, where this
# machine has those interpreters: the board tests run the shipped agent on them. Missing ones are skipped.
# 3.8 also gets tflite-runtime (the legacy LiteRT package, which needs numpy < 2: 3.8's numpy is 1.24), as a
# Raspberry Pi with the old runtime has it.
BOARD_VENVS := .venv-boards
BOARD_STAMP := $(BOARD_VENVS)/.installed

venv: $(STAMP)

# Re-installs only when pyproject.toml changes; torch==2.13.0 resolves to the CPU wheel on disk.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

bench: $(STAMP)
	$(BIN)/edgebench bench --target $(TARGET) --suite $(SUITE) $(if $(POWER),--power $(POWER)) \
	  $(if $(STOPPING),--stopping $(STOPPING)) $(if $(DRY_RUN),--dry-run) $(ARGS)

$(BOARD_STAMP):
	mkdir -p $(BOARD_VENVS)
	for v in 3.8 3.13; do \
	  py=$$(ls -d $$HOME/.pyenv/versions/$$v.*/bin/python$$v 2>/dev/null | tail -n 1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v); \
	  if [ -n "$$py" ] && $$py -c 'pass' 2>/dev/null; then \
	    extra=; [ $$v = 3.8 ] && extra=tflite-runtime; \
	    $$py -m venv $(BOARD_VENVS)/py$$v && $(BOARD_VENVS)/py$$v/bin/python -m pip install --quiet numpy onnxruntime $$extra \
	      || rm -rf $(BOARD_VENVS)/py$$v; \
	  fi; \
	done
	touch $@

# ruff (style, imports, bugs) and import-linter (the floors in pyproject.toml): part of `make test`.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint $(BOARD_STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# one run: its own report; several (RUN="runs/a runs/b"): one report across them, e.g. one run per target
report: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make report RUN=runs/<id>  or  RUN=\"runs/<a> runs/<b> ...\""; exit 2; }
	$(BIN)/edgebench report $(RUN)

runs: $(STAMP)
	$(BIN)/edgebench runs

# METRIC over every run under runs/ (or RUN="..."), in time order
METRIC ?= latency_p50_ms
history: $(STAMP)
	$(BIN)/edgebench history $(or $(RUN),runs/*) --metric $(METRIC)

compare: $(STAMP)
	@test -n "$(A)" -a -n "$(B)" || { echo "usage: make compare A=runs/<a> B=runs/<b>"; exit 2; }
	$(BIN)/edgebench compare $(A) $(B)

clean:
	rm -rf $(VENV) $(BOARD_VENVS) .cache build *.egg-info
