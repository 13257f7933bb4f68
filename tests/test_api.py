"""The Deep Lake style Python API (DESIGN §2, §7): datasets, tensors, groups, keyed rows."""

from __future__ import annotations

import io
import os
import wave

import numpy as np
import pytest
from image_samples import COLOURS, VOC, animation, palette_bmp, palette_file, with_alpha
from PIL import Image

import lakefs
from lakefs.errors import (
    DatasetExistsError,
    DatasetNotFoundError,
    InvalidNameError,
    InvalidSampleError,
    ReadOnlyError,
    SampleNotFoundError,
    TensorExistsError,
    TensorNotFoundError,
    TranscodeRefusedError,
)


def _png(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(arr).save(out, "PNG")
    return out.getvalue()


def _wav(frames: int = 800) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(np.arange(2 * frames, dtype=np.int16).tobytes())
    return out.getvalue()


def test_empty_load_dataset_exists(tmp_path):
    path = tmp_path / "ds"
    assert not lakefs.exists(path)
    with pytest.raises(DatasetNotFoundError):
        lakefs.load(path)
    ds = lakefs.empty(path)
    assert lakefs.exists(path)
    lakefs.empty(tmp_path / "other").close()
    with pytest.raises(DatasetExistsError):
        lakefs.empty(tmp_path / "other")
    ds.create_tensor("x")
    ds.x.append(1)
    ds.close()
    ds = lakefs.dataset(path)  # loads
    assert ds.x[0].numpy().tolist() == [1]
    ds.close()
    fresh = lakefs.dataset(tmp_path / "fresh")  # creates
    assert len(fresh) == 0 and fresh.tensors == {}
    fresh.close()
    again = lakefs.empty(path, overwrite=True)
    assert again.tensors == {} and len(again) == 0
    again.close()
    with pytest.raises(DatasetNotFoundError):
        lakefs.dataset(tmp_path / "nothing", read_only=True)


def test_dataset_paths_bytes_and_empty(tmp_path, monkeypatch):
    """Found by QA: a bytes path was taken as its repr ("b'/data'", a folder of that name)
    and "" as the current folder, so ``empty(os.environ.get("DS", ""), overwrite=True)``
    replaced the dataset there. The CLI refused an empty path already."""
    lakefs.empty(os.fsencode(tmp_path / "ds")).close()
    assert lakefs.exists(tmp_path / "ds") and not (tmp_path / f"b'{tmp_path}").exists()
    lakefs.load(os.fsencode(tmp_path / "ds"), read_only=True).close()
    monkeypatch.chdir(tmp_path / "ds")
    for call in (lambda: lakefs.empty("", overwrite=True), lambda: lakefs.load(""), lambda: lakefs.dataset(b"")):
        with pytest.raises(InvalidNameError, match="path is empty"):
            call()
    assert lakefs.exists(".")  # the dataset in the current folder is still there


def test_every_htype(tmp_path, photos):
    ds = lakefs.empty(tmp_path / "ds")
    jpeg = photos[0].read_bytes()
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.create_tensor("masks", htype="binary_mask", sample_compression="png")
    ds.create_tensor("segs", htype="segment_mask", sample_compression="png")
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    ds.create_tensor("boxes", htype="bbox")
    ds.create_tensor("meta", htype="json")
    ds.create_tensor("caption", htype="text")
    ds.create_tensor("arr", htype="generic", dtype="float64")
    ds.create_tensor("blob", htype="bytes")
    ds.create_tensor("sound", htype="audio", sample_compression="wav")
    mask = np.zeros((6, 7), bool)
    mask[1:3, 2:5] = True
    seg = np.arange(42, dtype=np.uint32).reshape(6, 7) * 1000
    wav = _wav()
    ds.append({
        "images": lakefs.read(photos[0]), "masks": mask, "segs": seg, "labels": "dog",
        "boxes": np.array([[1, 2, 3, 4]], np.float32), "meta": {"a": [1, 2]}, "caption": "a cat",
        "arr": np.eye(3), "blob": b"\x00\xffraw", "sound": wav,
    }, key="cat001")
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    row = ds["cat001"]
    img = row["images"]
    assert img.tobytes() == jpeg and img.shape == np.asarray(Image.open(photos[0])).shape
    assert img.dtype == "uint8" and img.compression == "jpeg" and img.extension == ".jpg"
    assert np.array_equal(row["masks"].numpy().reshape(6, 7), mask)
    assert row["masks"].numpy().dtype == bool
    assert np.array_equal(row["segs"].numpy().reshape(6, 7), seg)
    assert row["labels"].numpy().tolist() == [1] and ds.labels.class_names == ["cat", "dog"]
    assert row["labels"].file_bytes() == b"dog\n"
    assert row["boxes"].numpy().tolist() == [[1, 2, 3, 4]] and row["boxes"].dtype == "float32"
    assert row["meta"].numpy() == {"a": [1, 2]}
    assert row["caption"].numpy() == "a cat"
    assert np.array_equal(row["arr"].numpy(), np.eye(3))
    assert row["blob"].tobytes() == b"\x00\xffraw"
    assert row["sound"].tobytes() == wav and row["sound"].shape == (800, 2)
    assert row["sound"].dtype == "int16" or row["sound"].numpy().dtype == np.int16
    assert {t: ds[t].htype for t in ds.tensors}["labels"] == "class_label"


def test_video_mp4_header_shape(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("clips", htype="video", sample_compression="mp4")
    assert t.sample_compression == "mp4"
    with pytest.raises(lakefs.LakeFSError):
        t.append(b"not a video at all")
    assert len(t) == 0 and len(ds) == 0


def test_groups(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    train = ds.create_group("train")
    train.create_tensor("images", htype="generic")
    ds.create_tensor("val/images")  # parents are made on the way
    ds.train.images.append([1, 2])
    ds["val/images"].append([3])
    assert set(ds.tensors) == {"train/images", "val/images"}
    assert set(ds.groups) == {"train", "val"}
    assert ds["train"].images is ds.tensors["train/images"]
    assert list(ds.train.tensors) == ["images"]
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert ds.train.images[0].numpy().tolist() == [1, 2]
    assert ds["val"]["images"][0].numpy().tolist() == [3]
    with pytest.raises(AttributeError):
        _ = ds.test
    with pytest.raises(TensorNotFoundError):
        ds["train/nothing"]


def test_keyed_rows_and_lockstep_appends(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("a")
    ds.create_tensor("b", htype="text")
    ds.append({"a": 1, "b": "one"}, key="cat001")
    ds.a.append(2)
    ds.b.append("two")  # the same auto-keyed row as ds.a's second append
    ds.a.append(3)
    assert len(ds) == 3 and len(ds.a) == 3 and len(ds.b) == 2
    assert ds.keys() == ["cat001", "00000001", "00000002"]
    assert ds[1]["b"].numpy() == "two" and ds[1].key == "00000001"
    assert ds["cat001"].index == 0 and ds["cat001"]["a"].numpy().item() == 1
    assert ds.b[1].key == "00000001"
    assert ds[2]["b"].is_empty
    ds.b["newkey"] = "keyed"  # setting by key creates the row
    assert ds.keys()[-1] == "newkey" and ds["newkey"]["b"].numpy() == "keyed"
    assert ds.a["cat001"].numpy().item() == 1
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert ds.keys() == ["cat001", "00000001", "00000002", "newkey"]
    assert [r.key for r in ds] == ds.keys()
    assert [r.index for r in ds[1:3]] == [1, 2]


def test_auto_keys_skip_taken_keys(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("a")
    ds.append({"a": 0}, key="00000001")
    ds.a.append(1)  # row 1's automatic key "00000001" is taken
    assert ds.keys()[1] != "00000001" and ds.keys()[1].startswith("00000001")
    assert len(set(ds.keys())) == 2


def test_tensor_operations(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("x", htype="generic", dtype="int32")
    t.extend([[i, i] for i in range(10)])
    assert len(t) == 10 and t.num_samples == 10
    t[3] = [30, 30]
    t.pop(4)
    assert t[4].is_empty and t.num_samples == 9
    with pytest.raises(SampleNotFoundError):
        t.pop(4)  # already empty
    assert t[4].numpy().size == 0 and t[4].tobytes() == b""  # an empty cell reads as empty
    with pytest.raises(SampleNotFoundError):
        _ = t[4].mtime
    assert [s.numpy().tolist() for s in t[2:4]] == [[2, 2], [30, 30]]
    assert [s.numpy()[0] for s in t[-2:]] == [8, 9]
    assert [s.numpy()[0] for s in t[[0, 9]]] == [0, 9]
    assert sum(1 for _ in t) == 10
    t.pop(9)
    assert len(t) == 9  # the last filled row moved back
    s = t[0]
    assert s.shape == (2,) and s.dtype == "int32" and s.compression is None and s.key == "00000000"
    assert s.mode == 0o644 and s.mtime > 1e9 and s.extension == ".npy"
    assert s.tobytes() == np.array([0, 0], np.int32).tobytes()
    with pytest.raises(IndexError):
        t[100]
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert ds.x[3].numpy().tolist() == [30, 30] and ds.x[4].is_empty and len(ds.x) == 9
    assert isinstance(ds.x.numpy(), list)  # an empty cell: shapes differ, so a list
    with pytest.raises(ReadOnlyError):
        ds.x.append([1, 1])


def test_pass_through_jpeg_is_byte_identical_with_no_decode(tmp_path, photos, monkeypatch):
    import PIL.Image

    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("images", htype="image", sample_compression="jpeg")

    def no_decode(*a, **k):
        raise AssertionError("pass-through must not decode pixels")

    monkeypatch.setattr(PIL.Image, "open", no_decode)
    os.utime(photos[1], ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    t.append(lakefs.read(photos[1]))
    t.extend([lakefs.read(p) for p in photos[2:4]])
    s = t[0]
    assert s.tobytes() == photos[1].read_bytes()
    assert s.size == photos[1].stat().st_size
    assert s.mtime_ns == 1_600_000_000_123_456_789
    assert not s.transcoded
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    assert [s.tobytes() for s in ds.images] == [p.read_bytes() for p in photos[1:4]]
    assert ds.images[0].extension == ".jpg"


def test_jpeg_extension_kept(tmp_path, photos):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("images", htype="image", sample_compression="jpeg")
    renamed = tmp_path / "x.JPEG"
    renamed.write_bytes(photos[0].read_bytes())
    assert t.append(lakefs.read(renamed)).extension == ".JPEG"


def test_png_into_jpeg_tensor_is_transcoded(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("images", htype="image", sample_compression="jpeg")
    rng = np.random.default_rng(0)
    arr = (rng.random((32, 48, 3)) * 40 + 100).astype(np.uint8)
    s = t.append(_png(arr))
    assert s.transcoded and s.tobytes()[:3] == b"\xff\xd8\xff" and s.extension == ".jpg"
    assert s.shape == (32, 48, 3)
    assert np.abs(s.numpy().astype(int) - arr).mean() < 10  # lossy, but the same picture
    s2 = t.append(arr)  # an array is encoded to the tensor's compression
    assert s2.tobytes()[:3] == b"\xff\xd8\xff" and s2.numpy().shape == (32, 48, 3)


GRAY_BMPS = {  # (file, the gray levels it shows)
    "4bit-gray-ramp": (palette_bmp(np.array([[0, 1, 2, 3, 15], [9, 8, 7, 0, 5]]), 4, [(i, i, i) for i in range(16)]),
                       np.array([[0, 1, 2, 3, 15], [9, 8, 7, 0, 5]], np.uint8)),
    "8bit-black-white": (palette_bmp(np.array([[0, 1, 1], [1, 0, 1]]), 8, [(0, 0, 0), (255, 255, 255)],
                                     colours_used=2), np.array([[0, 255, 255], [255, 0, 255]], np.uint8)),
}


@pytest.mark.parametrize("name", GRAY_BMPS)
def test_gray_palette_bmp_reads_back_as_its_gray_levels(tmp_path, name):
    """A 4-bit gray-ramp BMP was stored and then every read failed (or read garbage); an
    8-bit black/white one read back all black. Both as stored (bmp tensor) and transcoded
    (png, jpeg tensors), from bytes and from a file."""
    data, gray = GRAY_BMPS[name]
    (tmp_path / "m.bmp").write_bytes(data)
    ds = lakefs.empty(tmp_path / "ds")
    for compression in ("bmp", "png", "jpeg"):
        t = ds.create_tensor(compression, htype="image", sample_compression=compression)
        for value in (data, lakefs.read(tmp_path / "m.bmp")):
            sample = t.append(value)
            assert sample.transcoded == (compression != "bmp") and sample.shape == (2, gray.shape[1], 1)
    ds.close()
    ds = lakefs.load(tmp_path / "ds", read_only=True)
    for compression in ("bmp", "png", "jpeg"):
        for sample in ds[compression]:
            values = sample.numpy()
            assert values.shape == (*gray.shape, 1) and values.dtype == np.uint8
            if compression == "jpeg":
                assert np.abs(values[:, :, 0].astype(int) - gray).max() < 40
            else:
                assert values[:, :, 0].tolist() == gray.tolist()
    assert ds.bmp[0].tobytes() == data
    ds.close()


def test_arrays_into_bmp_tensor_read_back_exactly(tmp_path):
    rng = np.random.default_rng(3)
    arrays = [rng.integers(0, 256, (7, 9, 3), dtype=np.uint8), rng.integers(0, 256, (7, 9, 1), dtype=np.uint8),
              np.array([[0, 255, 255], [255, 0, 0]], np.uint8), np.zeros((2, 3), np.uint8)]
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("images", htype="image", sample_compression="bmp")
    for array in arrays:
        t.append(array)
    for sample, array in zip(t, arrays):
        assert sample.numpy().tolist() == array.reshape(*array.shape[:2], -1).tolist()
    ds.close()


def test_reopen_keeps_meta_and_sizes(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("labels", htype="class_label", class_names=["a"])
    t.append("zebra")  # a new class name is added
    t.append([0, 1])
    ds.close()
    ds = lakefs.load(tmp_path / "ds")
    t = ds.labels
    assert t.class_names == ["a", "zebra"]
    assert t[1].numpy().tolist() == [0, 1] and t[1].file_bytes() == b"a\nzebra\n"
    assert t[1].size == len(b"a\nzebra\n")
    ds.close()


def test_with_statement_commits_and_unlocks(tmp_path):
    with lakefs.empty(tmp_path / "ds") as ds:
        ds.create_tensor("x").append(5)
    with lakefs.load(tmp_path / "ds") as ds:  # the lock was released
        assert ds.x[0].numpy().item() == 5


def test_close_releases_the_descriptors_of_the_storage_the_api_opened(tmp_path):
    """Found by review: close() left the storage lakefs.load opened as it was, its cached
    read descriptors included (+32 per load of a small dataset): a notebook or a data
    loader opening a dataset again and again ran out of descriptors (EMFILE). The closed
    datasets are kept alive here: their descriptors are released by close(), not by the
    garbage collector."""
    path = tmp_path / "ds"
    with lakefs.empty(path) as ds:
        t = ds.create_tensor("b", htype="bytes", chunk_size=4096)
        t.extend([bytes([i]) * 1000 for i in range(200)])  # ~50 chunks
    kept = []

    def cycle() -> None:
        with lakefs.load(path, read_only=True) as r:
            assert sum(len(s.tobytes()) for s in r.b) == 200_000
        ds = lakefs.load(path)
        assert ds.b[7].tobytes() == bytes([7]) * 1000
        ds.close()
        ds.close()  # (again: nothing more to do)
        assert lakefs.exists(path) and not lakefs.exists(tmp_path / "none")
        with pytest.raises(DatasetNotFoundError):
            lakefs.load(tmp_path / "none", read_only=True)
        kept.extend([r, ds])

    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    cycle()  # (whatever is opened once per process)
    before = descriptors()
    for _ in range(10):
        cycle()
    assert descriptors() <= before


def test_too_many_dimensions_store_nothing_in_a_multi_tensor_append():
    from lakefs.errors import InvalidSampleError
    from lakefs.storage import MemoryStorage

    ds = lakefs.Dataset(MemoryStorage(), create=True)
    ds.create_tensor("a")
    ds.create_tensor("b")
    with pytest.raises(InvalidSampleError, match="dimensions"):
        ds.append({"a": np.zeros(3), "b": np.zeros((1,) * 7)}, key="k")
    assert len(ds) == 0 and ds.a.num_samples == 0


def test_commit_interval_makes_api_writes_durable_without_flush(tmp_path):
    import threading
    import time

    ds = lakefs.empty(tmp_path / "ds", commit_interval=0.2)
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    ds.labels.append("dog")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reader = lakefs.load(tmp_path / "ds", read_only=True)
        if "labels" in reader.tensors and reader.labels.num_samples == 1:
            break
        time.sleep(0.1)
    assert reader.labels[0].numpy().tolist() == [1]  # committed by the timer, no flush()
    ds.close()
    assert not any(t.name == "lakefs-autocommit" for t in threading.enumerate())
    with pytest.raises(lakefs.LakeFSError):
        lakefs.empty(tmp_path / "other", commit_interval=0)


def test_a_close_that_fails_keeps_the_periodic_commit(tmp_path):
    """Found by review: close() stopped the periodic commit before its own commit, and
    when that failed (a full disk) the dataset stayed open with nothing committing it."""
    import threading
    import time

    from lakefs.errors import StorageFullError
    from lakefs.storage import LocalStorage
    from lakefs.storage.faults import FaultyStorage

    def autocommits() -> int:
        return sum(t.name == "lakefs-autocommit" for t in threading.enumerate())

    faulty = FaultyStorage(LocalStorage(str(tmp_path / "ds")), fail_at=10**9, mode="enospc", sticky=True)
    ds = lakefs.Dataset(faulty, create=True, commit_interval=0.2)
    ds.create_tensor("labels", htype="text")
    ds.flush()
    faulty.fail_at = faulty.count + 1  # the disk is full from now on
    ds.labels.append("kept")
    with pytest.raises(StorageFullError):
        ds.close()
    assert autocommits() == 1
    faulty.sticky, faulty.fail_at = False, 10**9  # (space again)
    deadline = time.monotonic() + 10
    committed = []
    while not committed and time.monotonic() < deadline:
        with lakefs.load(tmp_path / "ds", read_only=True) as reader:
            committed = [s.numpy() for s in reader.labels]
        time.sleep(0.1)
    assert committed == ["kept"]  # by the timer, after the failed close
    ds.close()
    assert autocommits() == 0


# --- a dataset never mixes with, or deletes, files that are not its own ----------------


def test_create_refuses_a_folder_of_other_files_and_leaves_it_as_it_was(tmp_path):
    victim = tmp_path / "photos"
    (victim / "sub").mkdir(parents=True)
    (victim / "a.jpg").write_bytes(b"jpeg")
    (victim / "sub" / "notes.txt").write_text("important")
    for make in (lakefs.empty, lakefs.dataset):
        with pytest.raises(lakefs.errors.DatasetExistsError, match="not empty and holds no lakefs dataset"):
            make(victim)
    assert sorted(p.name for p in victim.iterdir()) == ["a.jpg", "sub"]  # not even a lock
    # Names that are not valid storage keys are files all the same (found by review).
    for i, name in enumerate(("My Photo.jpg", "über.txt", "x(1).jpg")):
        other = tmp_path / f"only-{i}"
        other.mkdir()
        (other / name).write_bytes(b"x")
        with pytest.raises(lakefs.errors.DatasetExistsError):
            lakefs.empty(other)
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "photos").symlink_to(victim)
    with pytest.raises(lakefs.errors.DatasetExistsError):
        lakefs.empty(linked)


def test_overwrite_and_compact_delete_only_the_datasets_own_objects(tmp_path):
    path = tmp_path / "ds"
    with lakefs.empty(path) as ds:
        ds.create_tensor("t", htype="text").append("a")
        tid = ds.t.meta.tid
    (path / "NOTES.txt").write_text("mine")  # a user's file inside the dataset folder
    stray = path / "tensors" / tid / "chunks" / "backup.bin"
    stray.write_bytes(b"mine too")
    with lakefs.load(path) as ds:
        ds.t.append("b")
        ds.compact()
    assert stray.read_bytes() == b"mine too"
    with lakefs.empty(path, overwrite=True) as ds:
        assert list(ds.tensors) == []
    assert (path / "NOTES.txt").read_text() == "mine" and stray.read_bytes() == b"mine too"
    assert not (path / "tensors" / tid / "chunks" / "0000000000000001").exists()


def test_a_dataset_inside_another_datasets_folders_is_refused(tmp_path):
    with lakefs.empty(tmp_path / "outer") as ds:
        ds.create_tensor("t", htype="text").append("a")
    with pytest.raises(lakefs.errors.DatasetExistsError):
        lakefs.empty(tmp_path / "outer" / "manifests")


def test_a_writable_open_of_a_wrong_path_makes_nothing(tmp_path):
    with pytest.raises(lakefs.errors.DatasetNotFoundError, match=str(tmp_path / "nosuch")):
        lakefs.load(tmp_path / "nosuch")
    assert not (tmp_path / "nosuch").exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(lakefs.errors.StorageError, match="not a directory"):
        lakefs.empty(tmp_path / "afile")


def test_compact_keeps_the_tiles_of_a_stream_still_being_written(tmp_path):
    """Found by review: compact took a big file's tiles, written but not yet indexed,
    for garbage (the mount streams big files into tiles while they are copied)."""
    path = tmp_path / "ds"
    ds = lakefs.empty(path)
    t = ds.create_tensor("blobs", htype="bytes", chunk_size=4096)
    t.write_file("small1.bin", b"a" * 100)
    t.pop(0)  # garbage, so compact has work
    ds.flush()
    payload = os.urandom(5 * 4096 + 123)
    stream = t.open_file_stream("big.bin", len(payload))
    stream.write(payload[: 3 * 4096])  # three tiles sealed and put
    ds.compact()
    stream.write(payload[3 * 4096 :])
    t.commit_file_stream("big.bin", stream)
    ds.close()
    assert lakefs.load(path, read_only=True).blobs["big"].tobytes() == payload


def test_palette_png_mask_keeps_class_indices(tmp_path):
    """PASCAL VOC masks are palette PNGs: the indices are the classes, not the colours."""
    indices = np.array([[0, 1, 2], [15, 20, 255]], np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette([(i * k) % 256 for i in range(256) for k in (37, 91, 13)])
    out = io.BytesIO()
    image.save(out, "PNG")
    ds = lakefs.empty(tmp_path / "ds")
    for name, compression in (("masks", "png"), ("masks_tiff", "tiff")):
        t = ds.create_tensor(name, htype="segment_mask", sample_compression=compression)
        sample = t.append(out.getvalue())
        assert sample.shape == (2, 3, 1) and t[0].transcoded == (compression == "tiff")
        assert t[0].numpy()[:, :, 0].tolist() == indices.tolist()
    assert ds.masks[0].tobytes() == out.getvalue()
    b = ds.create_tensor("b", htype="binary_mask", sample_compression="png")
    b.append(out.getvalue())
    assert b[0].numpy()[:, :, 0].tolist() == (indices != 0).tolist()
    img = ds.create_tensor("img", htype="image", sample_compression="png")
    img.append(out.getvalue())
    assert img[0].shape == (2, 3, 3)  # an image shows the colours
    ds.close()


@pytest.mark.parametrize("settings", [{"sample_compression": "lz4"}, {"chunk_compression": "lz4"}, {}],
                         ids=["sample-lz4", "chunk-lz4", "raw"])
def test_binary_mask_without_an_image_compression_takes_mask_images(tmp_path, settings):
    """A gray (0/255) or 1-bit PNG mask was refused ("dtype mismatch") by a binary_mask
    stored raw or lz4 (Deep Lake's recommended setting), where a png binary_mask took its
    non-zero pixels."""
    mask = np.array([[0, 1, 1], [0, 0, 1]], bool)
    files = [_png(mask.astype(np.uint8) * 255)]
    out = io.BytesIO()
    Image.fromarray(mask).save(out, "PNG")  # mode "1": 1-bit gray
    files.append(out.getvalue())
    ds = lakefs.empty(tmp_path / "ds")
    m = ds.create_tensor("m", htype="binary_mask", **settings)
    png = ds.create_tensor("png", htype="binary_mask", sample_compression="png")
    for data in files:
        m.append(data)
        png.append(data)
    m.append(mask)
    for s in (*m, *png):
        assert s.numpy().dtype == np.bool_ and s.numpy().reshape(2, 3).tolist() == mask.tolist()
    assert m[0].numpy().shape == png[0].numpy().shape == (2, 3, 1)
    with pytest.raises(InvalidSampleError, match="value 255 does not fit bool"):  # an array is cast by value
        m.append(mask.astype(np.uint8) * 255)
    ds.close()


@pytest.mark.parametrize("source", ["GIF", "BMP"])
def test_palette_gif_and_bmp_masks_keep_class_indices(tmp_path, source):
    """Palette GIF and BMP masks (Carvana's masks are GIFs) read back as palette colours,
    (H, W, 3), where the same mask as a palette PNG read back as its class indices."""
    data = palette_file(source)
    ds = lakefs.empty(tmp_path / "ds")
    for compression in dict.fromkeys(("png", "tiff", "bmp", source.lower(), None)):
        seg = ds.create_tensor(f"seg_{compression}", htype="segment_mask", sample_compression=compression)
        binary = ds.create_tensor(f"bin_{compression}", htype="binary_mask", sample_compression=compression)
        seg.append(data)
        binary.append(data)
        assert seg[0].numpy().shape == (2, 3, 1) and seg[0].numpy().dtype == np.uint32
        assert seg[0].numpy()[:, :, 0].tolist() == VOC.tolist()
        assert binary[0].numpy().dtype == np.bool_ and binary[0].numpy()[:, :, 0].tolist() == (VOC != 0).tolist()
        if compression == source.lower():  # stored as written, not transcoded
            assert seg[0].tobytes() == data and not seg[0].transcoded
        if compression == "gif":  # a lossy format: no array is encoded into it for a mask
            with pytest.raises(TranscodeRefusedError, match="lossy"):
                seg.append(VOC)
            continue
        # The same mask written as an array reads back as the file does, value for value.
        seg.append(VOC)
        binary.append(VOC != 0)
        assert seg[1].numpy().dtype == np.uint32 and binary[1].numpy().dtype == np.bool_
        assert seg[1].numpy().reshape(2, 3).tolist() == VOC.tolist()
        assert binary[1].numpy().reshape(2, 3).tolist() == (VOC != 0).tolist()
        if compression is not None:
            assert seg[1].numpy().shape == seg[0].numpy().shape == (2, 3, 1)
            assert binary[1].numpy().shape == binary[0].numpy().shape == (2, 3, 1)
    jpeg = ds.create_tensor("seg_jpeg", htype="segment_mask", sample_compression="jpeg")
    with pytest.raises(TranscodeRefusedError, match="lossy"):
        jpeg.append(data)
    if source == "GIF":
        with pytest.raises(TranscodeRefusedError, match="lossy"):
            ds.seg_gif.append(palette_file("PNG"))
        assert len(ds.seg_gif) == 1
    assert len(jpeg) == 0
    img = ds.create_tensor("img", htype="image", sample_compression=source.lower())
    img.append(data)
    assert img[0].numpy()[1, 0].tolist() == list(COLOURS[15])  # an image shows the colours
    ds.close()


@pytest.mark.parametrize("htype", ["segment_mask", "binary_mask"])
def test_one_channel_mask_into_webp_is_refused(tmp_path, htype):
    """webp has no gray images: a 1-channel mask file was widened and read back (H, W, 3)."""
    ds = lakefs.empty(tmp_path / "ds")
    masks = ds.create_tensor("masks", htype=htype, sample_compression="webp")
    for data in (_png(VOC), palette_file("PNG"), palette_file("BMP")):
        with pytest.raises(TranscodeRefusedError, match="webp has no 1-channel images"):
            masks.append(data)
    with pytest.raises(InvalidSampleError, match="webp cannot store .* 1 channels"):
        masks.append(VOC)
    assert len(masks) == 0
    rgb = np.stack([VOC, VOC // 2, VOC // 3], axis=2)
    masks.append(_png(rgb))  # a colour mask keeps its shape and values
    assert masks[0].numpy().shape == (2, 3, 3)
    assert (masks[0].numpy() == (rgb if htype == "segment_mask" else rgb != 0)).all()
    ds.close()


@pytest.mark.parametrize("htype", ["image", "binary_mask"])
def test_a_bool_tensor_needs_exact_values_whatever_its_htype(tmp_path, htype):
    """A bool array into a jpeg ``image`` tensor of dtype bool was encoded lossy and read
    back with 23% of its bits flipped, where a binary_mask refused it."""
    mask = np.random.default_rng(0).integers(0, 2, (64, 64)).astype(bool)
    out = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(out, "JPEG")
    jpeg_file = out.getvalue()
    ds = lakefs.empty(tmp_path / "ds")
    jpeg = ds.create_tensor("jpeg", htype=htype, sample_compression="jpeg", dtype="bool")
    gif = ds.create_tensor("gif", htype=htype, sample_compression="gif", dtype="bool")
    for t, array in ((jpeg, mask), (gif, np.stack([mask] * 3, axis=2))):
        for value in (array, _png(array.astype(np.uint8) * 255)):
            with pytest.raises(TranscodeRefusedError, match="lossy and this tensor needs exact values"):
                t.append(value)
    assert len(jpeg) == len(gif) == 0
    jpeg.append(jpeg_file)  # a jpeg file is kept as it is, as in a jpeg mask tensor
    assert jpeg[0].tobytes() == jpeg_file and not jpeg[0].transcoded and jpeg[0].numpy().dtype == np.bool_
    png = ds.create_tensor("png", htype=htype, sample_compression="png", dtype="bool")
    png.append(mask)
    png.append(jpeg_file)  # transcoded to exactly the values it decodes to
    assert png[0].numpy()[:, :, 0].tolist() == mask.tolist()
    assert png[1].transcoded and png[1].numpy().tolist() == jpeg[0].numpy().tolist()


def test_transparency_and_frames_are_not_dropped_by_a_transcode(tmp_path):
    """``append(lakefs.read(...))`` of an RGBA PNG with transparent pixels into a jpeg
    tensor stored its colours only, of a 4-frame GIF its first frame (QA): refused, and
    nothing stored. Fully opaque alpha is dropped; a png tensor keeps any file of its own
    format as it is, RGBA after RGB included (a tensor's samples have their own channels)."""
    (tmp_path / "b_rgba.png").write_bytes(with_alpha("RGBA"))
    (tmp_path / "d_anim.gif").write_bytes(animation("GIF", 4))
    (tmp_path / "opaque.png").write_bytes(with_alpha("RGBA", opaque=True))
    ds = lakefs.empty(tmp_path / "ds")
    images = ds.create_tensor("images", htype="image", sample_compression="jpeg")
    with pytest.raises(TranscodeRefusedError, match="jpeg would drop the alpha channel, and 600 of 1200 pixels"):
        images.append(lakefs.read(tmp_path / "b_rgba.png"))
    with pytest.raises(TranscodeRefusedError, match="this gif holds 4 images"):
        images.append(lakefs.read(tmp_path / "d_anim.gif"))
    with pytest.raises(TranscodeRefusedError, match="would drop the alpha channel"):
        images.append(with_alpha("LA"))
    assert len(images) == 0
    images.append(lakefs.read(tmp_path / "opaque.png"))
    assert images[0].numpy().shape == (30, 40, 3)
    pngs = ds.create_tensor("pngs", htype="image", sample_compression="png")
    pngs.append(_png(np.zeros((30, 40, 3), np.uint8)))
    pngs.append(lakefs.read(tmp_path / "b_rgba.png"))
    assert [s.numpy().shape for s in pngs] == [(30, 40, 3), (30, 40, 4)]
    assert pngs[1].file_bytes() == (tmp_path / "b_rgba.png").read_bytes()
    ds.close()


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_an_array_tensor_refuses_an_animation_it_would_cut_to_one_frame(tmp_path, fmt):
    """An image tensor without a sample compression stores the decoded array: a 4-frame
    GIF was stored as its first frame (as a transcode did, found by QA)."""
    ds = lakefs.empty(tmp_path / "ds")
    for t in (ds.create_tensor("lz4", htype="image", chunk_compression="lz4"), ds.create_tensor("raw", htype="image")):
        with pytest.raises(TranscodeRefusedError, match=f"this {fmt.lower()} holds 4 images"):
            t.append(animation(fmt, 4))
        assert len(t) == 0
        t.append(animation(fmt, 1))
        assert t[0].numpy().shape == (20, 30, 3)
    ds.close()


def test_slices_read_at_once_as_in_deep_lake(tmp_path, photos):
    """``t[0:8].numpy()`` and ``numpy(aslist=True)``: a slice was a plain list (AttributeError)
    and ``Tensor.numpy`` took no ``aslist``."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("x", dtype="int32")
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.create_tensor("captions", htype="text")
    ds.create_tensor("meta", htype="json")
    ds.create_group("train").create_tensor("y", dtype="int32")
    ds.extend({"x": [[i, i] for i in range(3)], "images": [lakefs.read(p) for p in photos[:3]],
               "captions": ["a", "bé", ""], "meta": [{"a": 1}, [1, "x"], None], "train/y": [[0], [1], [2]]})
    assert ds.x[1:3].numpy().tolist() == [[1, 1], [2, 2]] and ds.x[1:3].numpy().dtype == np.int32
    assert [a.tolist() for a in ds.x[[2, 0]].numpy(aslist=True)] == [[2, 2], [0, 0]]
    assert ds.x[5:].numpy().shape == (0,) and ds.x[5:].numpy(aslist=True) == []
    assert ds.x.numpy(aslist=True)[2].tolist() == [2, 2] and ds.x.data().shape == (3, 2)
    pixels = ds.images[0:2].numpy(aslist=True)
    assert [p.shape for p in pixels] == [s.shape for s in ds.images[0:2]] and pixels[0].dtype == np.uint8
    assert ds.captions.numpy(aslist=True) == ["a", "bé", ""] and ds.captions[1:].numpy(aslist=True) == ["bé", ""]
    assert ds.meta[:].numpy(aslist=True) == [{"a": 1}, [1, "x"], None]
    rows = ds[1:3]
    assert [r.key for r in rows] == ["00000001", "00000002"] and len(rows) == 2 and rows[0].index == 1
    assert rows.x.numpy().tolist() == [[1, 1], [2, 2]] and rows["captions"].numpy(aslist=True) == ["bé", ""]
    assert rows["train/y"].numpy().tolist() == [[1], [2]]
    with pytest.raises(AttributeError, match="no tensor 'nope'"):
        _ = rows.nope
    ds.close()


def test_boolean_mask_selects_rows(tmp_path):
    """Each bool was taken as the row 0 or 1."""
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("x", dtype="int32")
    t.extend([[i] for i in range(10)])
    mask = np.array([True, False] * 5)
    assert [s.numpy()[0] for s in t[mask]] == [0, 2, 4, 6, 8]
    assert [s.numpy()[0] for s in t[mask.tolist()]] == [0, 2, 4, 6, 8]
    assert t[np.zeros(10, bool)] == []
    for bad in (mask[:4], [True, False], np.ones((2, 5), bool)):
        with pytest.raises(IndexError, match="boolean index"):
            t[bad]
    assert [s.numpy()[0] for s in t[[1, 3]]] == [1, 3] and [s.row for s in t[np.array([9, -1])]] == [9, 9]
    ds.close()


def test_int16_audio_is_stored_as_16_bit_wav_and_read_back_exactly(tmp_path):
    """The image-only narrowing of integer arrays refused an int16 sine ("do not fit a wav
    image") and stored small values as 8-bit WAV, making the tensor uint8."""
    ds = lakefs.empty(tmp_path / "ds")
    a = ds.create_tensor("a", htype="audio")
    sine = (9999 * np.sin(np.linspace(0, 60, 4000))).astype(np.int16).reshape(-1, 1)
    small = np.arange(50, dtype=np.int16).reshape(-1, 1)
    a.extend([sine, small])
    for s, want in zip(a, (sine, small), strict=True):
        with wave.open(io.BytesIO(s.tobytes())) as w:
            assert w.getsampwidth() == 2
        got = s.numpy()
        assert got.dtype == np.int16 and np.array_equal(got, want)
    assert a.dtype == "int16"
    b = ds.create_tensor("b", htype="audio", dtype="int16")
    b.append(np.arange(1001, dtype=np.int16))  # was "wav needs ... got uint16"
    b.append(np.arange(-5, 5))  # int64 values an int16 tensor holds
    assert [s.numpy().dtype for s in b] == [np.int16, np.int16] and b[1].numpy()[0, 0] == -5
    ds.close()


def test_assigning_past_the_last_row_is_an_index_error(tmp_path):
    """t[10**6] = x made a million rows (and t[10**9] ran for hours)."""
    ds = lakefs.empty(tmp_path / "ds")
    a = ds.create_tensor("a", dtype="int32")
    b = ds.create_tensor("b", dtype="int32")
    a.extend([[0], [1], [2]])
    for i in (3, 10**6, 10**12):
        with pytest.raises(IndexError, match=f"row {i} does not exist"):
            b[i] = [1]
        with pytest.raises(IndexError):
            a[i] = [1]
    assert len(ds) == 3 and len(b) == 0
    b[2] = [20]  # an empty cell of an existing row is filled
    b[0] = [0]
    a[-1] = [22]
    assert len(b) == 3 and b[1].is_empty and [s.numpy().tolist() for s in b[::2]] == [[0], [20]]
    assert a[2].numpy().tolist() == [22] and len(ds) == 3
    b["new"] = [9]  # a new key still makes its row
    assert len(ds) == 4 and ds["new"].b.numpy().tolist() == [9]
    ds.close()


def test_an_empty_tensor_reads_as_an_empty_array_of_its_dtype(tmp_path):
    """It was float64 whatever the tensor's dtype."""
    ds = lakefs.empty(tmp_path / "ds")
    assert ds.create_tensor("a", dtype="int16").numpy().dtype == np.int16
    assert ds.create_tensor("l", htype="class_label").numpy().dtype == np.uint32
    assert ds.create_tensor("m", htype="binary_mask", sample_compression="png").numpy().dtype == np.bool_
    assert ds.create_tensor("g").numpy().shape == (0,)  # dtype from the first sample: not known yet
    ds.close()


@pytest.mark.parametrize("dtype", [">f4", ">i2", "<f8"])
def test_a_big_endian_first_sample_gives_the_native_dtype(tmp_path, dtype):
    """A big-endian .npy (or array) as a tensor's first sample made its dtype ">f4", and
    every later sample was stored big-endian; the dtype is the native one, values kept."""
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("arr", htype="generic")
    buf = io.BytesIO()
    np.save(buf, np.arange(3, dtype=dtype))
    t.write_file("a.npy", buf.getvalue())
    native = np.dtype(dtype).newbyteorder("=")
    assert t.dtype == str(native)
    canonical = io.BytesIO()
    np.save(canonical, np.arange(3, dtype=native))
    ds.close()
    t = lakefs.load(tmp_path / "ds").arr
    assert t["a"].numpy().tolist() == [0, 1, 2] and t["a"].numpy().dtype == native
    assert t["a"].file_bytes() == canonical.getvalue()  # the canonical numpy.save bytes


def test_delete_tensor_takes_its_plain_files_and_directories_along(tmp_path):
    """Regression: ``Dataset.delete_tensor`` left the plain files and directories kept
    under the tensor (``.ipynb_checkpoints`` beside notebooks) in the manifest, where no
    listing could reach them and a new tensor of that name would show them again."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("notes", htype="text")
    ds.notes.append("hello")
    ds.make_plain_dir("notes/.ipynb_checkpoints")
    ds.make_plain_dir("notes/.ipynb_checkpoints/.deep")
    ds.write_file("notes/.ipynb_checkpoints/a.json", b"{}")
    ds.write_file("notes/.ipynb_checkpoints/.deep/b", b"b")
    ds.write_file("keep.md", b"kept")
    ds.flush()
    ds.delete_tensor("notes")
    assert ds.tensors == {} and ds.pending_dirs == [] and list(ds.files) == ["keep.md"]
    ds.flush()
    ds.close()
    assert len(list((tmp_path / "ds" / "files").iterdir())) == 1  # keep.md's: the others collected
    ds = lakefs.load(tmp_path / "ds")
    ds.create_tensor("notes", htype="text")
    assert ds.pending_dirs == [] and list(ds.files) == ["keep.md"]
    ds.close()


def test_a_tensor_handle_kept_across_delete_tensor_is_refused(tmp_path):
    """Found by review: a handle kept across ``delete_tensor`` went on appending: rows
    were added and committed while their samples went with the deleted tensor. It now
    refuses to read or write; a sample taken before stays readable (an open file of the
    mount reads it until the commit's garbage goes), and a renamed tensor's handle
    follows it."""
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("blobs", htype="bytes", chunk_size=4096)
    ds.create_tensor("other", htype="bytes")
    t.append(b"x")
    sample = t[0]
    stream = t.open_file_stream("big.bin", 3 * 4096)  # (the mount streams a big file copied in)
    stream.write(b"s" * 3 * 4096)
    ds.delete_tensor("blobs")
    ds.create_tensor("blobs", htype="bytes")  # (another tensor of that name: not this handle's)
    uses = [lambda: t.append(b"y"), lambda: t.extend([b"y", b"z"]), lambda: t.__setitem__(0, b"y"),
            lambda: t.__setitem__("k", b"y"), lambda: t.pop(0), lambda: t.write_file("k.bin", b"y"),
            lambda: t.commit_file_stream("big.bin", stream), lambda: t.open_file_stream("b.bin", 3 * 4096),
            lambda: t[0], lambda: len(t), lambda: t.numpy(), lambda: t.find_file("00000000.bin")]
    for use in uses:
        with pytest.raises(TensorNotFoundError, match="'blobs' was deleted"):
            use()
    assert "deleted" in repr(t)
    assert sample.tobytes() == b"x"
    assert len(ds) == 1 and ds.keys() == ["00000000"] and len(ds.blobs) == 0
    renamed = ds.create_tensor("a", htype="bytes")
    ds.rename_tensor("a", "g/b")
    renamed.append(b"r")
    ds.rename_group("g", "h")
    renamed.append(b"s")
    ds.close()
    with lakefs.load(tmp_path / "ds", read_only=True) as r:
        assert sorted(r.tensors) == ["blobs", "h/b", "other"]
        assert len(r) == 2 and [s.tobytes() for s in r["h/b"]] == [b"r", b"s"]


def test_rename_group(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("train/images", htype="image", sample_compression="png")
    ds.create_tensor("train/deep/labels", htype="class_label", class_names=["a", "b"])
    ds.train.deep.labels.append(1)
    ds.create_tensor("other")
    g = ds.rename_group("train", "old/train")
    assert g.name == "old/train" and sorted(ds.groups) == ["old", "old/train", "old/train/deep"]
    assert sorted(ds.tensors) == ["old/train/deep/labels", "old/train/images", "other"]
    assert ds["old/train/deep/labels"].name == "old/train/deep/labels"
    assert ds.old.train.deep.labels[0].numpy().tolist() == [1]
    with pytest.raises(TensorNotFoundError):
        ds["train/images"]
    with pytest.raises(TensorNotFoundError):
        ds.rename_group("train", "x")
    with pytest.raises(InvalidNameError):
        ds.rename_group("old", "old/train/x")
    with pytest.raises(TensorExistsError):
        ds.rename_group("old", "other")
    with pytest.raises(InvalidNameError):
        ds.rename_group("old", "../up")
    ds.flush()
    ds.close()
    ds = lakefs.load(tmp_path / "ds")
    assert sorted(ds.tensors) == ["old/train/deep/labels", "old/train/images", "other"]
    ds.close()


def test_rename_group_keeps_parents_before_children(tmp_path):
    """Found by review: a group renamed under a parent it made (or a pending directory it
    made a group) was listed before that parent in the manifest's ``groups``, which
    FORMAT.md §4 says lists parents before children."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("train/deep/x")
    ds.create_tensor("train2/y")
    ds.make_pending_dir("split")
    ds.rename_group("train", "split/old")  # a pending parent becomes a group
    ds.rename_group("train2", "new/parent/train2")  # parents made for it
    for groups in (ds.groups, _reloaded_groups(ds, tmp_path / "ds")):
        assert sorted(groups) == ["new", "new/parent", "new/parent/train2", "split", "split/old", "split/old/deep"]
        for i, g in enumerate(groups):
            assert all(p in groups[:i] for p in _parents(g)), groups


def _parents(name: str) -> list[str]:
    parts = name.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _reloaded_groups(ds, path) -> list[str]:
    ds.flush()
    ds.close()
    with lakefs.load(path, read_only=True) as again:
        return again.groups


def test_dataset_rows_by_list_or_mask(tmp_path):
    """``ds[[0, 2]]`` raised TypeError (tensors took lists already)."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("x")
    ds.x.extend([np.array([i]) for i in range(4)])
    assert [r.index for r in ds[[0, 2]]] == [0, 2]
    assert ds[[3, -4]].x.numpy().tolist() == [[3], [0]]
    assert [r.index for r in ds[np.array([True, False, False, True])]] == [0, 3]
    with pytest.raises(IndexError):
        ds[[0, 9]]
    with pytest.raises(IndexError):
        ds[[True, False]]
    ds.close()


def test_rows_of_a_slice_through_a_group(tmp_path):
    """Found by review: ``ds[0].train.images`` worked but ``ds[0:2].train.images`` (and
    ``ds[[0, 1]]["train"]``) said there was no tensor 'train'."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("train/deep/x")
    ds.create_tensor("train2")
    ds.extend({"train/deep/x": [np.array([i]) for i in range(3)], "train2": [np.array([9])] * 3})
    assert ds[0:2].train.deep.x.numpy().tolist() == [[0], [1]]
    assert ds[[2, 0]]["train"]["deep/x"].numpy().tolist() == [[2], [0]]
    assert [r.samples().keys() for r in ds[1:2].train.deep] == [{"x"}]
    assert ds[0:2].train2.numpy().tolist() == [[9], [9]]  # (a name sharing the group's prefix)
    assert not hasattr(ds[0:2].train, "x")
    ds.close()


def test_json_samples_take_numpy_values(tmp_path):
    """numpy scalars and arrays in a json sample were refused ("not JSON-serialisable");
    Deep Lake stores them as their numbers and lists. NaN is still refused."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("meta", htype="json")
    ds.meta.append({"score": np.float32(0.5), "n": np.int64(3), "box": np.arange(4, dtype=np.uint8),
                    "ok": np.bool_(True)})
    assert ds.meta[0].numpy() == {"score": 0.5, "n": 3, "box": [0, 1, 2, 3], "ok": True}
    with pytest.raises(InvalidSampleError):
        ds.meta.append({"bad": np.float64("nan")})
    with pytest.raises(InvalidSampleError):
        ds.meta.append({"obj": object()})
    assert len(ds.meta) == 1
    ds.close()


def test_tensor_shape_as_deep_lake(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("x", dtype="float32")
    assert ds.x.shape == (0,)
    ds.x.extend([np.zeros((2, 3), "float32"), np.zeros((2, 5), "float32")])
    assert ds.x.shape == (2, 2, None)  # the second dimension differs
    ds.create_tensor("y", dtype="uint8")
    ds.y.extend([np.zeros((4, 4), "uint8"), np.zeros((4, 4), "uint8")])
    assert ds.y.shape == (2, 4, 4)
    ds.create_tensor("z")
    ds.append({"z": np.zeros(3)}, key="only-z")  # row 2: y has no sample there
    ds.append({"y": np.zeros((4, 4), "uint8"), "z": np.zeros(3)}, key="both")  # row 3
    assert len(ds.y) == 4 and ds.y.shape == (4, None, None)
    ds.close()


def test_a_row_through_a_group(tmp_path):
    """``ds[0].train.images`` raised AttributeError ("no tensor 'train'")."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("train/labels", htype="text")
    ds.create_tensor("other", htype="text")
    ds.append({"train/labels": "cat", "other": "x"}, key="a")
    assert ds[0].train.labels.numpy() == "cat" and ds["a"]["train"]["labels"].numpy() == "cat"
    assert list(ds[0].train.samples()) == ["labels"] and sorted(ds[0].samples()) == ["other", "train/labels"]
    with pytest.raises(AttributeError):
        _ = ds[0].train.nope
    ds.close()


def test_a_slice_of_a_row_list_is_rows_again(tmp_path):
    """``ds[0:4][1:3].x`` failed: slicing a row list gave a plain list."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("g/x")
    ds["g/x"].extend([np.array([i]) for i in range(4)])
    assert ds[0:4][1:3]["g/x"].numpy().tolist() == [[1], [2]]
    assert ds[0:4].g[::2].x.numpy().tolist() == [[0], [2]]
    assert ds[0:4][-1].index == 3  # one row is still a Row
    ds.close()


def test_a_pil_image_appends_as_its_pixels(tmp_path):
    """It failed with "invalid literal for int() with base 10: 'RGB'": a PIL image's
    ``mode`` was taken for a file mode (found by QA)."""
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("images", htype="image", sample_compression="png")
    pixels = (np.arange(48).reshape(4, 4, 3) * 5).astype(np.uint8)
    s = t.append(Image.fromarray(pixels))
    assert s.mode == 0o644 and s.shape == (4, 4, 3)
    np.testing.assert_array_equal(t[0].numpy(), pixels)


def test_in_finds_tensors_groups_and_row_keys(tmp_path):
    """``"images" in ds`` was False: without ``__contains__`` Python iterated the rows."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("train/images", htype="image", sample_compression="png")
    ds.create_tensor("labels", htype="class_label")
    ds.append({"labels": 1}, key="cat001")
    assert "labels" in ds and "train" in ds and "train/images" in ds and "cat001" in ds
    assert "nope" not in ds and 0 not in ds and "images" not in ds
    assert "images" in ds.train and "labels" not in ds.train and "a/../b" not in ds.train


def test_summary_path_and_the_shape_of_a_slice(tmp_path, capsys):
    """Deep Lake's ``ds.summary()``, ``ds.path`` and ``ds.x[a:b].shape`` (found missing by QA)."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("images", htype="image", sample_compression="png")
    ds.create_tensor("labels", htype="class_label", chunk_compression="lz4")
    for w in (5, 6, 6):
        ds.append({"images": np.zeros((4, w, 3), np.uint8), "labels": 1})
    assert ds.path == str(tmp_path / "ds")
    ds.summary()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Dataset(path={str(tmp_path / 'ds')!r}, tensors=['images', 'labels'])"
    assert out[4].split() == ["images", "image", "(3,", "4,", "None,", "3)", "uint8", "png"]
    assert out[5].split() == ["labels", "class_label", "(3,", "1)", "uint32", "lz4", "(chunk)"]
    assert ds.images[0:2].shape == (2, 4, None, 3) and ds.images[1:3].shape == (2, 4, 6, 3)
    assert ds.images[5:9].shape == (0,)


def test_a_tensor_or_group_name_that_an_attribute_hides_is_refused(tmp_path, photos):
    """Found by QA: ``ds.create_tensor("files")`` was accepted, then ``ds.files.append``
    said "'dict' object has no attribute 'append'" (``path``, ``groups``, ``keys`` too).
    Deep Lake refuses such names; the mount makes folders of any name (``ds["files"]``)."""
    ds = lakefs.empty(tmp_path / "ds")
    for name in ("files", "path", "keys", "summary", "train/tensors"):
        with pytest.raises(InvalidNameError, match="is an attribute of"):
            ds.create_tensor(name)
    with pytest.raises(InvalidNameError, match="'groups' is an attribute of ds"):
        ds.create_group("groups")
    assert ds.tensors == {} and ds.groups == [] and "train" not in ds
    ds.create_tensor("train/images")  # (not an attribute of a group)
    ds.close()
    from lakefs.config import Config
    from lakefs.fs.tree import DatasetFS

    ds = lakefs.load(tmp_path / "ds")
    fs = DatasetFS(ds, Config())
    fs.mkdir("/files", 0o755)
    fh = fs.create("/files/a.jpg", 0o644)
    fs.write(fh, photos[0].read_bytes(), 0)
    fs.flush(fh)
    fs.release(fh)
    assert ds["files"]["a"].tobytes() == photos[0].read_bytes()
    ds.close()


def test_a_dataset_in_a_read_only_folder_opens_read_only_and_says_how(tmp_path):
    """Found by QA: ``lakefs.load`` of a dataset on a read-only file system said only
    "cannot take the writer lock ...: Read-only file system"."""
    from mounting import read_only_bind

    with lakefs.empty(tmp_path / "src" / "ds") as ds:
        ds.create_tensor("t", htype="text").append("kept")
    with read_only_bind(tmp_path / "src", tmp_path / "ro") as ro:
        with pytest.raises(ReadOnlyError) as refused:
            lakefs.load(ro / "ds")
        assert str(refused.value) == (f"cannot take the writer lock {ro / 'ds'}/locks/writer: Read-only file system; "
                                      "the dataset's folder is read-only: open it with read_only=True, "
                                      "or mount it with -o ro")
        with lakefs.load(ro / "ds", read_only=True) as ds:
            assert ds.t[0].numpy() == "kept"
        ds.storage.close()  # (a closed dataset's storage keeps the files it read open: busy)
