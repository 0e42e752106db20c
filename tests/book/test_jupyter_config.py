"""Jupyter works for root and non-root users with the project's configuration alone.

Jupyter refuses to start a server as root unless told; jupyter_config/ (which the Makefile
exports as JUPYTER_CONFIG_DIR) tells it.  We start a real server with that configuration
and, when running as root, check that without it the server refuses, so the configuration
is what makes the difference.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JUPYTER = Path(sys.executable).parent / "jupyter"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(config_dir: Path, tmp_path: Path) -> tuple[bool, str]:
    """Start `jupyter server` on loopback; True once it serves, False if it exits."""
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = tmp_path / f"server-{config_dir.name}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(JUPYTER), "server", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={_free_port()}", "--ServerApp.port_retries=0",
             f"--ServerApp.root_dir={tmp_path}"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                text = log.read_text()
                if "is running at" in text or "http://127.0.0.1" in text:
                    return True, text
                if proc.poll() is not None:
                    return False, log.read_text()
                time.sleep(0.3)
            pytest.fail(f"jupyter server neither started nor exited in 60 s:\n{log.read_text()}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_server_starts_with_project_config(tmp_path):
    started, log = _start_server(ROOT / "jupyter_config", tmp_path)
    assert started, log


@pytest.mark.skipif(os.geteuid() != 0, reason="the refusal only happens as root")
def test_as_root_the_server_refuses_without_the_project_config(tmp_path):
    empty = tmp_path / "empty_config"
    empty.mkdir()
    started, log = _start_server(empty, tmp_path)
    assert not started
    assert "allow-root" in log
