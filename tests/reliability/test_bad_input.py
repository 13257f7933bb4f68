"""Bad input through every interface (issue 5): a clear error, and nothing else changes.

"Nothing else changes" is checked on the storage itself: after a refused call and a
flush, every object of the dataset is byte-identical to before (``tree_digest``).
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from mounting import mounted
from reliability_helpers import LAKEFS, env, lakefs_mount, md5, tree_digest

import lakefs
from lakefs.errors import LakeFSError

pytestmark = pytest.mark.timeout(120)

BAD_NAMES = ["", ".", "..", "../x", "a/../../b", "x\ny", "nul\0", "\x7f", "a" * 256, "é" * 128]


@pytest.fixture
def ds_path(tmp_path, photos) -> Path:
    path = tmp_path / "ds"
    with lakefs.empty(path) as ds:
        ds.create_tensor("images", htype="image", sample_compression="jpeg")
        ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
        ds.create_tensor("blobs", htype="bytes")
        ds["images"].write_file("cat 1 é.jpg", photos[0].read_bytes())  # spaces, unicode: fine
        ds["labels"].append(1)
        ds["blobs"]["k"] = b"data"
    return path


def _refused(ds_path: Path, action) -> Exception:
    before = tree_digest(ds_path)
    with lakefs.load(ds_path) as ds:
        with pytest.raises((LakeFSError, TypeError, ValueError, IndexError)) as info:
            action(ds)
        assert str(info.value), "an error without a message"
    assert tree_digest(ds_path) == before, "a refused call changed the stored dataset"
    return info.value


@pytest.mark.parametrize("name", BAD_NAMES)
def test_api_bad_names_change_nothing(ds_path, name):
    _refused(ds_path, lambda ds: ds.create_tensor(name, htype="bytes"))
    if "/" not in name:
        _refused(ds_path, lambda ds: ds["blobs"].__setitem__(name, b"x"))
        _refused(ds_path, lambda ds: ds.append({"blobs": b"x"}, key=name))


@pytest.mark.parametrize(("tensor", "value"), [
    ("images", b"not a jpeg at all"), ("images", 3.5), ("images", None), ("images", b""),
    ("labels", [[1, 2], [3]]), ("labels", object()),  # (new class names are accepted: they grow)
    ("blobs", 12), ("blobs", {"a": 1}),
])
def test_api_wrong_values_change_nothing(ds_path, tensor, value):
    _refused(ds_path, lambda ds: ds[tensor].append(value))


@pytest.mark.parametrize("bad", [123, None, 1.5, b"images", ["images"]])
def test_api_wrong_types_for_names_and_indices(ds_path, bad):
    _refused(ds_path, lambda ds: ds.create_tensor(bad))
    _refused(ds_path, lambda ds: ds["blobs"][bad] if not isinstance(bad, (list, bytes)) else ds[bad])


@pytest.mark.timeout(180)
def test_mount_bad_input(ds_path, mountpoint, tmp_path, photos):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with mounted(lakefs_mount(ds_path, mountpoint), mountpoint,
                 expected_errors=[r"not stored|WARNING|not decodable|undecodable|Invalid"]):
        images = mountpoint / "images"
        before = {p.name: md5(p) for p in images.iterdir()}
        # Content that is not an image: cp fails with EINVAL, nothing is stored.
        done = subprocess.run(["cp", str(text), str(images / "bad.jpg")], capture_output=True, text=True)
        assert done.returncode != 0 and "Invalid argument" in done.stderr, done.stderr
        assert not (images / "bad.jpg").exists()
        # An empty file in an image tensor is refused the same way.
        with pytest.raises(OSError) as info:
            with open(images / "empty.jpg", "wb"):
                pass
        assert info.value.errno == errno.EINVAL
        # Too long a name: ENAMETOOLONG from the kernel or lakefs.
        with pytest.raises(OSError) as info:
            (images / ("a" * 256 + ".jpg")).write_bytes(photos[0].read_bytes())
        assert info.value.errno == errno.ENAMETOOLONG
        # Spaces, unicode and a newline are valid file names: kept as they are.
        for name in ["with space.jpg", "ünï çødé.jpg", "new\nline.jpg"]:
            (images / name).write_bytes(photos[1].read_bytes())
            assert (images / name).read_bytes() == photos[1].read_bytes(), name
            os.unlink(images / name)
        assert {p.name: md5(p) for p in images.iterdir()} == before
        # Empty and huge (200 MB, mostly a hole) files in a bytes tensor round-trip.
        blobs = mountpoint / "blobs"
        (blobs / "empty.bin").write_bytes(b"")
        with open(blobs / "huge.bin", "wb") as f:
            f.truncate(200 << 20)
            f.seek(100 << 20)
            f.write(b"middle")
            f.seek((200 << 20) - 3)
            f.write(b"end")
        assert (blobs / "empty.bin").read_bytes() == b""
        assert os.path.getsize(blobs / "huge.bin") == 200 << 20
        with open(blobs / "huge.bin", "rb") as f:
            f.seek(100 << 20)
            assert f.read(6) == b"middle"
            f.seek((200 << 20) - 3)
            assert f.read() == b"end"
        os.unlink(blobs / "huge.bin")
    with lakefs.load(ds_path, read_only=True) as ds:
        assert ds["blobs"]["empty"].tobytes() == b""
        assert ds["blobs"].find_file("huge.bin") is None


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LAKEFS, *args], capture_output=True, text=True, timeout=60, env=env(), cwd=cwd)


def _one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert lines and "Traceback" not in done.stderr, done.stderr
    return lines[-1]


@pytest.mark.parametrize("args", [
    ["info", "{ds}/nope"], ["fsck", "{tmp}/missing"], ["tensor", "create", "{ds}", "../escape"],
    ["tensor", "create", "{ds}", "x", "--htype", "nonsense"], ["tensor", "create", "{ds}", "y", "--chunk-size", "lots"],
    ["tensor", "delete", "{ds}", "no-such-tensor"], ["mount", "{ds}", "{tmp}/no-such-dir"],
    ["mount", "{ds}", "{tmp}", "-o", "evil_option"], ["mount", "{ds}", "{tmp}", "-o", "attr_timeout=soon"],
    ["create", "{ds}"],
])
def test_cli_bad_arguments_one_clear_line_nothing_changes(ds_path, tmp_path, args):
    before = tree_digest(ds_path)
    argv = [a.format(ds=ds_path, tmp=tmp_path) for a in args]
    line = _one_clear_line(_cli(*argv))
    assert len(line) < 400
    assert tree_digest(ds_path) == before
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("config", [
    "chunk_size: lots\n", "commit_interval: -1\n", "no_such_setting: 1\n", "fuse: 5\n",
    "fuse:\n  threads: maybe\n", "tensors:\n  images: [1, 2]\n", "[unclosed\n", "- a list\n",
    "logging:\n  level: LOUD\n", "!!python/object/apply:os.system ['touch {tmp}/pwned']\n",
])
def test_bad_config_is_refused_at_start(ds_path, tmp_path, mountpoint, config):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(config.format(tmp=tmp_path))
    before = tree_digest(ds_path)
    line = _one_clear_line(_cli("mount", str(ds_path), str(mountpoint), "-f", "--config", str(cfg)))
    assert "config" in line, line
    assert tree_digest(ds_path) == before
    assert not os.path.ismount(mountpoint)
    assert not (tmp_path / "pwned").exists()
