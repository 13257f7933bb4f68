"""``lakefs`` with a gate in front of the transcode of a marked file, for the mount tests
(tests/fs/test_transcode_unlocked.py): the real transcode of a file holding the bytes
``lakefs-test-gate`` waits, after creating ``$LAKEFS_TEST_GATE/entered``, until
``$LAKEFS_TEST_GATE/open`` exists, so that a test can hold it in progress.

    python tests/fs/gated_mount.py mount DATASET MOUNTPOINT -o threads -f
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from lakefs.cli.main import main
from lakefs.dataset import samples

MARK = b"lakefs-test-gate"
GATE = Path(os.environ["LAKEFS_TEST_GATE"])
_real = samples.prepare_encoded


def _gated(data, *args, **kw):
    if MARK in data:
        (GATE / "entered").touch()
        deadline = time.monotonic() + 60
        while not (GATE / "open").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return _real(data, *args, **kw)


samples.prepare_encoded = _gated
sys.exit(main())
