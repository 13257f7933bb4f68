"""Real mounts: a folder whose files share row keys (``model.pt`` and ``model.json``,
``index.db`` and ``index.db-journal``) in a ``bytes`` tensor. One file per key is the
sample; the others are plain files (found by review: they were "File exists")."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mounting import mounted

import lakefs

pytestmark = pytest.mark.timeout(120)

PAIRS = ("data.csv", "data.parquet", "model.pt", "model.json", "report.pdf", "report.docx",
         "index.db", "index.db-journal", "index.tmp", "solo.bin")


def lakefs_mount(ds: Path, mnt: Path) -> list[str]:
    return [sys.executable, "-m", "lakefs", "mount", str(ds), str(mnt)]


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True)


def digests(d: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in d.iterdir()}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "files"
    src.mkdir(parents=True)
    for i, name in enumerate(PAIRS):
        (src / name).write_bytes(os.urandom(1000 + 37 * i))
        os.utime(src / name, ns=(1_600_000_000_000_000_000 + i, 1_600_000_000_000_000_000 + i * 1000))
    return src


def test_rsync_twice_and_cp_r_of_a_folder_with_files_sharing_keys(src, dataset_path, mountpoint):
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        run("rsync", "-a", f"{src.parent}/", f"{mountpoint}/")
        second = run("rsync", "-a", "--stats", f"{src.parent}/", f"{mountpoint}/").stdout
        assert "Number of regular files transferred: 0" in second
        assert digests(mountpoint / "files") == digests(src)
        for p in src.iterdir():
            assert (mountpoint / "files" / p.name).stat().st_mtime_ns == p.stat().st_mtime_ns
        copy = mountpoint / "copy"
        copy.mkdir()
        shutil.copy(src / "solo.bin", copy)  # a bytes tensor whichever file cp takes first
        run("cp", "-r", f"{src}/.", str(copy))
        assert digests(copy) == digests(src)
    with lakefs.load(dataset_path, read_only=True) as ds:
        for name in ("files", "copy"):
            t = ds.tensors[name]
            assert t.htype == "bytes" and t.num_samples == 5  # data, model, report, index, solo
            plain = sorted(p.split("/")[1] for p in ds._manifest.files if p.startswith(name + "/"))
            assert sorted(t.file_table()[0] + plain) == sorted(PAIRS)
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        assert digests(mountpoint / "files") == digests(src) == digests(mountpoint / "copy")
        third = run("rsync", "-a", "--stats", f"{src.parent}/", f"{mountpoint}/").stdout
        assert "Number of regular files transferred: 0" in third


def test_the_os_replace_idiom_over_a_sample(dataset_path, mountpoint):
    """p.with_suffix('.tmp') written, then os.replace(tmp, p): the temp file shares the
    key of p, the sample, and its rename stores it as that sample."""
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        d = mountpoint / "db"
        d.mkdir()
        p = d / "index.db"
        p.write_bytes(b"version 0")
        for i in range(1, 4):
            tmp = p.with_suffix(".tmp")
            with open(tmp, "wb") as f:
                f.write(b"version %d" % i)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, p)
            assert p.read_bytes() == b"version %d" % i
            assert os.listdir(d) == ["index.db"]
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds.db.file_table()[0] == ["index.db"] and ds.db["index"].file_bytes() == b"version 3"
        assert not ds._manifest.files


def test_sqlite_with_its_journal_in_a_bytes_tensor(dataset_path, mountpoint):
    def check(db: Path, rows: int) -> None:
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert con.execute("SELECT count(*), sum(n) FROM t").fetchone() == (rows, sum(range(rows)))
        finally:
            con.close()

    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        (mountpoint / "db").mkdir()
        db = mountpoint / "db" / "index.db"
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # index.db-journal
            con.execute("CREATE TABLE t (n INTEGER, pad TEXT)")
            for start in range(0, 300, 100):  # a journal per transaction
                con.executemany("INSERT INTO t VALUES (?, ?)", [(n, "x" * 500) for n in range(start, start + 100)])
                con.commit()
            con.execute("DELETE FROM t WHERE n >= 200")  # rewrites pages: the journal holds them
            con.commit()
        finally:
            con.close()
        check(db, 200)
        assert os.listdir(db.parent) == ["index.db"]
    with lakefs.load(dataset_path, read_only=True) as ds:
        assert ds.db.htype == "bytes" and ds.db.file_table()[0] == ["index.db"]
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        check(db, 200)
        con = sqlite3.connect(db)
        try:
            con.executemany("INSERT INTO t VALUES (?, ?)", [(n, "y") for n in range(200, 250)])
            con.commit()
        finally:
            con.close()
        check(db, 250)
