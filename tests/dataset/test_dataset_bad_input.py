"""Bad input: each is a clear error from lakefs.errors, stores nothing, changes nothing."""

from __future__ import annotations

import io
import json
import re
import shutil

import numpy as np
import pytest
from image_samples import png16, tiff_uint32
from PIL import Image

import lakefs
from lakefs.errors import (
    ConfigError,
    CorruptSampleError,
    FormatVersionError,
    InvalidNameError,
    InvalidSampleError,
    KeyExistsError,
    LakeFSError,
    NameTooLongError,
    TensorExistsError,
    TranscodeRefusedError,
    UndecodableError,
)


def _state(ds) -> dict:
    """Everything a user can observe about a dataset, for before/after comparison."""
    out = {"keys": ds.keys(), "groups": sorted(ds.groups)}
    for name, t in sorted(ds.tensors.items()):
        out[name] = (t.htype, t.dtype, t.class_names, len(t),
                     [(s.key, s.tobytes(), s.shape) for s in t.iter_samples()])
    return out


def _stored_objects(path) -> dict:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in path.rglob("*")
            if p.is_file() and "locks" not in p.parts}


@pytest.fixture
def ds(tmp_path, photos):
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.create_tensor("masks", htype="binary_mask", sample_compression="png")
    ds.create_tensor("masksj", htype="binary_mask", sample_compression="jpeg")
    ds.create_tensor("labels", htype="class_label", class_names=["cat"])
    ds.create_tensor("arr", htype="generic", dtype="uint8")
    ds.create_tensor("meta", htype="json")
    ds.create_tensor("txt", htype="text")
    ds.append({"images": lakefs.read(photos[0]), "labels": "cat", "arr": [1, 2]}, key="first")
    ds.flush()
    yield ds
    ds.close()


def _png(shape=(8, 8, 3)) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.full(shape, 100, np.uint8)).save(out, "PNG")
    return out.getvalue()


def _deep_list(depth: int = 100_000) -> list:
    """A list nested deeper than Python's json module recurses (RecursionError)."""
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


BAD_SAMPLES = [
    ("images", "truncated", CorruptSampleError),
    ("images", "corrupt", CorruptSampleError),
    ("images", b"this is a text file, not an image\n", UndecodableError),
    ("images", "hello", InvalidSampleError),
    ("masksj", "png", TranscodeRefusedError),
    ("arr", np.array([1.5]), InvalidSampleError),  # float into a uint8 tensor
    ("arr", np.array([300]), InvalidSampleError),  # out of range for uint8
    ("arr", np.array(["a"]), InvalidSampleError),
    ("labels", -1, InvalidSampleError),
    ("labels", 1.5, InvalidSampleError),
    ("labels", 2**40, InvalidSampleError),  # labels are uint32: not an OverflowError
    ("labels", [1, 5_000_000_000], InvalidSampleError),
    ("meta", b"{not json", UndecodableError),
    ("meta", {1, 2}, InvalidSampleError),
    ("meta", "deep", InvalidSampleError),  # was a RecursionError from the json module
    ("txt", b"\xff\xfe bad utf-8", UndecodableError),
    ("txt", 42, InvalidSampleError),
]


def _materialise(value, photos):
    jpeg = photos[1].read_bytes()
    if value == "truncated":
        return jpeg[: len(jpeg) // 2]
    if value == "corrupt":
        return jpeg[:200] + b"\x00" * 100  # SOI and headers, no scan, no EOI
    if value == "png":
        return _png()
    if value == "deep":
        return _deep_list()
    return value


@pytest.mark.parametrize("tensor,value,error", BAD_SAMPLES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(BAD_SAMPLES)])
def test_bad_sample_stores_nothing(ds, tmp_path, photos, tensor, value, error):
    value = _materialise(value, photos)
    before, objects = _state(ds), _stored_objects(tmp_path / "ds")
    with pytest.raises(error) as info:
        ds[tensor].append(value)
    assert isinstance(info.value, LakeFSError) and str(info.value)
    with pytest.raises(error):
        ds.append({"labels": "newclass", "arr": [3], tensor: value}, key="rowx")
    with pytest.raises(error):
        ds[tensor]["first"] = value
    with pytest.raises(error):
        ds[tensor]["brand-new-key"] = value
    assert _state(ds) == before
    assert "newclass" not in ds.labels.class_names
    ds.flush()
    assert _stored_objects(tmp_path / "ds") == objects  # nothing was even committed


def _npy(header_edit=None) -> bytes:
    out = io.BytesIO()
    np.save(out, np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    data = out.getvalue()
    return header_edit(data) if header_edit else data


BAD_FILES = [
    ("labels", "x.txt", b"99999999999\n", InvalidSampleError),
    ("labels", "x.txt", b"-1\n", InvalidSampleError),  # not a class named "-1"
    # a stray byte in the header dict: numpy's header parser raises tokenize.TokenError
    ("arr", "x.npy", _npy(lambda d: d.replace(b"4)", b"4\xa3")), UndecodableError),
    # a damaged shape: numpy would try to allocate petabytes (MemoryError)
    ("arr", "x.npy", _npy(lambda d: d.replace(b"(2, 3, 4)", b"(2000000000, 3000000, 4)")), UndecodableError),
    ("arr", "x.npy", _npy()[:-3], UndecodableError),
]


@pytest.mark.parametrize("tensor,name,data,error", BAD_FILES, ids=[f"{t}-{i}" for i, (t, *_) in enumerate(BAD_FILES)])
def test_bad_file_is_a_clear_error_and_stores_nothing(ds, tmp_path, tensor, name, data, error):
    """Through the mount anything but a lakefs error becomes EIO instead of EINVAL."""
    before, objects = _state(ds), _stored_objects(tmp_path / "ds")
    with pytest.raises(error) as info:
        ds[tensor].write_file(name, data)
    assert str(info.value)
    assert _state(ds) == before
    ds.flush()
    assert _stored_objects(tmp_path / "ds") == objects


def _pil_bytes(array: np.ndarray, fmt: str, mode: str | None = None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, fmt)
    return out.getvalue()


GRAY16 = np.array([[0, 1000], [40000, 65535]], np.uint16)
FLOATS = np.array([[0.25, 300.5], [-1.0, 1e6]], np.float32)
TOO_WIDE = [
    ("image", "png", _pil_bytes(GRAY16, "PNG")),
    ("image", "png", GRAY16),
    ("image", "tiff", _pil_bytes(GRAY16, "TIFF")),
    ("image", "tiff", _pil_bytes(FLOATS, "TIFF", "F")),
    ("image", "tiff", FLOATS),
    ("segment_mask", "tiff", _pil_bytes(FLOATS, "TIFF", "F")),
    ("binary_mask", "tiff", _pil_bytes(FLOATS, "TIFF", "F")),
]


@pytest.mark.parametrize("htype,compression,value", TOO_WIDE,
                         ids=[f"{h}-{c}-{i}" for i, (h, c, _) in enumerate(TOO_WIDE)])
def test_sample_the_tensor_dtype_cannot_hold_is_refused(tmp_path, htype, compression, value):
    """numpy() cast it to the tensor's dtype: 40000 -> 64 in uint8, -1.0 -> 4294967295."""
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("x", htype=htype, sample_compression=compression)
    ds.flush()
    objects = _stored_objects(tmp_path / "ds")
    with pytest.raises(InvalidSampleError, match="dtype"):
        t.append(value)
    with pytest.raises(InvalidSampleError, match="dtype"):
        ds.append({"x": value})
    assert len(t) == 0 and len(ds) == 0
    ds.flush()
    assert _stored_objects(tmp_path / "ds") == objects


def test_an_image_tensor_created_without_a_dtype_is_uint8_as_in_deep_lake(tmp_path):
    """Only the mount's tensors made by a first file take that file's dtype: create_tensor
    keeps Deep Lake's uint8, and a 16-bit PNG file appended to it is refused."""
    png = tmp_path / "d.png"
    png.write_bytes(_pil_bytes(GRAY16, "PNG"))
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("x", htype="image", sample_compression="png")
    assert t.dtype == "uint8"
    with pytest.raises(InvalidSampleError, match="dtype='uint16'"):
        t.append(lakefs.read(png))
    assert t.dtype == "uint8" and len(t) == 0


def test_a_sample_stored_before_the_check_reads_back_unchanged():
    from lakefs.dataset.samples import SampleFormat
    from lakefs.format.manifest import TensorMeta

    fmt = SampleFormat(TensorMeta("t1", "image", "uint8", "png", None, 1 << 20))
    got = fmt.to_numpy(_pil_bytes(GRAY16, "PNG"), (2, 2, 1))
    assert got.dtype == np.uint16 and got.ravel().tolist() == GRAY16.ravel().tolist()


def test_a_tensor_of_a_wider_dtype_keeps_every_value(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("x", htype="image", dtype="uint16", sample_compression="png")
    f = ds.create_tensor("f", htype="image", dtype="float32", sample_compression="tiff")
    m = ds.create_tensor("m", htype="binary_mask", sample_compression="png")
    t.extend([_pil_bytes(GRAY16, "PNG"), GRAY16, np.full((2, 2), 200, np.uint8)])
    f.append(_pil_bytes(FLOATS, "TIFF", "F"))
    m.append(_pil_bytes(GRAY16, "PNG"))  # a mask is its non-zero pixels
    assert [s.numpy().ravel().tolist() for s in t] == [GRAY16.ravel().tolist()] * 2 + [[200] * 4]
    assert all(s.numpy().dtype == np.uint16 for s in t)
    np.testing.assert_array_equal(f[0].numpy()[:, :, 0], FLOATS)
    assert m[0].numpy().ravel().tolist() == [False, True, True, True]


def test_dtype_is_not_adopted_from_a_refused_sample(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("a")  # dtype from the first sample
    ds.create_tensor("t", htype="text")
    with pytest.raises(InvalidSampleError):
        ds.append({"a": np.array([1.5], np.float32), "t": 5})
    assert ds.a.dtype is None and len(ds) == 0
    ds.a.append(np.array([1], np.int16))
    assert ds.a.dtype == "int16"


@pytest.mark.parametrize("how", ["append", "extend", "setitem", "write_file", "ds.append", "ds.extend"])
def test_dtype_is_not_adopted_from_a_sample_whose_store_failed(tmp_path, monkeypatch, how):
    """A sample encoded but then not stored (a full disk) leaves no dtype behind: the
    next sample decides it, as if the failed one had never come."""
    from lakefs.errors import StorageFullError

    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("a")  # dtype from the first sample
    ds.create_tensor("b")
    ds.b.append(np.array([0], np.uint8))  # (a row for __setitem__)

    def full(*args, **kwargs):
        raise StorageFullError("no space left on device")

    with monkeypatch.context() as m:
        m.setattr(t._engine, "write", full)
        with pytest.raises(StorageFullError):
            if how == "append":
                t.append(np.array([1.5], np.float32))
            elif how == "extend":
                t.extend([np.array([1.5], np.float32)])
            elif how == "setitem":
                t[0] = np.array([1.5], np.float32)
            elif how == "ds.append":
                ds.append({"a": np.array([1.5], np.float32), "b": np.array([1], np.uint8)})
            elif how == "ds.extend":
                ds.extend({"a": [np.array([1.5], np.float32)], "b": [np.array([1], np.uint8)]})
            else:
                buf = io.BytesIO()
                np.save(buf, np.array([1.5], np.float32))
                t.write_file("k.npy", buf.getvalue())
    assert t.dtype is None and len(t) == 0 and len(ds) == 1
    t.append(np.array([1], np.int16))
    assert t.dtype == "int16"


def test_ds_extend_keeps_no_row_when_the_disk_fills_midway(tmp_path):
    """Found by review: ``ds.extend`` promises all rows or none, but a storage failure at
    its third row kept the first two (``Tensor.extend`` took all of its rows back)."""
    from lakefs.errors import StorageFullError
    from lakefs.storage import LocalStorage
    from lakefs.storage.faults import FaultyStorage

    faulty = FaultyStorage(LocalStorage(str(tmp_path / "ds")), fail_at=10**9, mode="enospc", sticky=True)
    ds = lakefs.Dataset(faulty, create=True)
    ds.create_tensor("a", htype="bytes", chunk_size=4096)
    ds.create_tensor("b", htype="bytes", chunk_size=4096)
    ds.extend({"a": [b"kept"], "b": [b"kept"]})
    faulty.fail_at = faulty.count + 3  # the disk fills a few chunks into the next extend
    with pytest.raises(StorageFullError):  # (each sample fills a chunk: the next one is put)
        ds.extend({"a": [bytes([i]) * 3000 for i in range(100)], "b": [bytes([i]) * 3000 for i in range(100)]})
    assert faulty.tripped
    assert len(ds) == 1 and len(ds.a) == 1 and len(ds.b) == 1 and ds.keys() == ["00000000"]
    faulty.sticky, faulty.fail_at = False, 10**9  # (space again)
    ds.a.append(b"next")
    ds.close()
    with lakefs.load(tmp_path / "ds", read_only=True) as r:
        assert len(r) == 2 and [s.tobytes() for s in r.a] == [b"kept", b"next"]
        assert [s.tobytes() for s in r.b] == [b"kept"]


@pytest.mark.parametrize("name,error", [
    ("a/../b", InvalidNameError), ("..", InvalidNameError), ("a\x00b", InvalidNameError),
    ("x" * 256, NameTooLongError), (".hidden", InvalidNameError), ("", InvalidNameError),
    ("tab\there", InvalidNameError),
])
def test_bad_tensor_names(ds, tmp_path, name, error):
    before, objects = _state(ds), _stored_objects(tmp_path / "ds")
    with pytest.raises(error):
        ds.create_tensor(name)
    with pytest.raises(error):
        ds.create_group(name)
    assert _state(ds) == before
    ds.flush()
    assert _stored_objects(tmp_path / "ds") == objects


@pytest.mark.parametrize("key,error", [
    ("a/b", InvalidNameError), ("..", InvalidNameError), (".", InvalidNameError), ("a\x00", InvalidNameError),
    ("k" * 256, NameTooLongError), ("first", KeyExistsError), ("", InvalidNameError),
])
def test_bad_row_keys(ds, key, error):
    before = _state(ds)
    with pytest.raises(error):
        ds.append({"arr": [9]}, key=key)
    if error is not KeyExistsError:
        with pytest.raises(error):
            ds.arr[key] = [9]
    assert _state(ds) == before


def test_longest_name_is_allowed(ds):
    ds.create_tensor("n" * 255)
    ds.append({"arr": [1]}, key="k" * 251)  # its file: 255 bytes with ".npy"
    assert ds["k" * 251]["arr"].numpy().tolist() == [1]
    before = _state(ds)
    with pytest.raises(NameTooLongError):  # a key of 255 bytes has no file name
        ds.append({"arr": [1]}, key="k" * 255)
    assert _state(ds) == before


def test_duplicate_tensor_and_group(ds):
    with pytest.raises(TensorExistsError):
        ds.create_tensor("images")
    ds.create_group("g")
    with pytest.raises(TensorExistsError):
        ds.create_tensor("g")
    with pytest.raises(TensorExistsError):
        ds.create_group("images")
    assert ds.create_tensor("images", exist_ok=True) is ds.images


def test_bad_tensor_settings(ds):
    before = _state(ds)
    with pytest.raises(InvalidSampleError):
        ds.create_tensor("x", htype="nope")
    with pytest.raises(InvalidSampleError):
        ds.create_tensor("x", sample_compression="lz4", chunk_compression="lz4")
    with pytest.raises(LakeFSError):
        ds.create_tensor("x", htype="image", sample_compression="nope")
    with pytest.raises(InvalidSampleError):
        ds.create_tensor("x", htype="image", sample_compression="wav")
    with pytest.raises(InvalidSampleError):
        ds.create_tensor("x", dtype="notadtype")
    with pytest.raises(InvalidSampleError):
        ds.create_tensor("x", chunk_size=10)
    assert _state(ds) == before and "x" not in ds.tensors


def _copy_closed(ds, tmp_path, name):
    ds.close()
    dst = tmp_path / name
    shutil.copytree(tmp_path / "ds", dst)
    return dst


def test_unknown_marker_version(ds, tmp_path):
    dst = _copy_closed(ds, tmp_path, "copy")
    marker = json.loads((dst / "lakefs.json").read_text())
    marker["version"] = 99
    (dst / "lakefs.json").write_text(json.dumps(marker))
    for read_only in (True, False):
        with pytest.raises(FormatVersionError, match="99"):
            lakefs.load(dst, read_only=read_only)
    # the refused writable open did not keep the lock
    (dst / "lakefs.json").write_text(json.dumps({"format": "lakefs", "version": 1}))
    lakefs.load(dst).close()


def test_unknown_head_version(ds, tmp_path):
    dst = _copy_closed(ds, tmp_path, "copy")
    head = json.loads((dst / "HEAD").read_text())
    head["format_version"] = 99  # a version this lakefs does not read
    (dst / "HEAD").write_text(json.dumps(head))
    with pytest.raises(FormatVersionError, match="upgrade"):
        lakefs.load(dst, read_only=True)


def test_label_digits_are_ascii_digits(ds):
    """str.isdigit() is also true for "\u0661" (Arabic-Indic one) and "\u00b2": those are
    class names, not the index 1 or 2."""
    ds.labels.write_file("y.txt", "\u0661\n\u00b2\n1\n".encode())
    names = ds.labels.meta.class_names
    assert ds.labels["y"].numpy().tolist() == [names.index("\u0661"), names.index("\u00b2"), 1]


def test_a_label_file_with_a_byte_order_mark_names_its_class(ds):
    """Found by review: a label file saved by Notepad ("\ufeffcat\r\n") made a new class
    "\ufeffcat" beside "cat", so the same class had two indices."""
    ds.labels.write_file("win.txt", "\ufeffcat\r\n".encode())
    ds.labels.write_file("two.txt", "\ufeffnew\r\ncat\r\n".encode())
    assert ds.labels.meta.class_names == ["cat", "new"]
    assert ds.labels["win"].numpy().tolist() == [0]
    assert ds.labels["two"].numpy().tolist() == [1, 0]
    assert ds.labels["win"].file_bytes() == b"cat\n"


@pytest.mark.parametrize("value", [np.float32(0.5), float("nan"), float("inf"), [1, {2, 3}],
                                   {1: "a", "b": 2}, object(), _deep_list()],
                         ids=["numpy-scalar", "nan", "inf", "set", "mixed-keys", "object", "deep"])
def test_tensor_info_json_cannot_hold_is_refused(ds, tmp_path, value):
    """It was accepted, and then every commit (and close) failed: the appends made since
    the last commit were lost."""
    ds.arr.append([7])
    before = _state(ds)
    with pytest.raises(InvalidSampleError, match="info mean="):
        ds.create_tensor("scores", mean=value)
    assert "scores" not in ds.tensors and _state(ds) == before
    ds.flush()
    assert lakefs.load(tmp_path / "ds", read_only=True).arr[1].numpy().tolist() == [7]


def test_tensor_info_is_kept_and_json_only(ds, tmp_path):
    t = ds.create_tensor("overview", mean=0.5, names=("a", "b"), nested={"k": [1, None, True]})
    assert t.info == {"mean": 0.5, "names": ["a", "b"], "nested": {"k": [1, None, True]}}
    with pytest.raises(InvalidSampleError, match="not a JSON value"):
        t.info["mean"] = np.float32(1)  # would block every commit
    t.info["nested"]["k"].append(np.float32(1))  # a copy: the tensor's info is unchanged
    ds.flush()
    assert lakefs.load(tmp_path / "ds", read_only=True)["overview"].info == t.info


@pytest.mark.parametrize(("given", "meant"), [("sample_compresion", "sample_compression"),
                                               ("class_name", "class_names"), ("max_chunk_size", "chunk_size"),
                                               ("exists_ok", "exist_ok")])
def test_a_misspelt_tensor_setting_is_refused_not_kept_as_info(ds, given, meant):
    """``sample_compresion="png"`` made an uncompressed tensor with it in ``info``."""
    before = _state(ds)
    with pytest.raises(ConfigError, match=f"unknown argument '{given}'; did you mean '{meant}'"):
        ds.create_tensor("photos", htype="image", **{given: "png"})
    with pytest.raises(ConfigError, match=f"did you mean '{meant}'"):
        ds.create_group("g").create_tensor("photos", **{given: "png"})
    assert "photos" not in ds.tensors and "g/photos" not in ds.tensors
    assert _state(ds) == {**before, "groups": ["g"]}
    assert ds.create_tensor("boxes", htype="bbox", coords={"mode": "LTWH"}).info == {"coords": {"mode": "LTWH"}}


@pytest.mark.parametrize("dtype", ["object", "U10", "S3", "V8", "complex64", "datetime64[ns]", "timedelta64",
                                   "float128"])
def test_dtype_a_tensor_cannot_hold_is_refused_at_create(ds, tmp_path, dtype):
    """An object tensor stored heap pointers; S3 stored b'1' for the int 1."""
    before, objects = _state(ds), _stored_objects(tmp_path / "ds")
    with pytest.raises(InvalidSampleError, match=re.escape(f"dtype {np.dtype(dtype)} is not supported")) as info:
        ds.create_tensor("x", dtype=dtype)
    assert "\n" not in str(info.value)
    assert "x" not in ds.tensors and _state(ds) == before
    ds.flush()
    assert _stored_objects(tmp_path / "ds") == objects


@pytest.mark.parametrize("dtype", ["float32", "bool"])
def test_class_label_tensor_needs_an_integer_dtype(ds, dtype):
    with pytest.raises(InvalidSampleError, match=f"dtype {dtype} is not an integer"):
        ds.create_tensor("x", htype="class_label", dtype=dtype)
    assert "x" not in ds.tensors
    assert ds.create_tensor("y", htype="class_label", dtype="uint8").dtype == "uint8"


def test_array_of_a_dtype_a_tensor_cannot_hold_is_refused(ds):
    ds.create_tensor("x")  # dtype from the first sample
    with pytest.raises(InvalidSampleError, match="float128"):
        ds.x.append(np.zeros(2, np.longdouble))
    assert ds.x.dtype is None and len(ds.x) == 0


BAD_CLASS_NAMES = ["", "a\nb", "a\r", " pad ", "tab\t", "5", "007", "a\x0cb", "\u2028x", "\ud800"]


@pytest.mark.parametrize("name", BAD_CLASS_NAMES, ids=[repr(n) for n in BAD_CLASS_NAMES])
def test_class_name_the_label_file_cannot_show_is_refused(ds, tmp_path, name):
    """Each read back from the .txt file view as other labels: "a\\nb" as two new classes,
    "" as none, " pad " as "pad", "5" as the index 5."""
    before, objects = _state(ds), _stored_objects(tmp_path / "ds")
    with pytest.raises(InvalidSampleError, match="class name") as info:
        ds.create_tensor("x", htype="class_label", class_names=["ok", name])
    assert "\n" not in str(info.value)
    for value in (name, ["cat", name]):
        with pytest.raises(InvalidSampleError, match="class name"):
            ds.labels.append(value)
        with pytest.raises(InvalidSampleError, match="class name"):
            ds.append({"labels": value, "arr": [3]})
    assert "x" not in ds.tensors and _state(ds) == before
    ds.flush()
    assert _stored_objects(tmp_path / "ds") == objects


def test_class_names_of_digits_are_their_own_index(ds):
    """Class folders "0".."9" (an ImageFolder of digits): each name reads back as the same
    index it names."""
    t = ds.create_tensor("digits", htype="class_label", class_names=[str(i) for i in range(11)])
    t.extend(["10", 3, "11"])
    assert [s.numpy().tolist() for s in t] == [[10], [3], [11]] and t.class_names[-1] == "11"
    with pytest.raises(InvalidSampleError, match="digits"):
        t.append("13")  # at index 12


def test_class_names_given_twice_are_refused(ds):
    with pytest.raises(InvalidSampleError, match="twice"):
        ds.create_tensor("x", htype="class_label", class_names=["a", "b", "a"])
    assert "x" not in ds.tensors


def test_every_accepted_class_label_round_trips_through_the_file_view(tmp_path):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    ds = lakefs.empty(tmp_path / "ds")
    names = ["x", "-1", "+2", "\u0661", "4"]
    t = ds.create_tensor("l", htype="class_label", class_names=names)
    label = st.one_of(st.text(max_size=6), st.integers(0, 12), st.sampled_from(names))

    @settings(max_examples=400, deadline=None, database=None)
    @given(st.one_of(label, st.lists(label, max_size=4)))
    def check(value):
        try:
            s = t.append(value)
        except InvalidSampleError:
            return
        names = t.class_names
        copy = t.write_file("copy.txt", s.file_bytes())
        assert copy.numpy().tolist() == s.numpy().tolist()
        assert t.class_names == names  # the copy made no new class

    check()
    ds.close()


def _npy_of(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, arr)
    return out.getvalue()


FLOAT_OVERFLOWS = [
    ("float16", np.array([1.0, 1e10])),  # was stored as inf
    ("float32", np.array([1e39])),
    ("float32", np.array([-1e39], np.float64)),
    ("float32", np.array([2**24 + 1], np.int64)),  # was stored as 16777216
    ("float64", np.array([2**53 + 1], np.int64)),  # numpy calls int64 -> float64 "safe"
    ("float16", np.array([70000], np.int32)),
    ("float16", np.array([2049], np.int16)),
]


@pytest.mark.parametrize("dtype,value", FLOAT_OVERFLOWS, ids=[f"{d}-{i}" for i, (d, _) in enumerate(FLOAT_OVERFLOWS)])
def test_value_a_float_tensor_would_change_is_refused(tmp_path, dtype, value):
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("x", dtype=dtype)
    with pytest.raises(InvalidSampleError, match=f"does not fit {dtype}") as info:
        t.append(value)
    assert "\n" not in str(info.value)
    with pytest.raises(InvalidSampleError, match=f"does not fit {dtype}"):
        t.write_file("a.npy", _npy_of(value))
    assert len(t) == 0 and len(ds) == 0
    ds.close()


INT_OVERFLOWS = [
    ("uint8", 300, 300),
    ("uint8", -1, -1),
    ("int16", np.array([40000]), 40000),
    ("int16", np.array([[1, -2], [-40000, 50000]]), -40000),  # the first one out of range
    ("bool", np.array([0, 1, 2]), 2),
    ("int64", np.array([2**63], np.uint64), 2**63),
]


@pytest.mark.parametrize("dtype,value,bad", INT_OVERFLOWS, ids=[f"{d}-{i}" for i, (d, *_) in enumerate(INT_OVERFLOWS)])
def test_an_integer_out_of_range_is_named(tmp_path, dtype, value, bad):
    """300 into uint8 said "dtype mismatch: the tensor holds uint8, the value is int64",
    where 5, an int64 too, is taken."""
    ds = lakefs.empty(tmp_path / "ds")
    t = ds.create_tensor("x", dtype=dtype)
    with pytest.raises(InvalidSampleError, match=rf"^value {bad} does not fit {dtype} \(") as info:
        t.append(value)
    assert "\n" not in str(info.value)
    with pytest.raises(InvalidSampleError, match=rf"^value {bad} does not fit {dtype} \("):
        t.write_file("a.npy", _npy_of(np.asarray(value)))
    assert len(t) == 0
    t.append(1)
    assert t[0].numpy().tolist() == [1]  # (a scalar is stored as shape (1,), as in Deep Lake)
    ds.close()


def test_float_rounding_is_still_accepted(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    f = ds.create_tensor("f", dtype="float32")
    h = ds.create_tensor("h", dtype="float16")
    f.append(np.array([0.1, np.nan, np.inf, -np.inf, 1e-50]))
    f.append(np.array([2**24, -(2**24), 2**30, 3], np.int64))  # exact in float32
    h.write_file("a.npy", _npy_of(np.array([0.1, 65504.0])))
    h.append(np.array([2048, -2048, 1], np.int32))
    assert f[0].numpy().tolist()[:1] == [np.float32(0.1)] and np.isnan(f[0].numpy()[1])
    assert f[0].numpy().tolist()[2:] == [np.inf, -np.inf, 0.0]
    assert f[1].numpy().tolist() == [2**24, -(2**24), 2**30, 3]
    assert h["a"].numpy().tolist() == [np.float16(0.1), 65504.0] and h[1].numpy().dtype == np.float16
    ds.close()


def test_tensor_extend_stores_all_or_nothing(ds, tmp_path):
    """Rows before the bad item stayed stored."""
    before, objects = _state(ds), _stored_objects(tmp_path / "ds")
    with pytest.raises(InvalidSampleError, match="^item 2: ") as info:
        ds.arr.extend([[1], [2], "bad", [4]])
    assert "\n" not in str(info.value)
    with pytest.raises(InvalidSampleError, match="^item 1: "):
        ds.labels.extend(["newclass", 1.5])
    assert _state(ds) == before and "newclass" not in ds.labels.class_names
    ds.flush()
    assert _stored_objects(tmp_path / "ds") == objects
    ds.arr.extend(np.array([[1], [2]]))
    assert [s.numpy().tolist() for s in ds.arr] == [[1, 2], [1], [2]]


@pytest.mark.parametrize("values", [5, np.array(5), "abc", b"abc", {"k": 1}],
                         ids=["int", "0-d-array", "str", "bytes", "dict"])
def test_tensor_extend_of_one_sample_is_a_clear_type_error(ds, tmp_path, values):
    """``extend(5)`` raised "'int' object is not iterable"; a str, bytes or dict was taken
    apart, one row per character, byte or key."""
    before = _state(ds)
    with pytest.raises(TypeError, match="^extend takes a sequence or array of samples, .*use append$"):
        ds.meta.extend(values)
    assert _state(ds) == before


@pytest.mark.parametrize("samples,match", [
    ({"arr": [[5], [6]], "labels": ["newclass", 1.5]}, "tensor 'labels' item 1: "),
    ({"arr": [[5], [6], [7]], "labels": ["newclass", "cat"]}, "one length, got 'arr': 3, 'labels': 2"),
    ({"arr": [[5]], "labels": "cat"}, "must be a list, not str"),
    ({"arr": [[5]], "nope": [1]}, "nope"),
])
def test_dataset_extend_stores_all_or_nothing(ds, tmp_path, samples, match):
    """A row was stored before a bad value; unequal lengths stored rows, then a raw ValueError."""
    before, objects = _state(ds), _stored_objects(tmp_path / "ds")
    with pytest.raises(LakeFSError, match=match) as info:
        ds.extend(samples)
    assert "\n" not in str(info.value)
    assert _state(ds) == before and "newclass" not in ds.labels.class_names
    ds.flush()
    assert _stored_objects(tmp_path / "ds") == objects
    ds.extend({"arr": [[5], [6]], "labels": ["newclass", "cat"]})
    assert [s.numpy().tolist() for s in ds.arr][1:] == [[5], [6]] and ds.labels[2].numpy().tolist() == [0]


UNDECODABLE = [("png", "a.png", png16(3)), ("png", "a.png", png16(4)), ("png", "a.png", png16(2)),
               ("tif", "a.tif", tiff_uint32()), ("raw", "a.png", png16(3))]


@pytest.mark.parametrize("tensor,name,data", UNDECODABLE, ids=["rgb16", "rgba16", "la16", "u32tif", "rgb16-raw"])
def test_an_image_lakefs_cannot_decode_is_refused_by_append_and_write_file(tmp_path, tensor, name, data):
    """A 16-bit RGB PNG was stored in a uint16 png tensor, and numpy() then failed."""
    ds = lakefs.empty(tmp_path / "ds")
    ds.create_tensor("png", htype="image", dtype="uint16", sample_compression="png")
    ds.create_tensor("tif", htype="image", dtype="uint32", sample_compression="tiff")
    ds.create_tensor("raw", htype="image", dtype="uint16")  # decoded arrays, no compression
    ds.flush()
    objects = _stored_objects(tmp_path / "ds")
    (tmp_path / name).write_bytes(data)
    t = ds[tensor]
    for write in (lambda: t.append(lakefs.read(tmp_path / name)), lambda: t.write_file(name, data),
                  lambda: ds.append({tensor: data})):
        with pytest.raises(UndecodableError, match="images are not supported") as info:
            write()
        assert "\n" not in str(info.value)
    assert len(ds) == 0
    ds.flush()
    assert _stored_objects(tmp_path / "ds") == objects
    ds.close()


def test_image_arrays_the_codec_cannot_decode_are_refused_and_16_bit_gray_is_kept(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    png = ds.create_tensor("png", htype="image", dtype="uint16", sample_compression="png")
    with pytest.raises(InvalidSampleError, match="png cannot store a uint16 image with 3 channels"):
        png.append(np.zeros((2, 2, 3), np.uint16))
    png.append(np.full((2, 2), 40000, np.uint16))
    png.append(png16(1))
    assert png[0].numpy().max() == 40000 and png[1].numpy().dtype == np.uint16
    ds.close()


def test_a_file_that_is_not_npy_into_an_array_tensor_says_what_it_takes(ds, tmp_path):
    """The message was "content is not a recognised None file"."""
    ds.create_tensor("boxes", htype="bbox")
    (tmp_path / "a.png").write_bytes(_png())
    for tensor in ("arr", "boxes"):
        with pytest.raises(UndecodableError, match=f"a {ds[tensor].htype} tensor takes arrays as .npy files") as info:
            ds[tensor].append(lakefs.read(tmp_path / "a.png"))
        assert "None" not in str(info.value) and "png image" in str(info.value)


@pytest.mark.parametrize("tensor,value", [("txt", "ab\ud800"), ("meta", {"k": "\ud800"}), ("meta", ["x", "\udfff"])])
def test_a_string_utf8_cannot_store_is_a_lakefs_error(ds, tensor, value):
    """A raw UnicodeEncodeError came out of append."""
    before = _state(ds)
    with pytest.raises(InvalidSampleError, match="surrogate") as info:
        ds[tensor].append(value)
    assert "\n" not in str(info.value)
    assert _state(ds) == before


@pytest.mark.parametrize("name,shown", [("a//b", "'a//b'"), ("g/../b", "'g/../b'"), ("g/.b", "'g/.b'"),
                                        ("g/x\ny", "'g/x\\\\ny'")])
def test_a_bad_part_of_a_tensor_path_names_the_whole_path(ds, name, shown):
    """create_tensor("a//b") said "invalid tensor name ''"."""
    with pytest.raises(InvalidNameError, match=f"^tensor name {shown}: ") as info:
        ds.create_tensor(name)
    assert "\n" not in str(info.value)
    with pytest.raises(InvalidNameError, match="name too long|at most 255"):
        ds.create_tensor("g/" + "x" * 300)


def test_an_npy_file_with_bytes_after_its_array_is_refused(ds, tmp_path):
    """Found by review: two arrays saved into one file (or any trailing bytes) were
    stored as the first array alone, without a word."""
    path = tmp_path / "two.npy"
    with open(path, "wb") as f:
        np.save(f, np.arange(3, dtype=np.uint8))
        np.save(f, np.arange(3, dtype=np.uint8))
    before = _state(ds)
    with pytest.raises(UndecodableError, match="bytes follow its array") as info:
        ds.arr.append(lakefs.read(path))
    assert "\n" not in str(info.value)
    assert _state(ds) == before


@pytest.mark.parametrize("value", [{"a": float("nan")}, [float("inf")], -float("inf"), {"a": [1, np.nan]}])
def test_json_with_nan_or_infinity_is_refused(ds, value):
    """It was stored as {"a": NaN}, which jq and JavaScript refuse."""
    before = _state(ds)
    with pytest.raises(InvalidSampleError, match="JSON") as info:
        ds.meta.append(value)
    assert "\n" not in str(info.value)
    assert _state(ds) == before


@pytest.mark.parametrize("data", [b'{"a": NaN}', b"[Infinity]", b"-Infinity", b'{"a": [1, -Infinity]}',
                                  b"[" * 100_000 + b"]" * 100_000])
def test_a_json_file_with_nan_or_infinity_is_refused(ds, data):
    before = _state(ds)
    with pytest.raises(UndecodableError, match="JSON"):
        ds.meta.write_file("a.json", data)
    with pytest.raises(UndecodableError, match="JSON"):
        ds.meta.append(data)
    assert _state(ds) == before
    ds.meta.write_file("b.json", b'{"a": 1e300, "b": "NaN"}')  # a big number, a string
    assert ds.meta["b"].numpy() == {"a": 1e300, "b": "NaN"}


def test_json_and_text_files_with_a_byte_order_mark_are_taken_as_they_are(ds):
    """Windows tools start UTF-8 files with a byte order mark; json.loads of the text
    refused it. The file is stored unchanged; the value read back has no mark."""
    bom = b"\xef\xbb\xbf"
    ds.meta.write_file("a.json", bom + b'{"label": "cat"}')
    assert ds.meta["a"].numpy() == {"label": "cat"}
    assert ds.meta["a"].file_bytes() == bom + b'{"label": "cat"}'
    notes = ds.create_tensor("notes", htype="text")
    notes.write_file("a.txt", bom + "café".encode())
    assert notes["a"].numpy() == "café"
    assert notes["a"].file_bytes() == bom + "café".encode()


def test_a_sample_whose_file_name_would_pass_255_bytes_is_refused(ds):
    """A key may be 255 bytes; key + extension is the file name a mount shows, which no
    tool could open past 255 (found by review: such files could not be copied out)."""
    import io

    from PIL import Image

    before = _state(ds)
    with pytest.raises(NameTooLongError, match="255"):
        ds.meta.write_file("k" * 252 + ".json", b"{}")  # 257 bytes
    assert _state(ds) == before
    ds.meta.write_file("k" * 250 + ".json", b"{}")  # 255 bytes: fine
    assert ds.meta["k" * 250].numpy() == {}
    webp = ds.create_tensor("webp", htype="image", sample_compression="webp")
    png = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(png, format="PNG")
    before = _state(ds)
    with pytest.raises(NameTooLongError):  # 255 bytes as .png, 256 once it is a .webp
        webp.write_file("w" * 251 + ".png", png.getvalue())
    assert _state(ds) == before


def test_chunk_size_zero_is_refused_not_taken_for_the_default(tmp_path):
    ds = lakefs.empty(tmp_path / "ds")
    with pytest.raises(InvalidSampleError, match="chunk_size 0 is too small"):
        ds.create_tensor("t", chunk_size=0)
    assert ds.create_tensor("t").meta.chunk_size == 8 << 20  # None: the default
    ds.close()


def test_chunk_size_beyond_the_memory_limit_is_refused(tmp_path):
    """chunk_size=1 << 40 was taken: the format stores any size, but a writer holds
    2 x chunk_size per tensor in memory (and a reader five tiles per open file)."""
    from lakefs.chunks.engine import MAX_CHUNK_SIZE

    with lakefs.empty(tmp_path / "ds") as ds:
        with pytest.raises(InvalidSampleError, match=f"chunk_size {1 << 40} is too large \\(at most {MAX_CHUNK_SIZE}, "
                                                     "256 MiB\\)"):
            ds.create_tensor("t", chunk_size=1 << 40)
        with pytest.raises(InvalidSampleError, match="too large"):
            ds.create_tensor("t", chunk_size=MAX_CHUNK_SIZE + 1)
        assert "t" not in ds.tensors
        assert ds.create_tensor("t", chunk_size=MAX_CHUNK_SIZE).meta.chunk_size == MAX_CHUNK_SIZE
