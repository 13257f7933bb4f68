"""The commit at interpreter exit (lakefs/dataset/dataset.py, _OpenWriters) on an object
store: s3fs's event loop runs in a daemon thread, alive while atexit hooks run, and ours
runs before the hook of weakref.finalize that closes s3fs's sessions. A store that went
away before the exit is one ERROR line, never a hang nor a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from s3server import BUCKET, MotoServer, boto_client
from s3util import options

import lakefs

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
SCRIPT = """
import json, sys, numpy as np, lakefs
url, opts = sys.argv[1], json.loads(sys.argv[2])
lakefs.empty("{local}").close()  # a dataset opened first: the hook must still run before s3fs's finalizers
ds = lakefs.empty(url, storage_options=opts)
ds.create_tensor("x")
ds.x.extend(np.arange(5))
ds.create_tensor("images", htype="image", sample_compression="jpeg")
ds.images.append(lakefs.read(sys.argv[3]))
"""


def script(tmp_path: Path, wait: bool = False) -> str:
    text = SCRIPT.format(local=tmp_path / "local")
    if wait:  # until the test has stopped the server
        text += "print('ready', flush=True)\nsys.stdin.read()\n"
    return textwrap.dedent(text)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])  # (localhost: a name resolved at exit)
def test_an_s3_dataset_not_closed_is_committed_at_exit(tmp_path: Path, s3_endpoint: str, s3_url: str,
                                                       photos: list[Path], host: str) -> None:
    opts = options(s3_endpoint.replace("127.0.0.1", host))
    p = subprocess.run([sys.executable, "-c", script(tmp_path), s3_url, json.dumps(opts), str(photos[0])],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "was not closed: committed at exit" in lines[0], p.stderr
    with lakefs.load(s3_url, read_only=True, storage_options=opts) as ds:
        assert sorted(ds.tensors) == ["images", "x"]
        assert ds.x.numpy().ravel().tolist() == [0, 1, 2, 3, 4]
        assert ds.images[0].tobytes() == photos[0].read_bytes()


def test_a_store_gone_before_exit_is_one_error_line(tmp_path: Path, photos: list[Path]) -> None:
    server = MotoServer()
    server.start()
    try:
        boto_client(server.endpoint).create_bucket(Bucket=BUCKET)
        proc = subprocess.Popen(
            [sys.executable, "-c", script(tmp_path, wait=True), f"s3://{BUCKET}/gone",
             json.dumps(options(server.endpoint)), str(photos[0])],
            env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline() == "ready\n"
            server.stop()
            _, err = proc.communicate("", timeout=60)  # bounded: never hangs at exit
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        server.stop()
    assert proc.returncode == 0, err
    errors = [line for line in err.splitlines() if "at exit" in line]
    assert len(errors) == 1 and "committing it at exit failed" in errors[0], err
    assert "Traceback" not in err
