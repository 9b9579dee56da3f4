# aiaas -- the two commands of the quick start are `make serve` and `make test`.
PY      ?= $(shell command -v python3.11 || command -v python3)
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-stamp
EXTRAS  ?= dev,train,catalog,llm,optimize,zero,parquet,otel

.PHONY: install install-tf install-tvm install-horovod install-deepspeed install-llamacpp serve test bench bench-catalog lint typecheck clean

install: $(STAMP)

# Re-installs when pyproject.toml changes. torch is pinned to 2.13.0 (CPU wheel) in the `train` extra.
$(STAMP): pyproject.toml scripts/install-system-packages.sh
	bash scripts/install-system-packages.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip setuptools wheel
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	# OCR models: rapidocr declares the GUI opencv-python (needs libGL); its real deps are in the catalog extra
	case ',$(EXTRAS),' in *,catalog,*) $(BIN)/python -m pip install -q --disable-pip-version-check --no-deps rapidocr-onnxruntime==1.4.4;; esac
	touch $(STAMP)

# optional extras on top of `make install`: TensorFlow model import (~1.4 GB), the TVM pass and backend (~0.3 GB)
install-tf: install
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[tf]'

install-tvm: install
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[optimize-tvm]'

# optional training strategies (docs/training.md): zero = DeepSpeed ZeRO on CPU (~20 s; compiles a small op
# with g++ on its first job); horovod = built from source against the pinned torch (~3.5-6 min, needs cmake and g++)
install-deepspeed: install
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[zero]'

install-horovod: install
	bash scripts/install-horovod.sh $(VENV)

# optional LLM engine `llamacpp` (docs/llm.md): llama-cpp-python builds llama.cpp from source (~15-30 min on 2 cores;
# cmake and g++). LLAMACPP_WHEEL=path installs a wheel built before (pip wheel 'llama-cpp-python==0.3.36').
install-llamacpp: install
	if [ -n "$(LLAMACPP_WHEEL)" ]; then $(BIN)/python -m pip install -q --disable-pip-version-check "$(LLAMACPP_WHEEL)"; \
	else CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(BIN)/python -m pip install --disable-pip-version-check -e '.[llamacpp]'; fi

serve: install
	$(BIN)/aiaas serve

test: install
	$(BIN)/python -m pytest -q --durations=25

bench: install
	$(BIN)/python bench/serving.py

# every catalog model built in full, its held-out metrics against the floors, build time (ARGS='--quick', '--home DIR')
bench-catalog: install
	$(BIN)/python bench/catalog.py $(ARGS)

# ruff (lint, and the formatter's check: 120 columns), then the import contracts of ARCHITECTURE.md
# ([tool.importlinter] in pyproject.toml). `.venv/bin/ruff format aiaas tests bench scripts examples` formats.
lint: install
	$(BIN)/ruff check aiaas tests bench scripts examples
	$(BIN)/ruff format --check aiaas tests bench scripts examples
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy aiaas

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
