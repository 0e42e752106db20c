"""Test-wide setup: runs made by tests (notebooks, papermill, the run store) never touch data/.

TDYN_DATA points the run store at a temporary folder for the whole session; it is set in
os.environ before any kernel starts, so notebook kernels inherit it.
"""

import os
import shutil
import tempfile

_DATA = tempfile.mkdtemp(prefix="tdyn-test-data-")
os.environ["TDYN_DATA"] = _DATA
os.environ.pop("TDYN_RUN_DIR", None)


def pytest_unconfigure(config):
    shutil.rmtree(_DATA, ignore_errors=True)
