"""Object-store failures: one clear line at mount time, EIO mid-read with the mount still up."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from mounting import mounted
from s3server import BUCKET, MotoServer, boto_client, free_port
from s3util import fill, lakefs_mount, md5, write_config

pytestmark = pytest.mark.timeout(90)


def mount_fails(url: str, mnt: Path, config: Path, *args: str) -> str:
    """Run ``lakefs mount`` (background mode, as a user would); its one stderr line."""
    done = subprocess.run(lakefs_mount(url, mnt, "--config", str(config), *args),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert not os.path.ismount(mnt)
    return lines[0]


def test_unreachable_endpoint_is_one_line(tmp_path, mountpoint):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = write_config(tmp_path / "c.yaml", endpoint, tmp_path / "cache")
    for args in ((), ("-o", "ro"), ("-f",)):
        line = mount_fails(f"s3://{BUCKET}/ds", mountpoint, config, *args)
        assert line.startswith("lakefs: error: cannot reach") and endpoint in line


def test_missing_bucket_is_one_line(s3_endpoint, tmp_path, mountpoint):
    config = write_config(tmp_path / "c.yaml", s3_endpoint, tmp_path / "cache")
    line = mount_fails("s3://no-such-bucket/ds", mountpoint, config, "-o", "ro")
    assert "bucket 'no-such-bucket' does not exist" in line


def test_bad_credentials_are_one_line(tmp_path, mountpoint):
    # moto checks signatures only when told to; a key it never issued is then refused.
    server = MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    server.start()
    try:
        config = write_config(tmp_path / "c.yaml", server.endpoint, tmp_path / "cache",
                              key="AKIAWRONG", secret="wrong")
        line = mount_fails(f"s3://{BUCKET}/ds", mountpoint, config)
        assert "access denied" in line and "check credentials" in line
    finally:
        server.stop()


def test_missing_dataset_on_a_readonly_mount_is_one_line(s3_endpoint, s3_url, tmp_path, mountpoint):
    config = write_config(tmp_path / "c.yaml", s3_endpoint, tmp_path / "cache")
    line = mount_fails(s3_url, mountpoint, config, "-o", "ro")
    assert "no lakefs dataset" in line


def test_network_failure_mid_read_is_eio_and_the_mount_stays_up(photos, tmp_path, mountpoint):
    server = MotoServer()
    server.start()
    try:
        boto_client(server.endpoint).create_bucket(Bucket=BUCKET)
        url = f"s3://{BUCKET}/ds"
        # One photo per chunk, so reading one does not prefetch the others.
        want = fill(url, server.endpoint, photos, chunk_size=32 << 10)
        config = write_config(tmp_path / "c.yaml", server.endpoint, tmp_path / "cache")
        names = sorted(want)
        with mounted(lakefs_mount(url, mountpoint, "-o", "ro", "--config", str(config)), mountpoint,
                     expected_errors=[r"WARNING"]):
            images = mountpoint / "images"
            assert md5((images / names[0]).read_bytes()) == want[names[0]]
            server.stop()  # the network goes away
            with pytest.raises(OSError) as info:
                (images / names[-1]).read_bytes()
            assert info.value.errno == errno.EIO
            # Still up: metadata is in memory, the file read before is in the cache.
            assert sorted(os.listdir(images)) == names
            assert (images / names[-1]).stat().st_size > 0
            assert md5((images / names[0]).read_bytes()) == want[names[0]]
    finally:
        server.stop()


def test_cli_tools_take_the_config_and_name_a_missing_bucket(photos, s3_endpoint, s3_url, tmp_path):
    """Found by review: `lakefs ls` ignored --config (no credentials), and info/fsck/export
    said "no lakefs dataset" for a bucket that does not exist."""
    import sys

    fill(s3_url, s3_endpoint, photos[:2])
    config = write_config(tmp_path / "c.yaml", s3_endpoint, tmp_path / "cache")

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lakefs", *args, "--config", str(config)],
                              capture_output=True, text=True, timeout=60)

    listed = cli("ls", f"{s3_url}/images")
    assert listed.returncode == 0 and len(listed.stdout.split()) == 2, listed.stderr
    for command in ("info", "fsck", "ls"):
        done = cli(command, "s3://no-such-bucket/ds")
        assert done.returncode == 1 and "bucket 'no-such-bucket' does not exist" in done.stderr, done.stderr


def test_a_dataset_is_created_in_an_empty_console_folder(s3_endpoint, s3_url):
    """Found by review: an S3 "folder" made in a web console is an empty object named
    `ds/`, which was taken for a foreign file and refused."""
    from s3util import options

    import lakefs

    bucket, _, prefix = s3_url[len("s3://"):].partition("/")
    boto_client(s3_endpoint).put_object(Bucket=bucket, Key=prefix + "/", Body=b"")
    with lakefs.empty(s3_url, storage_options=options(s3_endpoint)) as ds:
        ds.create_tensor("t", htype="text").append("x")
    assert lakefs.load(s3_url, read_only=True, storage_options=options(s3_endpoint)).t[0].numpy() == "x"


def test_export_stops_when_the_store_goes_away(photos, tmp_path):
    """Found by review: export went on file after file once the store was gone, each
    after its own deadline (a server that stops answering: op_timeout per sample, days
    for a large dataset); it stops at the first failure of the store now, as ingest does,
    and says how many files it did not reach."""
    from s3util import options

    import lakefs
    from lakefs.tools.export import export

    server = MotoServer()
    server.start()
    try:
        boto_client(server.endpoint).create_bucket(Bucket=BUCKET)
        url = f"s3://{BUCKET}/ds"
        fill(url, server.endpoint, photos, chunk_size=32 << 10)  # one photo per chunk
        with lakefs.load(url, read_only=True, storage_options=options(server.endpoint)) as ds:
            server.stop()  # the network goes away after the dataset was opened
            report = export(ds, str(tmp_path / "out"))
    finally:
        server.stop()
    assert report.stopped is not None and server.endpoint in report.stopped
    assert report.failed == [] and report.files == 0
    assert report.not_reached == len(photos)


def test_no_credentials_at_all_is_named_as_such(s3_endpoint, tmp_path, mountpoint):
    """It said "cannot reach ...: Unable to locate credentials" (found by QA)."""
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"storage": {"options": {"endpoint_url": s3_endpoint}}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_EC2_METADATA_DISABLED="true")
    done = subprocess.run(lakefs_mount(f"s3://{BUCKET}/ds", mountpoint, "--config", str(config), "-o", "ro"),
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "no credentials for" in done.stderr and "AWS_ACCESS_KEY_ID" in done.stderr, done.stderr
    assert not os.path.ismount(mountpoint)


def test_a_misspelt_storage_option_gets_a_suggestion(s3_endpoint, tmp_path, mountpoint):
    """It said only "AioSession.__init__() got an unexpected keyword argument 'endpoint'"
    (found by QA)."""
    import yaml

    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"storage": {"options": {"endpoint": s3_endpoint}}}))
    line = mount_fails(f"s3://{BUCKET}/ds", mountpoint, config, "-o", "ro")
    assert "a storage option is not accepted" in line and "did you mean 'endpoint_url'?" in line, line
