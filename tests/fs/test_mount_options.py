"""``-o`` options and config settings as they reach libfuse (``parse_options``,
``fuse_kwargs``); the real mounts that check them are in tests/cli/test_cli_mount.py and
tests/reliability/test_security.py."""

from __future__ import annotations

import pytest

from lakefs.config import Config, FuseSettings
from lakefs.errors import ConfigError
from lakefs.fs.mount import fuse_kwargs, parse_options


@pytest.mark.parametrize("text, kept", [
    ("ro,rw", {"rw": True}),
    ("rw,ro", {"ro": True}),
    ("ro,rw,ro", {"ro": True}),
    ("ro,attr_timeout=1,rw", {"attr_timeout": 1.0, "rw": True}),
])
def test_the_last_of_ro_and_rw_is_the_only_one_kept(text, kept):
    options = parse_options(text)
    assert options == kept
    kw, _ = fuse_kwargs(Config(), options, "/d")
    assert ("ro" in kw, "rw" in kw) == ("ro" in kept, "rw" in kept)  # the kernel is told the same


@pytest.mark.parametrize("config, text", [
    (Config(), "allow_other"),
    (Config(), "allow_root"),
    (Config(fuse=FuseSettings(allow_other=True)), ""),
])
def test_sharing_a_mount_has_the_kernel_check_permissions(config, text):
    """Files show as the mounting user's, 644/755: without default_permissions the
    kernel did not check those modes, and any user could delete every file."""
    kw, _ = fuse_kwargs(config, parse_options(text), "/d")
    assert kw["default_permissions"] is True


def test_a_private_mount_is_left_as_it_was():
    kw, _ = fuse_kwargs(Config(), parse_options(""), "/d")
    assert "default_permissions" not in kw and "allow_other" not in kw
    assert kw["fsname"] == "lakefs:/d" and kw["subtype"] == "lakefs"


@pytest.mark.parametrize("text", ["fsname=x", "subtype=x", "ro,fsname=lakefs:/d"])
def test_fsname_and_subtype_are_lakefs_own(text):
    with pytest.raises(ConfigError, match="lakefs sets it itself"):
        parse_options(text)


@pytest.mark.parametrize("value, ok", [("4095", False), ("4096", True), ("1048576", True), ("1048577", False)])
def test_max_write_bounds(value, ok):
    if ok:
        assert parse_options(f"max_write={value}") == {"max_write": int(value)}
    else:
        with pytest.raises(ConfigError, match="from 4096 to 1048576"):
            parse_options(f"max_write={value}")


@pytest.mark.parametrize("text", ["commit_interval=inf", "refresh_interval=nan", "attr_timeout=inf",
                                  "entry_timeout=-inf", "negative_timeout=NaN"])
def test_inf_and_nan_are_not_durations(text):
    with pytest.raises(ConfigError, match=r"\(inf and nan are not durations\)$"):
        parse_options(text)
