"""FsspecStorage on a real moto S3 server: error mapping, check(), leases."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from backdoors import S3Backdoor
from s3server import (
    BUCKET,
    MotoServer,
    boto_client,
    free_port,
    moto_server,
    resetting_server,
    s3_options,
    throttled_proxy,
)

from lakefs.errors import LockedError, ObjectNotFoundError, StorageError
from lakefs.storage import open_storage
from lakefs.storage.fsspec_store import FsspecStorage

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[2]


def test_check_unreachable_endpoint() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = FsspecStorage(f"s3://{BUCKET}/ds", s3_options(endpoint))
    t = time.monotonic()
    with pytest.raises(StorageError) as info:
        store.check()
    assert time.monotonic() - t < 10
    msg = str(info.value)
    assert "\n" not in msg
    assert "cannot reach" in msg and endpoint in msg
    with pytest.raises(StorageError):
        store.get("x")
    with pytest.raises(StorageError):
        store.put("x", b"1")


def test_check_of_a_server_that_never_answers_names_the_deadline() -> None:
    """Found by review: `lakefs mount` (or info, ingest, ...) of an endpoint that accepts
    connections but never answers said "cannot reach ...: FSTimeoutError"."""
    with socket.socket() as silent:  # the kernel accepts connections; nobody answers them
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        store = FsspecStorage(f"s3://{BUCKET}/ds", s3_options(endpoint), op_timeout=1)
        with pytest.raises(StorageError) as info:
            store.check()
    assert str(info.value) == (f"cannot reach s3://{BUCKET}/ds (endpoint {endpoint}): no answer in time"
                               " (storage option op_timeout = 1 s)")


def test_connections_reset_mid_request_log_no_tracebacks(caplog) -> None:
    """Found by review: while a store was away (connections reset as they were made),
    a mount's log got an ERROR "Task exception was never retrieved" with a traceback
    from asyncio for every request, between the one-line warnings of the failed calls."""
    with resetting_server() as endpoint, caplog.at_level(logging.DEBUG, logger="asyncio"):
        store = FsspecStorage(f"s3://{BUCKET}/ds", s3_options(endpoint), op_timeout=5)

        def put(i: int) -> str:
            with pytest.raises(StorageError) as info:
                store.put(f"chunks/{i}", b"x" * 1000)  # (s3fs tries each several times)
            return str(info.value)

        with ThreadPoolExecutor(8) as pool:  # (whether a reset lands mid-request is a race)
            assert all(endpoint in error for error in pool.map(put, range(8)))
        time.sleep(0.2)
        gc.collect()  # (asyncio logs a failed task nobody awaited when it is collected)
    noise = [r for r in caplog.records if r.name == "asyncio" and r.levelno >= logging.WARNING]
    assert noise == [], noise[0].getMessage()


def test_check_missing_bucket(s3_endpoint: str) -> None:
    store = FsspecStorage("s3://no-such-bucket-here/ds", s3_options(s3_endpoint))
    with pytest.raises(StorageError, match="bucket 'no-such-bucket-here' does not exist"):
        store.check()
    with pytest.raises(StorageError) as info:
        store.put("x", b"1")
    assert not isinstance(info.value, ObjectNotFoundError)


def test_check_passes_for_a_new_prefix(s3_endpoint: str, s3_prefix: str) -> None:
    FsspecStorage(f"s3://{BUCKET}/{s3_prefix}", s3_options(s3_endpoint)).check()


def test_network_failure_mid_read() -> None:
    with moto_server() as endpoint:
        boto_client(endpoint).create_bucket(Bucket=BUCKET)
        store = FsspecStorage(f"s3://{BUCKET}/ds", s3_options(endpoint))
        store.put("chunks/0", b"x" * 1000)
        assert store.get_range("chunks/0", 10, 5) == b"xxxxx"
    # the server is gone now
    for op in (lambda: store.get("chunks/0"), lambda: store.get_range("chunks/0", 0, 5),
               lambda: store.exists("chunks/0"), lambda: list(store.list())):
        with pytest.raises(StorageError) as info:
            op()
        assert not isinstance(info.value, ObjectNotFoundError)
        assert "chunks/0" in str(info.value) or "list" in str(info.value)


@pytest.mark.timeout(120)
def test_a_server_that_stops_answering_fails_each_call_at_the_deadline(tmp_path: Path) -> None:
    """A stopped server still accepts connections (the kernel does), so only a deadline
    over the whole call, retries included, ends the wait: before it, one read of a
    SIGSTOP'd server took ~54 s with these 5 s botocore timeouts, and ten minutes with the
    default ones."""
    server = MotoServer()
    server.start()
    try:
        boto_client(server.endpoint).create_bucket(Bucket=BUCKET)
        store = FsspecStorage(f"s3://{BUCKET}/ds", s3_options(server.endpoint), op_timeout=1)
        store.put("chunks/0", b"x" * 1000)
        big = tmp_path / "big"
        big.write_bytes(os.urandom((8 << 20) + 1000))  # a multipart upload
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            calls = [lambda: store.get("chunks/0"), lambda: store.get_range("chunks/0", 1, 2),
                     lambda: store.put("chunks/1", b"y"), lambda: store.exists("chunks/0"),
                     lambda: list(store.list("chunks/")), lambda: store.delete("chunks/0"),
                     lambda: store.put_from("chunks/2", big.open("rb"), big.stat().st_size)]
            for call in calls:
                t = time.monotonic()
                with pytest.raises(StorageError, match=r"no answer in time \(storage option "
                                   r"op_timeout = 1 s\)"):
                    call()
                assert time.monotonic() - t < 15  # the list deadline is 10x op_timeout
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        # A call that missed its deadline may still land (the delete did: its request was
        # already in the socket); a multipart upload is never completed after it failed.
        assert not store.exists("chunks/2")
        store.put("chunks/3", b"z")  # the same store works again
        assert store.get("chunks/3") == b"z"
    finally:
        server.stop()


def test_the_deadline_grows_with_the_bytes_a_call_moves(monkeypatch) -> None:
    """Found by review: op_timeout was a deadline on the whole transfer, so any GET or
    PUT slower than op_timeout failed although data kept flowing. Now a call that moves
    N known bytes gets op_timeout + N / 1 MB seconds; a whole-object read (size unknown)
    that misses op_timeout asks the size and tries again with its deadline; a listing gets
    10x op_timeout."""
    store = FsspecStorage(f"s3://{BUCKET}/ds", s3_options("http://127.0.0.1:1"), op_timeout=2)
    seen: list[tuple[str, float | None]] = []

    def record(name: str, result: object):
        def call(*args: object, **kwargs: object) -> object:
            seen.append((name, kwargs.get("timeout")))
            return result
        return call

    monkeypatch.setattr(store.fs, "cat_file", record("cat_file", b"x"))
    monkeypatch.setattr(store.fs, "pipe_file", record("pipe_file", {"ETag": "e"}))
    monkeypatch.setattr(store.fs, "find", record("find", []))
    monkeypatch.setattr(store.fs, "info", record("info", {"type": "file", "size": 1}))
    mb = 1 << 20
    store.get("a")
    store.get_range("a", 5, 3 * mb)
    store.put("a", b"y" * (5 * mb))
    store.put_new("a", memoryview(b"y" * (mb // 2)))
    list(store.list("x/"))
    store.exists("a")
    assert seen == [("cat_file", 2), ("cat_file", 2 + 3), ("pipe_file", 2 + 5), ("pipe_file", 2.5),
                    ("find", 20), ("info", 2)]
    # A whole-object read that missed its deadline: the size decides the second try.
    from fsspec.exceptions import FSTimeoutError

    tries: list[float | None] = []

    def slow_then_fine(*args: object, **kwargs: object) -> bytes:
        tries.append(kwargs.get("timeout"))
        if len(tries) == 1:
            raise FSTimeoutError
        return b"z"

    monkeypatch.setattr(store.fs, "cat_file", slow_then_fine)
    monkeypatch.setattr(store.fs, "info", record("info", {"type": "file", "size": 4 * mb}))
    assert store.get("big") == b"z" and tries == [2, 2 + 4]
    monkeypatch.setattr(store.fs, "info", record("info", {"type": "file", "size": 100}))
    tries.clear()
    with pytest.raises(StorageError, match="no answer in time"):  # small: the server is stuck
        store.get("small")
    assert tries == [2]
    unlimited = FsspecStorage(f"s3://{BUCKET}/ds", s3_options("http://127.0.0.1:1"), op_timeout=0)
    assert unlimited._t_bytes(mb) == {} and unlimited._t_list == {}


@pytest.mark.timeout(120)
def test_a_slow_transfer_that_keeps_flowing_is_not_cut_off(s3_endpoint: str, s3_prefix: str,
                                                           tmp_path: Path) -> None:
    """Through a proxy passing 4 MB/s each way, with op_timeout = 1 s: 6 MB reads and
    writes take ~1.5 s each (their deadline: 1 + 6 s; a whole-object read misses 1 s, asks
    the size and tries again with 1 + 6 s), a
    12 MB multipart upload ~3 s (8 MB and 4 MB parts: 9 s and 5 s)."""
    data = os.urandom(6 << 20)
    big = tmp_path / "big"
    big.write_bytes(os.urandom(12 << 20))
    direct = FsspecStorage(f"s3://{BUCKET}/{s3_prefix}", s3_options(s3_endpoint))
    direct.put("six", data)
    with throttled_proxy(s3_endpoint, 4 << 20) as slow_endpoint:
        store = FsspecStorage(f"s3://{BUCKET}/{s3_prefix}", s3_options(slow_endpoint), op_timeout=1)
        t = time.monotonic()
        assert store.get_range("six", 0, len(data)) == data
        assert time.monotonic() - t > 1  # (the proxy is slow enough to matter)
        assert store.get("six") == data
        store.put("copy", data)
        with big.open("rb") as f:
            store.put_from("big", f, big.stat().st_size)
    assert direct.get("copy") == data
    assert direct.get("big") == big.read_bytes()


@pytest.mark.parametrize("option, value", [("op_timeout", "soon"), ("op_timeout", -1),
                                           ("lease_seconds", 0), ("lease_seconds", "inf"),
                                           ("op_timeout", float("nan"))])
def test_bad_duration_options_are_one_line(option: str, value: object) -> None:
    with pytest.raises(StorageError, match=f"storage option {option} must be a number of seconds"):
        open_storage(f"s3://{BUCKET}/ds", options={**s3_options("http://127.0.0.1:1"),
                                                   option: value})


def test_missing_fsspec_implementation_has_install_hint() -> None:
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed")
    with pytest.raises(StorageError, match="pip install gcsfs"):
        open_storage("gs://bucket/ds")


def test_unknown_scheme() -> None:
    with pytest.raises(StorageError, match="nosuchproto"):
        open_storage("nosuchproto://x/y")


def test_import_does_not_load_object_store_clients() -> None:
    code = ("import sys; import lakefs.storage; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('fsspec', 's3fs', 'botocore', 'aiobotocore', 'boto3')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# --- leases ---------------------------------------------------------------------------


@pytest.fixture(params=["s3", "fsspec-memory"])
def lease_store(request: pytest.FixtureRequest, s3_prefix: str):
    """make(lease_seconds) -> store, all on one location; and a raw lease writer."""
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        url, opts = f"s3://{BUCKET}/{s3_prefix}", s3_options(endpoint)
        raw = S3Backdoor(endpoint, s3_prefix)
    else:
        from backdoors import FsspecMemoryBackdoor

        url, opts = f"memory://lease-{uuid.uuid4().hex}", None
        raw = FsspecMemoryBackdoor(url)

    def make(lease_seconds: float = 30.0) -> FsspecStorage:
        return FsspecStorage(url, opts, lease_seconds=lease_seconds)

    return make, raw


def this_boot() -> str:
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


def lease_record(owner: str = "x", *, seconds: float | None = 0.5, boot: str = "another-machine",
                 boot_left: float = 60.0, skew: float = 0.0, renewal: int = 0, pid: int = 4242) -> bytes:
    """A lease object as lakefs writes it on a machine with boot id ``boot``, ``boot_left``
    seconds before its end on that machine's boot clock, and whose wall clock is ``skew``
    seconds ahead of ours. ``seconds=None``: a record without its duration."""
    record = {"owner": owner, "pid": pid, "host": "elsewhere", "renewal": renewal,
              "boot": boot, "boot_expires": time.clock_gettime(time.CLOCK_BOOTTIME) + boot_left,
              "expires": time.time() + skew + (seconds or 30)}
    if seconds is not None:
        record["seconds"] = seconds
    return json.dumps(record).encode()


@contextmanager
def renewing_elsewhere(raw, seconds: float, skew: float):
    """A live writer on another machine whose wall clock is ``skew`` s off ours: it
    rewrites its lease every third of ``seconds``, as lakefs does."""
    raw.put("locks/writer", lease_record(seconds=seconds, skew=skew))
    stop = threading.Event()

    def renew() -> None:
        n = 0
        while not stop.wait(seconds / 3):
            n += 1
            raw.put("locks/writer", lease_record(seconds=seconds, skew=skew, renewal=n))

    thread = threading.Thread(target=renew, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_live_lease_of_this_machine_is_refused_at_once_with_holder(lease_store) -> None:
    make, raw = lease_store
    raw.put("locks/writer", lease_record(seconds=30, boot=this_boot(), boot_left=60, pid=os.getpid()))
    t = time.monotonic()
    with pytest.raises(LockedError, match=rf"pid {os.getpid()} on elsewhere, lease expires in (59|60) s") as e:
        make().writer_lock("writer")
    assert time.monotonic() - t < 5  # one clock for both: nothing to watch (33 s)
    assert e.value.holder == f"pid {os.getpid()} on elsewhere, lease expires in {e.value.holder.split()[-2]} s"
    assert e.value.runs_out_in is None


def test_lease_of_a_writer_of_this_machine_not_running_here_is_kept_and_said_so(lease_store) -> None:
    """A writer killed with kill -9: its lease is kept till it runs out (a writer in a
    container on this machine has a pid we cannot see), and the refusal says so, where it
    said "locked by another writer" (the mount added "mount it with -o ro to read it
    beside its writer"; found by QA)."""
    make, raw = lease_store
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    raw.put("locks/writer", lease_record(seconds=30, boot=this_boot(), boot_left=26, pid=dead.pid))
    with pytest.raises(LockedError) as e:
        make().writer_lock("writer")
    assert re.fullmatch(rf".*: the writer that holds its lease \(pid {dead.pid} on this machine\) is not running "
                        r"here; its lease runs out in 2[56] s: try again then", str(e.value)), str(e.value)
    assert e.value.holder == f"pid {dead.pid} on this machine" and 24 < e.value.runs_out_in <= 26
    raw.put("locks/writer", lease_record(seconds=30, boot=this_boot(), boot_left=-1, pid=dead.pid))
    make().writer_lock("writer").release()  # run out: taken over at once


@pytest.mark.parametrize("skew", [-3600.0, 0.0, 3600.0])
def test_live_lease_of_another_machine_is_refused_whatever_the_clocks(lease_store, skew) -> None:
    """Found by review: expiry compared the holder's wall clock with the contender's, so
    a contender whose clock ran an hour ahead took a live writer's lease (two writers)."""
    make, raw = lease_store
    with renewing_elsewhere(raw, seconds=1.0, skew=skew):
        t = time.monotonic()
        with pytest.raises(LockedError, match="pid 4242 on elsewhere, which renews its lease"):
            make(lease_seconds=30).writer_lock("writer")
        assert time.monotonic() - t < 5  # refused at its next renewal, not after 33 s
        assert json.loads(raw.get("locks/writer"))["owner"] == "x"


def test_contender_whose_wall_clock_runs_ahead_does_not_take_a_live_lease(lease_store,
                                                                        monkeypatch) -> None:
    """The same with a real holder in this process; only the contender's clock is off."""
    make, raw = lease_store
    with make(lease_seconds=30).writer_lock("writer") as holder:
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 3600)
        with pytest.raises(LockedError, match="lease expires in"):
            make().writer_lock("writer")
        monkeypatch.undo()
        holder.verify()
        assert json.loads(raw.get("locks/writer"))["owner"] == holder._owner


@pytest.mark.parametrize("skew", [-3600.0, 0.0, 3600.0])
def test_dead_lease_of_another_machine_is_taken_after_watching_it(lease_store, skew) -> None:
    """A lease is taken over once unchanged for its duration plus a tenth on our own
    clock: a contender whose clock lagged waited as long as the skew."""
    make, raw = lease_store
    raw.put("locks/writer", lease_record(seconds=0.5, skew=skew))
    t = time.monotonic()
    with make(lease_seconds=30).writer_lock("writer") as lock:  # the holder's 0.5 s counts
        waited = time.monotonic() - t
        assert 0.55 <= waited < 5
        assert json.loads(raw.get("locks/writer"))["owner"] == lock._owner
    assert raw.get("locks/writer") is None  # released = deleted


def test_lease_without_its_duration_is_watched_for_ours(lease_store) -> None:
    make, raw = lease_store
    raw.put("locks/writer", lease_record(seconds=None))
    t = time.monotonic()
    make(lease_seconds=0.4).writer_lock("writer").release()
    assert 0.44 <= time.monotonic() - t < 5


def test_lease_released_while_watched_is_taken(lease_store) -> None:
    make, raw = lease_store
    raw.put("locks/writer", lease_record(seconds=20))
    threading.Timer(0.3, raw.delete, args=("locks/writer",)).start()
    t = time.monotonic()
    make().writer_lock("writer").release()
    assert time.monotonic() - t < 10  # not after watching it for 22 s


def test_lease_taken_over_while_watched_names_the_new_holder(lease_store) -> None:
    make, raw = lease_store
    raw.put("locks/writer", lease_record(seconds=5))
    threading.Timer(0.3, raw.put, args=("locks/writer", lease_record("y", seconds=5))).start()
    with pytest.raises(LockedError, match="pid 4242 on elsewhere, which took the lease over"):
        make().writer_lock("writer")


def test_expired_lease_of_this_machine_is_taken_at_once(lease_store) -> None:
    """On one machine both writers read one clock (CLOCK_BOOTTIME, which no wall-clock
    step moves): a lease that ran out on it is taken without watching."""
    make, raw = lease_store
    raw.put("locks/writer", lease_record("dead", seconds=30, boot=this_boot(), boot_left=-1,
                                         skew=3600))
    t = time.monotonic()
    with make().writer_lock("writer") as lock:
        assert time.monotonic() - t < 5  # not watched for 33 s
        record = json.loads(raw.get("locks/writer"))
        assert record["owner"] != "dead"
        lock.verify()
    assert raw.get("locks/writer") is None  # released = deleted


def test_stalled_writer_of_this_machine_is_taken_over_whatever_the_wall_clock(
        lease_store, monkeypatch) -> None:
    make, raw = lease_store
    stalled = make(lease_seconds=0.5).writer_lock("writer")
    stalled._stop.set()  # renewals stop, like a writer that died or hung
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # the contender's clock lags
    time.sleep(0.6)
    make().writer_lock("writer").release()


def test_garbage_lease_is_taken_over(lease_store) -> None:
    make, raw = lease_store
    raw.put("locks/writer", b"\x00not json")
    make().writer_lock("writer").release()


def test_live_lease_is_renewed_past_its_expiry(lease_store) -> None:
    make, raw = lease_store
    lock = make(lease_seconds=1.0).writer_lock("writer")
    try:
        first = json.loads(raw.get("locks/writer"))
        time.sleep(1.6)
        later = json.loads(raw.get("locks/writer"))
        assert later["expires"] > first["expires"]
        assert later["renewal"] > first["renewal"]  # what a watcher elsewhere sees change
        with pytest.raises(LockedError):
            make().writer_lock("writer")
        lock.verify()
    finally:
        lock.release()
    make().writer_lock("writer").release()


def test_lease_of_a_stalled_writer_is_taken_over(lease_store) -> None:
    make, raw = lease_store
    stalled = make(lease_seconds=0.6).writer_lock("writer")
    stalled._stop.set()  # renewals stop, like a writer that died or hung
    time.sleep(0.9)
    with pytest.raises(LockedError, match="lost"):
        stalled.verify()
    taker = make().writer_lock("writer")
    try:
        owner = json.loads(raw.get("locks/writer"))["owner"]
        stalled.release()  # must not delete the new owner's lease
        assert json.loads(raw.get("locks/writer"))["owner"] == owner
        with pytest.raises(LockedError):
            make().writer_lock("writer")
    finally:
        taker.release()


def test_renewal_detects_takeover(s3_endpoint: str, s3_prefix: str) -> None:
    url, opts = f"s3://{BUCKET}/{s3_prefix}", s3_options(s3_endpoint)
    raw = S3Backdoor(s3_endpoint, s3_prefix)
    lock = FsspecStorage(url, opts, lease_seconds=30).writer_lock("writer")
    raw.put("locks/writer", b'{"owner": "intruder", "expires": 1e12}')
    lock.renew()
    with pytest.raises(LockedError, match="took the lease over"):
        lock.verify()
    lock.release()
    assert raw.get("locks/writer") == b'{"owner": "intruder", "expires": 1e12}'


_HOLDER = """
import sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from s3server import s3_options
from lakefs.storage.fsspec_store import FsspecStorage
lock = FsspecStorage(sys.argv[3], s3_options(sys.argv[4]), lease_seconds=1.0).writer_lock("w")
print("locked", flush=True)
time.sleep(60)
"""


def test_lease_of_a_killed_process_expires(s3_endpoint: str, s3_prefix: str) -> None:
    url = f"s3://{BUCKET}/{s3_prefix}"
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(REPO), str(Path(__file__).parents[1]), url,
         s3_endpoint], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        store = FsspecStorage(url, s3_options(s3_endpoint))
        with pytest.raises(LockedError, match=f"pid {child.pid}"):
            store.writer_lock("w")
        child.kill()
        child.wait(timeout=10)
        deadline = time.monotonic() + 5
        while True:
            try:
                store.writer_lock("w").release()
                break
            except LockedError:
                assert time.monotonic() < deadline, "a dead writer's lease never expired"
                time.sleep(0.2)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_misspelt_storage_option_is_one_line(s3_endpoint: str) -> None:
    """Found by review: the client is made at the first call, and its TypeError went
    out as a 41-line traceback from every CLI command."""
    opts = s3_options(s3_endpoint)
    opts["client_kwargs"] = {"endpont_url": s3_endpoint}  # sic
    for read_only in (False, True):
        store = FsspecStorage(f"s3://{BUCKET}/ds", opts, read_only=read_only)
        with pytest.raises(StorageError, match="a storage option is not accepted: .*endpont_url"):
            store.check()
        with pytest.raises(StorageError, match="a storage option is not accepted: .*endpont_url"):
            store.get("HEAD")
