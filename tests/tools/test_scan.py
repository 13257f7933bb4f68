"""Layout detection and planning for ``lakefs ingest`` (lakefs.tools.scan)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakefs.errors import InvalidNameError, InvalidSampleError
from lakefs.tools.scan import choose_layout, infer_settings, scan


def touch(path: Path, data: bytes = b"x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_flat_names_the_tensor_after_the_folder(tmp_path: Path) -> None:
    src = tmp_path / "cats"
    for n in ("b.jpg", "a.jpg", ".DS_Store", "noext"):
        touch(src / n)
    plan = scan(str(src))
    assert plan.layout == "flat"
    assert [f.key for f in plan.files] == ["a", "b"]
    assert plan.tensors == {"cats": {"htype": "image", "sample_compression": "jpeg"}}
    assert plan.hidden == 1
    assert plan.problems == [("noext", "no file extension, so it cannot name a sample")]


def test_paired_aligns_by_stem_in_key_order(tmp_path: Path) -> None:
    for n in ("b.jpg", "a.jpg"):
        touch(tmp_path / "images" / n)
    for n in ("a.json", "c.json"):
        touch(tmp_path / "labels" / n)
    touch(tmp_path / "README.md")
    assert choose_layout(str(tmp_path)) == "paired"
    plan = scan(str(tmp_path))
    assert [(f.tensor, f.key) for f in plan.files] == [
        ("images", "a"), ("labels", "a"), ("images", "b"), ("labels", "c")]
    assert plan.tensors["labels"] == {"htype": "json"}
    assert plan.problems[0][0] == "README.md"


def test_imagefolder_detected_when_stems_are_disjoint(tmp_path: Path) -> None:
    touch(tmp_path / "cat" / "1.jpg")
    touch(tmp_path / "dog" / "2.png")
    plan = scan(str(tmp_path))
    assert plan.layout == "imagefolder"
    assert plan.tensors["labels"] == {"htype": "class_label", "class_names": ["cat", "dog"]}
    assert [(f.key, f.label) for f in plan.files] == [("1", "cat"), ("2", "dog")]


def test_auto_stays_imagefolder_when_a_few_names_repeat_across_classes(tmp_path: Path) -> None:
    """A rerun after one name started repeating in two classes must not switch to paired
    (a tensor per class folder) and store everything again."""
    for i in range(4):
        touch(tmp_path / "cat" / f"c{i}.jpg")
        touch(tmp_path / "dog" / f"d{i}.jpg")
    touch(tmp_path / "dog" / "c0.jpg")
    assert choose_layout(str(tmp_path)) == "imagefolder"
    for i in range(1, 4):  # most stems in both folders: a row per stem, paired
        touch(tmp_path / "dog" / f"c{i}.jpg")
    assert choose_layout(str(tmp_path)) == "paired"


def test_imagefolder_prefixes_keys_when_stems_clash(tmp_path: Path) -> None:
    touch(tmp_path / "cat" / "1.jpg")
    touch(tmp_path / "dog" / "1.jpg")
    plan = scan(str(tmp_path), "imagefolder")
    assert [f.key for f in plan.files] == ["cat_1", "dog_1"]


def test_options_override_inference() -> None:
    assert infer_settings([".png", ".png", ".jpg"]) == {"htype": "image", "sample_compression": "png"}
    assert infer_settings([".bin"]) == {"htype": "bytes"}


def test_user_settings_replace_inferred_compression(tmp_path: Path) -> None:
    touch(tmp_path / "a.png")
    plan = scan(str(tmp_path), tensor="imgs", settings={"sample_compression": "jpeg"})
    assert plan.tensors == {"imgs": {"htype": "image", "sample_compression": "jpeg"}}


def test_bad_layout_and_paired_options_are_refused(tmp_path: Path) -> None:
    touch(tmp_path / "images" / "a.jpg")
    with pytest.raises(InvalidSampleError, match="unknown layout"):
        scan(str(tmp_path), "zip")
    with pytest.raises(InvalidSampleError, match="lakefs tensor create"):
        scan(str(tmp_path), "paired", settings={"htype": "image"})
    with pytest.raises(FileNotFoundError):
        scan(str(tmp_path / "missing"))


def test_an_empty_folder_makes_no_tensor_unless_given_an_htype(tmp_path: Path) -> None:
    """An empty folder made a ``bytes`` tensor (nothing to infer from): every photo ingested
    into it later went in as bytes, not images. As ``mkdir`` in the mount, a tensor waits
    for its first file."""
    (tmp_path / "src" / "cat").mkdir(parents=True)
    (tmp_path / "src" / "images").mkdir()
    (tmp_path / "src" / "images" / "README").write_text("no extension: not a sample")
    src = str(tmp_path / "src" / "cat")
    assert scan(src, "flat", "images").tensors == {}
    assert scan(str(tmp_path / "src"), "imagefolder").tensors == {}
    assert scan(str(tmp_path / "src"), "paired").tensors == {}
    assert scan(src, "flat", "images", {"htype": "image"}).tensors == {"images": {"htype": "image"}}


@pytest.mark.parametrize("layout", ["paired", "imagefolder"])
def test_a_folder_that_cannot_be_listed_is_reported_not_fatal(tmp_path: Path, monkeypatch, layout: str) -> None:
    """A subfolder without read permission (chmod 000, not the owner's) stopped the whole
    ingest with "Permission denied"; it is a folder not read, the others go in. (The
    suite runs as root, which reads anything: the refusal is simulated.)"""
    import os

    for folder in ("cat", "dog"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / f"{folder}1.jpg").write_bytes(b"\xff\xd8")
    locked = str(tmp_path / "dog")
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    plan = scan(str(tmp_path), layout)
    assert plan.folders == [("dog/", "Permission denied")]
    assert [f.rel for f in plan.files] == ["cat/cat1.jpg"]


def test_a_link_back_to_a_folder_above_is_one_folder_not_read(tmp_path: Path) -> None:
    """``images/up -> ..`` was followed until the kernel's 40 links: 900 lines of folders
    not read for two links (and 40 levels of listing)."""
    for folder in ("images", "masks"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.jpg").write_bytes(b"\\xff\\xd8")
    (tmp_path / "images" / "up").symlink_to("..")
    (tmp_path / "masks" / "self").symlink_to(".")
    plan = scan(str(tmp_path), "paired")
    assert plan.folders == [("images/up/", "a link to a folder above it (a loop) is not read"),
                            ("masks/self/", "a link to a folder above it (a loop) is not read")]
    assert sorted(plan.tensors) == ["images", "masks"] and len(plan.files) == 2
    assert choose_layout(str(tmp_path)) == "paired"


@pytest.mark.parametrize("layout", ["flat", "imagefolder"])
def test_an_empty_tensor_name_is_refused_not_replaced(tmp_path: Path, layout: str) -> None:
    """``--tensor "$NAME"`` with NAME unset went into a tensor named after the folder."""
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "a.jpg").write_bytes(b"\xff\xd8")
    src = tmp_path / "cat" if layout == "flat" else tmp_path
    with pytest.raises(InvalidNameError, match="empty"):
        scan(str(src), layout, "")
