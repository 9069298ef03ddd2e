"""Starts the real credential store binary (CREDSTORE_BIN) on a free port for the tests."""

import json
import os
import pathlib
import subprocess
import tempfile

import pytest


class Store:
    def __init__(self, base: str, data: pathlib.Path):
        self.base = base
        self.data = data

    def read(self, name: str) -> str:
        return (self.data / name).read_text().strip()

    def ids(self) -> dict:
        return json.loads(self.read("bootstrap.json"))


@pytest.fixture(scope="session")
def store():
    binary = os.environ.get("CREDSTORE_BIN")
    if not binary or not os.access(binary, os.X_OK):
        pytest.fail(f"CREDSTORE_BIN must name the built apikey-operator binary (got {binary!r})")
    with tempfile.TemporaryDirectory() as tmp:
        data = pathlib.Path(tmp) / "data"
        process = subprocess.Popen(
            [binary, "credstore", "--listen", "127.0.0.1:0", "--data", str(data), "--admin-api"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            line = process.stdout.readline().strip()
            prefix = "credstore listening on "
            assert line.startswith(prefix), f"unexpected first line from the credstore: {line!r}"
            yield Store("http://" + line[len(prefix):], data)
        finally:
            process.terminate()
            process.wait(timeout=10)
