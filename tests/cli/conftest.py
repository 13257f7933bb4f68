"""The CLI tests share the tools tests' fixtures (``cli``, ``jpeg_dir``, ``png_dir``)."""

from tools.conftest import Result, cli, jpeg_dir, png_dir  # noqa: F401
