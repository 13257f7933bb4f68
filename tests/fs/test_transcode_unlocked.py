"""A sample's transcode runs without the mount's lock or the dataset lock (DESIGN §3:
"it runs in parallel across cores where files arrive in parallel"), and everything else
the store promises still holds around it. DatasetFS without a kernel: a transcode is
held in progress by a gate (the real transcode, waiting on an Event first), so each race
is forced, not timed."""

from __future__ import annotations

import errno
import io
import os
import threading

import numpy as np
import pytest
from image_samples import png16
from PIL import Image, PngImagePlugin
from tree_ops import get

import lakefs
from lakefs.config import Config
from lakefs.dataset import samples
from lakefs.errors import LakeFSError
from lakefs.fs.tree import DatasetFS

pytestmark = pytest.mark.timeout(60)

WAIT = 10  # seconds: only a guard against hanging, never reached when the code is right
MARK = b"lakefs-test-gate"


def png(seed: int, *, gated: bool = False) -> bytes:
    """A small smooth RGB PNG (``gated``: its transcode waits for the gate)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:48, 0:64]
    base = rng.integers(0, 256, size=3)
    pixels = ((base + x[..., None] * 2 + y[..., None] * 3) % 256).astype(np.uint8)
    info = PngImagePlugin.PngInfo()
    if gated:
        info.add_text("gate", MARK.decode())
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def pixels_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def close_to(stored: bytes, source: bytes) -> bool:
    """A JPEG transcode of ``source`` (lossy: close, not equal)."""
    a, b = pixels_of(stored), pixels_of(source)
    return stored[:2] == b"\xff\xd8" and a.shape == b.shape and float(np.abs(a - b).mean()) < 8


class Gate:
    """Holds the transcode of a gated file in progress until opened; counts transcodes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.entered, self.opened = threading.Event(), threading.Event()
        self.calls: list[bytes] = []
        real = samples.prepare_encoded

        def gated(data, *args, **kw):
            self.calls.append(bytes(data))
            if MARK in data:
                self.entered.set()
                assert self.opened.wait(3 * WAIT), "the gate was never opened"
            return real(data, *args, **kw)

        monkeypatch.setattr(samples, "prepare_encoded", gated)

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def fs(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.create_tensor("other", htype="image", sample_compression="jpeg")
    yield DatasetFS(ds, Config())
    ds.close()


@pytest.fixture
def gate(monkeypatch):
    g = Gate(monkeypatch)
    yield g
    g.open()  # never leave a thread waiting


class Closer(threading.Thread):
    """Writes a file and closes it in a thread: its close runs the gated transcode."""

    def __init__(self, fs: DatasetFS, path: str, data: bytes, *, release: bool = True):
        super().__init__(daemon=True)
        self.fs, self.path, self.data, self.release = fs, path, data, release
        self.fh = fs.create(path, 0o644)
        fs.write(self.fh, data, 0)
        self.error: LakeFSError | None = None

    def run(self) -> None:
        try:
            self.fs.flush(self.fh)
        except LakeFSError as e:
            self.error = e
        if self.release:
            self.fs.release(self.fh)

    def finish(self) -> None:
        self.join(WAIT)
        assert not self.is_alive(), "the close never finished"


def meanwhile(fn) -> object:
    """Run ``fn`` in another thread while a transcode is in progress; its result. It must
    finish while the gate is shut: with the old code it waited for the lock."""
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as e:  # (re-raised below)
            out["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(WAIT)
    assert not t.is_alive(), "blocked behind a transcode in progress"
    if "error" in out:
        raise out["error"]
    return out.get("value")


def put(fs: DatasetFS, path: str, data: bytes) -> None:
    fh = fs.create(path, 0o644)
    try:
        fs.write(fh, data, 0)
        fs.flush(fh)
    finally:
        fs.release(fh)


def test_other_operations_go_on_during_a_transcode(fs, gate, photos):
    put(fs, "/other/b.jpg", photos[0].read_bytes())
    slow = Closer(fs, "/images/a.png", png(1, gated=True))
    slow.start()
    try:
        assert gate.entered.wait(WAIT)

        def others():
            assert fs.getattr("/other/b.jpg").size == photos[0].stat().st_size
            assert fs.find_attr("/other/nothing.jpg") is None
            assert [n for n, _ in fs.readdir("/other")] == ["b.jpg"]
            assert get(fs, "/other/b.jpg") == photos[0].read_bytes()
            fs.getattr("/images/a.png")  # the file being stored: its buffer's attributes
            fs.mkdir("/more", 0o755)

        meanwhile(others)
        assert slow.is_alive()  # (the transcode was in progress all along)
    finally:
        gate.open()
    slow.finish()
    assert slow.error is None
    assert close_to(get(fs, "/images/a.jpg"), slow.data)


def test_parallel_transcodes_are_both_stored(fs, gate):
    slow = Closer(fs, "/images/a.png", png(1, gated=True))
    slow.start()
    try:
        assert gate.entered.wait(WAIT)
        b = png(2)
        meanwhile(lambda: put(fs, "/images/b.png", b))  # transcoded while a's is
    finally:
        gate.open()
    slow.finish()
    assert slow.error is None
    t = fs.ds.images
    assert sorted(s.filename for s in t) == ["a.jpg", "b.jpg"]
    assert all(s.transcoded for s in t)
    assert close_to(t["a"].tobytes(), slow.data) and close_to(t["b"].tobytes(), b)
    assert [n for n, _ in fs.readdir("/images")] == ["b.jpg", "a.jpg"]  # (rows in the order stored)


def test_a_refused_file_is_einval_during_a_transcode(fs, gate):
    put(fs, "/images/kept.png", png(3))
    before = fs.ds.images["kept"].tobytes()
    slow = Closer(fs, "/images/a.png", png(1, gated=True))
    slow.start()
    try:
        assert gate.entered.wait(WAIT)
        bad = png16(3)  # a 16-bit colour PNG: it probes, but cannot be decoded to transcode

        def refused():
            fh = fs.create("/images/bad.png", 0o644)
            fs.write(fh, bad, 0)
            for _ in range(2):  # (a dup's close, then the last) the same refusal, not redone
                with pytest.raises(LakeFSError) as e:
                    fs.flush(fh)
                assert e.value.errno == errno.EINVAL
            fs.release(fh)

        meanwhile(refused)
        assert gate.calls.count(bad) == 1  # the refusal was remembered, not tried again
    finally:
        gate.open()
    slow.finish()
    assert slow.error is None
    t = fs.ds.images
    assert sorted(s.filename for s in t) == ["a.jpg", "kept.jpg"]
    assert t["kept"].tobytes() == before
    assert fs.find_attr("/images/bad.png") is None


def test_a_file_rewritten_during_its_transcode_ends_with_the_newer_contents(fs, gate):
    """The newer writer closes first (its close leaves the store to the one in progress,
    which then stores the newer contents, never the older ones)."""
    slow = Closer(fs, "/images/a.png", png(1, gated=True))
    slow.start()
    newer = png(2)
    try:
        assert gate.entered.wait(WAIT)

        def rewrite():
            fh = fs.open("/images/a.png", os.O_WRONLY | os.O_TRUNC)
            fs.write(fh, newer, 0)
            fs.flush(fh)
            fs.release(fh)

        meanwhile(rewrite)
    finally:
        gate.open()
    slow.finish()
    assert slow.error is None
    t = fs.ds.images
    assert [s.filename for s in t] == ["a.jpg"]
    assert close_to(t["a"].tobytes(), newer)
    assert close_to(get(fs, "/images/a.jpg"), newer)


def test_a_file_rewritten_during_its_transcode_is_decided_by_the_newer_close(fs, gate):
    """The newer writer closes last: the close in progress stores nothing, the newer one
    stores its contents, and a refusal of them is its own EINVAL."""
    slow = Closer(fs, "/images/a.png", png(1, gated=True))
    slow.start()
    try:
        assert gate.entered.wait(WAIT)
        fh = meanwhile(lambda: fs.open("/images/a.png", os.O_WRONLY | os.O_TRUNC))
        fs.write(fh, b"not an image", 0)
    finally:
        gate.open()
    slow.finish()
    assert slow.error is None
    assert fs.ds.images.num_samples == 0  # the older contents were never stored
    with pytest.raises(LakeFSError) as e:
        fs.flush(fh)
    assert e.value.errno == errno.EINVAL
    fs.release(fh)
    assert fs.ds.images.num_samples == 0 and fs.find_attr("/images/a.png") is None
    newer = png(2)
    put(fs, "/images/a.png", newer)
    assert close_to(fs.ds.images["a"].tobytes(), newer)


@pytest.mark.parametrize("how", ["unlink", "hide", "rename_over"])
def test_a_file_removed_during_its_transcode_is_never_stored(fs, gate, photos, how):
    """Unlinked (libfuse hides a file still open: a rename to .fuse_hidden*), or replaced
    by a rename (rsync's temp file) while its close transcodes it: that close stores
    nothing, and the older sample of the key stays as it was (or as the rename made it)."""
    older = photos[0].read_bytes()
    put(fs, "/images/a.jpg", older)
    slow = Closer(fs, "/images/a.png", png(1, gated=True))
    slow.start()
    replacement = png(5)
    try:
        assert gate.entered.wait(WAIT)
        if how == "unlink":
            meanwhile(lambda: fs.unlink("/images/a.png"))
        elif how == "hide":
            meanwhile(lambda: fs.rename("/images/a.png", "/images/.fuse_hidden0000000100000002"))
        else:
            meanwhile(lambda: put(fs, "/images/.a.png.Xy12", replacement))
            meanwhile(lambda: fs.rename("/images/.a.png.Xy12", "/images/a.png"))
    finally:
        gate.open()
    slow.finish()
    assert slow.error is None
    assert fs.find_attr("/images/a.png") is None
    t = fs.ds.images
    assert [s.filename for s in t] == ["a.jpg"]
    if how == "rename_over":
        assert close_to(t["a"].tobytes(), replacement)
    else:
        assert t["a"].tobytes() == older
    if how == "hide":  # libfuse's unlink of the hidden name at the last close
        fs.unlink("/images/.fuse_hidden0000000100000002")
    fs.commit()
    assert [n for n, _ in fs.readdir("/images")] == ["a.jpg"]


def test_a_file_renamed_during_its_transcode_is_stored_under_its_new_name(fs, gate):
    slow = Closer(fs, "/images/a.png", png(1, gated=True))
    slow.start()
    try:
        assert gate.entered.wait(WAIT)
        meanwhile(lambda: fs.rename("/images/a.png", "/images/b.png"))
    finally:
        gate.open()
    slow.finish()
    assert slow.error is None
    t = fs.ds.images
    assert [s.filename for s in t] == ["b.jpg"]
    assert close_to(t["b"].tobytes(), slow.data)
    assert len([c for c in gate.calls if MARK in c]) == 1  # transcoded once, not again under the lock


# --- a real mount --------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_on_a_threaded_mount_a_transcode_blocks_no_other_call(photo_factory, dataset_path, mountpoint, tmp_path):
    """``cp`` of a PNG into a jpeg tensor, its transcode held in progress: a stat and a
    listing of another directory, and a second PNG's copy (transcoded in parallel),
    finish meanwhile (they waited for the whole transcode before)."""
    import subprocess
    import sys
    from pathlib import Path

    from mounting import mounted

    photos = photo_factory(3, png=True)
    jpegs, pngs = photos, [p.with_suffix(".png") for p in photos]  # (PNG twins)
    gated = tmp_path / "gated.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("gate", MARK.decode())
    Image.open(pngs[0]).save(gated, "PNG", pnginfo=info)  # the same pixels, marked
    ds = lakefs.empty(dataset_path)
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.create_tensor("other", htype="image", sample_compression="jpeg")
    ds.other.write_file("x.jpg", jpegs[0].read_bytes())
    ds.close()
    gate = tmp_path / "gate"
    gate.mkdir()
    env = {**os.environ, "LAKEFS_TEST_GATE": str(gate)}
    script = Path(__file__).with_name("gated_mount.py")
    argv = [sys.executable, str(script), "mount", str(dataset_path), str(mountpoint), "-o", "threads"]
    with mounted(argv, mountpoint, env=env) as m:
        slow = subprocess.Popen(["cp", str(gated), str(mountpoint / "images" / "a.png")])
        try:
            for _ in range(2000):
                if (gate / "entered").exists() or slow.poll() is not None:
                    break
                threading.Event().wait(0.01)
            assert (gate / "entered").exists(), m.log()

            def run(*cmd: str) -> str:
                try:
                    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=WAIT).stdout
                except subprocess.TimeoutExpired:
                    pytest.fail(f"{' '.join(cmd)}: blocked behind a transcode in progress")

            assert str(jpegs[0].stat().st_size) in run("stat", "-c", "%s", str(mountpoint / "other" / "x.jpg"))
            assert run("ls", str(mountpoint / "other")).split() == ["x.jpg"]
            run("cp", str(pngs[1]), str(mountpoint / "images" / "b.png"))  # a parallel transcode
            assert slow.poll() is None  # (the first one was in progress all along)
        finally:
            (gate / "open").touch()
            slow.wait(WAIT)
        assert slow.returncode == 0
        assert sorted(os.listdir(mountpoint / "images")) == ["a.jpg", "b.jpg"]
        for name, src in (("a.jpg", pngs[0]), ("b.jpg", pngs[1])):
            assert close_to((mountpoint / "images" / name).read_bytes(), src.read_bytes())
