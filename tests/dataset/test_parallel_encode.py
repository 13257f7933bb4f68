"""The Python API encodes a sample (probe, transcode, image encode) before it takes the
dataset lock: threads appending photos encode in parallel, and readers of the dataset
do not wait for an encode in progress (DESIGN §3). An encode is held in progress by a
gate (the real one, waiting on an Event first), so the race is forced, not timed."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import lakefs
from lakefs.dataset import samples
from lakefs.errors import InvalidSampleError

pytestmark = pytest.mark.timeout(60)

WAIT = 10  # seconds: only a guard against hanging
GATED_SHAPE = (6, 10, 3)  # an array of this shape waits for the gate to encode


def png(value: int, *, gated: bool = False) -> bytes:
    info = PngImagePlugin.PngInfo()
    if gated:
        info.add_text("gate", "lakefs-test-gate")
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


@pytest.fixture
def gate(monkeypatch):
    entered, opened = threading.Event(), threading.Event()
    real_file, real_array = samples.prepare_encoded, samples.encode_array

    def wait():
        entered.set()
        assert opened.wait(3 * WAIT), "the gate was never opened"

    def gated_file(data, *args, **kw):
        if b"lakefs-test-gate" in data:
            wait()
        return real_file(data, *args, **kw)

    def gated_array(array, *args, **kw):
        if np.shape(array) == GATED_SHAPE:
            wait()
        return real_array(array, *args, **kw)

    monkeypatch.setattr(samples, "prepare_encoded", gated_file)
    monkeypatch.setattr(samples, "encode_array", gated_array)
    yield entered, opened
    opened.set()


def in_thread(fn) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def finishes(fn) -> None:
    """``fn`` runs to its end while an encode is in progress (it waited for the dataset
    lock before)."""
    errors: list[BaseException] = []

    def run():
        try:
            fn()
        except BaseException as e:
            errors.append(e)

    t = in_thread(run)
    t.join(WAIT)
    assert not t.is_alive(), "blocked behind an encode in progress"
    if errors:
        raise errors[0]


@pytest.fixture
def ds(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    yield ds
    ds.close()


def test_write_file_transcodes_without_the_dataset_lock(ds, gate):
    entered, opened = gate
    t = ds.images
    t.write_file("old.jpg", _jpeg(30))
    slow = in_thread(lambda: t.write_file("a.png", png(200, gated=True)))
    try:
        assert entered.wait(WAIT)

        def others():
            t.write_file("b.png", png(100))  # transcoded while a's is
            assert t["old"].numpy().shape == (8, 8, 3) and len(t) == 2

        finishes(others)
    finally:
        opened.set()
    slow.join(WAIT)
    assert sorted(s.filename for s in t) == ["a.jpg", "b.jpg", "old.jpg"]
    assert abs(int(t["a"].numpy().mean()) - 200) <= 2 and t["a"].transcoded


def test_append_encodes_without_the_dataset_lock(ds, gate):
    entered, opened = gate
    t = ds.images
    slow = in_thread(lambda: t.append(np.full(GATED_SHAPE, 200, np.uint8)))
    try:
        assert entered.wait(WAIT)
        finishes(lambda: t.append(np.full((4, 4, 3), 50, np.uint8)))
        finishes(lambda: t.extend([np.full((5, 5, 3), 60, np.uint8), png(70)]))
        finishes(lambda: t.__setitem__(0, np.full((3, 3, 3), 80, np.uint8)))
    finally:
        opened.set()
    slow.join(WAIT)
    assert [s.shape for s in t] == [(3, 3, 3), (5, 5, 3), (8, 8, 3), GATED_SHAPE]


def test_a_value_refused_when_encoded_ahead_changes_nothing(ds):
    t = ds.images
    t.append(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InvalidSampleError, match="item 1"):
        t.extend([np.zeros((2, 2, 3), np.uint8), np.full((2, 2), -1, np.int32)])
    with pytest.raises(InvalidSampleError):
        t.write_file("x.png", b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(IndexError):  # the row is checked first, as before
        t[5] = np.full((2, 2), -1, np.int32)
    assert len(t) == 1 and len(ds) == 1


def _jpeg(value: int) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(out, "JPEG")
    return out.getvalue()
