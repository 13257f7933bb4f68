"""Scripts ported from Deep Lake v3 (found by QA): what lakefs lacks, or takes otherwise,
is refused with an error that says what to write instead, never silently ignored."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

import lakefs
from lakefs.errors import ConfigError


@pytest.fixture
def ds(tmp_path):
    with lakefs.empty(tmp_path / "ds") as ds:
        yield ds


@pytest.mark.parametrize(("given", "hint"), [
    ("compression", "sample_compression= (each sample stored as a compressed file"),
    ("is_sequence", "no sequence tensors"),
    ("is_link", "no link tensors: store the file itself (lakefs.read(path))"),
])
def test_a_deep_lake_setting_lakefs_lacks_is_refused_not_kept_as_info(ds, given, hint):
    """``compression="jpeg"`` made an uncompressed image tensor with it in ``info``."""
    refusal = re.escape(f"unknown argument '{given}': lakefs has") + ".*" + re.escape(hint)
    with pytest.raises(ConfigError, match=refusal):
        ds.create_tensor("images", htype="image", **{given: "jpeg" if given == "compression" else True})
    assert "images" not in ds.tensors
    assert ds.create_tensor("images", htype="image", sample_compression="jpeg").sample_compression == "jpeg"


@pytest.fixture
def labelled(ds):
    ds.create_tensor("labels", htype="class_label")
    ds.create_tensor("train/captions", htype="text")
    ds.extend({"labels": [1, 2], "train/captions": ["a", "b"]})
    return ds


@pytest.mark.parametrize(("assign", "message"), [
    (lambda ds: setattr(ds, "labels", [0]), "ds.labels = ... would hide tensor 'labels' and store nothing: write "
     "samples with ds.labels.append(value), ds.labels.extend(values) or ds.labels[i] = value"),
    (lambda ds: setattr(ds, "train", None), "ds.train = ... would hide group 'train' and store nothing: write its "
     "tensors (ds.train.<tensor>.append(value))"),
    (lambda ds: setattr(ds.train, "captions", ["x"]), "ds.train.captions = ... would hide tensor 'train/captions'"),
    (lambda ds: setattr(ds[1], "labels", 0), "ds[1].labels = ... stores nothing: write the cell with "
     "ds.labels[1] = value (or ds[1]['labels'] = value)"),
    (lambda ds: setattr(ds[1].train, "captions", "x"), "ds[1].train.captions = ... stores nothing: write the cell "
     "with ds.train.captions[1] = value"),
    (lambda ds: setattr(ds[0:2], "labels", [0, 0]), "ds[...].labels = ... would hide tensor 'labels'"),
    (lambda ds: ds[0].__setitem__("train", "x"), "ds[0]['train'] is group 'train': write its tensors' cells"),
])
def test_assigning_a_tensor_or_group_as_an_attribute_is_refused(labelled, assign, message):
    """``ds[0].labels = 0`` changed nothing, ``ds.captions = ["a"]`` hid the tensor behind
    a list, both silently; ``ds[0]["labels"] = 0`` was an AttributeError: __setitem__."""
    with pytest.raises(TypeError, match=re.escape(message)):
        assign(labelled)
    assert labelled.labels.numpy().ravel().tolist() == [1, 2]
    assert labelled.train.captions.text() == ["a", "b"] and labelled["train"].captions.name == "train/captions"


def test_a_rows_cell_is_written_by_name_as_the_tensors_is_by_row(labelled, tmp_path):
    labelled[1]["labels"] = 0
    labelled[0].train["captions"] = "c"
    labelled[1]["train/captions"] = "d"
    assert labelled.labels.numpy().ravel().tolist() == [1, 0]
    assert labelled.train.captions.text() == ["c", "d"]
    with pytest.raises(lakefs.errors.TensorNotFoundError):
        labelled[0]["nope"] = 1
    labelled.close()
    with lakefs.load(tmp_path / "ds", read_only=True) as ro:
        assert ro.labels.numpy().ravel().tolist() == [1, 0]
        with pytest.raises(lakefs.errors.ReadOnlyError):
            ro[0]["labels"] = 1


def test_own_and_other_attributes_are_still_set(labelled):
    labelled.allow_transcode = False  # the dataset's own
    labelled._note = 1  # private ones
    labelled.note = 2  # any other name: as Python does (Deep Lake too)
    row = labelled[0]
    row.note = 3
    assert (labelled.allow_transcode, labelled._note, labelled.note, row.note) == (False, 1, 2, 3)
    labelled.flush()  # (sets its own attributes as it commits)
    assert labelled.generation > 0 and not labelled.has_changes


@pytest.mark.parametrize(("name", "hint"), [
    ("checkout", "no version control"), ("log", "ds.commit() is flush(), which makes the writes so far durable "
                                                "and keeps no message"),
    ("pytorch", "no framework loaders: iterate the dataset"), ("tensorflow", "mount it (`lakefs mount`)"),
    ("query", "ds[[3, 7, ...]] or ds[boolean_mask]"), ("filter", "no queries"),
    ("max_len", "len(ds) counts them"), ("pop", "ds.<tensor>.pop(i) empties one tensor's cell"),
    ("info", "no dataset-level info: keep it as a plain file (ds.write_file('info.json', data)"),
])
def test_a_deep_lake_only_attribute_says_what_lakefs_offers(ds, name, hint):
    """``ds.pytorch()`` said "dataset has no tensor or group 'pytorch'"."""
    with pytest.raises(AttributeError, match=re.escape(f"ds.{name} is Deep Lake's: ") + ".*" + re.escape(hint)):
        getattr(ds, name)
    assert not hasattr(ds, name)
    ds.create_tensor(name, htype="text")  # a tensor of that name is reached as any other
    assert getattr(ds, name) is ds[name]
    with pytest.raises(AttributeError, match="dataset has no tensor or group 'nope'$"):
        ds.nope  # noqa: B018


def test_read_only_is_not_switched_by_assignment(tmp_path):
    """``ro.read_only = False`` was accepted: an append then succeeded in memory, and the
    commit failed on the read-only storage (no writer lock was ever taken)."""
    path = tmp_path / "ds"
    with lakefs.empty(path) as ds:
        ds.create_tensor("t", htype="text")
        ds.t.append("a")
        ds.read_only = False  # (no change: nothing to refuse)
        with pytest.raises(lakefs.errors.UnsupportedError,
                           match=re.escape(f"open for writing and cannot become read-only: close() it (which "
                                           f"commits) and open it with lakefs.load('{path}', read_only=True)")):
            ds.read_only = True
        assert not ds.read_only
        ds.t.append("b")
    with lakefs.load(path, read_only=True) as ro:
        ro.read_only = True
        with pytest.raises(lakefs.errors.ReadOnlyError,
                           match=re.escape(f"{path} is open read-only and cannot become writable: open it again "
                                           f"with lakefs.load('{path}'), which takes the writer lock")):
            ro.read_only = False
        assert ro.read_only
        with pytest.raises(lakefs.errors.ReadOnlyError):
            ro.t.append("c")
        assert ro.t.text() == ["a", "b"]
    with lakefs.load(path) as ds:  # (the writer lock is free: the writable one took and released it)
        assert ds.t.text() == ["a", "b"]


@pytest.mark.parametrize("htype", ["image", "class_label", "text", "generic", "bytes"])
def test_none_says_how_a_cell_is_left_empty(ds, htype):
    """``images.append(None)`` said "unsupported value of dtype object (NoneType)"."""
    ds.create_tensor("x", htype=htype, **({"sample_compression": "png"} if htype == "image" else {}))
    ds.create_tensor("meta", htype="json")
    a = "an" if htype == "image" else "a"
    empty = re.escape(f"None is not a sample of {a} {htype} tensor: a row's cell is left empty by leaving the "
                      "tensor out of ds.append({...}) (or appending to the other tensors only), and emptied by "
                      "tensor.pop(row)")
    with pytest.raises(lakefs.errors.InvalidSampleError, match=empty):
        ds.x.append(None)
    with pytest.raises(lakefs.errors.InvalidSampleError, match=empty):
        ds.append({"meta": {}, "x": None})
    assert len(ds) == 0
    ds.append({"meta": None})  # (JSON's null is a value)
    assert len(ds) == 1 and ds.meta[0].dict() is None and ds[0]["x"].is_empty


@pytest.mark.parametrize("htype", ["image", "generic", "bbox", "binary_mask"])
def test_a_path_given_for_a_file_says_to_read_it(ds, tmp_path, htype):
    """A path appended to an image tensor said "unsupported value of dtype <U22 (str)"."""
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(photo)
    ds.create_tensor("x", htype=htype, **({"sample_compression": "png"} if htype == "image" else {}))
    a = "an" if htype == "image" else "a"
    read = re.escape(f"a str is not a sample of {a} {htype} tensor: to store the file at '{photo}', give "
                     f"lakefs.read('{photo}') (a text tensor holds strings)")
    for write in (ds.x.append, lambda v: ds.append({"x": v}), lambda v: ds.x.extend([v])):
        with pytest.raises(lakefs.errors.InvalidSampleError, match=read):
            write(str(photo))
    assert len(ds) == 0
    if htype == "image":
        ds.x.append(lakefs.read(str(photo)))
        assert ds.x[0].tobytes() == photo.read_bytes()


def test_chunk_size_takes_bytes_or_a_size_and_names_itself_otherwise(ds):
    """``chunk_size="8MB"`` was a bare "invalid literal for int() with base 10: '8MB'"."""
    assert ds.create_tensor("a", chunk_size="8MB").meta.chunk_size == 8 << 20  # (as the config file takes it)
    assert ds.create_tensor("b", chunk_size="512 KiB").meta.chunk_size == 512 << 10
    assert ds.create_tensor("c", chunk_size=1 << 20).meta.chunk_size == 1 << 20
    for bad in ("8 megs", "", 8.5, True, [1]):
        with pytest.raises(lakefs.errors.InvalidSampleError, match=re.escape(
                f"chunk_size must be a number of bytes (8388608) or a size such as '8MB' or '512 KiB', not {bad!r}")):
            ds.create_tensor("d", chunk_size=bad)
    with pytest.raises(lakefs.errors.InvalidSampleError, match="chunk_size 1024 is too small"):
        ds.create_tensor("d", chunk_size="1KB")
    assert sorted(ds.tensors) == ["a", "b", "c"]


def test_read_refuses_a_url_and_takes_a_file_url(tmp_path):
    """``lakefs.read("http://example.com/a.jpg")`` said FileNotFoundError 'http:/example.com/a.jpg'."""
    for url in ("http://example.com/a.jpg", "https://example.com/a.jpg", "s3://bucket/a.jpg"):
        with pytest.raises(lakefs.errors.UnsupportedError, match=re.escape(
                f"lakefs.read reads local files, not URLs ({url!r}): download the file and read it from disk, "
                "or append its bytes (tensor.append(data))")):
            lakefs.read(url)
    (tmp_path / "a.txt").write_bytes(b"a")
    f = lakefs.read(f"file://{tmp_path}/a.txt")
    assert (f.data, f.name) == (b"a", "a.txt")


def test_read_decodes_a_file_url_as_path_as_uri_makes_it(tmp_path):
    """Found by QA: ``Path("my cat.jpg").as_uri()`` ("my%20cat.jpg") was not decoded (a
    file named ``my%20cat.jpg`` would have been read instead), nor a localhost host."""
    (tmp_path / "my cat é.txt").write_bytes(b"spaced")
    (tmp_path / "my%20cat%20%C3%A9.txt").write_bytes(b"the literal name")
    uri = (tmp_path / "my cat é.txt").as_uri()
    assert "%20" in uri and lakefs.read(uri).data == b"spaced"
    assert lakefs.read(uri.replace("file://", "file://localhost", 1)).name == "my cat é.txt"
    with pytest.raises(lakefs.errors.UnsupportedError, match="names the host 'example.com'"):
        lakefs.read(f"file://example.com{tmp_path}/a.txt")


def test_a_bbox_shape_is_not_checked_as_in_deep_lake(ds):
    """Deep Lake v3 documents (N, 4) boxes but checks no shape (rotated boxes are (N, 5)):
    lakefs takes what it takes, as the README says."""
    ds.create_tensor("boxes", htype="bbox", coords={"type": "pixel", "mode": "LTWH"})
    ds.boxes.extend([np.ones((2, 4)), np.zeros((0, 4)), np.ones((1, 5)), [1, 2, 3, 4]])
    assert [s.shape for s in ds.boxes] == [(2, 4), (0, 4), (1, 5), (4,)]
    assert ds.boxes.dtype == "float32"


def test_a_name_an_attribute_set_on_the_dataset_or_group_hides_is_refused(ds):
    """Only class attributes were refused: a tensor ``storage`` or ``generation`` was
    made, and ``ds.storage`` was the storage; ``ds.g.name`` of a tensor ``g/name``, "g"."""
    group = ds.create_group("g")
    for owner, prefix in ((ds, ""), (group, "g/")):
        for name in [n for n in vars(owner) if not n.startswith("_")]:
            with pytest.raises(lakefs.errors.InvalidNameError, match=re.escape(f"{name!r} is an attribute of")):
                ds.create_tensor(prefix + name)
    assert list(ds.tensors) == []


def test_pop_without_a_row_empties_the_last_filled_cell_and_takes_a_list(ds):
    """Deep Lake's ``t.pop()`` pops the last sample; ``pop([0])`` said "not list"."""
    ds.create_tensor("x", dtype="int64")
    ds.x.extend([1, 2, 3, 4])
    ds.x.pop()
    assert len(ds.x) == 3 and ds.x.num_samples == 3
    ds.x.pop([0, -1])
    assert ds.x.rows().tolist() == [1]
    with pytest.raises(TypeError, match="ints"):
        ds.x.pop([1.0])
    with pytest.raises(IndexError):
        ds.x.pop([1, 7])
    with pytest.raises(lakefs.errors.SampleNotFoundError):
        ds.x.pop([1, 0])
    assert ds.x.rows().tolist() == [1]  # (a refused list empties nothing)
    ds.x.pop()
    with pytest.raises(IndexError, match="no sample to pop"):
        ds.x.pop()


def test_delete_group_of_a_group_not_empty_says_recursive(ds):
    ds.create_tensor("p/x")
    with pytest.raises(lakefs.errors.DirectoryNotEmptyError, match=r"delete_group\('p', recursive=True\)"):
        ds.delete_group("p")
    ds.delete_group("p", recursive=True)
    assert "p" not in ds


def test_a_text_sample_given_as_a_str_keeps_a_leading_byte_order_mark(ds):
    """A str is the text itself: U+FEFF at its start is a character (stripped on read, it
    came back as 'bom'); a file's byte order mark is still skipped."""
    ds.create_tensor("t", htype="text")
    ds.t.append("\ufeffbom")
    ds.t.append("plain")
    ds.t.append(b"\xef\xbb\xbffile")
    assert ds.t.numpy(aslist=True) == ["\ufeffbom", "plain", "file"]
    assert ds.t[1].tobytes() == b"plain" and ds.t[2].tobytes() == b"\xef\xbb\xbffile"
    assert ds.t[0].file_bytes().decode("utf-8-sig") == "\ufeffbom"  # (the file view reads the same)


def test_summary_shows_str_and_any_as_the_dtype_of_text_and_json(ds, capsys):
    ds.create_tensor("t", htype="text")
    ds.create_tensor("j", htype="json")
    ds.t.append("a")
    ds.j.append({"a": 1})
    ds.summary()
    out = capsys.readouterr().out
    assert re.search(r"^ t +text +\(1, 1\) +str +None$", out, re.M), out
    assert re.search(r"^ j +json +\(1, 1\) +Any +None$", out, re.M), out
