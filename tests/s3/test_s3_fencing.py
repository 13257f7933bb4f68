"""A writer that lost its lease (paused past it while another writer took over) must
never damage what the new writer commits (found by review: it replaced the other's
manifest, and both handed out the same object ids)."""

from __future__ import annotations

import errno
import logging
import os
import time

import pytest
from s3util import options
from tree_ops import errno_of, get, put

import lakefs
from lakefs.config import Config
from lakefs.dataset.dataset import _AutoCommit
from lakefs.errors import LeaseLostError, LockedError
from lakefs.fs.tree import DatasetFS

pytestmark = pytest.mark.timeout(120)


def paused_past_its_lease(ds) -> None:
    """What a SIGSTOP, a long GC pause or a partition does to a writer: no renewals."""
    ds._writer_lock._stop.set()
    time.sleep(1.5)


def stalled_writer(s3_url, opts, key: str, **tensor_kw):
    """A new dataset with a bytes tensor ``b``, and a writer that stored ``key`` and then
    stalled past its lease (its renewals stopped)."""
    with lakefs.empty(s3_url, storage_options=opts) as ds:
        ds.create_tensor("b", htype="bytes", **tensor_kw)
    w1 = lakefs.load(s3_url, storage_options=opts)
    w1.b[key] = b"1" * 3000
    paused_past_its_lease(w1)
    return w1


def test_a_writer_that_lost_its_lease_publishes_nothing(s3_endpoint, s3_url):
    opts = dict(options(s3_endpoint), lease_seconds=1)
    w1 = stalled_writer(s3_url, opts, "from_w1", chunk_size=4096)
    with lakefs.load(s3_url, storage_options=opts) as w2:  # takes the expired lease over
        w2.b["from_w2"] = b"2" * 3000
        w2.flush()
        w1.b["late_w1"] = b"3" * 5000  # W1 resumes: seals and puts chunks of its own
        with pytest.raises(LockedError, match="lost"):
            w1.flush()
        w2.b["more_w2"] = b"4" * 3000
    ro = lakefs.load(s3_url, read_only=True, storage_options=opts)
    assert sorted(ro.keys()) == ["from_w2", "more_w2"]
    assert ro.b["from_w2"].tobytes() == b"2" * 3000 and ro.b["more_w2"].tobytes() == b"4" * 3000


def test_a_lost_lease_seen_too_late_still_cannot_replace_the_new_commit(s3_endpoint, s3_url, monkeypatch):
    """The window between the lease check and the manifest put: the create-only put of
    the manifest refuses the commit the other writer already made."""
    opts = dict(options(s3_endpoint), lease_seconds=1)
    w1 = stalled_writer(s3_url, opts, "from_w1")
    with lakefs.load(s3_url, storage_options=opts) as w2:
        w2.b["from_w2"] = b"2" * 3000
    monkeypatch.setattr(type(w1._writer_lock), "verify", lambda self: None)  # not seen yet
    with pytest.raises(LockedError, match="another writer committed"):
        w1.flush()
    ro = lakefs.load(s3_url, read_only=True, storage_options=opts)
    assert ro.keys() == ["from_w2"] and ro.b["from_w2"].tobytes() == b"2" * 3000


def test_a_script_that_never_closes_its_writer_exits(s3_endpoint, s3_url, tmp_path):
    """Found by review: the dataset's finalizer deleted the lease at interpreter exit,
    through fsspec's event loop, which was already gone: the process never exited."""
    import subprocess
    import sys

    script = tmp_path / "noclose.py"
    script.write_text(
        "import lakefs, sys\n"
        f"ds = lakefs.dataset({s3_url!r}, storage_options={dict(options(s3_endpoint), lease_seconds=2)!r})\n"
        "ds.create_tensor('t', htype='text').append('x')\n"
        "ds.flush()\n"
        "raise SystemExit(3)\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    time.sleep(2.5)  # its lease expires: the next writer gets in
    with lakefs.load(s3_url, storage_options=dict(options(s3_endpoint), lease_seconds=2)) as ds:
        assert ds.t[0].numpy() == "x"


def test_a_lease_lost_while_nobody_else_wrote_is_taken_again(s3_endpoint, s3_url, caplog):
    """A network outage longer than the lease (renewals failed until it expired) must not
    leave a long-lived writer (a mount) unable to ever commit again."""
    opts = dict(options(s3_endpoint), lease_seconds=1)
    w1 = stalled_writer(s3_url, opts, "before")
    with pytest.raises(LockedError, match="lost"):
        w1._writer_lock.verify()  # it is lost indeed
    w1.b["after"] = b"2" * 3000
    w1.flush()  # takes the lease again: nobody else committed
    assert "is taken again" in caplog.text
    with pytest.raises(LockedError, match="already open for writing in this process"):
        lakefs.load(s3_url, storage_options=opts)  # the new lease is live (and renewed), and known as this process's
    time.sleep(1.5)
    w1.b["later"] = b"3" * 10
    w1.close()
    ro = lakefs.load(s3_url, read_only=True, storage_options=opts)
    assert sorted(ro.keys()) == ["after", "before", "later"]


def test_a_lost_lease_is_not_taken_again_after_another_writer_committed(s3_endpoint, s3_url):
    opts = dict(options(s3_endpoint), lease_seconds=1)
    w1 = stalled_writer(s3_url, opts, "from_w1")
    with lakefs.load(s3_url, storage_options=opts) as w2:  # commits and releases the lease
        w2.b["from_w2"] = b"2" * 3000
    with pytest.raises(LockedError, match="another writer held it meanwhile"):
        w1.flush()
    with lakefs.load(s3_url, storage_options=opts) as w3:  # w1 holds no lease now
        assert w3.keys() == ["from_w2"]


def test_a_lost_lease_is_not_taken_again_in_a_dataset_created_anew(s3_endpoint, s3_url):
    """The same URL re-created meanwhile may even be at the same commit number: the
    marker's uid tells them apart, and the old writer's commit would name deleted chunks."""
    opts = dict(options(s3_endpoint), lease_seconds=1)
    with lakefs.empty(s3_url, storage_options=opts) as ds:
        ds.create_tensor("b", htype="bytes")
    w1 = lakefs.load(s3_url, storage_options=opts)
    seq = w1._manifest.seq
    w1.b["from_w1"] = b"1" * 3000
    paused_past_its_lease(w1)
    with lakefs.empty(s3_url, overwrite=True, storage_options=opts) as w2:
        w2.create_tensor("b", htype="bytes")
    assert lakefs.load(s3_url, read_only=True, storage_options=opts)._manifest.seq == seq
    with pytest.raises(LockedError, match="another writer held it meanwhile"):
        w1.flush()
    assert lakefs.load(s3_url, read_only=True, storage_options=opts).keys() == []


def test_a_lost_lease_is_not_taken_again_after_another_writer_held_it_without_committing(
        s3_endpoint, s3_url):
    """Found by review: another writer that held the lease meanwhile may delete this
    writer's written-behind chunks without committing (a compact with nothing to rewrite
    still deletes unreferenced objects); committing after that named missing chunks."""
    from lakefs.dataset import maintenance

    opts = dict(options(s3_endpoint), lease_seconds=1)
    with lakefs.empty(s3_url, storage_options=opts) as ds:
        ds.create_tensor("b", htype="bytes", chunk_size=4096)
        ds.b.extend([b"1" * 3000] * 4)
    w1 = lakefs.load(s3_url, storage_options=opts)
    paused_past_its_lease(w1)
    w1.b.extend([b"2" * 3000] * 8)  # chunks sealed and put behind, not yet committed
    w1._chunk_writer.drain()
    with lakefs.load(s3_url, storage_options=opts) as w2:
        maintenance.compact(w2)  # deletes w1's unreferenced chunks; commits nothing
    with pytest.raises(LockedError, match="another writer held it meanwhile"):
        w1.flush()
    ro = lakefs.load(s3_url, read_only=True, storage_options=opts)
    assert len(ro.b) == 4 and all(s.tobytes() == b"1" * 3000 for s in ro.b)


def error_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_writer_whose_lease_another_took_over_turns_read_only(s3_endpoint, s3_url, caplog):
    """Found by review: a writer whose lease another writer took over went on taking
    writes it could never commit, each commit failing again. It says so once and is
    read-only from then on (EROFS), serving the dataset's latest commit."""
    opts = dict(options(s3_endpoint), lease_seconds=1)
    w1 = stalled_writer(s3_url, opts, "from_w1")
    seq = w1._manifest.seq
    with lakefs.load(s3_url, storage_options=opts) as w2:
        w2.b["from_w2"] = b"2" * 3000
    caplog.clear()
    with pytest.raises(LeaseLostError, match=f"lost to another writer .* since commit {seq} .* is lost") as e:
        w1.flush()
    assert isinstance(e.value, LockedError) and e.value.errno == errno.EROFS
    assert w1.lease_lost is not None and w1.lease_lost.seq == seq
    with pytest.raises(LeaseLostError, match="is read-only: its writer lease was lost"):
        w1.b["late_w1"] = b"3"
    with pytest.raises(LeaseLostError):
        w1.create_tensor("c", htype="text")
    assert w1.keys() == ["from_w2"] and w1.b["from_w2"].tobytes() == b"2" * 3000  # the latest commit
    with pytest.raises(LeaseLostError):  # changes were lost: every commit says so, to the end
        w1.flush()
    with pytest.raises(LeaseLostError):
        w1.close()
    assert w1._closed
    assert len(error_lines(caplog)) == 1 and "lost to another writer" in error_lines(caplog)[0]
    ro = lakefs.load(s3_url, read_only=True, storage_options=opts)
    assert ro.keys() == ["from_w2"]


def paused_mount_writer(s3_url, opts, interval: float):
    """A writer as a mount has it (a periodic commit, a DatasetFS) over a dataset holding
    ``kept.txt``, with ``/open.txt`` being written, paused (SIGSTOP) past its lease: its
    renewals and its periodic commit stop. ``resume`` starts the periodic commit again."""
    with lakefs.empty(s3_url, storage_options=opts) as ds:
        ds.write_file("kept.txt", b"committed")
    w1 = lakefs.load(s3_url, storage_options=opts, commit_interval=interval)
    fs = DatasetFS(w1, Config())
    fh = fs.create("/open.txt", 0o644)
    fs.write(fh, b"half", 0)
    w1.flush()  # (the root's new time): only the file being written is not committed
    w1.stop_autocommit()
    paused_past_its_lease(w1)

    def resume() -> None:
        w1._autocommit = _AutoCommit(w1, interval)
        w1._autocommit.start()

    return w1, fs, fh, resume


def test_a_mount_whose_lease_another_took_over_refuses_writes_once_and_for_all(s3_endpoint, s3_url, caplog):
    """The mount's side: its periodic commit finds the lease lost (here with nothing to
    commit), says so in one ERROR line and stops; every change is EROFS, and reads show the
    other writer's commit."""
    opts = dict(options(s3_endpoint), lease_seconds=1)
    w1, fs, fh, resume = paused_mount_writer(s3_url, opts, 0.1)
    with lakefs.load(s3_url, storage_options=opts) as w2:
        w2.write_file("from_w2.txt", b"w2")
    caplog.clear()
    resume()
    deadline = time.monotonic() + 10
    while w1.lease_lost is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.6)  # six more periods
    assert fs.read_only and not w1._autocommit.is_alive()
    assert len(error_lines(caplog)) == 1 and "lost to another writer" in error_lines(caplog)[0]
    assert "periodic commit failed" not in caplog.text
    assert errno_of(fs.write, fh, b"more", 4) == errno.EROFS  # a file opened before: gone
    assert errno_of(fs.flush, fh) == errno.EROFS  # its close says so
    fs.release(fh)
    assert fs.lost_with_lease == ["open.txt"]
    for op, *args in [(fs.create, "/late.txt", 0o644), (fs.mkdir, "/d", 0o755), (fs.unlink, "/kept.txt"),
                      (fs.rename, "/kept.txt", "/moved.txt"), (fs.chmod, "/kept.txt", 0o600),
                      (fs.truncate, "/kept.txt", 0), (fs.open, "/kept.txt", os.O_WRONLY)]:
        assert errno_of(op, *args) == errno.EROFS, op
    assert get(fs, "/kept.txt") == b"committed" and get(fs, "/from_w2.txt") == b"w2"
    assert sorted(name for name, _ in fs.readdir("/")) == ["from_w2.txt", "kept.txt"]
    fs.shutdown()  # nothing the dataset held was lost (the file being written was the mount's)
    w1.close()
    assert len(error_lines(caplog)) == 1
    ro = lakefs.load(s3_url, read_only=True, storage_options=opts)
    assert sorted(ro.files) == ["from_w2.txt", "kept.txt"]


def test_a_mount_whose_lease_ran_out_while_nobody_else_wrote_goes_on_writing(s3_endpoint, s3_url, caplog):
    """A network outage longer than the lease, nobody else writing: the periodic commit
    takes the lease again and the mount keeps taking writes, with no error."""
    opts = dict(options(s3_endpoint), lease_seconds=1)
    w1, fs, fh, resume = paused_mount_writer(s3_url, opts, 0.1)
    caplog.clear()
    resume()
    fs.write(fh, b" and the rest", 4)
    fs.flush(fh)
    fs.release(fh)
    put(fs, "/after.txt", b"after the outage")
    deadline = time.monotonic() + 10
    while w1.has_changes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not w1.has_changes and not fs.read_only
    assert "is taken again" in caplog.text and not error_lines(caplog)
    with pytest.raises(LockedError, match="already open for writing in this process"):
        lakefs.load(s3_url, storage_options=opts)  # its lease is live again, and known as this process's
    fs.shutdown()
    w1.close()
    ro = lakefs.load(s3_url, read_only=True, storage_options=opts)
    assert ro.read_file("open.txt") == b"half and the rest" and ro.read_file("after.txt") == b"after the outage"


def test_an_ingest_whose_lease_another_took_over_stops_with_its_report(s3_endpoint, s3_url, photos, tmp_path):
    """Found by QA: an ingest cut off from the store past its lease ended with only the
    LeaseLostError (no "ingested N of M", no "run the same command again"), and each
    file written after it would have been a failure of its own. It stops as on a store
    failure, and its report says what was kept: nothing since its last commit."""
    import shutil

    from lakefs.tools import ingest as ingest_mod
    from lakefs.tools.scan import scan

    src = tmp_path / "src"
    src.mkdir()
    for p in photos:
        shutil.copy2(p, src / p.name)
    opts = dict(options(s3_endpoint), lease_seconds=1)
    w1 = stalled_writer(s3_url, opts, "from_w1")
    with lakefs.load(s3_url, storage_options=opts) as w2:  # takes the expired lease over
        w2.b["from_w2"] = b"2" * 3000
    report = ingest_mod.ingest(w1, scan(str(src), tensor="images"), workers=0, progress=False, commit_seconds=0)
    ingest_mod.close_dataset(w1, report)  # (no raise: the report says it)
    assert "lost" in (report.stopped or report.commit_error or ""), (report.stopped, report.commit_error)
    assert report.kept == 0 and not report.tensors_kept and len(report.failed) == 0
    ro = lakefs.load(s3_url, read_only=True, storage_options=opts)
    assert ro.keys() == ["from_w2"] and "images" not in ro.tensors
