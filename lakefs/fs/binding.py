"""The one import shim for the fusepy API (see docs/FUSE-BINDING.md).

Every module of lakefs that talks to FUSE imports ``FUSE``, ``Operations``,
``FuseOSError`` and ``fuse_get_context`` from here, never from ``mfusepy`` or ``fuse``
directly, so the choice of binding and the binding's traps are handled in one place:

- **Which binding.** mfusepy (libfuse 3 or 2) is preferred, fusepy (libfuse 2 only) is
  the fallback. mfusepy itself looks for ``libfuse.so`` (v2) *before* ``libfuse3.so``;
  we point it at libfuse 3 when that is installed, because libfuse 3 sends 1 MiB writes
  (FUSE-NOTES.md) and reports ``renameat2`` flags. ``FUSE_LIBRARY_PATH`` set by the user
  still wins.
- **renameat2 flags.** mfusepy's libfuse 3 ``rename`` drops the ``flags`` argument, so a
  ``RENAME_EXCHANGE`` would silently become a plain rename that loses a file. Our
  :class:`FUSE` answers any ``flags != 0`` with ``EINVAL`` before the operations see it
  (rename(2): "EINVAL The filesystem does not support one of the flags").
- **UTIME_OMIT / UTIME_NOW.** With ``use_ns`` the times reach ``utimens`` as
  ``tv_sec * 10**9 + tv_nsec``; libfuse fills omitted/now times with ``tv_sec = 0`` and
  the ``UTIME_OMIT``/``UTIME_NOW`` marker in ``tv_nsec``. :func:`resolve_utimens` turns a
  pair into concrete nanoseconds or ``None`` (leave unchanged). libfuse 2 only passes
  such calls on when the operations set ``flag_utime_omit_ok`` (:class:`BaseOperations`
  does).
- **Connection tuning.** On libfuse 3, ``max_write``/``max_readahead`` are not mount
  options; they are set in ``init_with_config(conn, config)`` (mfusepy only). On libfuse 2
  they are ``-o`` options (plus ``big_writes``). :func:`mount_options` and
  :class:`BaseOperations` hide the difference.

Importing this module loads libfuse; ``import lakefs`` must never import it.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import select
import threading
import time
from collections.abc import Mapping
from ctypes.util import find_library
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from lakefs.errors import UnsupportedError

_INSTALL_HINT = (
    "lakefs needs FUSE to mount: install libfuse 3 and mfusepy, e.g. "
    "`apt-get install fuse3 libfuse3-3 && pip install mfusepy` (or run scripts/setup.sh)."
)


def _import_binding() -> tuple[Any, str]:
    """Import mfusepy (pointed at libfuse 3 when present), else fusepy."""
    problems: list[str] = []
    restore: str | None = None
    if not os.environ.get("FUSE_LIBRARY_PATH") and not os.environ.get("FUSE_LIBRARY_NAME"):
        lib3 = find_library("fuse3")
        if lib3:
            os.environ["FUSE_LIBRARY_PATH"] = lib3
            restore = "FUSE_LIBRARY_PATH"
    try:
        import mfusepy  # noqa: PLC0415

        return mfusepy, "mfusepy"
    except (ImportError, OSError, AttributeError) as exc:  # OSError: libfuse not found
        problems.append(f"mfusepy: {exc}")
    finally:
        if restore:
            del os.environ[restore]
    try:
        import fuse  # noqa: PLC0415  (fusepy)

        if not hasattr(fuse, "FUSE") or not hasattr(fuse, "Operations"):
            raise ImportError("the module named 'fuse' is not fusepy")
        return fuse, "fusepy"
    except (ImportError, OSError, AttributeError) as exc:
        problems.append(f"fusepy: {exc}")
    raise UnsupportedError(f"no usable FUSE binding ({'; '.join(problems)}). {_INSTALL_HINT}")


#: ``BINDING`` names the binding in use: ``"mfusepy"`` or ``"fusepy"``.
_impl, BINDING = _import_binding()

if BINDING == "mfusepy":
    LIBFUSE_MAJOR: int = int(_impl.fuse_version_major)
    LIBFUSE_MINOR: int = int(_impl.fuse_version_minor)
else:  # fusepy only loads libfuse 2 and does not record the minor version
    LIBFUSE_MAJOR = 2
    LIBFUSE_MINOR = 9

Operations = _impl.Operations
FuseOSError = _impl.FuseOSError
fuse_get_context = _impl.fuse_get_context

#: ``tv_nsec`` markers of utimensat(2) as libfuse hands them over (tv_sec is 0).
UTIME_NOW: int = (1 << 30) - 1
UTIME_OMIT: int = (1 << 30) - 2

#: True when an operations' ``read`` may return any bytes-like object (a memoryview);
#: else it must return ``bytes`` (fusepy copies with ``ctypes.memmove``).
READ_TAKES_VIEWS: bool = BINDING == "mfusepy"

#: libfuse 2's kernel protocol caps writes at 32 pages; libfuse 3 negotiates up to 1 MiB.
MAX_WRITE: int = (1 << 20) if LIBFUSE_MAJOR >= 3 else (128 << 10)


class StatRecord(NamedTuple):
    """A file's attributes for :meth:`FUSE.fgetattr`'s fast path (see there)."""

    mode: int  # file type and permission bits
    nlink: int
    size: int
    mtime_ns: int  # also shown as ctime and atime
    uid: int
    gid: int
    blksize: int


class _FuseArgs(ctypes.Structure):
    """libfuse's ``struct fuse_args``."""

    _fields_ = [("argc", ctypes.c_int), ("argv", ctypes.POINTER(ctypes.c_char_p)), ("allocated", ctypes.c_int)]


class _CmdlineOpts(ctypes.Structure):
    """libfuse's ``struct fuse_cmdline_opts`` as ``fuse_parse_cmdline@FUSE_3.12`` fills it."""

    _fields_ = [("singlethread", ctypes.c_int), ("foreground", ctypes.c_int), ("debug", ctypes.c_int),
                ("nodefault_subtype", ctypes.c_int), ("mountpoint", ctypes.c_void_p),
                ("show_version", ctypes.c_int), ("show_help", ctypes.c_int), ("clone_fd", ctypes.c_int),
                ("max_idle_threads", ctypes.c_uint), ("max_threads", ctypes.c_uint)]


#: Room for libfuse's ``struct fuse_buf`` (40 bytes in 3.14; to spare for fields added later).
_FUSE_BUF_ROOM = 256


class _Libfuse3Main:
    """``fuse_main_real`` (libfuse 3.12+, lib/helper.c) step by step, with a call between the
    end of the request loop and the teardown.

    libfuse's own ``fuse_main_real`` unmounts and then ``fuse_destroy`` frees the node
    tables and the lock ``fuse_invalidate_path`` walks, and only then calls the
    operations' ``destroy``. A refresh thread still invalidating paths at unmount read
    freed memory there: the mount process died with SIGSEGV (seen in CI, once in a few
    hundred unmounts during a 300 000-path refresh). It also wrote notifications to the
    device's file descriptor after ``fuse_unmount`` had closed it, a number the next
    ``open`` may reuse. Here ``after_loop`` (:meth:`KernelCache.detach`) runs while all
    of that is still alive: a call in flight finishes (what it may wait on is served
    meanwhile), none starts after.

    The functions are looked up with their symbol versions (``dlvsym``), so a libfuse
    that moves a default version on cannot hand us one of another signature; where any
    is missing, ``available`` is false and the binding's ``fuse_main_real`` serves."""

    _SYMBOLS = {  # name: (version, restype, argtypes)
        "fuse_parse_cmdline": ("FUSE_3.12", ctypes.c_int, (ctypes.c_void_p, ctypes.c_void_p)),
        "fuse_new": ("FUSE_3.1", ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                                   ctypes.c_void_p)),
        "fuse_mount": ("FUSE_3.0", ctypes.c_int, (ctypes.c_void_p, ctypes.c_void_p)),
        "fuse_daemonize": ("FUSE_3.0", ctypes.c_int, (ctypes.c_int,)),
        "fuse_get_session": ("FUSE_3.0", ctypes.c_void_p, (ctypes.c_void_p,)),
        "fuse_set_signal_handlers": ("FUSE_3.0", ctypes.c_int, (ctypes.c_void_p,)),
        "fuse_remove_signal_handlers": ("FUSE_3.0", None, (ctypes.c_void_p,)),
        "fuse_loop": ("FUSE_3.0", ctypes.c_int, (ctypes.c_void_p,)),
        "fuse_loop_mt": ("FUSE_3.12", ctypes.c_int, (ctypes.c_void_p, ctypes.c_void_p)),
        "fuse_loop_cfg_create": ("FUSE_3.12", ctypes.c_void_p, ()),
        "fuse_loop_cfg_destroy": ("FUSE_3.12", None, (ctypes.c_void_p,)),
        "fuse_loop_cfg_set_clone_fd": ("FUSE_3.12", None, (ctypes.c_void_p, ctypes.c_uint)),
        "fuse_loop_cfg_set_idle_threads": ("FUSE_3.12", None, (ctypes.c_void_p, ctypes.c_uint)),
        "fuse_loop_cfg_set_max_threads": ("FUSE_3.12", None, (ctypes.c_void_p, ctypes.c_uint)),
        "fuse_session_fd": ("FUSE_3.0", ctypes.c_int, (ctypes.c_void_p,)),
        "fuse_session_receive_buf": ("FUSE_3.0", ctypes.c_int, (ctypes.c_void_p, ctypes.c_void_p)),
        "fuse_session_process_buf": ("FUSE_3.0", None, (ctypes.c_void_p, ctypes.c_void_p)),
        "fuse_unmount": ("FUSE_3.0", None, (ctypes.c_void_p,)),
        "fuse_destroy": ("FUSE_3.0", None, (ctypes.c_void_p,)),
        "fuse_opt_free_args": ("FUSE_3.0", None, (ctypes.c_void_p,)),
    }

    def __init__(self) -> None:
        self.fn: dict[str, Any] = {}
        lib = getattr(_impl, "_libfuse", None)
        if lib is None or LIBFUSE_MAJOR < 3:
            return
        try:
            libc = ctypes.CDLL(None)
            dlvsym, self._free = libc.dlvsym, libc.free
        except (OSError, AttributeError):
            return
        dlvsym.restype, dlvsym.argtypes = ctypes.c_void_p, (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p)
        self._free.argtypes, self._free.restype = (ctypes.c_void_p,), None
        fn = {}
        for name, (version, restype, argtypes) in self._SYMBOLS.items():
            address = dlvsym(lib._handle, name.encode(), version.encode())
            if not address:
                return
            fn[name] = ctypes.CFUNCTYPE(restype, *argtypes)(address)  # (releases the GIL)
        self.fn = fn

    @property
    def available(self) -> bool:
        return bool(self.fn)

    def serving(self, after_loop: Any, on_loop_end: Any = None) -> Any:
        """A stand-in for the binding's ``fuse_main_real(argc, argv, ops, ops_size,
        user_data)`` that calls ``on_loop_end(status)`` then ``after_loop()`` once the loop
        has ended; same return codes."""

        def main(argc: int, argv: Any, ops: Any, ops_size: int, user_data: Any) -> int:
            fn = self.fn
            args, opts = _FuseArgs(argc, argv, 0), _CmdlineOpts()
            if fn["fuse_parse_cmdline"](ctypes.byref(args), ctypes.byref(opts)) != 0:
                return 1
            try:
                if not opts.mountpoint:
                    return 2
                fuse = fn["fuse_new"](ctypes.byref(args), ops, ops_size, user_data)
                if not fuse:
                    return 3
                try:
                    if fn["fuse_mount"](fuse, opts.mountpoint) != 0:
                        return 4
                    try:
                        return self._serve(fuse, opts, after_loop, on_loop_end)
                    finally:
                        fn["fuse_unmount"](fuse)
                finally:
                    fn["fuse_destroy"](fuse)
            finally:
                self._free(opts.mountpoint)
                fn["fuse_opt_free_args"](ctypes.byref(args))

        return main

    def _serve(self, fuse: int, opts: _CmdlineOpts, after_loop: Any, on_loop_end: Any) -> int:
        fn = self.fn
        if fn["fuse_daemonize"](opts.foreground) != 0:
            return 5
        session = fn["fuse_get_session"](fuse)
        if fn["fuse_set_signal_handlers"](session) != 0:
            return 6
        res = None
        try:
            if opts.singlethread:
                res = fn["fuse_loop"](fuse)
            else:
                config = fn["fuse_loop_cfg_create"]()
                if not config:
                    return 7
                try:
                    fn["fuse_loop_cfg_set_clone_fd"](config, opts.clone_fd)
                    fn["fuse_loop_cfg_set_idle_threads"](config, opts.max_idle_threads)
                    fn["fuse_loop_cfg_set_max_threads"](config, opts.max_threads)
                    res = fn["fuse_loop_mt"](fuse, config)
                finally:
                    fn["fuse_loop_cfg_destroy"](config)
        finally:
            try:
                # First, while libfuse's own handlers still answer a signal (they only
                # end the loop again): handlers installed here are left in place by
                # fuse_remove_signal_handlers, which restores the default (death) only
                # where its own handler is still set.
                if on_loop_end is not None:
                    on_loop_end(res)
            finally:
                try:
                    if after_loop is not None and res is not None and res < 0:
                        after_loop()  # (reading the device failed: nothing more can be served)
                    elif after_loop is not None:
                        self._serving_until_done(session, after_loop)
                finally:
                    fn["fuse_remove_signal_handlers"](session)
        return 8 if res else 0

    def _serving_until_done(self, session: int, after_loop: Any) -> None:
        """Run ``after_loop`` (in a thread) while serving the requests the ended loop left
        queued, until it returns.

        A kernel cache call in flight (:meth:`KernelCache.detach` waits for it) may wait on
        one of them: the kernel invalidates a directory's entry under the directory's lock,
        which a ``mkdir`` holds while its LOOKUP waits in the queue, and a file's pages
        under their locks, which readahead holds until its READ is answered. Once a signal
        has ended the loop nobody answered them, and the mount process hung (for good, or
        until that client was killed). After an unmount the device is gone and nothing
        waits. Requests go on being read from the session's device (not io_uring's rings,
        libfuse 3.18+); the buffer libfuse allocates is left (once per mount)."""
        fn = self.fn
        done_read, done_write = os.pipe()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                after_loop()
            except BaseException as e:  # raised again below, by the thread serving
                failure.append(e)
            finally:
                with contextlib.suppress(OSError):  # (the reader gave up: an exception there)
                    os.write(done_write, b"x")
                os.close(done_write)

        try:
            threading.Thread(target=run, name="fuse-after-loop", daemon=True).start()
            ready = select.poll()
            ready.register(done_read, select.POLLIN)
            ready.register(fn["fuse_session_fd"](session), select.POLLIN)
            buf = ctypes.create_string_buffer(_FUSE_BUF_ROOM)  # a zeroed struct fuse_buf
            while all(fd != done_read for fd, _ in ready.poll()):
                received = fn["fuse_session_receive_buf"](session, buf)
                if received in (-errno.EINTR, -errno.EAGAIN):
                    continue
                if received <= 0:  # the device is gone (unmounted): nothing can wait on it
                    os.read(done_read, 1)  # (until after_loop is through)
                    break
                fn["fuse_session_process_buf"](session, buf)
        finally:
            os.close(done_read)
        if failure:
            raise failure[0]


_LIBFUSE3_MAIN = _Libfuse3Main()

#: Whether :class:`FUSE` calls its ``after_loop`` before libfuse tears down (libfuse 3.12+).
CALLS_AFTER_LOOP: bool = _LIBFUSE3_MAIN.available and BINDING == "mfusepy"


class FUSE(_impl.FUSE):  # type: ignore[misc,valid-type]
    """The binding's ``FUSE`` with the renameat2 trap closed (see module docstring).

    ``after_loop`` (keyword) is called once the request loop has ended, before libfuse
    unmounts and frees its state, in a thread of its own while the requests the loop left
    queued are served (libfuse 3.12+; see :class:`_Libfuse3Main`); elsewhere the
    operations' ``destroy`` is the first call after the loop.

    ``on_loop_end(status)`` (keyword) is called once, in the calling (main) thread, as
    soon as the loop has ended and before libfuse puts the default signal handlers back:
    where a mount installs the handlers that keep a second SIGTERM from killing it
    during its final commit. ``status`` is the loop's result: 0 (unmounted), a signal
    number (a signal ended it), ``-errno`` (reading the device failed), or None where
    libfuse's own main serves (libfuse < 3.12, fusepy): there it is called as ``destroy``
    begins, after libfuse's handlers are gone."""

    def __init__(self, operations: Any, *args: Any, after_loop: Any = None, on_loop_end: Any = None,
                 **kwargs: Any) -> None:
        # Looked up once: the binding registers callbacks and starts serving in __init__.
        self._stat_record = getattr(operations, "stat_record", None)
        self._on_loop_end = on_loop_end
        if not CALLS_AFTER_LOOP:
            super().__init__(operations, *args, **kwargs)
            return
        # The binding calls its module's fuse_main_real from __init__, which serves.
        binding_main = _impl.fuse_main_real

        def loop_ended(status: int | None) -> None:
            self._on_loop_end = None  # (called once: destroy comes after)
            if on_loop_end is not None:
                on_loop_end(status)

        _impl.fuse_main_real = _LIBFUSE3_MAIN.serving(after_loop, loop_ended)
        try:
            super().__init__(operations, *args, **kwargs)
        finally:
            _impl.fuse_main_real = binding_main

    def destroy(self, private_data: Any) -> Any:
        on_loop_end, self._on_loop_end = self._on_loop_end, None
        if on_loop_end is not None:  # (libfuse's own main: see on_loop_end above)
            on_loop_end(None)
        return super().destroy(private_data)

    def fgetattr(self, path: bytes | None, buf: Any, fip: Any) -> int:
        # Every LOOKUP and GETATTR comes here. When the operations offer
        # ``stat_record(path, fh)`` (a StatRecord, or a negative errno such as -ENOENT
        # for the missing names every create looks up first), the record is copied into
        # the struct field by field: the binding's getattr dict, filled key by key, and a
        # raised ENOENT cost several times more per call (scripts/bench_mount.py: cp -r
        # and a cold stat of every file are one or more of these per file).
        record = self._stat_record
        if record is None:
            return super().fgetattr(path, buf, fip)
        fh = (fip.contents if self.raw_fi else fip.contents.fh) if fip else None
        r = record(None if path is None else path.decode(self.encoding, self.errors), fh)
        if type(r) is int:
            return r
        ctypes.memset(buf, 0, _STAT_SIZE)
        st = buf.contents
        st.st_mode, st.st_nlink, st.st_size, st.st_uid, st.st_gid, st.st_blksize = (
            r.mode, r.nlink, r.size, r.uid, r.gid, r.blksize)
        st.st_blocks = (r.size + 511) // 512  # 512-byte units (stat(2)); du reads it
        sec, nsec = divmod(r.mtime_ns, 1_000_000_000)
        for spec in (st.st_mtimespec, st.st_ctimespec, st.st_atimespec):
            spec.tv_sec, spec.tv_nsec = sec, nsec
        return 0

    if BINDING == "mfusepy":

        def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
            # mfusepy's read copies the result with ctypes.memmove, which takes only bytes.
            # Operations may also return a memoryview (a slice of a verified 8 MB tile):
            # copied straight into the FUSE buffer, it saves a copy per request.
            fh = fip.contents if self.raw_fi else fip.contents.fh
            ret = self.operations.read(None if path is None else path.decode(self.encoding, self.errors),
                                       size, offset, fh)
            if not ret:
                return 0
            n = len(ret) if type(ret) is bytes else memoryview(ret).nbytes
            if n > size:
                raise ValueError(f"read returned {n} bytes, more than the {size} asked")
            if type(ret) is bytes:
                ctypes.memmove(buf, ret, n)
            elif n:
                dst = (ctypes.c_char * n).from_address(ctypes.addressof(buf.contents))
                memoryview(dst).cast("B")[:] = memoryview(ret).cast("B")
            return n

    if BINDING == "mfusepy" and LIBFUSE_MAJOR >= 3:

        def rename_fuse_3(self, old: bytes, new: bytes, flags: int) -> int:
            # RENAME_NOREPLACE/EXCHANGE/WHITEOUT cannot be honoured through the
            # operations' two-argument rename; callers such as gnulib fall back on EINVAL.
            if flags:
                return -errno.EINVAL
            return super().rename_fuse_3(old, new, flags)

        def readdir_fuse_3(self, path: bytes, buf: Any, filler: Any, offset: int, fip: Any, flags: int) -> int:
            # READDIRPLUS: when the operations offer ``readdir_stat(path, fh, offset)`` (the
            # whole listing as a :class:`DirEntries`, kept by the operations while the
            # directory is open) and the kernel asks for attributes, hand each entry's stat
            # over with its name (FUSE_FILL_DIR_PLUS), so ls -l / find -ls / stat after a
            # listing need no LOOKUP per entry. The kernel asks for attributes in warm
            # listings too (py-spy of a warm ls -l: every entry went through here), so the
            # stats are packed in bulk and passed by address: per entry only the filler
            # call is left. libfuse 3.14 only passes attributes on for entries filled with
            # non-zero offsets, so every entry carries its index + 1 and a full buffer ends
            # the call. mfusepy's readdir passes the type only.
            readdir_stat = getattr(self.operations, "readdir_stat", None)
            if readdir_stat is None:
                return super().readdir_fuse_3(path, buf, filler, offset, fip, flags)
            entries = readdir_stat(None if path is None else path.decode(self.encoding, self.errors),
                                   fip.contents.fh, offset)
            names, types = entries.encoded(self.encoding, self.errors), entries.types
            fill = ctypes.cast(filler, _fill_dir_by_address)
            if flags & _READDIR_PLUS and entries.stats is not None:
                packed = entries.packed(self.use_ns)
                first, step = entries.first_stat, packed.itemsize
                base = packed.ctypes.data - first * step  # entry i's record is at base + i * step
                for index in range(offset, min(first, len(names))):  # "." and "..": no attributes
                    if fill(buf, names[index], _type_stat(types[index]), index + 1, 0):
                        return 0
                for index in range(max(offset, first), len(names)):
                    if fill(buf, names[index], base + index * step, index + 1, _FILL_DIR_PLUS):
                        return 0
                return 0
            for index in range(offset, len(names)):
                if fill(buf, names[index], _type_stat(types[index]), index + 1, 0):
                    break
            return 0


class DirEntries:
    """A directory listing as ``readdir_stat`` hands it to :class:`FUSE` (READDIRPLUS):
    parallel lists of ``names`` and ``types`` (the ``st_mode`` file type bits of each
    entry), and the attributes of the entries from ``first_stat`` on as ``stats``: a
    getattr-style dict whose values are arrays with one value per such entry (or one
    value for all). Names are encoded and attributes packed into ``struct stat`` records
    in bulk, once per DirEntries and only when asked for, so the entries cost no Python
    object each beyond their names: operations may reuse one DirEntries while the
    directory is unchanged."""

    __slots__ = ("_encoded", "_packed", "first_stat", "names", "stats", "types")

    def __init__(self, names: list[str], types: list[int], stats: Mapping[str, Any] | None = None,
                 first_stat: int = 0):
        self.names = names
        self.types = types
        self.stats = stats
        self.first_stat = first_stat
        self._packed: np.ndarray | None = None
        self._encoded: list[bytes] | None = None

    def encoded(self, encoding: str, errors: str) -> list[bytes]:
        if self._encoded is None:
            self._encoded = [name.encode(encoding, errors) for name in self.names]
        return self._encoded

    def packed(self, use_ns: bool) -> np.ndarray:
        if self._packed is None:
            self._packed = pack_stats(self.stats or {}, len(self.names) - self.first_stat, use_ns)
        return self._packed


def pack_stats(stats: Mapping[str, Any], count: int, use_ns: bool) -> np.ndarray:
    """``count`` ``struct stat`` records from a getattr-style dict of arrays (or scalars),
    as mfusepy's ``set_st_attrs`` fills one: times go to ``<key>spec``."""
    out = np.zeros(count, dtype=_STAT_DTYPE)
    for key, value in stats.items():
        if key in ("st_atime", "st_mtime", "st_ctime"):
            spec = out[key + "spec"]
            if use_ns:
                spec["tv_sec"], spec["tv_nsec"] = np.divmod(value, 10**9)
            else:
                spec["tv_sec"] = np.floor(value)
                spec["tv_nsec"] = (np.asarray(value) - np.floor(value)) * 1e9
        elif key in _STAT_DTYPE.names:
            out[key] = value
    return out


#: ``struct stat`` as numpy sees mfusepy's ``c_stat`` (same offsets, same size).
_STAT_DTYPE = np.dtype(_impl.c_stat)
_STAT_SIZE = ctypes.sizeof(_impl.c_stat)
#: libfuse's ``fuse_fill_dir_t`` taking the ``struct stat *`` as a plain address, so that
#: records of a packed array are passed without a ctypes object each.
_fill_dir_by_address = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p,
                                        getattr(_impl, "c_off_t", ctypes.c_int64), ctypes.c_int)
_type_stats: dict[int, Any] = {}
_type_stat_addresses: dict[int, int] = {}


def _type_stat(file_type: int) -> int:
    """The address of a shared ``struct stat`` holding only ``st_mode = file_type``: what a
    plain READDIR entry carries (libfuse copies it), without a struct per entry."""
    address = _type_stat_addresses.get(file_type)
    if address is None:
        st = _type_stats[file_type] = _impl.c_stat()
        st.st_mode = file_type
        address = _type_stat_addresses[file_type] = ctypes.addressof(st)
    return address


#: libfuse 3: ``fuse_readdir_flags`` FUSE_READDIR_PLUS and ``fuse_fill_dir_flags`` FUSE_FILL_DIR_PLUS.
_READDIR_PLUS = 1 << 0
_FILL_DIR_PLUS = 1 << 1


@dataclass(frozen=True)
class ConnTuning:
    """Per-connection settings applied in ``init_with_config`` (libfuse 3 + mfusepy).

    ``None`` leaves libfuse's negotiated value alone.
    """

    max_write: int | None = MAX_WRITE
    max_readahead: int | None = None


class BaseOperations(Operations):  # type: ignore[misc,valid-type]
    """An ``Operations`` base with the settings every lakefs filesystem wants.

    Subclasses must only define attributes named after FUSE operations when they mean
    to implement that operation: the binding registers any attribute whose name is a
    FUSE op (``flush``, ``lock``, ...), whatever its value.
    """

    #: Times in integer nanoseconds (fusepy 3 / mfusepy) instead of lossy floats.
    use_ns = True
    #: libfuse 2: pass utimensat calls with UTIME_OMIT/UTIME_NOW instead of dropping them.
    flag_utime_omit_ok = 1
    #: Tuning applied at FUSE init on libfuse 3; replace per instance if needed.
    conn_tuning: ConnTuning = ConnTuning()

    def init_with_config(self, conn: Any, config: Any) -> None:
        """Apply :attr:`conn_tuning` to the kernel connection (mfusepy calls this)."""
        apply_conn_tuning(conn, self.conn_tuning)


class KernelCache:
    """Tells the kernel to forget what it cached for a path (attributes and page cache)
    when the dataset changed without the kernel seeing it: a read-only mount that moved
    to a newer commit. libfuse 3's ``fuse_invalidate_path``; a no-op where it is missing
    (libfuse 2), where the kernel's timeouts then bound how long stale attributes live.
    :meth:`forget_name` drops a name the kernel looked up (a deleted file), which
    ``fuse_invalidate_path`` leaves: the kernel would go on finding it until entry_timeout.

    :meth:`attach` runs in the FUSE ``init`` callback (the only place the ``struct fuse``
    is known); :meth:`detach` as the request loop ends (``FUSE(after_loop=...)``), before
    libfuse closes the device and frees what these calls walk: a call in flight finishes
    first (the lock; the requests it may wait on are served meanwhile), none starts after.
    Where the binding's own main serves (libfuse before 3.12), ``destroy`` is the first
    chance, after both; there a call failing with EBADF detaches too, or a refresh still
    going at unmount printed "fuse: writing device: Bad file descriptor" once per path."""

    def __init__(self) -> None:
        self._fuse: ctypes.c_void_p | None = None
        self._session: ctypes.c_void_p | None = None
        self._invalidate: Any = None
        self._invalidate_entry: Any = None
        self._lock = threading.Lock()

    def attach(self, fuse: int | None = None) -> None:
        """Use the ``struct fuse`` at address ``fuse`` (default: the one of the FUSE
        callback running, ``init``'s)."""
        lib = getattr(_impl, "_libfuse", None)
        fn = getattr(lib, "fuse_invalidate_path", None) if LIBFUSE_MAJOR >= 3 else None
        if fn is None:
            return
        fn.argtypes, fn.restype = (ctypes.c_void_p, ctypes.c_char_p), ctypes.c_int
        entry = getattr(lib, "fuse_lowlevel_notify_inval_entry", None)
        session = getattr(lib, "fuse_get_session", None)
        with self._lock:
            self._invalidate = fn
            self._fuse = ctypes.c_void_p(lib.fuse_get_context().contents.fuse if fuse is None else fuse)
            if entry is not None and session is not None:
                session.argtypes, session.restype = (ctypes.c_void_p,), ctypes.c_void_p
                entry.argtypes = (ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t)
                entry.restype = ctypes.c_int
                self._invalidate_entry = entry
                self._session = ctypes.c_void_p(session(self._fuse))

    def detach(self) -> None:
        with self._lock:
            self._fuse = self._session = None

    @property
    def attached(self) -> bool:
        return self._fuse is not None

    def invalidate(self, path: str) -> None:
        """Forget ``path`` (absolute, as the operations see it); a path the kernel never
        looked up costs nothing."""
        with self._lock:
            if self._fuse is not None:
                self._check(self._invalidate(self._fuse, path.encode("utf-8", "surrogateescape")))

    def forget_name(self, parent_ino: int, name: str) -> None:
        """Drop the kernel's entry ``name`` in the directory whose node id is ``parent_ino``
        (the ``st_ino`` the mount shows for it; 1 for the root), and what hangs below it.
        A name the kernel does not hold costs nothing."""
        raw = name.encode("utf-8", "surrogateescape")
        with self._lock:
            if self._session is not None:
                self._check(self._invalidate_entry(self._session, parent_ino, raw, len(raw)))

    def _check(self, result: int) -> None:
        """(With the lock.) EBADF: libfuse closed the device, it is unmounting."""
        if result == -errno.EBADF:
            self._fuse = self._session = None


def apply_conn_tuning(conn: Any, tuning: ConnTuning) -> None:
    """Set ``max_write``/``max_readahead`` on a ``fuse_conn_info`` (may be ``None``)."""
    if conn is None or LIBFUSE_MAJOR < 3:
        return  # libfuse 2 takes these as -o options (mount_options)
    if tuning.max_write is not None:
        conn.max_write = tuning.max_write
    if tuning.max_readahead is not None:
        conn.max_readahead = tuning.max_readahead


def resolve_utimens(
    times: tuple[int, int] | None, now_ns: int | None = None
) -> tuple[int | None, int | None]:
    """Turn a ``utimens`` ``times`` argument (``use_ns``) into ``(atime_ns, mtime_ns)``.

    ``None`` for a component means "leave unchanged" (UTIME_OMIT); ``times is None`` and
    UTIME_NOW mean the current time.
    """
    now = time.time_ns() if now_ns is None else now_ns
    if times is None:
        return now, now

    def one(value: int) -> int | None:
        if value == UTIME_OMIT:
            return None
        if value == UTIME_NOW:
            return now
        return int(value)

    return one(times[0]), one(times[1])


def parse_mount_options(text: str | None) -> dict[str, Any]:
    """Parse a mount(8)-style ``-o`` string (``"ro,attr_timeout=5"``) into FUSE kwargs."""
    options: dict[str, Any] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        options[key] = value if sep else True
    return options


#: Options libfuse 3 rejects as ``-o`` strings ("fuse: unknown option(s)"), measured on
#: 3.14. ``max_write``/``max_readahead`` move into :class:`ConnTuning`; the others are
#: implicit (big_writes) or capability flags, dropped.
_LIBFUSE2_ONLY_OPTIONS = ("big_writes", "async_read", "writeback_cache", "max_read")


def mount_options(
    *,
    fsname: str,
    kernel_cache: bool = True,
    attr_timeout: float = 60.0,
    entry_timeout: float = 60.0,
    negative_timeout: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], ConnTuning]:
    """``(kwargs for FUSE, ConnTuning)`` with lakefs's standard options.

    ``kernel_cache`` and long attr/entry timeouts are the big wins for reads and listings
    (FUSE-NOTES.md); they are correct as long as the data only changes through the mount.
    On libfuse 2, ``big_writes`` and ``max_write`` are mount options (else writes are
    4 KiB). libfuse 3 rejects both as ``-o`` strings: ``max_write``/``max_readahead``
    (also when given in ``extra``) go into the returned :class:`ConnTuning`, which
    :class:`BaseOperations` applies in ``init_with_config``. ``extra`` (e.g. from
    :func:`parse_mount_options`) overrides the defaults.
    """
    opts: dict[str, Any] = {
        "fsname": fsname,
        "attr_timeout": attr_timeout,
        "entry_timeout": entry_timeout,
        "negative_timeout": negative_timeout,
    }
    if kernel_cache:
        opts["kernel_cache"] = True
    if LIBFUSE_MAJOR < 3:
        opts["big_writes"] = True
        opts["max_write"] = MAX_WRITE
    opts.update(extra or {})
    tuning = ConnTuning()
    if LIBFUSE_MAJOR >= 3:
        max_write = opts.pop("max_write", tuning.max_write)
        max_readahead = opts.pop("max_readahead", None)
        tuning = ConnTuning(
            max_write=None if max_write is None else int(max_write),
            max_readahead=None if max_readahead is None else int(max_readahead),
        )
        for name in _LIBFUSE2_ONLY_OPTIONS:
            opts.pop(name, None)
    return opts, tuning


__all__ = [
    "BINDING",
    "CALLS_AFTER_LOOP",
    "FUSE",
    "LIBFUSE_MAJOR",
    "LIBFUSE_MINOR",
    "MAX_WRITE",
    "READ_TAKES_VIEWS",
    "UTIME_NOW",
    "UTIME_OMIT",
    "BaseOperations",
    "ConnTuning",
    "DirEntries",
    "FuseOSError",
    "KernelCache",
    "Operations",
    "StatRecord",
    "apply_conn_tuning",
    "fuse_get_context",
    "mount_options",
    "parse_mount_options",
    "resolve_utimens",
]
