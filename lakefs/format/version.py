"""The on-disk format version (docs/FORMAT.md). Bump on any incompatible change and keep
the golden dataset of every older version readable (tests/format/test_format_golden.py)."""

FORMAT_VERSION = 3  # 2: the manifest's ``dirs`` (directory modes and times); 3: plain files' crc32
READABLE_VERSIONS = frozenset({1, 2, 3})
