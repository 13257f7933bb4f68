"""What a commit supersedes outlives it for a while: readers loading the previous commit
still find it (found by review: a writer committing often made readers fail their open)."""

from __future__ import annotations

import threading
import time

import lakefs
from lakefs.dataset import dataset as dataset_module


def keys_of(ds) -> set[str]:
    return set(ds.storage.list(""))


def test_superseded_segments_and_manifests_outlive_their_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(dataset_module, "KEEP_MANIFESTS", 1)
    monkeypatch.setattr(dataset_module, "GARBAGE_GRACE", 0.5)
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("t", htype="text")
    for i in range(8):  # each commit merges earlier segments away
        t.append(f"{i}")
        ds.flush()
    before = keys_of(ds)
    t.append("last")
    ds.flush()
    assert before <= keys_of(ds)  # nothing the last commits superseded is gone yet
    time.sleep(0.6)
    t.append("after the grace")
    ds.flush()
    gone = before - keys_of(ds)
    assert gone and all(k.startswith(("manifests/", "tensors/", "rows/")) for k in gone)
    ds.close()
    assert [s.numpy() for s in lakefs.load(tmp_path / "ds", read_only=True).t][-1] == "after the grace"


def test_readers_open_while_a_writer_commits_often(tmp_path, monkeypatch):
    """Readers open (and refresh) in a loop while a writer commits every few appends."""
    monkeypatch.setattr(dataset_module, "GARBAGE_GRACE", 10.0)
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("t", htype="text")
    t.extend([str(i) for i in range(2000)])
    ds.flush()
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        i = 0
        while not stop.is_set():
            t.append(f"w{i}")
            i += 1
            if i % 5 == 0:
                ds.flush()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 3
        opened = 0
        while time.monotonic() < deadline:
            try:
                ro = lakefs.load(tmp_path / "ds", read_only=True)
                assert len(ro.t) >= 2000
                ro.refresh()
                opened += 1
            except Exception as e:  # noqa: BLE001 (collected and reported below)
                errors.append(e)
    finally:
        stop.set()
        thread.join()
    ds.close()
    assert opened > 3 and errors == []
