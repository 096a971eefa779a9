# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# Both bootstrap .venv/ (with --system-site-packages, so a torch already installed on a
# GPU node is seen and kept; torch==2.13.0, a local CPU wheel here, is installed only when
# `import torch` fails in the venv).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  ?= torch==2.13.0
# The official DINOv2 losses, a real codebase the tests drive end to end. --no-deps: its
# pins would pull torch 2.0, xformers and cuml.
DINOV2 ?= dinov2==0.0.1.dev2
XDIST  ?= -n 2 --dist loadgroup

.PHONY: install test test-scale test-dist run bench lint selfcheck clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv --system-site-packages $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[dev]"
	$(BIN)/python -m pip install --no-deps "$(DINOV2)"
	touch $@

test: $(STAMP)
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(XDIST) -q --dino-world-sizes 1,2,3,4 tests

# The production-scale family at 8..64 ranks (opt-in: minutes, not seconds; README
# "Production scale"): the reference, then every scale-only planted fault.
test-scale: $(STAMP)
	$(BIN)/dino-harness run --family scale --world-sizes 8,16,32,64
	$(BIN)/dino-harness selfcheck --family scale --world-sizes 64 --no-overlap

test-dist: $(STAMP)
	$(BIN)/dino-harness test-dist

run: $(STAMP)
	$(BIN)/dino-harness run --backend gloo --world-sizes 1,2,3,4

selfcheck: $(STAMP)
	$(BIN)/dino-harness selfcheck

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_losses.py --json reports/bench/losses.json
	$(BIN)/dino-harness bench pool --json reports/bench/pool.json
	$(BIN)/dino-harness bench overlap --json reports/bench/overlap.json
	$(BIN)/python benchmarks/bench_overlap_paired.py --runs 5 --json reports/bench/overlap_paired.json
	$(BIN)/python benchmarks/bench_first_verdict.py --runs 5 --whole-run --json reports/bench/first_verdict.json
	$(BIN)/python benchmarks/bench_world_sizes.py --json reports/bench/world_sizes.json
	$(BIN)/python benchmarks/bench_explore.py --json reports/bench/explore.json
	$(BIN)/python benchmarks/bench_diagnosis_styles.py --json reports/bench/diagnosis_styles.json

lint: $(STAMP)
	$(BIN)/python -m ruff check harness tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
