# Two commands from a fresh clone:  `make book`  and  `make test`.
# Both create (or reuse) the virtual environment .venv/ and install tdyn into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# Jupyter reads this project's configuration (allow_root for servers, see jupyter_config/),
# and finds kernels in the project's environment before any user-wide ones.
export JUPYTER_CONFIG_DIR := $(CURDIR)/jupyter_config
export JUPYTER_PATH       := $(CURDIR)/$(VENV)/share/jupyter
export JUPYTER_PLATFORM_DIRS := 1
export PYDEVD_DISABLE_FILE_VALIDATION := 1

# The tests run on every core (pytest-xdist, a file per worker so that its fixtures are built
# once); `make test PYTEST_ARGS=` runs them one at a time in this process.
PYTEST_ARGS ?= -n auto --dist loadfile

.PHONY: help book student-book student-notebooks test test-notebooks lint lab dist clean-book clean

help:
	@echo "make book   execute every chapter and build the HTML book into book/_build/html"
	@echo "make student-book   the same book without any solution, in book/_build/student/"
	@echo "make student-notebooks   one notebook per chapter for students (stubs and check cells)"
	@echo "make test   run the whole test suite (library, notebook outputs, papermill, book)"
	@echo "make test-notebooks   only the notebooks against their stored outputs"
	@echo "make lint   ruff over the repository and over the chapters' code cells"
	@echo "make lab    start JupyterLab on this project (chapters open as notebooks)"
	@echo "make dist   the release archive in dist/ (HTML tarball, data manifest, SHA256SUMS)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[book,test]"
	touch $@

book: $(STAMP)
	$(BIN)/python tools/build_book.py

student-book: $(STAMP)
	$(BIN)/python tools/student_book.py

student-notebooks: $(STAMP)
	$(BIN)/python tools/student_notebooks.py

test: $(STAMP)
	$(BIN)/python -m pytest tests $(PYTEST_ARGS)

# The notebooks against their stored outputs, with tolerances measured across CPU kernels
# (tools/notebook_outputs.py); .ci/run repeats this under ATEN_CPU_CAPABILITY=default.
test-notebooks: $(STAMP)
	$(BIN)/python -m pytest tests/book/test_notebook_outputs.py $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python tools/lint_chapters.py

lab: $(STAMP)
	$(BIN)/jupyter lab

dist: book
	$(BIN)/python tools/dist.py

clean-book:
	rm -rf book/_build

clean: clean-book
	rm -rf $(VENV) dist
