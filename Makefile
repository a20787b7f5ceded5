# Two entry points: `make demo` and `make test`. Both run the idempotent set-up first.
SHELL := /bin/bash
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
ICD_DIR := $(CURDIR)/.icd

export OCL_ICD_VENDORS := $(ICD_DIR)
export POCL_CACHE_DIR  := $(CURDIR)/.pocl-cache
export MPLBACKEND      := Agg

.PHONY: setup demo test system-deps wheel-check clean

setup: system-deps $(STAMP) $(ICD_DIR)/intel_fpga_emu.icd

system-deps:
	@bash scripts/install-system-deps.sh

# torch is pinned first and on its own: an unpinned torch pulled in by
# stable-baselines3 would resolve to a multi-GB CUDA build.
$(STAMP): pyproject.toml requirements-emulator.txt
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install --quiet --upgrade pip
	$(VPY) -m pip install --quiet torch==2.13.0
	$(VPY) -m pip install --quiet -e '.[dev,cluster]'
	$(VPY) -m pip install --quiet -r requirements-emulator.txt
	@touch $(STAMP)

# The Intel FPGA emulation runtime installs its libraries under $(VENV)/lib.
$(ICD_DIR)/intel_fpga_emu.icd: $(STAMP)
	@mkdir -p $(ICD_DIR)
	@test -f $(CURDIR)/$(VENV)/lib/libintelocl_emu.so || { echo "error: $(VENV)/lib/libintelocl_emu.so missing after installing requirements-emulator.txt" >&2; exit 2; }
	@echo "$(CURDIR)/$(VENV)/lib/libintelocl_emu.so" > $@

demo: setup
	$(VPY) scripts/demo.py

test: setup
	$(VPY) -m pytest -q tests

wheel-check: setup
	@bash scripts/wheel-check.sh

clean:
	rm -rf $(VENV) $(ICD_DIR) .pocl-cache build dist *.egg-info .pytest_cache
