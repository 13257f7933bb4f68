"""``lakefs`` with mount options its option parser never sees: those of
``$LAKEFS_TEST_OPTIONS`` (``max_write=1``) are added as they are to those of ``-o``, so
that a test can have libfuse itself fail where the parser would refuse the option first
(tests/cli/test_cli_mount.py). A background mount re-executes ``python -m lakefs``: a
test has a ``sitecustomize`` call :func:`install` there.

    python tests/fs/unchecked_options_mount.py mount DATASET MOUNTPOINT -f
"""

from __future__ import annotations

import os
import sys

from lakefs.fs import mount

_real = mount.parse_options


def _unchecked(text):
    options = _real(text)
    for item in os.environ["LAKEFS_TEST_OPTIONS"].split(","):
        key, sep, value = item.partition("=")
        options[key] = (int(value) if value.isdigit() else value) if sep else True
    return options


def install() -> None:
    mount.parse_options = _unchecked


if __name__ == "__main__":
    from lakefs.cli.main import main

    install()
    sys.exit(main())
