"""How a tensor turns values and files into stored bytes, and back.

One :class:`SampleFormat` per tensor, resolved from its htype and compressions. It is
the only place that knows, for example, that a class label is stored as raw uint32 and
shown as a ``.txt`` of class names, or that a jpeg tensor keeps a matching file as-is.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tokenize
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lakefs.compression import (
    check_one_image,
    codec_for_extension,
    decode_values,
    detect,
    encode_array,
    get_codec,
    prepare_encoded,
    probe_decodable,
)
from lakefs.compression.prepare import Prepared, describe
from lakefs.dataset.htypes import get_htype
from lakefs.errors import InvalidSampleError, UndecodableError, UnsupportedError
from lakefs.format.index import FLAG_TRANSCODED, MAX_NDIM
from lakefs.format.manifest import TensorMeta

_MAX_LABEL = 2**32 - 1  # class labels are stored as uint32
SUPPORTED_DTYPES = "bool, int8..int64, uint8..uint64, float16, float32, float64"


def supported_dtype(dtype: np.dtype) -> bool:
    """Whether a tensor can hold ``dtype``: samples are stored as raw bytes and shown as
    ``.npy``, so an object array would store heap pointers, and str, void, complex and
    datetime arrays have no meaning as pixels, labels or numbers here."""
    return dtype.kind in "biu" or dtype.name in ("float16", "float32", "float64")


def check_class_name(name: Any, index: int) -> str:
    """A class name must read back as itself from the ``.txt`` file view of a label, which
    holds one name per line, stripped, and reads a line of ASCII digits as an index.

    A name of digits is allowed only as the decimal form of its own ``index`` (class
    folders "0".."9"): it then means the same as the index it reads back as."""
    if not isinstance(name, str):
        raise InvalidSampleError(f"a class name is a string, not {type(name).__name__}")
    if not name:
        problem = "is empty"
    elif name.splitlines() != [name]:
        problem = "contains a line break"
    elif name != name.strip():
        problem = "has leading or trailing whitespace"
    elif name.isascii() and name.isdigit() and name != str(index):
        problem = (f"is all digits, at index {index} (a label file would read it as the class index "
                   f"{int(name)}); a name of digits must be its own index")
    else:
        try:
            name.encode("utf-8")
            return name
        except UnicodeEncodeError:
            problem = "is not valid Unicode (it holds a lone surrogate)"
    raise InvalidSampleError(f"class name {name!r} {problem}")


def check_class_names(names: Any) -> list[str]:
    """A tensor's whole ``class_names`` checked (``create_tensor``'s, and those
    ``info.update`` gives): a list of names that each pass :func:`check_class_name`, none
    twice (its label would read back as the first)."""
    if not isinstance(names, (list, tuple)) or not all(isinstance(c, str) for c in names):
        raise InvalidSampleError("class_names must be a list of strings")
    seen: set[str] = set()
    for i, c in enumerate(names):
        if check_class_name(c, i) in seen:
            raise InvalidSampleError(f"class name {c!r} is given twice in class_names")
        seen.add(c)
    return list(names)


@dataclass(frozen=True)
class EncodedFile:
    """A file whose encoding should be kept (``lakefs.read(path)``)."""

    data: bytes
    name: str
    mtime_ns: int
    mode: int

    @property
    def ext(self) -> str:
        suffix = Path(self.name).suffix
        return suffix


def read(path: str | os.PathLike) -> EncodedFile:
    """Read a local file to append as-is: its bytes, name, mtime and mode are kept. A URL
    other than ``file://`` is refused: as a path it lost a slash ("http:/example.com/a.jpg")
    and was a FileNotFoundError. A ``file://`` URL is decoded as ``Path.as_uri`` made it
    (``my%20cat.jpg`` is ``my cat.jpg``), its host empty or ``localhost``."""
    if isinstance(path, str) and "://" in path:
        if not path.startswith("file://"):
            raise UnsupportedError(f"lakefs.read reads local files, not URLs ({path!r}): download the file and "
                                   "read it from disk, or append its bytes (tensor.append(data))")
        url = urllib.parse.urlsplit(path)
        if url.netloc not in ("", "localhost"):
            raise UnsupportedError(f"lakefs.read reads local files: {path!r} names the host {url.netloc!r}")
        path = urllib.request.url2pathname(url.path)
    p = Path(path)
    st = p.stat()
    return EncodedFile(p.read_bytes(), p.name, st.st_mtime_ns, st.st_mode & 0o7777)


@dataclass(frozen=True)
class Encoded:
    """A sample ready for the chunk engine."""

    stored: bytes
    shape: tuple[int, ...]
    ext: str  # extension to show it with
    file_size: int
    flags: int = 0

    def __post_init__(self) -> None:
        # Checked here, before anything is stored: ds.append writes several tensors.
        if len(self.shape) > MAX_NDIM:
            raise InvalidSampleError(f"a sample has at most {MAX_NDIM} dimensions, this one has {len(self.shape)}")


@dataclass(frozen=True)
class Ahead:
    """A file's encoding made before it is stored (:meth:`SampleFormat.prepare_file`),
    for the format and settings it was made with."""

    fmt: SampleFormat
    key: tuple[str, bool, bool]
    prepared: Prepared

    def fits(self, fmt: SampleFormat) -> bool:
        """Whether ``fmt`` would make the same of the file now (a tensor replaced, or its
        settings changed since, makes it again)."""
        return fmt is self.fmt and fmt.ahead_key() == self.key


def _first_outside(arr: np.ndarray, lo: int, hi: int) -> int:
    """The first value of an integer array outside ``lo..hi``, for the error message."""
    flat = arr.reshape(-1)
    outside = np.flatnonzero((flat < lo) | (flat > hi))
    if outside.size:
        return int(flat[outside[0]])
    return int(arr.min()) if int(arr.min()) < lo else int(arr.max())  # (numpy 1 compared as floats)


def _to_float(arr: np.ndarray, want: np.dtype) -> np.ndarray:
    """``arr`` cast to the float dtype ``want``, rounding as Deep Lake does (float64 0.1
    into float32), but never changing a value into something else: a finite value that
    would become inf, or an integer the float cannot hold exactly, is refused."""
    with np.errstate(over="ignore"):
        out = arr.astype(want)
    if arr.dtype.kind == "f":
        grown = np.isfinite(arr) & ~np.isfinite(out)
        if grown.any():
            raise InvalidSampleError(f"value {arr[grown].flat[0].item()!r} does not fit {want} "
                                     "(it would be stored as inf)")
        return out
    # Integers below 2**(mantissa bits + 1) are exact; the others are compared as Python
    # numbers, which compare ints and floats exactly.
    suspect = np.abs(arr.astype(np.float64)) >= 2 ** (np.finfo(want).nmant + 1)
    if suspect.any():
        given, stored = arr[suspect].astype(object), out[suspect].astype(object)
        changed = given != stored
        if changed.any():
            raise InvalidSampleError(f"integer {given[changed][0]} does not fit {want} exactly "
                                     f"(it would be stored as {stored[changed][0]!r})")
    return out


def dtype_holds(want: np.dtype, dtype: np.dtype) -> bool:
    """Whether ``want`` holds every value of ``dtype``; a bool tensor (a mask) holds any
    integer image as its non-zero pixels."""
    return np.can_cast(dtype, want, "safe") or (want.kind == "b" and dtype.kind in "iu")


def _numpy_to_json(value: Any) -> Any:
    """JSON for the numpy values ML code puts in a dict (``{"score": np.float32(0.9)}``,
    a box as an array), as Deep Lake takes them: their Python numbers and lists."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _refuse_json_constant(name: str) -> Any:
    """Python's json reads NaN, Infinity and -Infinity; JSON has no such values."""
    raise ValueError(f"{name} is not a JSON value")


def _utf8(text: str, what: str) -> bytes:
    """``text`` as UTF-8; a str holding a lone surrogate ("\\ud800") has no UTF-8 form."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidSampleError(f"{what} must be valid Unicode: it holds the lone surrogate "
                                 f"{text[e.start]!r} at position {e.start}, which UTF-8 cannot store") from None


def npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """The header ``numpy.save`` writes for a C-order array of this dtype and shape."""
    buf = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


class SampleFormat:
    def __init__(self, meta: TensorMeta, *, allow_transcode: bool = True) -> None:
        self.meta = meta
        self.htype = get_htype(meta.htype)
        self.allow_transcode = allow_transcode
        sc = meta.sample_compression
        self.codec = get_codec(sc) if sc and sc not in ("lz4", "none") else None
        self.lz4 = get_codec("lz4") if sc == "lz4" else None
        self.exact = self._needs_exact(meta.dtype)

    def _needs_exact(self, dtype: str | None) -> bool:
        """Exact values: masks and labels by htype, integer label data (a non-media tensor
        of an integer dtype), and any bool tensor (a mask whatever its htype: a lossy
        encoder flips its bits). An image's uint8 pixels are not label data: a PNG into a
        jpeg image tensor is transcoded (DESIGN §3)."""
        if self.htype.exact:
            return True
        if dtype is None:
            return False
        kind = np.dtype(dtype).kind
        return kind == "b" or (self.htype.media_kind is None and kind in "iu")

    @contextlib.contextmanager
    def rollback(self, *, always: bool = False) -> Iterator[None]:
        """Undo what encoding a sample changed in the tensor's settings (a dtype adopted
        from the first sample, class names added) when the sample is refused, or
        ``always`` (a sample only checked, not stored)."""
        dtype, names, exact = self.meta.dtype, list(self.meta.class_names), self.exact
        try:
            yield
        except BaseException:
            self.meta.dtype, self.meta.class_names[:], self.exact = dtype, names, exact
            raise
        if always:
            self.meta.dtype, self.meta.class_names[:], self.exact = dtype, names, exact

    # --- names -------------------------------------------------------------------------

    @property
    def canonical_ext(self) -> str:
        if self.codec is not None:
            return self.codec.extensions[0]
        return self.htype.file_ext or ".bin"

    def accepts_extension(self, ext: str) -> bool:
        """Whether a file named ``<key><ext>`` is a sample of this tensor (else staging)."""
        low = ext.lower()
        if self.htype.storage == "file":
            return self.htype.file_ext is None or low == self.htype.file_ext
        if low == self.htype.file_ext or low == ".npy":
            return True
        codec = codec_for_extension(low)
        return codec is not None and self.htype.media_kind is not None and codec.kind == self.htype.media_kind

    def shown_ext(self, written: str | None, transcoded: bool) -> str:
        """The written extension when it fits the stored format, else the canonical one."""
        if written and not transcoded:
            low = written.lower()
            if self.codec is not None and low in self.codec.extensions:
                return written
            if self.codec is None and self.htype.storage == "file" and self.accepts_extension(written):
                return written
        return self.canonical_ext

    # --- value → stored ----------------------------------------------------------------

    def from_value(self, value: Any, ahead: Ahead | None = None) -> Encoded:
        """``value`` as a sample; ``ahead``: what :meth:`prepare_value` made of it."""
        self._refuse_foreign(value)
        if isinstance(value, EncodedFile):
            return self.from_file(value.data, value.ext, ahead)
        storage = self.htype.storage
        if storage == "file":
            return self._file_sample(self._value_to_file_bytes(value), None)
        if self.htype.name == "class_label":
            return self._array_sample(self._labels(value))
        if self.codec is not None:
            prepared = ahead.prepared if ahead is not None and ahead.fits(self) else None
            if isinstance(value, (bytes, bytearray, memoryview)):
                return self._media_file(bytes(value), None, prepared)
            if prepared is not None:
                return self._media_array(None, prepared)
            return self._media_array(self._as_array(value))
        if isinstance(value, (bytes, bytearray, memoryview)) and storage == "media":
            return self._array_sample(self._decode_media(bytes(value)))
        return self._array_sample(self._as_array(value))

    def _refuse_foreign(self, value: Any) -> None:
        """A value that is no sample of this tensor whatever its content, said with what
        to give instead (numpy made None an object array: "unsupported dtype object")."""
        htype = ("an " if self.htype.name[0] in "aeiou" else "a ") + self.htype.name
        if value is None and self.htype.name != "json":  # (JSON's null is a value)
            raise InvalidSampleError(
                f"None is not a sample of {htype} tensor: a row's cell is left empty by leaving the "
                "tensor out of ds.append({...}) (or appending to the other tensors only), and emptied by "
                "tensor.pop(row)")
        if isinstance(value, str) and self.htype.storage != "file" and self.htype.name != "class_label":
            shown = value if len(value) <= 200 else value[:197] + "..."
            raise InvalidSampleError(f"a str is not a sample of {htype} tensor: to store the file at "
                                     f"{shown!r}, give lakefs.read({shown!r}) (a text tensor holds strings)")

    def from_file(self, data: bytes, ext: str | None, ahead: Ahead | None = None) -> Encoded:
        """A file's bytes written as ``<key><ext>`` (mount, ingest, ``lakefs.read``).
        ``ahead``: what :meth:`prepare_file` made of these bytes, used if it still fits."""
        low = (ext or "").lower()
        storage = self.htype.storage
        if storage == "file":
            return self._file_sample(self._validate_file(data), ext)
        if low == ".npy":
            return self.from_value(self._load_npy(data))
        if self.htype.name == "class_label":
            return self._array_sample(self._labels(self._parse_label_text(data)))
        if self.codec is not None:
            return self._media_file(data, ext, ahead.prepared if ahead is not None and ahead.fits(self) else None)
        return self._array_sample(self._decode_media(data))

    def prepare_file(self, data: bytes, ext: str | None) -> Ahead | None:
        """The costly part of :meth:`from_file` (the probe, a transcode: tens of ms per
        photo), which changes nothing and reads no setting a write changes: callers run
        it without the dataset lock, so files arriving in parallel transcode in parallel
        (DESIGN §3), and pass the result to :meth:`from_file`. None when the file needs
        nothing costly first. Raises the refusal :meth:`from_file` would raise."""
        if not self.prepares(ext):
            return None
        key = self.ahead_key()
        return Ahead(self, key, prepare_encoded(data, key[0], exact=key[1], allow_transcode=key[2]))

    def prepares(self, ext: str | None) -> bool:
        """Whether :meth:`prepare_file` has something to do for a file named ``*<ext>``."""
        return (self.codec is not None and self.htype.storage != "file" and self.htype.name != "class_label"
                and (ext or "").lower() != ".npy")

    def passes_through(self, data: bytes) -> bool:
        """Whether ``data`` is a file of this tensor's own format (stored as it is after a
        probe of its header: nothing costly to prepare ahead)."""
        if self.codec is None:
            return False
        source = detect(data)
        return source is not None and source.name == self.codec.name

    def prepare_value(self, value: Any) -> Ahead | None:
        """:meth:`prepare_file` for a value of the Python API (``append``): a file, bytes,
        or an image array encoded to the tensor's compression."""
        self._refuse_foreign(value)
        if isinstance(value, EncodedFile):
            return self.prepare_file(value.data, value.ext)
        if self.codec is None or self.htype.storage == "file" or self.htype.name == "class_label":
            return None
        if isinstance(value, (bytes, bytearray, memoryview)):
            return self.prepare_file(bytes(value), None)
        if self.codec.kind != "image":
            return None  # (audio arrays are cast to the tensor's dtype first, which may change)
        key = self.ahead_key()
        return Ahead(self, key, encode_array(self._image_pixels(self._as_array(value)), key[0], exact=key[1]))

    def ahead_key(self) -> tuple[str, bool, bool]:
        """The settings :meth:`prepare_file` decides by."""
        return self.codec.name, self.exact, self.allow_transcode

    def _media_file(self, data: bytes, ext: str | None, prepared: Prepared | None = None) -> Encoded:
        if prepared is None:
            prepared = prepare_encoded(
                data, self.codec.name, exact=self.exact, allow_transcode=self.allow_transcode
            )
        self._fit_dtype(prepared.info.dtype)
        return Encoded(
            prepared.data,
            tuple(prepared.info.shape),
            self.shown_ext(ext, prepared.transcoded),
            len(prepared.data),
            FLAG_TRANSCODED if prepared.transcoded else 0,
        )

    def _media_array(self, arr: np.ndarray | None, prepared: Prepared | None = None) -> Encoded:
        if prepared is None:
            assert arr is not None
            if self.codec.kind == "image":
                arr = self._image_pixels(arr)
            elif self.meta.dtype is not None:  # audio: samples of the tensor's dtype (int16 WAV)
                arr = self._cast(arr)
            prepared = encode_array(arr, self.codec.name, exact=self.exact)
        self._fit_dtype(prepared.info.dtype)
        return Encoded(prepared.data, tuple(prepared.info.shape), self.canonical_ext, len(prepared.data))

    def _image_pixels(self, arr: np.ndarray) -> np.ndarray:
        """Integer arrays as the pixel depth that holds their values (image formats store
        uint8 or uint16); a bool array as black and white."""
        if arr.dtype == np.bool_:
            return arr.astype(np.uint8) * 255
        if arr.dtype.kind in "iu" and arr.dtype not in (np.uint8, np.uint16) and arr.size:
            top = int(arr.max())
            if int(arr.min()) < 0 or top > 65535:
                raise InvalidSampleError(f"values {arr.min()}..{top} do not fit a {self.codec.name} image")
            return arr.astype(np.uint8 if top < 256 else np.uint16)
        return arr

    def _decode_media(self, data: bytes) -> np.ndarray:
        if self.htype.media_kind is None:  # generic, bbox: arrays come as .npy files
            raise UndecodableError(f"a {self.htype.name} tensor takes arrays as .npy files; "
                                   f"this is not one ({describe(data)})")
        codec = detect(data)
        if codec is None or codec.kind != self.htype.media_kind:
            raise UndecodableError(f"content is not a recognised {self.htype.media_kind} file")
        probe_decodable(codec, data, exact=self.exact)
        check_one_image(codec, data, f"decoding {codec.name} to an array refused")
        arr = decode_values(codec, data, exact=self.exact)
        if self.meta.dtype == "bool" and arr.dtype.kind in "iu":
            # A mask image is its non-zero pixels (a 1-bit PNG decodes to 0/255), as it is
            # in a tensor with an image compression (_holds); arrays are cast by value.
            return arr != 0
        return arr

    def _array_sample(self, arr: np.ndarray) -> Encoded:
        arr = np.ascontiguousarray(self._cast(arr))
        raw = arr.tobytes()
        stored = self.lz4.compress(raw) if self.lz4 else raw
        if self.htype.name == "class_label":
            size = len(self._label_text(arr))
        else:
            size = len(npy_header(arr.dtype, arr.shape)) + len(raw)
        return Encoded(stored, tuple(arr.shape), self.canonical_ext, size)

    def _file_sample(self, data: bytes, ext: str | None) -> Encoded:
        stored = self.lz4.compress(data) if self.lz4 else data
        return Encoded(stored, self.file_shape(len(data)), self.shown_ext(ext, False), len(data))

    def file_shape(self, size: int) -> tuple[int, ...]:
        """The shape of a file sample (``storage == "file"``) of ``size`` bytes."""
        return (size,) if self.htype.name == "bytes" else (1,)

    @property
    def streams_files(self) -> bool:
        """A file's bytes are stored unchanged and nothing about them needs the whole file
        (no text/JSON check, no compression): the mount may store a big one as it arrives."""
        return self.htype.storage == "file" and self.htype.name not in ("json", "text") and self.lz4 is None

    def _value_to_file_bytes(self, value: Any) -> bytes:
        name = self.htype.name
        if name == "json":
            if isinstance(value, (bytes, bytearray, memoryview)):
                return self._validate_file(bytes(value))
            try:  # (NaN and Infinity are no JSON: strict parsers, jq and JavaScript, refuse them)
                text = json.dumps(value, ensure_ascii=False, allow_nan=False, default=_numpy_to_json)
            except (TypeError, ValueError) as e:
                raise InvalidSampleError(f"value is not JSON-serialisable: {e}") from e
            except RecursionError as e:  # (as a file nested too deeply is, in _validate_file)
                raise InvalidSampleError("value is not JSON-serialisable: it is nested too deeply") from e
            return _utf8(text, "a JSON sample")
        if name == "text":
            if isinstance(value, str):
                # A str is the text: a U+FEFF it starts with is one of its characters, so it
                # gets a byte order mark before it (skipped on read, as a file's is).
                return _utf8("\ufeff" + value if value.startswith("\ufeff") else value, "a text sample")
            if isinstance(value, (bytes, bytearray, memoryview)):
                return self._validate_file(bytes(value))
            raise InvalidSampleError(f"a text sample must be str, not {type(value).__name__}")
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, np.ndarray) and value.dtype == np.uint8:
            return value.tobytes()
        raise InvalidSampleError(f"a bytes sample must be bytes, not {type(value).__name__}")

    def _validate_file(self, data: bytes) -> bytes:
        name = self.htype.name
        if name in ("json", "text"):
            try:  # (a byte order mark, as Windows tools write, is not part of the text)
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                raise UndecodableError(f"content is not UTF-8 text ({e.reason} at byte {e.start})") from e
            if name == "json":
                try:
                    json.loads(text, parse_constant=_refuse_json_constant)
                except ValueError as e:
                    raise UndecodableError(f"content is not valid JSON: {e}") from e
                except RecursionError as e:
                    raise UndecodableError("content is JSON nested too deeply to read") from e
        return data

    # --- arrays ------------------------------------------------------------------------

    def _as_array(self, value: Any) -> np.ndarray:
        try:
            arr = np.asarray(value)
        except (ValueError, TypeError) as e:
            raise InvalidSampleError(f"value cannot be made an array: {e}") from e
        if not supported_dtype(arr.dtype):
            raise InvalidSampleError(f"unsupported value of dtype {arr.dtype} ({type(value).__name__}); "
                                     f"a tensor holds {SUPPORTED_DTYPES}")
        return arr

    def _adopt_dtype(self, dtype: str) -> None:
        """Set a dtype not given from the first sample's: the htype's default when that
        holds it (an image tensor the mount made of 8-bit files is uint8, as Deep Lake's),
        else the sample's own (one of 16-bit PNGs: uint16). In this machine's byte order:
        a big-endian .npy made it ">f4"."""
        if self.meta.dtype is None:
            default = self.htype.dtype
            if default is not None and dtype_holds(np.dtype(default), np.dtype(dtype)):
                dtype = default
            self.meta.dtype = str(np.dtype(dtype).newbyteorder("="))

    def _holds(self, dtype: np.dtype) -> bool:
        """Whether the tensor's dtype holds every value of ``dtype`` (see :func:`dtype_holds`)."""
        return dtype_holds(np.dtype(self.meta.dtype), dtype)

    def _fit_dtype(self, dtype: str) -> None:
        """Adopt an encoded sample's dtype, or refuse one the tensor cannot hold: numpy()
        would have to cast it and change values (40000 -> 64 in uint8)."""
        if dtype == self.meta.dtype:
            return  # (every photo of a photo tensor: no numpy dtype to make)
        if self.meta.dtype is None:
            self._adopt_dtype(dtype)
        elif not self._holds(np.dtype(dtype)):
            hint = ("mask values are integers" if self.htype.exact and np.dtype(dtype).kind == "f"
                    else f"create the tensor with dtype={dtype!r}")
            raise InvalidSampleError(
                f"this {self.codec.name} sample decodes to {dtype}, which the tensor's dtype "
                f"{self.meta.dtype} cannot hold exactly; {hint}"
            )

    def _cast(self, arr: np.ndarray) -> np.ndarray:
        """Cast to the tensor's dtype when no value changes; set it from the first sample."""
        if not supported_dtype(arr.dtype):
            raise InvalidSampleError(f"unsupported array dtype {arr.dtype}; a tensor holds {SUPPORTED_DTYPES}")
        if self.meta.dtype is None:
            self._adopt_dtype(str(arr.dtype))
            self.exact = self.exact or self._needs_exact(self.meta.dtype)
            return arr.astype(self.meta.dtype, copy=False)  # (a big-endian array: swapped)
        want = np.dtype(self.meta.dtype)
        if arr.dtype.kind in "iu" and want.kind == "f":  # (numpy calls int64 -> float64 safe)
            return _to_float(arr, want)
        if arr.dtype == want or np.can_cast(arr.dtype, want, "safe"):
            return arr.astype(want, copy=False)
        if arr.dtype.kind in "iub" and want.kind in "iub":
            if arr.size == 0:
                return arr.astype(want)
            lo, hi = (0, 1) if want.kind == "b" else (int(np.iinfo(want).min), int(np.iinfo(want).max))
            if lo <= int(arr.min()) and int(arr.max()) <= hi:
                return arr.astype(want)
            # (not "dtype mismatch": 5 is int64 too, and fits)
            raise InvalidSampleError(f"value {_first_outside(arr, lo, hi)} does not fit {want} ({lo}..{hi})")
        elif arr.dtype.kind in "iuf" and want.kind == "f":
            return _to_float(arr, want)
        raise InvalidSampleError(f"dtype mismatch: the tensor holds {want}, the value is {arr.dtype}")

    def _load_npy(self, data: bytes) -> np.ndarray:
        """Any damage is UndecodableError: numpy's header parser also raises TokenError and
        SyntaxError, and allocates whatever shape the header claims (MemoryError)."""
        fmt = np.lib.format
        buf = io.BytesIO(data)
        try:
            version = fmt.read_magic(buf)
            if version not in ((1, 0), (2, 0)):
                raise ValueError(f"unsupported .npy format version {version}")
            read_header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _, dtype = read_header(buf)
            need = math.prod(shape) * dtype.itemsize
            if len(data) - buf.tell() < need:
                raise ValueError(f"header says {shape} {dtype} ({need} bytes), data has {len(data) - buf.tell()}")
            if len(data) - buf.tell() > need:  # np.save twice into one file: never keep only the first
                raise ValueError(f"{len(data) - buf.tell() - need} bytes follow its array of {shape} {dtype} "
                                 "(one array a file)")
            return np.load(io.BytesIO(data), allow_pickle=False)
        except (SyntaxError, tokenize.TokenError) as e:
            raise UndecodableError("content is not a valid .npy file: its header dict is damaged") from e
        except (ValueError, OSError, EOFError) as e:
            raise UndecodableError(f"content is not a valid .npy file: {e}") from e

    # --- class labels ------------------------------------------------------------------

    def _labels(self, value: Any) -> np.ndarray:
        items = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, np.ndarray):
            items = value.reshape(-1).tolist()
        out = []
        for item in items:
            if isinstance(item, str):
                if item not in self.meta.class_names:
                    self.meta.class_names.append(check_class_name(item, len(self.meta.class_names)))
                out.append(self.meta.class_names.index(item))
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) and 0 <= item <= _MAX_LABEL:
                out.append(int(item))
            else:
                raise InvalidSampleError(
                    f"a class label must be a class name or an integer 0..{_MAX_LABEL}, not {item!r}"
                )
        arr = np.asarray(out, dtype=np.uint32)
        return arr if isinstance(value, (list, tuple, np.ndarray)) else arr.reshape(1)

    def _parse_label_text(self, data: bytes) -> list:
        """The labels of a ``.txt`` file, one a line. Line breaks and blank lines are
        fine; a name with whitespace around it is refused, as the API refuses it as a class
        name (`` cat`` was stored as ``cat``, so the file did not read back as written)."""
        try:  # utf-8-sig: Windows editors start a file with a byte order mark, not a class name
            lines = [ln for ln in data.decode("utf-8-sig").splitlines() if ln.strip()]
        except UnicodeDecodeError as e:
            raise UndecodableError("a class label file must be UTF-8 text") from e
        out: list = []
        for ln in lines:
            if ln != ln.strip():
                raise InvalidSampleError(f"class label {ln!r} has leading or trailing whitespace, which a class "
                                         "name cannot have")
            if ln in self.meta.class_names:
                out.append(ln)
            elif ln.isascii() and ln.isdigit():  # (str.isdigit also takes "١" or "²")
                out.append(int(ln))
            elif ln[:1] in "-+" and ln[1:].isascii() and ln[1:].isdigit():
                raise InvalidSampleError(f"class label {ln!r}: an index is 0 or more (for 'no label', "
                                         "leave the cell empty)")
            else:
                out.append(ln)
        return out

    def _label_text(self, arr: np.ndarray) -> bytes:
        names = self.meta.class_names
        words = [names[i] if i < len(names) else str(i) for i in arr.reshape(-1).tolist()]
        return ("".join(w + "\n" for w in words)).encode("utf-8")

    # --- stored → value ----------------------------------------------------------------

    def raw(self, stored: bytes) -> bytes:
        return self.lz4.decompress(stored) if self.lz4 else stored

    def empty_value(self) -> Any:
        """What an empty cell (a row filled in other tensors only) reads as: the htype's
        empty value, as in Deep Lake, so that code reading captions or metadata needs no
        special case: '' for text, {} for json (a new dict each time), else an empty
        array of the tensor's dtype (bytes: uint8; a dtype not known yet: float64, as an
        empty slice reads)."""
        name = self.htype.name
        if name == "text":
            return ""
        if name == "json":
            return {}
        return np.zeros((0,), dtype="uint8" if name == "bytes" else self.meta.dtype or np.float64)

    def empty_stack(self) -> np.ndarray:
        """What ``numpy()`` of no rows (``t[0:0]``, ``ds[5:5].t``) reads as: a 0-length
        array of the dtype this tensor's samples stack to (text: str, json: object, bytes:
        uint8, else the tensor's dtype). Deep Lake gives ``np.array([])``, float64, for
        every htype; lakefs does so only while the dtype is unknown, as an empty cell."""
        name = self.htype.name
        if name == "text":
            return np.zeros((0,), dtype=str)
        if name == "json":
            return np.empty((0,), dtype=object)
        return self.empty_value()

    def to_numpy(self, stored: bytes, shape: tuple[int, ...]) -> Any:
        name = self.htype.name
        if self.htype.storage == "file":
            data = self.raw(stored)
            if name == "json":
                return json.loads(data)
            if name == "text":
                return data.decode("utf-8-sig")
            return np.frombuffer(data, dtype=np.uint8)
        if self.codec is not None:
            # A one-channel palette sample is a mask's indices; samples stored before
            # masks kept indices have 3 or 4 channels and keep decoding to colour.
            arr = decode_values(self.codec, stored, exact=self.exact and shape[-1:] == (1,))
            # Only casts that keep every value; a sample stored before writes checked the
            # dtype comes back as decoded rather than changed.
            if self.meta.dtype and arr.dtype != np.dtype(self.meta.dtype) and self._holds(arr.dtype):
                arr = arr != 0 if self.meta.dtype == "bool" else arr.astype(self.meta.dtype)
            return arr
        dtype = np.dtype(self.meta.dtype or "uint8")
        return np.frombuffer(self.raw(stored), dtype=dtype).reshape(shape)

    @property
    def file_is_stored(self) -> bool:
        """The file view is the stored bytes themselves (encoded media, raw files)."""
        return (self.htype.storage == "file" or self.codec is not None) and self.lz4 is None

    def to_file(self, stored: bytes, shape: tuple[int, ...]) -> bytes:
        """The sample as the file the mount shows."""
        if self.htype.storage == "file" or self.codec is not None:
            return self.raw(stored)
        arr = self.to_numpy(stored, shape)
        if self.htype.name == "class_label":
            return self._label_text(arr)
        return npy_header(arr.dtype, arr.shape) + arr.tobytes()
