"""Scripts ported from Deep Lake v3 (found by QA): what lakefs lacks, or takes otherwise,
is refused with an error that says what to write instead, never silently ignored."""

from __future__ import annotations

import re

import pytest

import lakefs
from lakefs.errors import ConfigError


@pytest.fixture
def ds(tmp_path):
    with lakefs.empty(tmp_path / "ds") as ds:
        yield ds


@pytest.mark.parametrize(("given", "hint"), [
    ("compression", "sample_compression= (each sample stored as a compressed file"),
    ("is_sequence", "no sequence tensors"),
    ("is_link", "no link tensors: store the file itself (lakefs.read(path))"),
])
def test_a_deep_lake_setting_lakefs_lacks_is_refused_not_kept_as_info(ds, given, hint):
    """``compression="jpeg"`` made an uncompressed image tensor with it in ``info``."""
    refusal = re.escape(f"unknown argument '{given}': lakefs has") + ".*" + re.escape(hint)
    with pytest.raises(ConfigError, match=refusal):
        ds.create_tensor("images", htype="image", **{given: "jpeg" if given == "compression" else True})
    assert "images" not in ds.tensors
    assert ds.create_tensor("images", htype="image", sample_compression="jpeg").sample_compression == "jpeg"
