"""Starts a real sympow-server on loopback for the end-to-end tests, and stops it after."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

BUILD = os.environ.get("SYMPOW_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
sys.path.insert(0, os.path.join(BUILD, "python"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python"))
MODEL = os.path.join(os.path.dirname(__file__), "..", "..", "models", "sympow-tiny")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    def __init__(self, *flags):
        self.port = free_port()
        self.metrics_port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = open(os.path.join(BUILD, f"e2e-server-{self.port}.log"), "w+")
        self.process = subprocess.Popen(
            [os.path.join(BUILD, "server", "sympow-server"), "--model", MODEL, "--listen", self.address,
             "--metrics_listen", f"127.0.0.1:{self.metrics_port}", *flags],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while "serving sympow.v1.Sympow" not in self.output():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"server did not start:\n{self.output()}")
            time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=timeout)
        return self.process.returncode


@pytest.fixture(scope="module")
def server():
    running = RunningServer("--max_prompt_tokens", "3000", "--max_message_bytes", "1000000",
                            "--max_sessions", "64")
    yield running
    assert running.stop() == 0, running.output()


def metric_value(text, name, labels=""):
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    return float(match.group(1)) if match else None
