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


def test_unreadable_config_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def test_a_config_that_is_not_utf8_is_one_clear_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(b"chunk_size: 8MB\n# caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(cfg)
