"""Back doors for the storage conformance tests: read and write raw objects without the
store under test, so it cannot fool itself (zarr's testing/store.py idea).

A module of its own, not conftest: ``from conftest import`` is ambiguous across test folders.
"""

from __future__ import annotations

import os

from s3server import BUCKET, boto_client

# --- back doors: read and write raw objects without the store under test ----------------


class LocalBackdoor:
    def __init__(self, root: str) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        path = os.path.join(self.root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)

    def get(self, key: str) -> bytes | None:
        try:
            with open(os.path.join(self.root, key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def keys(self) -> set[str]:
        out = set()
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                out.add(os.path.relpath(os.path.join(dirpath, name), self.root))
        return out


class DictBackdoor:
    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    def keys(self) -> set[str]:
        return set(self.objects)


class S3Backdoor:
    """Raw objects through boto3, independent of s3fs and FsspecStorage."""

    def __init__(self, endpoint: str, prefix: str) -> None:
        self.client = boto_client(endpoint)
        self.prefix = prefix

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=f"{self.prefix}/{key}", Body=data)

    def get(self, key: str) -> bytes | None:
        try:
            r = self.client.get_object(Bucket=BUCKET, Key=f"{self.prefix}/{key}")
        except self.client.exceptions.NoSuchKey:
            return None
        return r["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=BUCKET, Key=f"{self.prefix}/{key}")

    def keys(self) -> set[str]:
        out = set()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"{self.prefix}/"
        )
        for page in pages:
            for obj in page.get("Contents", []):
                out.add(obj["Key"][len(self.prefix) + 1 :])
        return out


class FsspecMemoryBackdoor:
    def __init__(self, root: str) -> None:
        import fsspec

        self.fs = fsspec.filesystem("memory")
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(f"{self.root}/{key}", data)

    def get(self, key: str) -> bytes | None:
        try:
            return self.fs.cat_file(f"{self.root}/{key}")
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self.fs.rm_file(f"{self.root}/{key}")

    def keys(self) -> set[str]:
        cut = len(self.fs._strip_protocol(self.root)) + 1
        return {p[cut:] for p in self.fs.find(self.root)}
