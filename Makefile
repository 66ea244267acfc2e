# sparsebench — `make demo` runs the embedded default, `make test` runs the tests.
# Each target installs what it needs first (idempotent: pip skips what is already installed).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
OUT ?= results/quick
STAMP := .make-installed

.PHONY: install install-test data data-local demo test bench gpu-check gpu-evidence lint clean archive-results restore-results

# torch / torchvision pinned to the releases this project is tested with; a range would make pip
# fetch a multi-GB CUDA build on machines where the pinned wheel is not cached.  `make demo TORCH=cpu`
# (or `make install TORCH=cpu`) takes the CPU build from PyTorch's CPU index instead: no nvidia-* /
# triton wheels (4.1 GB of the 6.6 GB environment measured here); for machines without a CUDA GPU.
TORCH ?= default
TORCH_INDEX_cpu := --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
install:
	$(PIP) install -q torch==2.14.1 torchvision==0.29.1 $(TORCH_INDEX_$(TORCH))
	$(PIP) install -q -e .

install-test: install
	$(PIP) install -q -e '.[test,ray,slurm]'

# Fashion-MNIST from the Debian package when apt is available (root); otherwise place its IDX files
# under $SPARSEBENCH_DATA/FashionMNIST/raw (nothing downloads at run time unless a task's dataset_args
# say download = true; README, "Data").
data:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi

# Fashion-MNIST's IDX files copied into data/FashionMNIST/raw (gitignored): for a machine without the Debian
# package, e.g. a lent GPU box (carry data/ there); gpu-evidence reads them through $SPARSEBENCH_DATA.
data-local: data
	@mkdir -p data/FashionMNIST/raw && cp -n /usr/share/datasets/fashion-mnist/*.gz data/FashionMNIST/raw/ && \
		ls data/FashionMNIST/raw

demo: install data
	sparsebench run grids/quick.toml --out $(OUT) --workers 2
	sparsebench table --out $(OUT)
	sparsebench leaderboard build --out $(OUT) --site $(OUT)/site

# pytest runs the testpaths of pyproject.toml (tests/ and the plugin example's tests) in two processes
# (pytest-xdist, one test file per process at a time); its exit 5 (no tests collected) is a failure.
test: install-test data
	@$(PYTHON) -m pytest -n 2 --dist loadfile; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

bench: install
	$(PYTHON) -m benchmark.perf --write docs/benchmarks.md

# On a machine with a CUDA GPU: epoch times of ResNet-20 dense / masked / Sign-In / PILoT / HAM / NanoAdam,
# eager and compiled, bf16; runs per hour with 1, 4, 8 runs packed; one log under docs/gpu/ (~8 min).
gpu-check: install
	@mkdir -p docs/gpu
	$(PYTHON) -m benchmark.gpu_check --compile --pack 1,4,8 2>&1 | tee docs/gpu/gpu_check-$$(date +%Y%m%d).log

# On a machine with a CUDA GPU: the Sign-In / HAM table on ResNet-20 with Fashion-MNIST (grids/gpu-evidence.toml,
# 30 runs packed 8 at a time, ~8 min); the log holds the table with 95 % intervals and the paired gains.
GPU_WORKERS ?= 8
gpu-evidence: install
	@mkdir -p docs/gpu; log=docs/gpu/gpu-evidence-$$(date +%Y%m%d).log; \
	if [ -d data/FashionMNIST/raw ]; then export SPARSEBENCH_DATA=$(CURDIR)/data; fi; \
	{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; \
	  sparsebench run grids/gpu-evidence.toml --out results/gpu-evidence --device cuda --workers $(GPU_WORKERS) --no-progress && \
	  sparsebench table --out results/gpu-evidence --format md && \
	  sparsebench table --out results/gpu-evidence --format md --gains && \
	  $(PYTHON) scripts/recipe_curve.py results/gpu-evidence; } 2>&1 | tee $$log

# Finished runs of the committed result grids, without weights (result.json, spec.json, metrics.jsonl,
# log.txt of every run folder with a result, and the marker weights.omitted, written into the archive
# only, that tells the run checks the weights were left out on purpose; benchmark/verify.py — a folder
# restored from an archive keeps its own marker, since its weights are gone):
# `make restore-results` unpacks them into results/, so the grids resume where they stopped (finished
# runs are skipped, not re-run for their missing weights) and the pages regenerate on a fresh machine.
ARCHIVED ?= sweep signin-ham signin-ham-resnet8 signin-ham-lenet5 graphon-runs recipe-check pai reparam d2s
archive-results:
	@mkdir -p results-archive; for d in $(ARCHIVED); do [ -d results/$$d/runs ] || continue; \
		(cd results && find $$d/runs -name result.json -printf '%h\n' | sort | \
		 while read f; do [ -f $$f/weights.omitted ] || { : > $$f/weights.omitted; : > $$f/.weights.omitted.tmp-archive; }; \
		   for x in result.json spec.json metrics.jsonl log.txt weights.omitted; do [ -f $$f/$$x ] && echo $$f/$$x; done; done \
		 | tar -czf ../results-archive/$$d.tar.gz --owner=0 --group=0 --mtime='2026-01-01' -T -); \
		find results/$$d/runs -name .weights.omitted.tmp-archive -printf '%h\n' | while read f; do \
		  rm -f $$f/weights.omitted $$f/.weights.omitted.tmp-archive; done; \
		echo "results-archive/$$d.tar.gz: $$(tar -tzf results-archive/$$d.tar.gz | grep -c result.json) runs"; done

restore-results:
	@mkdir -p results; for f in results-archive/*.tar.gz; do tar -xzf $$f -C results; \
		sparsebench store rebuild results/$$(basename $$f .tar.gz); done

lint:
	$(PYTHON) -m ruff check benchmark pruners reparam graphon leaderboard tests

clean:
	rm -rf results site .pytest_cache
