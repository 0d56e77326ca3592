# moderndl: `make book` builds the executable book, `make test` checks all of it.
# Both create .venv from requirements.txt on first use.

PROFILE ?= auto
NB ?=
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.stamp
MATHJAX_VERSION := 3.2.2
MATHJAX := _build/vendor/mathjax/tex-chtml.js
JB_FLAGS := --builder html -W -n --keep-going --quiet

.PHONY: book test lab run venv mathjax stage html unit notebooks ranks browser browser-deps lint records gpu-check clean

venv: $(STAMP)

# torch first (pinned, CPU wheel where one is provided), then everything else without
# build isolation: deepspeed ships only an sdist whose build imports torch, and an
# isolated build would pull a different torch. Then byte-compile everything, on every core:
# where PYTHONDONTWRITEBYTECODE is set (as on CI machines), imports never write .pyc files, and
# every process (kernels, ranks, workers) would compile torch from source again, which doubled
# the time of `make test` from a fresh clone. (pip compiles on one core; a few files of the
# installed packages are for newer Pythons and do not compile, as pip ignores.)
$(STAMP): requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip "setuptools>=77" wheel
	$(PY) -m pip install --quiet --no-compile "$$(grep -E '^torch==' requirements.txt)"
	$(PY) -m pip install --quiet --no-compile --no-build-isolation -r requirements.txt
	$(PY) -c "import compileall as c, sysconfig as s; [c.compile_dir(d, quiet=2, workers=0) \
		for d in (s.get_paths()['purelib'], 'lib')]"
	$(PY) -m ipykernel install --sys-prefix --name moderndl --display-name "Python (moderndl)" >/dev/null
	touch $(STAMP)

mathjax: $(MATHJAX)

$(MATHJAX):
	rm -rf _build/npm _build/vendor/mathjax && mkdir -p _build/npm _build/vendor/mathjax
	cd _build/npm && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	cd _build/npm/package && cp -r LICENSE es5/tex-chtml.js es5/input es5/output es5/ui es5/a11y es5/adaptors es5/sre \
		$(CURDIR)/_build/vendor/mathjax/

# Execute every chapter in _toc.yml (cached), stage the sources, build the HTML.
book: venv mathjax
	$(PY) -m moderndl run --all --profile $(PROFILE)
	$(MAKE) --no-print-directory html

html: venv mathjax
	$(PY) -m moderndl stage >/dev/null
	$(VENV)/bin/jupyter-book build _build/src --path-output . $(JB_FLAGS)
	@echo "book: $(CURDIR)/_build/html/index.html"

# Lint, library tests, every chapter at smoke (claims asserted) and at dry (full code paths),
# the two-rank tests, the CPU form of gpu-check, the book at smoke, the browser checks. The
# longest tests (chapters, then launches) are queued first, so that neither worker idles at
# the end while the other finishes a chapter.
test: venv browser-deps
	$(VENV)/bin/ruff check lib tests notebooks
	$(PY) -m pytest -n 2 --dist loadgroup --durations 25 tests/notebooks tests/ranks tests/unit
	$(PY) -m moderndl.gpu_check --cpu
	$(MAKE) --no-print-directory book PROFILE=smoke
	$(PY) -m pytest tests/browser

unit: venv
	$(PY) -m pytest tests/unit

notebooks: venv
	$(PY) -m pytest tests/notebooks

ranks: venv
	$(PY) -m pytest tests/ranks

browser: venv browser-deps
	$(PY) -m pytest tests/browser

browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null)

lab: venv
	$(VENV)/bin/jupyter lab notebooks/

run: venv
	@test -n "$(NB)" || (echo "usage: make run NB=<name> [PROFILE=smoke|laptop|full|dry|auto]"; $(PY) -m moderndl list; exit 2)
	$(PY) -m moderndl run $(NB) --profile $(PROFILE)

lint: venv
	$(VENV)/bin/ruff check lib tests notebooks

# Re-run the laptop profile for chapters whose committed record is stale or missing, and copy
# the sidecars into results/laptop/ (about an hour for all six on a 2-core machine).
records: venv
	$(PY) -m moderndl records $(NB)

# Everything that needs CUDA, in one script of at most 8 minutes on one H100/H200. It needs only
# torch, transformers, accelerate and networkx (no venv on the GPU machine: python3 with lib/ on
# the path). Without CUDA it runs the same paths at toy size on CPU and says what it skipped.
GPU_PY := $(if $(wildcard $(PY)),$(PY),python3)
gpu-check:
	PYTHONPATH=$(CURDIR)/lib $(GPU_PY) -m moderndl.gpu_check

clean:
	rm -rf _build
