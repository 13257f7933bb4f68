"""FsspecStorage: objects on any fsspec filesystem (S3 through s3fs, GCS, Azure, ...).

An object-store PUT replaces the whole object in one step, so ``put`` is atomic by
nature; there is no hand-written S3 client here, only fsspec calls.

Writer lock = a *lease*: the object ``locks/<name>`` names its owner (an id, pid and
host) and how long it lasts (``lease_seconds``), with a renewal counter. A daemon thread
renews it every ``lease_seconds / 3``; ``release`` deletes it. A writer that dies stops
renewing, and the next writer takes its lease over. On S3 every lease step is a
conditional request (``If-None-Match: *`` to create, ``If-Match: <etag>`` to renew, take
over and delete), so two writers racing for one lease cannot both win. Other fsspec
filesystems have no conditional writes: there the lease is written and read back, which
narrows the race but cannot close it (two writers writing within the same read-back
window can both believe they hold it).

Deciding that a lease ran out never compares the clocks of two machines (they may
disagree by any amount): a lease written on this machine since its last boot (same
``/proc/sys/kernel/random/boot_id``) carries its end on ``CLOCK_BOOTTIME``, one clock for
both writers, and is taken over at once when that has passed. A lease from another machine
is *watched*: it is taken over only once its object (ETag, else its bytes) stayed unchanged
for its ``seconds`` plus a tenth (:data:`LEASE_MARGIN`) on this machine's clock; a change
(a renewal, a take-over) refuses at once, naming the holder. Its owner stopped counting it
as held by then (its own deadline, on its own clock, started before its last write). A
wall-clock ``expires`` is still written, for people reading the object.

Every call to an asynchronous filesystem (s3fs, gcsfs, ...) carries a deadline on the
whole call, retries included (fsspec's ``timeout=``): botocore's own timeouts restart with
each of its and s3fs's retries, so a server that accepts connections but never answers
blocked a call for ten minutes and more; with the deadline it fails as EIO. The deadline
is ``op_timeout`` seconds, plus one second per MB (2**20 bytes) for a call that moves a
known amount of data (a put of N bytes, each part of a multipart upload, a ranged read),
so that a slow link that keeps sending is not cut off. A read of a whole object (size
unknown) that misses ``op_timeout`` asks the object's size and, if it is over a MB, tries
once more with the size's deadline; a listing gets ten times ``op_timeout``. (A transfer
slower than 1 MB/s can still miss its deadline.)
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import logging
import os
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import fsspec
from fsspec.asyn import AsyncFileSystem
from fsspec.exceptions import FSTimeoutError

from lakefs.errors import (
    LakeFSError,
    LockedError,
    ObjectExistsError,
    ObjectNotFoundError,
    StorageError,
    StorageFullError,
)
from lakefs.storage.base import (
    PIECE,
    Buffers,
    Storage,
    WriterLock,
    check_key,
    check_range,
    lock_key,
    pieces,
    read_exactly,
)

log = logging.getLogger(__name__)

#: fsspec protocol → the package that implements it (for the install hint).
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
             "abfs": "adlfs", "abfss": "adlfs", "hf": "huggingface_hub", "sftp": "paramiko"}

#: Bytes a call may move per second of its deadline beyond ``op_timeout`` (see above).
DEADLINE_RATE = 1 << 20

#: A lease from another machine is taken over once unchanged for its duration times
#: (1 + this) on our clock: room for clocks that run at slightly different rates.
LEASE_MARGIN = 0.1

#: The clock of lease deadlines: counts suspended time (a writer whose laptop slept
#: has lost its lease when it wakes) and never jumps; its reading is shared by every
#: process of one boot of a Linux machine. ``time.monotonic`` elsewhere.
_CLOCK = getattr(time, "CLOCK_BOOTTIME", None)


def _clock() -> float:
    return time.clock_gettime(_CLOCK) if _CLOCK is not None else time.monotonic()


def _read_boot_id() -> str | None:
    """This boot of this machine (Linux), None if unknown: leases written under the same
    boot id have their ends on the same ``CLOCK_BOOTTIME``."""
    if _CLOCK is None:
        return None
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip() or None
    except OSError:
        return None


_BOOT_ID = _read_boot_id()

#: Programming errors are never storage failures: let them through unwrapped.
_BUGS = (TypeError, AttributeError, NameError, AssertionError, NotImplementedError)


def _causes(e: BaseException | None) -> list[BaseException]:
    """``e`` and the exceptions it was raised from (s3fs wraps botocore's)."""
    out: list[BaseException] = []
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


class _Conflict(Exception):
    """A conditional lease write lost (someone else changed the lease object)."""


def _one_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _s3_code(e: BaseException) -> str:
    """The S3 error code behind an exception s3fs translated (``""`` if none)."""
    seen: BaseException | None = e
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            return str(response.get("Error", {}).get("Code", ""))
        seen = seen.__cause__
    return ""


def _quiet_lost_connections(loop: Any, context: dict[str, Any]) -> None:
    """The exception handler of fsspec's event loop. A connection that breaks while aiohttp
    sends a request (a store restarting, a reset) fails that request, which its call
    retries or reports as ``StorageError``; it also fails the task sending the body, which
    nothing awaits, so asyncio logged it at ERROR with a traceback ("Task exception was
    never retrieved"), once per request for as long as the store was away."""
    error = context.get("exception")
    if isinstance(error, OSError) and "never retrieved" in str(context.get("message", "")):
        log.debug("a connection to the store broke while a request was sent: %r", error)
        return
    loop.default_exception_handler(context)


def _protocol(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


class FsspecStorage(Storage):
    """Objects under ``url`` (``s3://bucket/prefix``) on an fsspec filesystem."""

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        read_only: bool = False,
        *,
        lease_seconds: float = 30.0,
        op_timeout: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.writable = not read_only
        self.lease_seconds = _seconds("lease_seconds", lease_seconds, url)
        self.op_timeout = _seconds("op_timeout", op_timeout, url, zero_ok=True)
        protocol = _protocol(url)
        opts = dict(storage_options or {})
        # No listing cache: another process may change the objects at any time. (The
        # filesystem instance itself is shared by fsspec between equal options: it is
        # thread-safe and creating a client is slow.)
        opts.setdefault("use_listings_cache", False)
        if protocol == "file":
            opts.setdefault("auto_mkdir", True)
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **opts)
        except ImportError as e:
            package = _PACKAGES.get(protocol, f"the fsspec implementation of {protocol!r}")
            raise StorageError(
                f"cannot open {url}: {protocol}:// needs {package} (pip install {package})"
            ) from e
        except ValueError as e:
            raise StorageError(f"cannot open {url}: {_one_line(e)}") from e
        self.root = root.rstrip("/")
        loop = getattr(self.fs, "loop", None) if isinstance(self.fs, AsyncFileSystem) else None
        if loop is not None and loop.get_exception_handler() is None:
            loop.set_exception_handler(_quiet_lost_connections)
        self._s3 = protocol in ("s3", "s3a") and hasattr(self.fs, "call_s3")
        endpoint = (opts.get("client_kwargs") or {}).get("endpoint_url") or opts.get(
            "endpoint_url"
        )
        if self._s3 and not endpoint:  # botocore reads these itself; name them in errors
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self._where = f"{self.url} (endpoint {endpoint})" if endpoint else self.url
        # fsspec's deadline keyword exists only on asynchronous filesystems' calls.
        deadline = isinstance(self.fs, AsyncFileSystem) and self.op_timeout > 0
        self._t: dict[str, float] = {"timeout": self.op_timeout} if deadline else {}
        # A listing is one request per 1000 keys: give it ten times as long.
        self._t_list: dict[str, float] = {"timeout": 10 * self.op_timeout} if deadline else {}

    def _t_bytes(self, nbytes: int) -> dict[str, float]:
        """The deadline keyword of a call that moves ``nbytes``: ``op_timeout`` plus one
        second per MB (a slow transfer that keeps flowing is not cut off)."""
        if not self._t:
            return {}
        return {"timeout": self.op_timeout + nbytes / DEADLINE_RATE}

    def __repr__(self) -> str:
        return f"FsspecStorage({self.url!r}, read_only={not self.writable})"

    @property
    def where(self) -> str:
        return self.url

    def _p(self, key: str) -> str:
        return f"{self.root}/{check_key(key)}"

    @contextmanager
    def _errors(self, key: str, op: str, *, write: bool = False) -> Iterator[None]:
        """Map fsspec/botocore/aiohttp errors to lakefs errors, naming the key."""
        try:
            yield
        except TypeError as e:
            if "unexpected keyword argument" not in str(e):
                raise
            # The client is made at the first call: a misspelt storage option fails here.
            raise StorageError(f"{op} {key!r} on {self._where}: a storage option is not"
                               f" accepted: {_one_line(e)}") from e
        except (LakeFSError, _Conflict, *_BUGS):
            raise
        except FSTimeoutError as e:
            raise StorageError(f"{op} {key!r} on {self._where}: no answer in time (storage"
                               f" option op_timeout = {self.op_timeout:g} s)") from e
        except FileNotFoundError as e:
            if write:  # the bucket is missing, not the key
                raise StorageError(f"{op} {key!r} on {self._where}: {_one_line(e)}") from e
            raise ObjectNotFoundError(f"no such object {key!r} in {self.url}") from e
        except PermissionError as e:
            raise StorageError(
                f"{op} {key!r} on {self._where}: access denied, check credentials"
                f" ({_one_line(e)})"
            ) from e
        except Exception as e:
            if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StorageFullError(f"storage full: {op} {key!r} on {self.url}") from e
            raise StorageError(f"{op} {key!r} on {self._where}: {_one_line(e)}") from e

    # --- reads -----------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        path = self._p(key)
        with self._errors(key, "read"):
            try:
                return bytes(self.fs.cat_file(path, **self._t))
            except FSTimeoutError:
                # The size was unknown: most whole reads are small (HEAD, manifests,
                # segments). Ask it (a stopped server fails this too), and give a big
                # object the time its size needs.
                size = int(self.fs.info(path, **self._t)["size"])
                if size < DEADLINE_RATE:
                    raise
                return bytes(self.fs.cat_file(path, **self._t_bytes(size)))

    def get_range(self, key: str, start: int, length: int) -> bytes:
        check_range(start, length)
        path = self._p(key)
        if length == 0:
            self.size(key)  # a missing key is still an error
            return b""
        try:
            with self._errors(key, "read"):
                return bytes(self.fs.cat_file(path, start=start, end=start + length,
                                              **self._t_bytes(length)))
        except StorageError as e:
            # S3 answers 416 to a range that starts at or past the end.
            if _s3_code(e) == "InvalidRange" and start >= self.size(key):
                return b""
            raise

    def _info(self, key: str) -> dict[str, Any] | None:
        path = self._p(key)
        try:
            with self._errors(key, "stat"):
                info = self.fs.info(path, **self._t)
        except ObjectNotFoundError:
            return None
        return info if info.get("type") == "file" else None

    def exists(self, key: str) -> bool:
        return self._info(key) is not None

    def modified(self, key: str) -> str | None:
        """When ``key`` was last written (S3 LastModified / file mtime), None if missing.

        The read cache uses it to tell a dataset from one re-created at the same URL.
        """
        info = self._info(key)
        if info is None:
            return None
        stamp = info.get("LastModified") or info.get("mtime") or info.get("created")
        return str(stamp) if stamp is not None else info.get("ETag")

    def mtime_ns(self, key: str) -> int | None:
        info = self._info(key)
        stamp = None if info is None else info.get("LastModified") or info.get("mtime") or info.get("created")
        if isinstance(stamp, datetime.datetime):
            stamp = stamp.timestamp()  # (S3's is aware; a naive one is taken as local time)
        try:
            return None if stamp is None else int(float(stamp) * 1e9)
        except (TypeError, ValueError):
            return None  # a backend's own kind of stamp

    def size(self, key: str) -> int:
        info = self._info(key)
        if info is None:
            raise ObjectNotFoundError(f"no such object {key!r} in {self.url}")
        return int(info["size"])

    def list(self, prefix: str = "") -> Iterator[str]:
        head = prefix.rpartition("/")[0]
        base = f"{self.root}/{head}" if head else self.root
        try:
            with self._errors(prefix or "/", "list"):
                paths = self.fs.find(base, **self._t_list)
        except ObjectNotFoundError:
            return iter(())
        cut = len(self.root) + 1
        keys = []
        for path in paths:
            key = path[cut:]
            if key.startswith(prefix) and _valid(key):
                keys.append(key)
        return iter(keys)

    def top_names(self) -> list[str]:
        try:
            with self._errors("/", "list"):
                paths = self.fs.ls(self.root, detail=False, **self._t_list)
        except ObjectNotFoundError:
            return []
        root = self.root.rstrip("/")
        # (an S3 "folder" made in a console is an empty object named like the root + "/")
        return sorted({p.rstrip("/").rsplit("/", 1)[-1] for p in paths if p.rstrip("/") != root})

    # --- writes ----------------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray | memoryview, *, sync: bool = True) -> None:
        path = self._p(key)
        self._check_writable(key)
        with self._errors(key, "write", write=True):
            body = data if isinstance(data, bytes) else bytes(data)
            self.fs.pipe_file(path, body, **self._t_bytes(len(body)))

    def put_new(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """On S3 one conditional PUT (If-None-Match: *); elsewhere check, then put."""
        if not self._s3:
            return super().put_new(key, data)
        path = self._p(key)
        self._check_writable(key)
        with self._errors(key, "write", write=True):
            try:
                body = data if isinstance(data, bytes) else bytes(data)
                self.fs.pipe_file(path, body, mode="create", **self._t_bytes(len(body)))
            except FileExistsError as e:
                raise ObjectExistsError(f"object {key!r} exists already in {self.url}") from e
            except OSError as e:
                if _s3_code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise ObjectExistsError(f"object {key!r} exists already in {self.url}") from e
                raise

    def put_from(self, key: str, f: BinaryIO, size: int, *, sync: bool = True) -> None:
        """On S3, streamed as a multipart upload: the object appears whole at the end, or
        not at all (a failure aborts the upload instead of completing it). Other fsspec
        backends (memory:// in tests) read it whole, and so is an object already in memory
        (``put_parts``: a sealed chunk, one PUT as before)."""
        if size <= PIECE or not self._s3 or isinstance(f, Buffers):
            return self.put(key, read_exactly(f, size), sync=sync)
        path = self._p(key)
        self._check_writable(key)
        with self._errors(key, "write", write=True):
            out = self.fs.open(path, "wb", block_size=PIECE)
        if self._t and hasattr(out, "_call_s3"):
            # s3fs's file object makes its part uploads through _call_s3, which takes
            # fsspec's deadline keyword like every other call; give it ours (a part's
            # deadline counts its bytes).
            call = out._call_s3

            def call_with_deadline(method: str, *a: Any, **kw: Any) -> Any:
                body = kw.get("Body")
                t = self._t_bytes(memoryview(body).nbytes) if isinstance(body, (bytes, bytearray, memoryview)) \
                    else self._t
                return call(method, *a, **t, **kw)

            out._call_s3 = call_with_deadline
        try:
            for piece in pieces(f, size):  # a short file is the caller's ValueError
                with self._errors(key, "write", write=True):
                    out.write(piece)
        except BaseException:
            with contextlib.suppress(Exception):
                out.discard()
            out.closed = True  # discarded: never completed, not even by the GC
            raise
        with self._errors(key, "write", write=True):
            out.close()

    def delete(self, key: str) -> None:
        path = self._p(key)
        self._check_writable(key)
        try:
            with self._errors(key, "delete"):
                self.fs.rm_file(path, **self._t)
        except ObjectNotFoundError:
            pass

    def check(self) -> None:
        """Raise ``StorageError`` (one line) if the endpoint, bucket or credentials fail."""
        target = self.root.split("/", 1)[0] if self._s3 else self.root
        try:
            info = self.fs.info(target, **self._t)
        except FSTimeoutError as e:  # a server that accepts connections but never answers
            raise StorageError(f"cannot reach {self._where}: no answer in time (storage option"
                               f" op_timeout = {self.op_timeout:g} s)") from e
        except FileNotFoundError as e:
            if self._s3:
                raise StorageError(f"bucket {target!r} does not exist at {self._where}") from e
            if not self.writable:
                raise StorageError(f"{self.url} does not exist") from e
            return
        except PermissionError as e:
            raise StorageError(f"access denied to {self._where}: check credentials") from e
        except TypeError as e:
            if "unexpected keyword argument" not in str(e):
                raise
            raise StorageError(f"cannot open {self._where}: a storage option is not accepted:"
                               f" {_one_line(e)}{self._option_hint(e)}") from e
        except _BUGS:
            raise
        except Exception as e:
            if any(type(x).__name__ == "NoCredentialsError" for x in _causes(e)):  # (botocore's: no keys)
                raise StorageError(f"no credentials for {self._where}: set key and secret in the storage options, "
                                   "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS profile") from e
            raise StorageError(f"cannot reach {self._where}: {_one_line(e)}") from e
        if not self._s3 and info.get("type") != "directory":
            raise StorageError(f"{self.url} is not a directory")

    def _option_hint(self, e: TypeError) -> str:
        """"; did you mean 'endpoint_url'?" for an option the filesystem does not take
        (s3fs hands unknown ones on to its session, which names only itself)."""
        import difflib
        import inspect
        import re

        found = re.search(r"unexpected keyword argument '([^']+)'", str(e))
        if found is None:
            return ""
        known = {"lease_seconds", "op_timeout"}
        for cls in type(self.fs).__mro__:
            init = cls.__dict__.get("__init__")
            if init is not None:
                with contextlib.suppress(TypeError, ValueError):
                    known |= {n for n, p in inspect.signature(init).parameters.items()
                              if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "self"}
        near = difflib.get_close_matches(found[1], sorted(known), n=1, cutoff=0.6)
        return f"; did you mean {near[0]!r}?" if near else ""

    # --- writer lock (lease) ---------------------------------------------------------

    def writer_lock(self, name: str) -> WriterLock:
        """Take the lease (see the module docstring). A lease held from another machine
        is watched first: up to its ``seconds`` plus a tenth, until it is renewed
        (``LockedError``) or has shown it is dead (taken over)."""
        key = lock_key(name)
        self._check_writable(key)
        owner = uuid.uuid4().hex
        record, tag = self._lease_read(key)
        try:
            if record is not None and "garbage" not in record:
                left = _left_here(record)
                if left is None:  # written on another machine: its clock is not ours
                    record, tag = self._lease_watch(key, record, tag)
                elif left > 0 and not _running_here(record.get("pid")):
                    # Kept till it runs out all the same: a writer in a container on this
                    # machine has a pid we cannot see. (It said "locked by another writer
                    # ...; mount it with -o ro", of a writer killed with kill -9; found by QA.)
                    holder = f"pid {record.get('pid')} on this machine"
                    raise LockedError(f"{self.url}: the writer that holds its lease ({holder}) is not running here;"
                                      f" its lease runs out in {left:.0f} s: try again then",
                                      holder=holder, runs_out_in=left)
                elif left > 0:
                    raise _locked_by(record, f"lease expires in {left:.0f} s", self.url,
                                     in_this_process=_held_here(record))
            body, deadline = self._lease_body(owner, 0)
            if record is None:
                tag = self._lease_create(key, body)
            else:
                log.warning("taking over the expired writer lease %s of %s (pid %s on %s)",
                            key, self.url, record.get("pid"), record.get("host"))
                tag = self._lease_replace(key, body, tag)
        except _Conflict as e:
            raise LockedError(
                f"dataset is locked by another writer (it took the lease just now): {self.url}"
            ) from e
        return _Lease(self, key, owner, tag, deadline, 0)

    def _lease_watch(self, key: str, record: dict[str, Any],
                     tag: str | None) -> tuple[dict[str, Any] | None, str | None]:
        """Watch another machine's lease until it stayed unchanged for its duration plus
        :data:`LEASE_MARGIN` on our clock: then return it, to be taken over with a
        conditional write. A renewal or take-over meanwhile is ``LockedError``; a release
        returns ``(None, None)`` (the lease is free)."""
        seconds = _lease_seconds(record, self.lease_seconds)
        period = seconds * (1 + LEASE_MARGIN)
        start = _clock()  # after the read that saw ``tag``: the holder wrote it before
        # (a warning: waiting half a minute without a word would look like a hang)
        log.warning("writer lease %s of %s is held by pid %s on %s, another machine: waiting"
                    " up to %.0f s to see whether it is still renewed", key, self.url,
                    record.get("pid"), record.get("host"), period)
        every = min(1.0, seconds / 10)  # the holder renews every third of its lease
        while (left := start + period - _clock()) > 0:
            time.sleep(min(every, left))
            now, now_tag = self._lease_read(key)
            if now_tag == tag:
                continue
            if now is None:
                return None, None
            how = ("which renews its lease" if now.get("owner") == record.get("owner")
                   else "which took the lease over just now")
            raise _locked_by(now, how, self.url)
        return record, tag

    def _lease_body(self, owner: str, renewal: int) -> tuple[bytes, float]:
        """The lease object's bytes and our deadline (before the write: the holder stops
        counting on it no later than anyone watching the object can see it run out)."""
        now = _clock()
        record = {"owner": owner, "pid": os.getpid(), "host": socket.gethostname(),
                  "seconds": self.lease_seconds, "renewal": renewal,
                  "boot": _BOOT_ID, "boot_expires": now + self.lease_seconds,
                  "expires": time.time() + self.lease_seconds}
        return json.dumps(record).encode(), now + self.lease_seconds

    def _lease_read(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """The lease record and its version tag (S3 ETag, else the raw bytes)."""
        path = self._p(key)
        try:
            with self._errors(key, "read lease"):
                tag = self.fs.info(path, **self._t).get("ETag") if self._s3 else None
                raw = self.fs.cat_file(path, **self._t)
        except ObjectNotFoundError:
            return None, None
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError:
            record = {"expires": 0, "garbage": raw[:64].decode("latin-1")}
        return record, tag if self._s3 else raw.decode("latin-1")

    def _lease_create(self, key: str, body: bytes) -> str:
        path = self._p(key)
        with self._errors(key, "write lease", write=True):
            if self._s3:
                try:
                    return self.fs.pipe_file(path, body, mode="create", **self._t)["ETag"]
                except FileExistsError as e:
                    raise _Conflict() from e
                except OSError as e:
                    if _s3_code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
                        raise _Conflict() from e
                    raise
            if self.fs.exists(path, **self._t):
                raise _Conflict()
            return self._write_verify(path, body)

    def _lease_replace(self, key: str, body: bytes, tag: str | None) -> str:
        path = self._p(key)
        with self._errors(key, "write lease", write=True):
            if self._s3:
                try:
                    return self.fs.pipe_file(path, body, IfMatch=tag, **self._t)["ETag"]
                except FileNotFoundError as e:  # If-Match on a deleted object
                    raise _Conflict("the lease object was deleted") from e
                except OSError as e:
                    if _s3_code(e) in ("PreconditionFailed", "ConditionalRequestConflict"):
                        raise _Conflict() from e
                    raise
            try:
                current = self.fs.cat_file(path, **self._t).decode("latin-1")
            except FileNotFoundError as e:
                raise _Conflict("the lease object was deleted") from e
            if current != tag:
                raise _Conflict()
            return self._write_verify(path, body)

    def _write_verify(self, path: str, body: bytes) -> str:
        self.fs.pipe_file(path, body, **self._t)
        time.sleep(0.05)  # let a racing writer's PUT land before we read back
        if self.fs.cat_file(path, **self._t) != body:
            raise _Conflict()
        return body.decode("latin-1")

    def _lease_delete(self, key: str, tag: str) -> None:
        path = self._p(key)
        with self._errors(key, "delete lease"):
            if self._s3:
                bucket, _, obj = path.partition("/")
                try:
                    self.fs.call_s3("delete_object", Bucket=bucket, Key=obj, IfMatch=tag,
                                    **self._t)
                except OSError as e:
                    if _s3_code(e) not in ("PreconditionFailed", "NoSuchKey"):
                        raise
                return
            try:
                if self.fs.cat_file(path, **self._t).decode("latin-1") == tag:
                    self.fs.rm_file(path, **self._t)
            except FileNotFoundError:
                pass


def _seconds(name: str, value: Any, url: str, *, zero_ok: bool = False) -> float:
    """A storage option that is a duration, checked (one line, never a traceback)."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not (seconds > 0 or (zero_ok and seconds == 0)) or seconds == float("inf"):
        floor = ">= 0" if zero_ok else "> 0"
        raise StorageError(f"cannot open {url}: storage option {name} must be a number of"
                           f" seconds {floor}, got {value!r}")
    return seconds


def _left_here(record: dict[str, Any]) -> float | None:
    """Seconds left of a lease written on this boot of this machine (negative: it ran
    out), on the clock its writer used; None for a lease from anywhere else."""
    if _BOOT_ID is None or record.get("boot") != _BOOT_ID:
        return None
    try:
        return float(record["boot_expires"]) - _clock()
    except (KeyError, TypeError, ValueError):
        return None


def _lease_seconds(record: dict[str, Any], default: float) -> float:
    """How long the lease lasts for its writer (``default``: a record without it)."""
    seconds = record.get("seconds")
    if isinstance(seconds, (int, float)) and 0 < seconds < float("inf"):
        return float(seconds)
    return default


def _locked_by(record: dict[str, Any], how: str, url: str, *, in_this_process: bool = False) -> LockedError:
    holder = f"pid {record.get('pid')} on {record.get('host')}, {how}"
    return LockedError(f"dataset is locked by another writer ({holder}): {url}", holder=holder,
                       in_this_process=in_this_process)


def _held_here(record: dict[str, Any]) -> bool:
    """Whether the lease ``record`` is one this process holds (by its owner id: a pid may
    be another pid namespace's, and a forked child holds none of its parent's)."""
    pid = os.getpid()
    return any(lease._owner == record.get("owner") and lease._pid == pid and not lease._released
               for lease in list(_leases))


def _running_here(pid: Any) -> bool:
    """Whether process ``pid`` runs in this pid namespace (True when unsure: a pid that
    is no number, or one of another user's processes)."""
    if not isinstance(pid, int) or pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _valid(key: str) -> bool:
    try:
        check_key(key)
    except LakeFSError:
        return False
    return True


class _Lease(WriterLock):
    """A held lease, renewed by a daemon thread until released (or lost)."""

    def __init__(self, store: FsspecStorage, key: str, owner: str, tag: str,
                 deadline: float, renewal: int) -> None:
        self._store = store
        self._key = key
        self._owner = owner
        self._tag = tag
        self._deadline = deadline  # _clock() at which our lease runs out
        self._renewal = renewal  # the counter in the object: every renewal changes it
        self._lost: str | None = None
        self._released = False
        self._pid = os.getpid()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_renew_loop, args=(weakref.ref(self), self._stop,
                                      store.lease_seconds / 3),
            name=f"lakefs-lease-{key}", daemon=True)
        self._thread.start()
        _leases.add(self)

    def __repr__(self) -> str:
        return f"<writer lease {self._key} of {self._store.url} owner {self._owner}>"

    def renew(self) -> None:
        """Extend the lease now (the daemon thread calls this every lease/3 s)."""
        with self._mutex:
            if self._released or self._lost:
                return
            body, deadline = self._store._lease_body(self._owner, self._renewal + 1)
            try:
                self._tag = self._store._lease_replace(self._key, body, self._tag)
                self._deadline = deadline
                self._renewal += 1
            except _Conflict as e:
                # A warning: the writer's next commit decides whether it is lost for good
                # (taken again if no other writer held it) and then logs the one error.
                self._lost = str(e) or "another writer took the lease over"
                log.warning("writer lease %s of %s lost: %s", self._key, self._store.url,
                            self._lost)
            except StorageError as e:  # transient: retry at the next tick
                log.warning("cannot renew writer lease %s: %s", self._key, e)

    def verify(self) -> None:
        if self._released:
            raise LockedError(f"writer lease {self._key} of {self._store.url} was released")
        if self._lost is None and _clock() > self._deadline:
            self._lost = "its renewals failed until it expired"
        if self._lost:
            raise LockedError(f"writer lease {self._key} of {self._store.url} lost: "
                              f"{self._lost}")

    def retake(self) -> _Lease:
        """This lost lease held again, if its object still names this owner: then no other
        writer held it since (taking it over rewrites the owner; a release deletes it), so
        nothing another writer did (a compact deleting this writer's unpublished chunks)
        can be undone by our next commit. Else ``LockedError``."""
        store, key = self._store, self._key
        record, tag = store._lease_read(key)
        if record is None or record.get("owner") != self._owner:
            raise LockedError(f"writer lease {key} of {store.url}: another writer held it meanwhile")
        stored = record.get("renewal")  # (a renewal may have landed though its answer was lost)
        renewal = max(self._renewal, stored if isinstance(stored, int) else 0) + 1
        body, deadline = store._lease_body(self._owner, renewal)
        try:
            tag = store._lease_replace(key, body, tag)
        except _Conflict as e:
            raise LockedError(f"writer lease {key} of {store.url}: another writer took it just now") from e
        self.abandon()
        return _Lease(store, key, self._owner, tag, deadline, renewal)

    def abandon(self) -> None:
        """Stop renewing, put nothing: the lease expires after ``lease_seconds``."""
        self._released = True
        self._stop.set()

    def release(self) -> None:
        with self._mutex:
            if self._released:
                return
            self._released = True
            self._stop.set()
            lost = self._lost
        if self._thread is not threading.current_thread():
            self._thread.join()
        if lost:
            return
        try:
            self._store._lease_delete(self._key, self._tag)
        except StorageError as e:  # it will expire by itself
            log.warning("cannot delete writer lease %s: %s", self._key, e)


_leases: weakref.WeakSet[_Lease] = weakref.WeakSet()  # (see _held_here)


def _renew_loop(ref: weakref.ref[_Lease], stop: threading.Event, every: float) -> None:
    # Holds only a weak reference, so a lease dropped without release() stops renewing
    # and expires like a dead writer's.
    while not stop.wait(every):
        lease = ref()
        if lease is None or lease._lost:
            return
        lease.renew()
        del lease
