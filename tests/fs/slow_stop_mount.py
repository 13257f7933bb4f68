"""``lakefs`` whose mount holds its final commit at a gate, for the signal tests
(tests/fs/test_mount.py): the first ``DatasetFS.shutdown`` (the final commit, as the
mount stops: in libfuse's teardown) creates ``$LAKEFS_TEST_GATE/entered``, then waits
until ``$LAKEFS_TEST_GATE/open`` exists, so that a test can signal the mount during it.
``LAKEFS_TEST_GATE_CALL=2``: the second one instead (after libfuse returned).

    python tests/fs/slow_stop_mount.py mount DATASET MOUNTPOINT -f
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from lakefs.cli.main import main
from lakefs.fs.tree import DatasetFS

GATE = Path(os.environ["LAKEFS_TEST_GATE"])
_real = DatasetFS.shutdown
CALL = int(os.environ.get("LAKEFS_TEST_GATE_CALL", "1"))
_calls = []


def _gated(self):
    _calls.append(True)
    if len(_calls) == CALL:
        (GATE / "entered").touch()
        deadline = time.monotonic() + 60
        while not (GATE / "open").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return _real(self)


DatasetFS.shutdown = _gated
sys.exit(main())
