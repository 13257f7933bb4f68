"""A writable dataset left open when the interpreter exits is committed by an atexit hook
(DESIGN §5), in one WARNING line; a failed commit is one ERROR line, never a traceback nor a
hang. Each script runs in a subprocess: the real interpreter exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import lakefs

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
HEADER = "import sys, numpy as np, lakefs\npath = sys.argv[1]\n"


def run_script(body: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", HEADER + textwrap.dedent(body), *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_a_dataset_not_closed_is_committed_at_exit(dataset_path: Path) -> None:
    p = run_script("""
        ds = lakefs.empty(path)
        ds.create_tensor("x")
        ds.x.extend(np.arange(5))
    """, str(dataset_path))
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "was not closed: committed at exit" in lines[0], p.stderr
    assert str(dataset_path) in lines[0]
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert list(ds.tensors) == ["x"]
        assert ds.x.numpy().ravel().tolist() == [0, 1, 2, 3, 4]


def test_changes_after_the_last_flush_are_committed_at_exit(dataset_path: Path) -> None:
    p = run_script("""
        ds = lakefs.dataset(path)
        ds.create_tensor("x")
        ds.x.extend(np.arange(3))
        ds.flush()
        ds.x.append(7)
        other = lakefs.empty(path + "-2")  # two open writers: both committed
        other.create_tensor("y")
        other.y.append(1)
    """, str(dataset_path))
    assert p.returncode == 0, p.stderr
    assert len(p.stderr.splitlines()) == 2, p.stderr
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds.x.numpy().ravel().tolist() == [0, 1, 2, 7]
    with lakefs.load(f"{dataset_path}-2", read_only=True) as ds:
        assert len(ds) == 1


def test_closed_flushed_and_read_only_datasets_log_nothing(dataset_path: Path) -> None:
    p = run_script("""
        with lakefs.empty(path) as ds:
            ds.create_tensor("x")
            ds.x.append(1)
        ds = lakefs.load(path)
        ds.x.append(2)
        ds.flush()  # nothing left to commit
        reader = lakefs.load(path, read_only=True)
    """, str(dataset_path))
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds.x.numpy().ravel().tolist() == [1, 2]


def test_a_commit_that_fails_at_exit_is_one_error_line(dataset_path: Path) -> None:
    p = run_script("""
        import shutil
        ds = lakefs.empty(path)
        ds.create_tensor("x")
        ds.x.extend(np.arange(5))
        shutil.rmtree(path)
        open(path, "w").close()  # a file where the dataset was: every put fails
    """, str(dataset_path), timeout=30)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "committing it at exit failed" in lines[0], p.stderr
    assert "Traceback" not in p.stderr


def test_a_commit_that_hangs_at_exit_is_given_up(dataset_path: Path) -> None:
    p = run_script("""
        import time
        from lakefs.dataset import dataset as module
        module.EXIT_COMMIT_SECONDS = 1.0  # (a local store has no op_timeout)
        ds = lakefs.empty(path)
        ds.create_tensor("x")
        ds.x.extend(np.arange(5))
        ds.storage.put = lambda *args, **kwargs: time.sleep(600)  # a store that never answers
    """, str(dataset_path), timeout=30)
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and "did not finish within 1 s" in lines[0], p.stderr


def test_a_forked_child_does_not_commit_its_parents_dataset(dataset_path: Path) -> None:
    p = run_script("""
        import os
        ds = lakefs.empty(path)
        ds.create_tensor("x")
        ds.x.extend(np.arange(5))
        if os.fork() == 0:
            sys.exit(0)  # the child's exit runs atexit hooks: not a commit of the parent's writes
        os.wait()
        print(len(lakefs.load(path, read_only=True)))
    """, str(dataset_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout == "0\n"  # nothing committed by the child
    assert len(p.stderr.splitlines()) == 1, p.stderr  # the parent's WARNING only
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert len(ds) == 5


def test_the_lakefs_command_commits_nothing_at_exit(dataset_path: Path, tmp_path: Path) -> None:
    """The command decides what it commits: an `ingest` that stopped at a store failure
    reported a file as not kept, which the hook then committed with advice meant for
    scripts, "call close() or flush()" (found by QA)."""
    p = run_script("""
        from lakefs.cli.main import main
        assert main(["create", sys.argv[2]]) == 0
        ds = lakefs.empty(path)
        ds.create_tensor("x")
        ds.x.extend(np.arange(5))
    """, str(dataset_path), str(tmp_path / "made"))
    assert p.returncode == 0 and "not closed" not in p.stderr, p.stderr
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert list(ds.tensors) == []
