"""Everyday tools on a real mount: archive extraction, shutil, mmap, in-place edits."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mounting import eventually, mounted
from PIL import Image

import lakefs

pytestmark = pytest.mark.timeout(60)


def lakefs_mount(ds: Path, mnt: Path, *opts: str) -> list[str]:
    return [sys.executable, "-m", "lakefs", "mount", str(ds), str(mnt), *opts]


def test_copy2_of_a_png_into_a_jpeg_tensor_keeps_its_time_and_mode(photos, dataset_path, mountpoint, tmp_path):
    """Found by review: ``shutil.copy2``/``copytree`` (and unzip) set times and modes by
    name after the close; the close stored the PNG as ``<key>.jpg`` and the name it was
    written under said ENOENT, so copytree of a folder holding a PNG stopped there."""
    src = tmp_path / "photos"
    src.mkdir()
    shutil.copy(photos[0], src / "a.jpg")
    Image.open(photos[1]).save(src / "b.png")
    for i, p in enumerate(sorted(src.iterdir())):
        os.chmod(p, 0o640)
        os.utime(p, ns=(1_500_000_000_000_000_000 + i, 1_500_000_000_000_000_000 + i))
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        shutil.copytree(src, mountpoint / "images")
        assert sorted(os.listdir(mountpoint / "images")) == ["a.jpg", "b.jpg"]
        st = os.stat(mountpoint / "images" / "b.jpg")
        assert st.st_mtime_ns == (src / "b.png").stat().st_mtime_ns
        assert st.st_mode & 0o777 == 0o640
        shutil.copy2(src / "b.png", mountpoint / "images" / "c.png")
        st = os.stat(mountpoint / "images" / "c.jpg")
        assert (st.st_mtime_ns, st.st_mode & 0o777) == ((src / "b.png").stat().st_mtime_ns, 0o640)
        with pytest.raises(FileNotFoundError):  # it only takes times, modes and writes
            open(mountpoint / "images" / "c.png", "rb")
        # Written again under that name (the kernel opens it, it does not create it).
        (mountpoint / "images" / "c.png").write_bytes((src / "b.png").read_bytes())
        assert sorted(os.listdir(mountpoint / "images")) == ["a.jpg", "b.jpg", "c.jpg"]


def test_a_refused_new_file_can_be_written_again_at_once(dataset_path, mountpoint):
    """Found by review: a new file refused at close (invalid JSON, an array of another
    dtype) left the kernel a name it was told exists; writing it again with
    ``open(p, "wb")`` (``np.save``) got ENOENT for the whole entry_timeout (60 s)."""
    np = pytest.importorskip("numpy")
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        labels, arrays = mountpoint / "labels", mountpoint / "arrays"
        labels.mkdir()
        arrays.mkdir()
        (labels / "a.json").write_bytes(b'{"a": 1}')
        np.save(arrays / "a.npy", np.arange(3))
        with pytest.raises(OSError) as refused:
            (labels / "b.json").write_bytes(b"{not json")
        assert refused.value.errno == 22
        with pytest.raises(OSError):
            np.save(arrays / "b.npy", np.zeros(3, np.float32))  # the tensor holds int64
        # (the refused new files' names: dropped from the kernel's cache just after)
        eventually(lambda: not (labels / "b.json").exists() and not (arrays / "b.npy").exists())
        (labels / "b.json").write_bytes(b'{"b": 2}')
        np.save(arrays / "b.npy", np.arange(4))
        with pytest.raises(OSError):
            (labels / "c.json").write_bytes(b"{not json")
        with open(labels / "c.json", "ab") as f:  # appending to it, too
            f.write(b'{"c": 3}')
        assert (labels / "b.json").read_bytes() == b'{"b": 2}'
        assert (labels / "c.json").read_bytes() == b'{"c": 3}'
        assert np.load(arrays / "b.npy").tolist() == [0, 1, 2, 3]
        assert sorted(os.listdir(labels)) == ["a.json", "b.json", "c.json"]


def test_an_open_of_a_file_replaced_meanwhile_reads_what_it_found(photos, dataset_path, mountpoint):
    """Found by review: readers of a file a writer replaces atomically (a temp file
    renamed over it) got ENOENT for ~15% of their opens. An open that found the old file
    reaches the mount after libfuse renamed it away to ``.fuse_hidden*`` (when another
    handle still has it open), and that name did not open. /proc/self/fd reopens the
    old file at will."""
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        images = mountpoint / "images"
        images.mkdir()
        shutil.copy(photos[0], images / "z.jpg")
        fd = os.open(images / "z.jpg", os.O_RDONLY)
        try:
            shutil.copy(photos[1], images / ".z.jpg.tmp")
            os.replace(images / ".z.jpg.tmp", images / "z.jpg")
            with open(f"/proc/self/fd/{fd}", "rb") as old:  # a second open of the old file
                assert old.read() == photos[0].read_bytes()
            assert os.read(fd, 1 << 20) == photos[0].read_bytes()[: 1 << 20]
        finally:
            os.close(fd)
        assert (images / "z.jpg").read_bytes() == photos[1].read_bytes()
        assert os.listdir(images) == ["z.jpg"]


def test_tar_round_trips_a_dataset_layout(photos, dataset_path, mountpoint, tmp_path):
    """``tar -xf`` into a mount (a tensor of JPEGs, labels, a group, a hidden .git, a
    README) keeps bytes, modes and nanosecond mtimes (utimensat with UTIME_OMIT); a
    symlink and a hard link are refused (EPERM) and everything else is extracted.
    ``tar -cf`` of the mount gives the same files back."""
    src = tmp_path / "src"
    for d in ("images", "labels", "train/images", ".git/objects"):
        (src / d).mkdir(parents=True)
    files = {"README.md": b"# cats\n", ".git/HEAD": b"ref: refs/heads/main\n", ".git/objects/ab": b"blob"}
    for i, p in enumerate(photos[:3]):
        files[f"images/c{i}.jpg"] = files[f"train/images/c{i}.jpg"] = p.read_bytes()
        files[f"labels/c{i}.json"] = b'{"label": %d}' % i
    for i, (name, data) in enumerate(sorted(files.items())):
        (src / name).write_bytes(data)
        os.chmod(src / name, 0o600 if name.endswith(".jpg") else 0o644)
        os.utime(src / name, ns=(1_600_000_000_123_456_789 + i, 1_600_000_000_123_456_789 + i))
    os.symlink("README.md", src / "link")
    os.link(src / "README.md", src / "hard")
    archive = tmp_path / "a.tar"
    subprocess.run(["tar", "--format=posix", "-cf", str(archive), "-C", str(src), "."], check=True)
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        done = subprocess.run(["tar", "-xf", str(archive), "-C", str(mountpoint)], capture_output=True, text=True)
        assert done.returncode == 2 and done.stderr.count("Operation not permitted") == 2, done.stderr
        for name, data in files.items():
            st, want = os.stat(mountpoint / name), os.stat(src / name)
            assert (mountpoint / name).read_bytes() == data, name
            assert (st.st_mtime_ns, st.st_mode) == (want.st_mtime_ns, want.st_mode), name
        back = tmp_path / "back.tar"
        subprocess.run(["tar", "--format=posix", "-cf", str(back), "-C", str(mountpoint), "."], check=True)
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["tar", "-xf", str(back), "-C", str(out)], check=True)
    for name, data in files.items():
        assert (out / name).read_bytes() == data
        assert os.stat(out / name).st_mtime_ns == os.stat(src / name).st_mtime_ns


def test_mmap_reads_and_shared_writes(photos, dataset_path, mountpoint):
    """mmap through the mount: numpy's mmap_mode and Pillow read samples; a shared
    writable mapping writes the file as write(2) does (stored at msync or close, a
    refusal reported there), also one that outlives the file object it was made from."""
    import mmap

    np = pytest.importorskip("numpy")
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        (mountpoint / "images").mkdir()
        (mountpoint / "arrays").mkdir()
        (mountpoint / "blobs").mkdir()
        shutil.copy(photos[0], mountpoint / "images" / "a.jpg")
        np.save(mountpoint / "arrays" / "a.npy", np.arange(12).reshape(3, 4))
        (mountpoint / "blobs" / "b.bin").write_bytes(bytes(range(256)) * 64)
        assert np.load(mountpoint / "arrays" / "a.npy", mmap_mode="r")[2].tolist() == [8, 9, 10, 11]
        with open(mountpoint / "images" / "a.jpg", "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            assert m[:] == photos[0].read_bytes()
            assert Image.open(m).size == Image.open(photos[0]).size
        m = np.memmap(mountpoint / "blobs" / "b.bin", dtype=np.uint8, mode="r+")
        m[:4] = [9, 9, 9, 9]
        m.flush()
        del m
        with open(mountpoint / "blobs" / "b.bin", "r+b") as f:
            late = mmap.mmap(f.fileno(), 0)
        late[-2:] = b"!!"  # (Python's mmap closes its own dup of the descriptor at munmap)
        late.close()
        with open(mountpoint / "images" / "a.jpg", "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
            m[:2] = b"XX"  # no longer a JPEG
            with pytest.raises(OSError) as refused:
                m.flush()
            assert refused.value.errno == 22
            m[:2] = photos[0].read_bytes()[:2]  # put back: the close stores it unchanged
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        data = (mountpoint / "blobs" / "b.bin").read_bytes()
        assert data[:4] == b"\t\t\t\t" and data[4:-2] == (bytes(range(256)) * 64)[4:-2] and data[-2:] == b"!!"
        assert (mountpoint / "images" / "a.jpg").read_bytes() == photos[0].read_bytes()


def test_a_file_written_through_a_copy_of_its_descriptor_logs_no_refusal(photos, dataset_path, mountpoint):
    """Found by review: ``cat x > f``, ``dd of=f`` and ``echo ... > f.json`` close an
    empty copy of the descriptor before writing; that close is refused as a ``touch`` of
    an empty JPEG is, and each such copy, stored whole at its last close, left a log line
    saying it was refused ("it is empty"). The line is written when the last close still
    finds the file refused: one line for the touch, none for the copies."""
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint) as m:
        images, labels = mountpoint / "images", mountpoint / "labels"
        images.mkdir()
        labels.mkdir()
        subprocess.run(["sh", "-c", f"cat '{photos[0]}' > '{images}/a.jpg'"], check=True)
        subprocess.run(["dd", f"if={photos[1]}", f"of={images}/b.jpg", "status=none"], check=True)
        subprocess.run(["sh", "-c", f"echo '{{\"label\": 1}}' > '{labels}/a.json'"], check=True)
        assert subprocess.run(["touch", str(images / "t.jpg")], capture_output=True).returncode != 0
        assert sorted(os.listdir(images)) == ["a.jpg", "b.jpg"]  # (after the touch's release)
        assert (images / "a.jpg").read_bytes() == photos[0].read_bytes()
        assert (images / "b.jpg").read_bytes() == photos[1].read_bytes()
        assert (labels / "a.json").read_text() == '{"label": 1}\n'
        complaints = [line for line in m.log().splitlines() if "WARNING" in line or "ERROR" in line]
        assert len(complaints) == 1 and "/images/t.jpg" in complaints[0], m.log()


def test_a_name_too_long_for_its_stored_extension_is_refused_with_one_log_line(photos, dataset_path, mountpoint):
    """Found by review: a JPEG named with 255 bytes copied into a webp tensor would show
    as ``.webp``, 256 bytes: refused (ENAMETOOLONG) at the close, then transcoded and
    refused again at the release with a second line, an ERROR "not stored"."""
    ds = lakefs.empty(dataset_path)
    ds.create_tensor("thumbs", htype="image", sample_compression="webp")
    ds.close()
    name = "a" * 251 + ".jpg"
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint) as m:
        thumbs = mountpoint / "thumbs"
        done = subprocess.run(["cp", str(photos[0]), str(thumbs / name)], capture_output=True, text=True)
        assert done.returncode != 0 and "File name too long" in done.stderr
        shutil.copy(photos[1], thumbs / "b.jpg")  # (after the refused file's release)
        assert os.listdir(thumbs) == ["b.webp"]
        lines = [line for line in m.log().splitlines() if "a" * 40 in line]
        assert len(lines) == 1 and "longer than 255 bytes" in lines[0], m.log()


def test_rsync_inplace_deltas_delete_and_a_16_bit_png_round_trip(photos, dataset_path, mountpoint, tmp_path):
    """rsync's delta transfer writes into samples in place (--inplace --no-whole-file),
    --delete removes what the source lost, and a checksum pass then sends nothing; a
    16-bit PNG in a uint16 png tensor is stored as it is (DESIGN §3: exact), also after
    a remount."""
    np = pytest.importorskip("numpy")
    ds = lakefs.empty(dataset_path)
    ds.create_tensor("depth", htype="image", dtype="uint16", sample_compression="png")
    ds.close()
    depth = tmp_path / "d.png"
    Image.fromarray((np.arange(48 * 64, dtype=np.uint32).reshape(48, 64) * 21 % 65536).astype(np.uint16)).save(depth)
    src = tmp_path / "src" / "images"
    src.mkdir(parents=True)
    for p in photos[:4]:
        shutil.copy2(p, src / p.name)
    rsync = ["rsync", "-a", "--inplace", "--no-whole-file", "--delete", "--stats", f"{src}/", f"{mountpoint}/images/"]
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        shutil.copy(depth, mountpoint / "depth" / "d.png")
        (mountpoint / "images").mkdir()
        subprocess.run(rsync, check=True, capture_output=True)
        edited = bytearray(photos[0].read_bytes())
        edited[30000:30010] = b"0123456789"  # (the scan data: still a JPEG)
        (src / photos[0].name).write_bytes(edited)
        (src / photos[3].name).unlink()
        stats = subprocess.run(rsync, check=True, capture_output=True, text=True).stdout
        assert "Matched data: 0 bytes" not in stats and "Number of deleted files: 1" in stats, stats
        again = subprocess.run([*rsync[:-2], "-c", *rsync[-2:]], check=True, capture_output=True, text=True).stdout
        assert "Number of regular files transferred: 0" in again, again
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        assert sorted(os.listdir(mountpoint / "images")) == sorted(p.name for p in src.iterdir())
        for p in src.iterdir():
            assert (mountpoint / "images" / p.name).read_bytes() == p.read_bytes()
        assert (mountpoint / "depth" / "d.png").read_bytes() == depth.read_bytes()


def test_archives_holding_files_before_folders_extract(photos, dataset_path, mountpoint, tmp_path):
    """Found by QA: ``train/metadata.csv`` extracted before ``train/images/`` made
    ``train`` a tensor that refused the folder (EPERM): tar, unzip and ``git clone`` of
    a Hugging Face imagefolder or a project failed. Such a small tensor becomes a group
    of plain files, and everything extracts as on a disk, the photos into a tensor."""
    src = tmp_path / "src"
    (src / "train" / "images").mkdir(parents=True)
    files = {"train/metadata.csv": b"file_name,label\n" + b"".join(b"images/c%d.jpg,cat\n" % i for i in range(3))}
    for i, p in enumerate(photos[:3]):
        files[f"train/images/c{i}.jpg"] = p.read_bytes()
    for name, data in files.items():
        (src / name).write_bytes(data)
    archive = tmp_path / "hf.tar"  # the csv first, then the folder: as the QA's archive
    subprocess.run(["tar", "-cf", str(archive), "-C", str(src), "train/metadata.csv", "train/images"], check=True)
    assert subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True,
                          check=True).stdout.splitlines()[0] == "train/metadata.csv"
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        done = subprocess.run(["tar", "-xf", str(archive), "-C", str(mountpoint)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        for name, data in files.items():
            assert (mountpoint / name).read_bytes() == data, name
    with mounted(lakefs_mount(dataset_path, mountpoint, "-o", "ro"), mountpoint):  # as committed
        got = {str(p.relative_to(mountpoint)): p.read_bytes() for p in mountpoint.rglob("*") if p.is_file()}
        assert got == files
    ds = lakefs.load(dataset_path, read_only=True)
    assert "train" in ds.groups and ds["train/images"].num_samples == 3


def test_git_clone_into_a_mount_checks_out_clean(dataset_path, mountpoint, tmp_path):
    """Found by QA: ``git clone`` of a repository with files beside folders at its root
    failed ("cannot create directory at 'src': Device or resource busy"): the root had
    become a tensor at README.md, and git holds ``.git/index.lock`` open while it checks
    out. The clone is a group of plain files, and ``git status`` finds nothing changed."""
    src = tmp_path / "repo"
    (src / "src" / "pkg").mkdir(parents=True)
    files = {"README.md": b"# demo\n", "setup.py": b"print('setup')\n", "src/main.py": b"import pkg\n",
             "src/pkg/__init__.py": b"", "src/pkg/data.json": b'{"a": 1}\n'}
    for name, data in files.items():
        (src / name).write_bytes(data)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-c", "init.defaultBranch=main"]
    subprocess.run([*git, "init", "-q", str(src)], check=True, timeout=60)
    subprocess.run([*git, "-C", str(src), "add", "."], check=True, timeout=60)
    subprocess.run([*git, "-C", str(src), "commit", "-qm", "x"], check=True, timeout=60)
    with mounted(lakefs_mount(dataset_path, mountpoint), mountpoint):
        done = subprocess.run([*git, "clone", "-q", str(src), str(mountpoint / "clone")], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        status = subprocess.run([*git, "-C", str(mountpoint / "clone"), "status", "--porcelain"],
                                capture_output=True, text=True, timeout=60)
        assert status.returncode == 0 and status.stdout == "", status.stdout + status.stderr
        for name, data in files.items():
            assert (mountpoint / "clone" / name).read_bytes() == data, name
