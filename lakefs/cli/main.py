"""The ``lakefs`` command line: one subcommand per module, errors caught at this edge.

Each subcommand module exposes ``register(subparsers)`` which adds its parser and sets
``func(args) -> int``. A lakefs error (or a bad argument) is one line on stderr and a
non-zero exit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

from lakefs.config import load_config
from lakefs.errors import ConfigError, LakeFSError, message_of

# Modules under lakefs.cli, each with ``register(subparsers)``; imported lazily per run
# so ``lakefs info`` never loads the FUSE binding.
COMMAND_MODULES = ("mount", "tools", "transfer", "fsck")

EXIT_ERROR = 1
EXIT_USAGE = 2


EXIT_TERMINATED = 128 + signal.SIGTERM  # what a shell reports for a process SIGTERM ended


class Terminated(KeyboardInterrupt):
    """SIGTERM received while :func:`sigterm_interrupts` was in effect."""


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While a long command runs, SIGTERM stops it as Ctrl-C does: the command unwinds and
    commits what it wrote, instead of dying at once with its work uncommitted. A second
    SIGTERM is ignored so that the final commit can finish (SIGKILL still ends it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Parser(argparse.ArgumentParser):
    """argparse's parser with its errors in one line, as every other error: it printed its
    usage block first (a dozen lines for ingest), in which the error was lost. Its
    subcommands' parsers are of this class too (add_subparsers makes its own type)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lakefs", description="A dataset store you can mount as a filesystem.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logging")
    parser.add_argument("--version", action="version", version="lakefs " + _version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"lakefs.cli.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"lakefs.cli.{name}":
                raise
            continue
        module.register(sub)
    _add_common_options(sub)
    return parser


def _add_common_options(sub: argparse._SubParsersAction) -> None:
    """Give every command (nested ones too) ``--config FILE``: storage options for
    object-store datasets, transcode policy, ... (see config.example.yaml); and
    ``--debug``, also after the command (``lakefs ls --debug x`` was a usage error). Its
    default is SUPPRESS, so that a command's parser leaves a ``--debug`` given before
    the command as it is."""
    for parser in sub.choices.values():
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="show tracebacks and debug logging")
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for n in nested:
                _add_common_options(n)
        else:
            if not any("--config" in a.option_strings for a in parser._actions):
                parser.add_argument("--config", help="YAML settings (see config.example.yaml)")
            parser.set_defaults(command_parser=parser)  # (says an unknown argument is this command's)


def _version() -> str:
    from lakefs import __version__

    return __version__


# Path arguments an empty string must not stand for: (attribute, what it is, what to give).
_PATH_ARGUMENTS = (
    ("dataset", "the dataset", "name one (. for the current folder)"),
    ("path", "the path to list", "name a dataset or a path in one (. for the current folder)"),
    ("src", "the source folder", "name a folder (. for the current one)"),
    ("mountpoint", "the mountpoint", "name a folder (. for the current one)"),
    ("config", "--config", "name a YAML file"),
    ("log_file", "--log-file", "name a file"),
)


def _refuse_empty_paths(args: argparse.Namespace) -> None:
    """An empty path argument is refused, not taken for a folder: `lakefs ls ''` listed
    /, `lakefs mount DS ''` mounted over the working directory, `lakefs create ''` and
    `lakefs ingest SRC ''` made a dataset in it, `lakefs tensor delete '' x` deleted a
    tensor of the dataset there. (An empty tensor name is the dataset's to refuse; the
    export destination, export's.)"""
    for attr, what, hint in _PATH_ARGUMENTS:
        if getattr(args, attr, None) == "":
            raise ConfigError(f"{what} is an empty path; {hint}")


def _refuse_mountpoints(args: argparse.Namespace) -> None:
    """A lakefs mountpoint where a command wants a dataset (``lakefs info ./mnt``) is named
    as such, live or dead (see storage/mounts.py); ``mount``'s dataset too, not its mountpoint
    (``lakefs mount ./mnt ./other`` created a dataset inside the one mounted at ./mnt:
    its lakefs.json, HEAD, manifests/ and locks/ became plain files there)."""
    from lakefs.storage.mounts import refuse_a_mountpoint  # noqa: PLC0415

    path = _dataset_of(args)
    command = f"tensor {args.tensor_command}" if args.command == "tensor" else args.command
    if path is not None:
        refuse_a_mountpoint(path, command)


def _dataset_of(args: argparse.Namespace) -> str | None:
    """The dataset (or, for ``ls``, the path in one) the command works on, if any."""
    path = args.path if args.command == "ls" else getattr(args, "dataset", None)
    return path if isinstance(path, str) else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.DEBUG if args.debug else logging.WARNING,
            format="lakefs: %(levelname)s: %(message)s",
        )
    from lakefs.dataset.dataset import set_commit_at_exit

    set_commit_at_exit(False)  # (each command commits what it means to, and says so)
    try:
        _refuse_empty_paths(args)
        args.settings = load_config(args.config)
        if _dataset_of(args) is not None:
            args.settings = args.settings.for_dataset(_dataset_of(args))
        _refuse_mountpoints(args)
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader went away (`lakefs ls | head`): stop quietly. stdout is pointed at
        # /dev/null so the interpreter's final flush cannot fail again (Python docs,
        # "Note on SIGPIPE" in the signal module).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_ERROR
    except Terminated:
        print("lakefs: terminated (SIGTERM); what was written before is committed", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("lakefs: interrupted", file=sys.stderr)
        return 130
    except (LakeFSError, OSError) as e:
        if args.debug:
            raise
        print(f"lakefs: error: {message_of(e)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
