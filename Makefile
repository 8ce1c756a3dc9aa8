# v2xsim set-up and entry points. `make run` = headline speed sweep, `make test` = test suite.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.v2xsim-installed
OUT ?= results/speed_sweep

.PHONY: setup run test test-fast lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install -y python3-venv" >&2; exit 1; }
	# torch first, pinned: on the project machines 2.13.0 is a local CPU wheel (no CUDA download)
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test,rt,dist,fl,sumo]"
	# Sionna RT on CPU JIT-compiles with LLVM >= 16; Debian 12's default LLVM 15 aborts
	@if [ -z "$$DRJIT_LIBLLVM_PATH" ] && ! ls /usr/lib/*/libLLVM.so.19.1 /usr/lib/llvm-19/lib/libLLVM.so.19.1 2>/dev/null | grep -q .; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing libllvm19 (LLVM JIT for Sionna RT on CPU)"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libllvm19 >/dev/null; } || echo "warning: apt-get install libllvm19 failed; Sionna RT tests will be skipped" >&2; \
	  else \
	    echo "warning: Sionna RT on CPU needs LLVM >= 16: run 'sudo apt-get install -y libllvm19' (or set DRJIT_LIBLLVM_PATH to a libLLVM >= 16); until then its tests are skipped" >&2; \
	  fi; \
	fi
	@touch $(STAMP)

run: setup
	$(BIN)/v2xsim run scenarios/speed_sweep.toml --out $(OUT)

# the layer contract (import-linter), then every test on both cores (pytest-xdist);
# pytest exit code 5 means "no tests collected": not a failure for CI
test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=15; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc

# the fast loop: everything but the slow tests, on both cores
test-fast: setup
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not slow"

lint: setup
	$(BIN)/lint-imports

bench: setup
	$(BIN)/python benchmarks/wmmse_solve_time.py

clean:
	rm -rf $(VENV) results .pytest_cache .hypothesis
