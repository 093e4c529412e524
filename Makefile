# flavortag: one-command set-up, main job and tests.
#
#   make run    install, generate a 90k-event Z-pole sample with Pythia 8, train bdt / mlp /
#               deepsets / the tuned transformer on it, evaluate and compare them, all logged
#               to MLflow (./mlflow.db); BUDGET=full for the presets' own epochs
#   make test   install, ruff, mypy, pytest (what CI runs via .ci/run)
#
# torch is installed from TORCH_REQ first so that pip does not resolve an
# unpinned torch to a multi-GB CUDA build. GPU users:
#   make install TORCH_REQ="torch --index-url https://download.pytorch.org/whl/cu124"

PYTHON ?= python3
VENV ?= .venv
TORCH_REQ ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.flavortag-installed
BUDGET ?= quick
STUDY_EPOCHS ?= 10
# pytest worker processes (pytest-xdist; a test file stays on one worker). 0: in this process.
PYTEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

.PHONY: study robustness-study install run test lint typecheck pytest bench bench-io bench-generate bench-batching bench-models bench-weaver bench-predict bench-tune ui clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_REQ)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check flavortag scripts tests

typecheck: install
	$(BIN)/mypy flavortag

pytest: install
	$(PYTEST)

# mypy runs beside pytest (a cold mypy is ~60 CPU-s, and the pytest workers leave a part of the
# cores idle while their subprocesses start); its report is printed when it ends, and either failing
# fails the target.
test: install
	$(BIN)/ruff check flavortag scripts tests
	@$(BIN)/mypy flavortag > .mypy.log 2>&1 & mypy=$$!; \
	echo "$(PYTEST)"; $(PYTEST); tests=$$?; \
	wait $$mypy; typed=$$?; echo "$(BIN)/mypy flavortag"; cat .mypy.log; rm -f .mypy.log; \
	test $$tests -eq 0 && test $$typed -eq 0

run: install
	$(BIN)/python scripts/main_job.py --budget $(BUDGET)

ui: install
	@if [ -f mlflow.db ]; then echo "The trainings of each experiment, with their figures (open once the server is up):"; \
	  $(BIN)/python -c "from flavortag.tracking import ui_links; print(*ui_links('sqlite:///mlflow.db'), sep='\n')"; \
	else echo "no ./mlflow.db yet: make run first"; fi
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

bench: bench-io bench-generate bench-batching bench-models bench-weaver bench-predict bench-tune

bench-io: install
	$(BIN)/python scripts/bench_io.py

bench-generate: install
	$(BIN)/python scripts/bench_generate.py

bench-batching: install
	$(BIN)/python scripts/bench_batching.py

bench-models: install
	$(BIN)/python scripts/bench_models.py

bench-tune: install
	$(BIN)/python scripts/bench_tune.py

bench-weaver: install
	$(BIN)/python scripts/bench_vs_weaver.py

bench-predict: install
	$(BIN)/python scripts/bench_predict.py

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .ruff_cache .mypy_cache

# The Z-pole physics study (samples, four taggers, robustness to worse IP resolution).
study: install
	$(BIN)/python scripts/zpole_study.py --samples samples --epochs $(STUDY_EPOCHS)

# Robustness: every tagger as today / augmented / resolution-aware, on six detector
# variations, with and without the label-free calibration (scripts/robustness_study.py).
robustness-study: install
	$(BIN)/python scripts/robustness_study.py --samples samples
