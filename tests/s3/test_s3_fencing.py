"""A writer that lost its lease (paused past it while another writer took over) must
never damage what the new writer commits (found by review: it replaced the other's
manifest, and both handed out the same object ids)."""

from __future__ import annotations

import time

import pytest
from s3util import options

import lakefs
from lakefs.errors import LockedError

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
    with pytest.raises(LockedError, match="locked by another writer"):
        lakefs.load(s3_url, storage_options=opts)  # the new lease is live (and renewed)
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
