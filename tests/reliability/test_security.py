"""Security suite (issue 5): nothing escapes the dataset root, mounts are private, configs
are parsed safely, and no pickle exists anywhere in the format."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from mounting import mounted, unmount
from reliability_helpers import REPO, lakefs_mount

import lakefs
from lakefs.errors import InvalidKeyError, InvalidNameError, LakeFSError
from lakefs.fs.mount import mount_entry
from lakefs.storage import LocalStorage

pytestmark = pytest.mark.timeout(120)

ESCAPES = ["../x", "a/../../x", "/etc/passwd", "..", "a//b", "./a", "a/./b", "x\0y", "~root", "a\\..\\b"]


@pytest.mark.parametrize("key", ESCAPES)
def test_storage_keys_cannot_escape(tmp_path, key):
    root = tmp_path / "root"
    store = LocalStorage(root)
    with pytest.raises(InvalidKeyError):
        store.put(key, b"x")
    with pytest.raises(InvalidKeyError):
        store.get(key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"] or not (tmp_path / "x").exists()


def test_symlink_planted_in_the_dataset_is_not_followed_out(tmp_path):
    outside = tmp_path / "secret"
    outside.write_text("secret")
    store = LocalStorage(tmp_path / "root")
    store.put("files/a", b"x")
    os.symlink(outside, tmp_path / "root" / "files" / "b")
    os.symlink(tmp_path, tmp_path / "root" / "tensors")
    with pytest.raises(InvalidKeyError):
        store.get("files/b")
    with pytest.raises(InvalidKeyError):
        store.put("tensors/secret", b"overwritten")
    assert outside.read_text() == "secret"
    assert sorted(store.list()) == ["files/a"]


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "/abs/../../evil", "..", "a/.."])
def test_tensor_names_and_keys_cannot_escape(tmp_path, name):
    ds_path = tmp_path / "ds"
    with lakefs.empty(ds_path) as ds:
        ds.create_tensor("blobs", htype="bytes")
        with pytest.raises(InvalidNameError):
            ds.create_tensor(name, htype="bytes")
        with pytest.raises(InvalidNameError):
            ds.create_group(name)
        with pytest.raises(InvalidNameError):
            ds["blobs"][name] = b"x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_crafted_manifest_cannot_point_outside(tmp_path):
    """A manifest (crc and all) naming a tensor id with ``..`` is refused, not followed."""
    from lakefs.format.manifest import Manifest, parse_head

    ds_path = tmp_path / "ds"
    with lakefs.empty(ds_path) as ds:
        ds.create_tensor("blobs", htype="bytes")
        ds["blobs"]["k"] = b"x"
    store = LocalStorage(ds_path)
    _, mkey = parse_head(store.get("HEAD"), "HEAD")
    m = Manifest.from_bytes(store.get(mkey), mkey)
    m.tensors["blobs"].tid = "../../etc"
    store.put(mkey, m.to_bytes())
    with pytest.raises(LakeFSError):
        lakefs.load(ds_path, read_only=True)


@pytest.mark.timeout(120)
def test_mount_names_stay_inside_the_dataset(tmp_path, mountpoint):
    ds_path = tmp_path / "ds"
    outside_before = sorted([*(p.name for p in tmp_path.iterdir()), "ds"])
    with mounted(lakefs_mount(ds_path, mountpoint), mountpoint, expected_errors=[r"WARNING"]):
        (mountpoint / "blobs").mkdir()
        for name in ["..foo", "a\\..\\b", ".hidden", "..bin", "x\ny", "%2e%2e", "...", "ü"]:
            for d in (mountpoint, mountpoint / "blobs"):
                (d / name).write_bytes(name.encode())
                assert (d / name).read_bytes() == name.encode()
        (mountpoint / "blobs" / "sub").mkdir()  # a small tensor becomes a group: its files stay plain files
        for name in ["..foo", "a\\..\\b", ".hidden", "..bin", "x\ny", "%2e%2e", "...", "ü"]:
            assert (mountpoint / "blobs" / name).read_bytes() == name.encode()
        with pytest.raises(OSError):
            os.symlink("/etc/passwd", mountpoint / "link")
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before
    for dirpath, _, files in os.walk(ds_path):
        for f in files:
            rel = os.path.relpath(os.path.join(dirpath, f), ds_path)
            assert os.path.realpath(os.path.join(dirpath, f)).startswith(str(ds_path.resolve()) + os.sep)
            if not rel.startswith("locks/"):
                LocalStorage(ds_path).size(rel)  # every stored name is a valid key


def _as_nobody(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.timeout(120)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
def test_mount_is_private_unless_allow_other(tmp_path):
    ds_path = tmp_path / "ds"
    # pytest's tmp dirs are 0700: the mountpoint must be reachable by others for the
    # check to mean anything, so it lives in a world-traversable temp dir.
    base = Path(tempfile.mkdtemp(prefix="lakefs-private-"))
    try:
        base.chmod(0o755)
        mnt = base / "mnt"
        mnt.mkdir()
        mnt.chmod(0o755)
        assert _as_nobody("ls", str(mnt)).returncode == 0  # reachable before mounting
        with mounted(lakefs_mount(ds_path, mnt), mnt):
            (mnt / "README").write_text("hi\n")
            denied = _as_nobody("ls", str(mnt))
            assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied
        with mounted(lakefs_mount(ds_path, mnt, "-o", "allow_other"), mnt):
            allowed = _as_nobody("cat", str(mnt / "README"))
            assert allowed.returncode == 0 and allowed.stdout == "hi\n", allowed
    finally:
        unmount(base / "mnt")
        shutil.rmtree(base, ignore_errors=True)



def _as_nobody_sh(script: str) -> subprocess.CompletedProcess[str]:
    return _as_nobody("sh", "-c", script)


@pytest.mark.timeout(120)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to another user")
@pytest.mark.parametrize("how", ["option", "config"])
def test_allow_other_enforces_the_modes_it_shows(tmp_path, how):
    """With allow_other, files show as the mounting user's with modes 644/755, but the
    kernel did not check them: any local user could delete or overwrite a root-owned
    dataset (found by QA). allow_other now implies default_permissions."""
    ds_path = tmp_path / "ds"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("fuse: {allow_other: true}\n")
    how_args = ["-o", "allow_other"] if how == "option" else ["--config", str(cfg)]
    base = Path(tempfile.mkdtemp(prefix="lakefs-perms-"))  # world-traversable, as above
    umask = os.umask(0o022)  # (nobody's shell inherits it)
    os.umask(umask)
    try:
        base.chmod(0o755)
        mnt = base / "mnt"
        mnt.mkdir()
        mnt.chmod(0o755)
        with mounted(lakefs_mount(ds_path, mnt, *how_args), mnt):
            (mnt / "README").write_text("hi\n")
            (mnt / "docs").mkdir()
            (mnt / "docs" / "a.txt").write_text("a\n")
            (mnt / "shared").mkdir()
            (mnt / "shared" / "s.txt").write_text("s\n")
            assert _as_nobody("cat", str(mnt / "docs" / "a.txt")).stdout == "a\n"
            refused = {
                "rm": _as_nobody("rm", "-f", str(mnt / "docs" / "a.txt")),
                "rm top": _as_nobody("rm", "-f", str(mnt / "README")),
                "overwrite": _as_nobody_sh(f"echo evil > {mnt}/docs/a.txt"),
                "append": _as_nobody_sh(f"echo evil >> {mnt}/README"),
                "create": _as_nobody_sh(f"echo new > {mnt}/docs/new.txt"),
                "mkdir": _as_nobody("mkdir", str(mnt / "evil")),
                "rename": _as_nobody("mv", str(mnt / "docs" / "a.txt"), str(mnt / "docs" / "b.txt")),
                "rmdir": _as_nobody("rm", "-rf", str(mnt / "shared")),
                "chmod": _as_nobody("chmod", "666", str(mnt / "README")),
            }
            for what, r in refused.items():
                refusal = "Operation not permitted" if what == "chmod" else "Permission denied"
                assert r.returncode != 0 and refusal in r.stderr, (what, r)
            # The modes shown are the modes checked: a directory made 777 by its owner
            # takes new files from anyone (they show as the mounting user's, as all do).
            (mnt / "shared").chmod(0o777)
            made = _as_nobody_sh(f"echo from nobody > {mnt}/shared/n.txt")
            assert made.returncode == 0, made
            assert (mnt / "shared" / "n.txt").read_text() == "from nobody\n"
            made = (mnt / "shared" / "n.txt").stat()  # the mounting user's, by the creator's umask
            assert (made.st_uid, made.st_mode & 0o777) == (os.getuid(), 0o666 & ~umask)
            if umask & 0o002:
                again = _as_nobody_sh(f"echo more >> {mnt}/shared/n.txt")
                assert again.returncode != 0 and "Permission denied" in again.stderr, again
            assert {"allow_other", "default_permissions"} <= set(mount_entry(mnt).options)
            assert (mnt / "docs" / "a.txt").read_text() == "a\n"
            assert (mnt / "README").read_text() == "hi\n"
            assert sorted(os.listdir(mnt)) == ["README", "docs", "shared"]
            assert sorted(os.listdir(mnt / "docs")) == ["a.txt"]
        with lakefs.load(ds_path, read_only=True) as ds:  # and so it was stored
            assert ds.read_file("README") == b"hi\n"
    finally:
        unmount(base / "mnt")
        shutil.rmtree(base, ignore_errors=True)


def test_yaml_tags_are_refused(tmp_path):
    from lakefs.config import load_config
    from lakefs.errors import ConfigError

    cfg = tmp_path / "c.yaml"
    for text in ["!!python/object/apply:os.system ['touch %s']" % (tmp_path / "pwned"),
                 "chunk_size: !!python/object:builtins.object {}\n"]:
        cfg.write_text(text)
        with pytest.raises(ConfigError):
            load_config(cfg)
    assert not (tmp_path / "pwned").exists()


def _sources() -> list[Path]:
    return sorted((REPO / "lakefs").rglob("*.py"))


def test_no_pickle_anywhere_in_lakefs():
    """No module imports pickle (or its kin); every numpy load refuses pickles; YAML is
    only ever parsed with safe_load."""
    banned = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}
    problems = []
    for path in _sources():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [f"{path}: import {a.name}" for a in node.names if a.name.split(".")[0] in banned]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in banned:
                problems.append(f"{path}: from {node.module} import")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                owner = ast.unparse(node.func.value)
                kw = {k.arg: ast.unparse(k.value) for k in node.keywords}
                if name == "load" and owner in ("np", "numpy") and kw.get("allow_pickle") != "False":
                    problems.append(f"{path}:{node.lineno}: np.load without allow_pickle=False")
                if owner == "yaml" and name in ("load", "unsafe_load", "full_load", "load_all"):
                    problems.append(f"{path}:{node.lineno}: yaml.{name} (use safe_load)")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
                problems.append(f"{path}:{node.lineno}: {node.func.id}()")
    assert not problems, "\n".join(problems)
