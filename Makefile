# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.robustdepth-installed
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo test lint clean browser gpu-wheels

setup: $(STAMP)

# torch first (the local CPU wheel), then the package; constraints.txt keeps any
# dependency from pulling a newer (CUDA) torch.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev,onnx,hf,diffusion,app]"
	$(PY) -m pip install -q -c constraints.txt --no-deps imagecorruptions==1.1.2
	-$(MAKE) -s browser
	touch $(STAMP)

# Best effort: headless Chromium + chromedriver for tests/test_app.py (skipped with a reason without them).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { (apt-get update -qq && apt-get install -y -qq chromium chromium-driver) >/dev/null 2>&1 || \
	    echo "note: chromium not installed (no apt/root): the browser test will be skipped"; } ; true

demo: $(STAMP)
	$(VENV)/bin/robustdepth demo

# Two pytest workers, one thread each: two OpenMP teams of two threads on two cores stall each other.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -n 2 --dist loadgroup -q --durations=15

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# The wheels a lent GPU machine's image lacks (it has torch, numpy, opencv, scikit-image, tensorboard, ...; no
# network), for its Python 3.12, into .whl/ (git-ignored): carry .whl when running benchmarks/gpu_table.sh there.
GPU_WHEELS := omegaconf==2.4.0 kornia==0.9.0 kornia_rs==0.2.0 imagecorruptions==1.1.2
gpu-wheels: $(STAMP)
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  -d .whl $(GPU_WHEELS)

clean:
	rm -rf runs/demo .pytest_cache
