"""``-o`` options and config settings as they reach libfuse (``parse_options``,
``fuse_kwargs``); the real mounts that check them are in tests/cli/test_cli_mount.py and
tests/reliability/test_security.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lakefs.cli.main import main
from lakefs.config import Config, FuseSettings
from lakefs.errors import ConfigError
from lakefs.fs.binding import LIBFUSE_MAJOR
from lakefs.fs.mount import FUSE_OPTIONS, LAKEFS_OPTIONS, fuse_kwargs, parse_options

README = Path(__file__).resolve().parents[2] / "README.md"


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


@pytest.mark.skipif(LIBFUSE_MAJOR < 3, reason="libfuse 2 takes them")
@pytest.mark.parametrize("text", ["sync_read", "async_read", "max_read=65536", "ro,sync_read"])
def test_options_libfuse_3_does_not_take_are_refused_before_mounting(text):
    """``-o sync_read`` passed the check and libfuse 3 refused it at mount time ("fuse:
    unknown option(s)"); ``async_read`` and ``max_read=N`` were dropped without a word
    (found by QA)."""
    with pytest.raises(ConfigError, match=r"^mount option (sync_read|async_read|max_read) is libfuse 2's: "
                                          r"libfuse 3, which this lakefs uses, "):
        parse_options(text)


def test_every_option_is_in_mount_help_and_the_readme(capsys):
    """``lakefs mount --help`` named six options, README's "Mount options" not all."""
    with pytest.raises(SystemExit):
        main(["mount", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    readme = README.read_text().split("**Mount options**", 1)[1].split("\n\n", 1)[0]
    for option in sorted(FUSE_OPTIONS | LAKEFS_OPTIONS):
        assert re.search(rf"(?<![\w]){option}(?![\w])", shown), option
        assert f"`{option}" in readme, option
