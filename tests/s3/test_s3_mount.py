"""Mounting datasets that live on S3 (a real moto server), with the chunk cache (issue 6)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mounting import mounted
from s3server import BUCKET, CREDENTIALS, boto_client
from s3util import fill, lakefs_mount, md5, options

import lakefs

pytestmark = pytest.mark.timeout(90)


def read_all(mnt: Path) -> dict[str, str]:
    return {p.name: md5(p.read_bytes()) for p in sorted((mnt / "images").iterdir())}


def test_mount_with_config_reads_every_sample_and_epochs_hit_the_cache(
        photos, s3_endpoint, s3_url, s3_config, tmp_path, mountpoint):
    want = fill(s3_url, s3_endpoint, photos)
    argv = lakefs_mount(s3_url, mountpoint, "-o", "ro", "--config", str(s3_config))
    with mounted(argv, mountpoint) as m:
        assert read_all(mountpoint) == want
        assert "chunk cache of" in m.log()
    cached = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert cached and sum(p.stat().st_size for p in cached) >= sum(p.stat().st_size for p in photos)

    # Take the chunks away from the store: a second epoch must read them from the cache.
    prefix = s3_url.removeprefix(f"s3://{BUCKET}/") + "/"
    client = boto_client(s3_endpoint)
    chunks = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)["Contents"]
              if "/chunks/" in o["Key"]]
    assert chunks
    for key in chunks:
        client.delete_object(Bucket=BUCKET, Key=key)
    with mounted(argv, mountpoint):
        assert read_all(mountpoint) == want


def test_cli_ingest_and_mount_with_aws_environment_variables(photos, s3_endpoint, s3_url,
                                                             tmp_path, mountpoint):
    """No config at all: endpoint, credentials and region from AWS_* variables; the cache
    defaults to $XDG_CACHE_HOME/lakefs/<hash>."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": CREDENTIALS["key"],
           "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret"], "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": s3_endpoint, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    src = tmp_path / "src" / "images"
    src.mkdir(parents=True)
    for p in photos:
        shutil.copy(p, src / p.name)
    done = subprocess.run([sys.executable, "-m", "lakefs", "ingest", str(src), s3_url, "-j", "0"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"ingested {len(photos)} of {len(photos)} files" in done.stdout
    with mounted(lakefs_mount(s3_url, mountpoint, "-o", "ro"), mountpoint, env=env):
        assert read_all(mountpoint) == {p.name: md5(p.read_bytes()) for p in photos}
    caches = list((tmp_path / "xdg" / "lakefs").iterdir())
    assert len(caches) == 1 and any(p.is_file() for p in caches[0].rglob("*"))


def test_writable_mount_commits_to_the_store(photos, s3_endpoint, s3_url, s3_config, mountpoint):
    with mounted(lakefs_mount(s3_url, mountpoint, "--config", str(s3_config)), mountpoint):
        (mountpoint / "images").mkdir()
        for p in photos:
            shutil.copyfile(p, mountpoint / "images" / p.name)
        os.sync()
        assert sorted(os.listdir(mountpoint / "images")) == sorted(p.name for p in photos)
    ds = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint))
    assert {s.filename: md5(s.tobytes()) for s in ds.images} == {
        p.name: md5(p.read_bytes()) for p in photos}


def test_rsync_into_a_writable_mount_stores_each_file_once(photos, s3_endpoint, s3_url, tmp_path,
                                                          mountpoint):
    """rsync writes .name.XXXXXX, closes it and renames it: the closed temp file waits in
    memory, so each photo goes into a chunk and no staged object is ever uploaded."""
    import yaml

    config = tmp_path / "lakefs.yaml"  # no periodic commit during the test: nothing stored early
    config.write_text(yaml.safe_dump({"storage": {"options": options(s3_endpoint), "cache_dir": str(tmp_path / "c")},
                                      "commit_interval": 600}))
    src = tmp_path / "src"
    src.mkdir()
    for p in photos:
        shutil.copy2(p, src / p.name)
    (src / "README").write_text("a plain file, kept as one")
    prefix = s3_url.removeprefix(f"s3://{BUCKET}/") + "/"
    client = boto_client(s3_endpoint)

    def staged_objects() -> list[str]:
        listed = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "files/")
        return [o["Key"] for o in listed.get("Contents", [])]

    with mounted(lakefs_mount(s3_url, mountpoint, "--config", str(config)), mountpoint):
        (mountpoint / "images").mkdir()
        shutil.copyfile(photos[0], mountpoint / "images" / photos[0].name)  # a jpeg tensor
        subprocess.run(["rsync", "-a", "--exclude", "README", f"{src}/", f"{mountpoint}/images/"], check=True)
        subprocess.run(["rsync", "-a", f"{src}/README", f"{mountpoint}/"], check=True)
        assert staged_objects() == []  # the README too waits for the next commit
        assert (mountpoint / "README").read_text() == "a plain file, kept as one"
        again = subprocess.run(["rsync", "-a", "--stats", "--exclude", "README", f"{src}/",
                                f"{mountpoint}/images/"], check=True, capture_output=True, text=True)
        assert "Number of regular files transferred: 0" in again.stdout
    ds = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint))
    assert {s.filename: md5(s.tobytes()) for s in ds.images} == {p.name: md5(p.read_bytes()) for p in photos}
    assert ds.read_file("README") == b"a plain file, kept as one"
    assert len(staged_objects()) == 1  # the README, stored by the commit at unmount


def test_api_cache_dir_keeps_chunks_locally(photos, s3_endpoint, s3_url, tmp_path):
    want = fill(s3_url, s3_endpoint, photos)
    ds = lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint),
                     cache_dir=tmp_path / "cache")
    first = {s.filename: md5(s.tobytes()) for s in ds.images}
    assert first == want
    cache = ds.storage
    assert cache.misses >= 1 and cache.hits >= len(photos) - cache.misses
    before = cache.misses
    assert {s.filename: md5(s.tobytes()) for s in ds.images} == want
    assert cache.misses == before  # the second epoch is all local


def test_background_mount_and_lakefs_umount_wait_for_the_final_commit(
        photos, s3_endpoint, s3_url, s3_config, tmp_path, mountpoint):
    cli = [sys.executable, "-m", "lakefs"]
    subprocess.run([*cli, "mount", s3_url, str(mountpoint), "--config", str(s3_config),
                    "-o", "commit_interval=600", "--log-file", str(tmp_path / "mount.log")],
                   check=True, timeout=60)
    try:
        (mountpoint / "images").mkdir()
        (mountpoint / "images" / photos[0].name).write_bytes(photos[0].read_bytes())
    finally:
        done = subprocess.run([*cli, "umount", str(mountpoint)], capture_output=True, text=True,
                              timeout=150)
    assert done.returncode == 0, done.stderr
    # The mount process has committed and given the lease back: a writer gets it at once.
    with lakefs.load(s3_url, storage_options=options(s3_endpoint)) as ds:
        assert ds.images[0].tobytes() == photos[0].read_bytes()


def test_a_dataset_url_with_a_comma_mounts(photos, s3_endpoint, s3_url, s3_config, mountpoint):
    """Found by review: the dataset's URL goes into libfuse's option string (fsname), which
    splits at commas: `lakefs mount s3://bucket/a,b ./mnt` failed with "could not mount
    ...: 3" (libfuse: "unknown option(s): `-o b'"). A backslash is libfuse's escape too."""
    url = s3_url + ",v2\\x"
    want = fill(url, s3_endpoint, photos[:2])
    with mounted(lakefs_mount(url, mountpoint, "--config", str(s3_config)), mountpoint):
        assert read_all(mountpoint) == want
        (mountpoint / "README").write_text("beside the photos")
        source = "lakefs:" + url.replace("\\", "\\134")  # (as proc(5) writes a backslash)
        with open("/proc/self/mounts") as table:
            assert f"{source} {mountpoint} " in table.read()
    ds = lakefs.load(url, read_only=True, storage_options=options(s3_endpoint))
    assert ds.read_file("README") == b"beside the photos"
