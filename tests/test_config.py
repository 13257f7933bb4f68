"""Settings: the example documents the defaults; bad settings are one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakefs.config import Config, load_config
from lakefs.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def test_example_config_is_exactly_the_defaults():
    assert load_config(EXAMPLE) == Config()


def test_missing_path_means_defaults():
    assert load_config(None) == Config()


def test_values_are_parsed(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "chunk_size: 4MB\ncommit_interval: 2\nrefresh_interval: 0\nallow_transcode: false\n"
        "storage: {cache_size: '1 GiB', options: {anon: true}}\n"
        "tensors: {masks: {htype: binary_mask, sample_compression: png}}\n"
        "fuse: {attr_timeout: 30, xattr: false}\nlogging: {level: debug}\n"
    )
    c = load_config(cfg)
    assert c.chunk_size == 4 << 20 and c.commit_interval == 2 and c.refresh_interval == 0
    assert c.allow_transcode is False
    assert c.cache_size == 1 << 30 and c.storage_options == {"anon": True}
    assert c.tensors["masks"]["htype"] == "binary_mask"
    assert c.fuse.attr_timeout == 30 and c.fuse.xattr is False and c.log_level == "DEBUG"


@pytest.mark.parametrize(
    "text, words",
    [
        ("frobnicate: 1\n", "unknown setting 'frobnicate'"),
        ("commit_interval: soon\n", "commit_interval"),
        ("commit_interval: 0\n", "commit_interval"),
        ("refresh_interval: -1\n", "refresh_interval"),
        ("refresh_interval: never\n", "refresh_interval"),
        ("chunk_size: infGB\n", "chunk_size"),
        ("chunk_size: '-5MB'\n", "chunk_size"),
        ("storage: {cache_size: 1e400}\n", "cache_size"),
        ("logging: {file: 123}\n", "logging.file"),
        ("log_level: bogus\n", "unknown setting 'log_level'"),
        ("storage_options: [1, 2]\n", "unknown setting 'storage_options'"),
        ("fuse: {entry_timeout: -5}\n", "fuse.entry_timeout"),
        ("tensors: {masks: {htype: nonsense}}\n", "tensors.masks: unknown htype"),
        ("tensors: {masks: {sample_compression: zip}}\n", "tensors.masks: unknown compression"),
        ("tensors: {masks: {chunk_size: lots}}\n", "tensors.masks.chunk_size"),
        ("allow_transcode: 3\n", "allow_transcode"),
        ("chunk_size: lots\n", "chunk_size"),
        ("fuse: {attr_timeout: x}\n", "fuse.attr_timeout"),
        ("fuse: {colour: red}\n", "fuse.colour"),
        ("tensors: {images: {htype: image, speed: 3}}\n", "tensors.images.speed"),
        ("logging: {level: LOUD}\n", "logging.level"),
        # Refused by create_tensor at the first copy, so at start too:
        ("chunk_size: 1KB\n", "chunk_size must be at least 4096 bytes"),
        ("tensors: {masks: {chunk_size: 100}}\n", "tensors.masks: chunk_size 100 is too small"),
        ("chunk_size: 100TB\n", "chunk_size must be at most 256 MiB (268435456 bytes), got '100TB'"),
        ("chunk_size: 257MB\n", "chunk_size must be at most 256 MiB"),
        ("tensors: {masks: {chunk_size: 1TB}}\n", "tensors.masks: chunk_size 1099511627776 is too large"),
        ("tensors: {masks: {dtype: nope}}\n", "tensors.masks: unknown dtype 'nope'"),
        ("tensors: {labels: {htype: class_label, class_names: cat}}\n", "tensors.labels: class_names must be a list"),
        ("tensors: {labels: {htype: class_label, dtype: float32}}\n", "tensors.labels: a class_label tensor"),
        ("tensors: {masks: {htype: image, sample_compression: wav}}\n", "cannot use sample_compression 'wav'"),
        ("tensors: {x: {sample_compression: png, chunk_compression: lz4}}\n", "not both"),
        ("- a\n- b\n", "mapping"),
        ("key: [unclosed\n", "not valid YAML"),
        # inf and nan are refused as by -o (.inf mounted and never committed, .nan meant never):
        ("commit_interval: .inf\n", "config: commit_interval needs a number of seconds > 0, got inf "
                                     "(inf and nan are not durations)"),
        ("refresh_interval: .nan\n", "config: refresh_interval needs a number of seconds >= 0, got nan"),
        ("refresh_interval: .inf\n", "config: refresh_interval needs a number of seconds >= 0, got inf"),
        ("fuse: {attr_timeout: .nan}\n", "config: fuse.attr_timeout needs a number of seconds >= 0, got nan"),
        ("fuse: {entry_timeout: .inf}\n", "config: fuse.entry_timeout needs a number of seconds >= 0, got inf"),
        ("commit_interval: '-1e3'\n", "config: commit_interval needs a number of seconds > 0, got '-1e3'"),
        ("commit_interval: true\n", "config: commit_interval needs a number of seconds > 0, got True"),
        # A wrong type is named, not "unhashable type: 'dict'":
        ("tensors: {x: {sample_compression: {a: 1}}}\n", "config: tensors.x.sample_compression must be a name, "
                                                         "got {'a': 1}"),
        ("tensors: {x: {htype: [image]}}\n", "config: tensors.x.htype must be a name, got ['image']"),
        # Names that could never match a tensor:
        ("tensors: {'': {htype: text}}\n", "config: tensors: invalid tensor name '' (empty)"),
        ("tensors: {/abs/x: {htype: text}}\n", "config: tensors: '/abs/x' never matches a tensor: write its "
                                                "path in the dataset, 'abs/x'"),
        ("tensors: {x/: {htype: text}}\n", "'x/' never matches a tensor"),
        ("tensors: {a//b: {htype: text}}\n", "config: tensors: tensor name 'a//b'"),
        # PyYAML keeps the last of a key given twice; it is refused, named:
        ("commit_interval: 1\nchunk_size: 8MB\ncommit_interval: 2\n",
         "'commit_interval' is given twice (lines 1 and 3)"),
        ("fuse: {attr_timeout: 1, attr_timeout: 2}\n", "'attr_timeout' is given twice (line 1)"),
        ("tensors:\n  masks: {htype: binary_mask}\n  masks: {htype: image}\n",
         "'masks' is given twice (lines 2 and 3)"),
        ("x: !!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    ],
)
def test_bad_settings_are_one_clear_error(tmp_path, text, words):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_durations_in_exponent_form(tmp_path):
    """YAML reads ``1e-9`` (no dot) as a string: it was "commit_interval must be float,
    got '1e-9'" (found by QA)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("commit_interval: 1e-9\nrefresh_interval: '2.5'\nfuse: {attr_timeout: 1e3, entry_timeout: 1.5e1}\n")
    c = load_config(cfg)
    assert (c.commit_interval, c.refresh_interval, c.fuse.attr_timeout, c.fuse.entry_timeout) == (1e-9, 2.5, 1e3, 15)
    assert all(type(v) is float for v in (c.commit_interval, c.refresh_interval, c.fuse.attr_timeout))


def test_yaml_merge_keys_still_override(tmp_path):
    """A ``<<:`` merge and a key overriding it are not a key given twice."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tensors:\n  masks: &m {htype: binary_mask, sample_compression: png}\n"
                   "  depth:\n    <<: *m\n    htype: image\n")
    assert load_config(cfg).tensors["depth"] == {"htype": "image", "sample_compression": "png"}


def test_unreadable_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_a_config_that_is_not_utf8_is_one_clear_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(b"chunk_size: 8MB\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(cfg)


def test_path_settings_expand_the_home_folder(tmp_path, monkeypatch):
    """``logging.file: ~/x.log`` made a folder named ``~`` in the working directory, while
    ``storage.cache_dir: ~/...`` was expanded (found by QA): every path setting is."""
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("logging: {file: ~/x.log}\nstorage: {cache_dir: ~/cache}\n")
    c = load_config(cfg)
    assert (c.log_file, c.cache_dir) == (str(tmp_path / "x.log"), str(tmp_path / "cache"))


def test_negative_timeout_is_a_fuse_setting(tmp_path):
    """README names negative_timeout among the durations of the config file, which
    answered "unknown setting fuse.negative_timeout" (found by QA)."""
    from lakefs.fs.mount import fuse_kwargs, parse_options

    cfg = tmp_path / "c.yaml"
    cfg.write_text("fuse: {negative_timeout: 1}\n")
    c = load_config(cfg)
    assert c.fuse.negative_timeout == 1.0
    assert fuse_kwargs(c, parse_options(""), "/d")[0]["negative_timeout"] == 1.0
    assert fuse_kwargs(c, parse_options("negative_timeout=3"), "/d")[0]["negative_timeout"] == 3.0  # -o wins
    assert fuse_kwargs(Config(), parse_options(""), "/d")[0]["negative_timeout"] == 0  # libfuse's default
    cfg.write_text("fuse: {negative_timeout: .inf}\n")
    with pytest.raises(ConfigError, match="fuse.negative_timeout needs a number of seconds >= 0"):
        load_config(cfg)


@pytest.mark.parametrize("text, message", [
    ("fuse: {threads: auto}\n", "config: fuse.threads must be true, false or null (auto), got 'auto'"),
    ("fuse: {xattr: 1}\n", "config: fuse.xattr must be true or false, got 1"),
    ("fuse: {xattr: null}\n", "config: fuse.xattr must be true or false, got null"),
    ("allow_transcode: 'no'\n", "config: allow_transcode must be true or false, got 'no'"),
    ("logging: {file: 123}\n", "config: logging.file must be a path or null, got 123"),
    ("logging: {level: null}\n", "config: logging.level must be DEBUG, INFO, WARNING or ERROR, got null"),
    ("logging: {level: loud}\n", "config: logging.level must be DEBUG, INFO, WARNING or ERROR, got 'loud'"),
    ("storage:\n", "config: storage is empty: give it settings (options, cache_dir, cache_size) or leave it out"),
    ("storage: [1]\n", "config: storage must be a mapping of settings (options, cache_dir, cache_size), got [1]"),
    ("storage: {cache_sise: 1GB}\n", "config: unknown setting storage.cache_sise"),
    ("logging:\n", "config: logging is empty: give it settings (level, file) or leave it out"),
    ("logging: {colour: red}\n", "config: unknown setting logging.colour"),
    ("fuse:\n", "config: fuse is empty: give it settings (entry_timeout, attr_timeout, negative_timeout, "
                "auto_cache, xattr, threads, allow_other, snapshot_opens) or leave it out"),
    ("tensors:\n", "config: tensors is empty: give it tensor names with their settings or leave it out"),
])
def test_setting_messages_say_what_is_wanted_and_what_was_written(tmp_path, text, message):
    """``threads: auto`` said "must be bool" (null is valid too), ``level: null`` "got
    'NONE'", an empty ``storage:`` "storage takes 'options', 'cache_dir' and 'cache_size'"
    (found by QA)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(cfg)
    assert str(e.value) == message
