"""Writer processes the crash suite SIGKILLs (run as scripts, never imported by pytest).

    python crash_writer.py api DATASET LOG SEED PHOTO...
        Python API writer: appends, updates and pops samples in three tensors (bytes
        uncompressed, bytes lz4 chunk-compressed, jpeg images), with small chunks so
        chunks seal and tile mid-run, and commits (``ds.flush()``) every few operations.
        Before each flush it logs ``try <state>`` and after flush returns ``done <state>``
        (each line fsync'd), so the log names exactly what was durable at any kill.

    python crash_writer.py files DIR LOG SEED
        Writes self-describing files into DIR (a tensor directory of a mount): every
        third file is fsync'd before close, then logged as ``synced NAME``.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reliability_helpers import content, parse_content  # noqa: E402

TENSORS = ("blobs", "packed", "images")
CHUNK = 64 << 10


def log_line(fd: int, kind: str, state: dict) -> None:
    os.write(fd, (kind + " " + json.dumps(state, sort_keys=True) + "\n").encode())
    os.fsync(fd)


def current_state(ds, photo_index: dict[bytes, int]) -> dict[str, int]:
    """``"tensor/key"`` → version of every sample now in the dataset."""
    state = {}
    for name in TENSORS:
        for s in ds[name].iter_samples():
            data = s.tobytes()
            if name == "images":
                state[f"{name}/{s.key}"] = photo_index[data]
            else:
                state[f"{name}/{s.key}"] = parse_content(data)[1]
    return state


def api_writer(path: str, log_path: str, seed: int, photos: list[str]) -> None:
    import lakefs

    rng = random.Random(seed)
    photo_bytes = [Path(p).read_bytes() for p in photos]
    photo_index = {b: i for i, b in enumerate(photo_bytes)}
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    ds = lakefs.dataset(path)
    if "blobs" not in ds.tensors:
        ds.create_tensor("blobs", htype="bytes", chunk_size=CHUNK)
        ds.create_tensor("packed", htype="bytes", chunk_compression="lz4", chunk_size=CHUNK)
        ds.create_tensor("images", htype="image", sample_compression="jpeg", chunk_size=CHUNK)
        log_line(fd, "try", {})
        ds.flush()
    state = current_state(ds, photo_index)
    log_line(fd, "done", state)
    n = 0
    while True:
        n += 1
        for _ in range(rng.randint(1, 8)):
            name = rng.choice(TENSORS)
            mine = [k for k in state if k.startswith(name + "/")]
            op = rng.random()
            if op < 0.15 and mine:  # delete
                k = rng.choice(mine)
                ds[name].pop(k.split("/", 1)[1])
                del state[k]
                continue
            if op < 0.45 and mine:  # update in place
                k = rng.choice(mine)
                version = state[k] + 1
            else:  # a new row
                k = f"{name}/s{seed}-{n}-{rng.randrange(10**6)}"
                version = 0
            key = k.split("/", 1)[1]
            if name == "images":
                version %= len(photo_bytes)
                ds[name].write_file(key + ".jpg", photo_bytes[version])
            else:
                size = rng.choice([100, 3000, 40_000, 150_000])  # 150k > 2 chunks: tiled
                ds[name][key] = content(k, version, size)
            state[k] = version
        log_line(fd, "try", state)
        ds.flush()
        log_line(fd, "done", state)


def files_writer(directory: str, log_path: str, seed: int) -> None:
    rng = random.Random(seed)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    i = 0
    while True:
        i += 1
        name = f"w{seed}-{i}.bin"
        data = content(name, 0, rng.choice([200, 5000, 70_000, 300_000]))
        out = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(out, view[: 128 << 10]) :]
            synced = i % 3 == 0
            if synced:
                os.fsync(out)
        finally:
            os.close(out)
        if synced:
            os.write(fd, f"synced {name}\n".encode())
            os.fsync(fd)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "api":
        api_writer(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    elif mode == "files":
        files_writer(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode}")
