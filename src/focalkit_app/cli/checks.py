"""Input checks shared by every ``focalkit`` sub-command: one-line usage errors, typed option values, the output folder.

Every bad input ends in one line on stderr, ``focalkit <command>: error: NAME: expected ..., got ...`` (the library's
message style), and exit status 2, before any long computation:

- :class:`OneLineParser` turns argparse's usage errors (unknown option, missing value, invalid choice, bad number)
  into that one line (argparse would print the usage block first);
- the ``*_type`` factories are argparse ``type=`` functions with such messages (``--seeds: expected an integer in
  [1, 100], got 'x'``);
- :func:`check_out_dir` checks, before any work, that the output folder can be created and written: it creates the
  missing folders, writes and removes a probe file, and removes again the folders it created, so that a failed or
  interrupted run leaves nothing behind and the real writing at the end of the run cannot fail on the location.

Only the standard library and :mod:`focalkit.errors` are imported here.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import uuid
from pathlib import Path

from focalkit.errors import InvalidArgumentError, argument_error

__all__ = ["OneLineParser", "one_line", "int_type", "float_type", "available_cpus", "check_out_dir"]


def one_line(text: object) -> str:
    """``text`` on one line (a message that third-party code may have spread over several lines)."""
    return " ".join(str(text).split())


_TYPE_NAMES = {"int": "an integer", "float": "a number"}


def _normalise(message: str, prog: str) -> str:
    """argparse's usage-error messages rewritten as ``NAME: expected ..., got ...``."""
    m = re.fullmatch(r"argument (\S+): invalid choice: (.*) \(choose from (.*)\)", message, re.S)
    if m:
        return f"{m[1]}: expected one of {m[3]}, got {m[2]}"
    m = re.fullmatch(r"argument (\S+): invalid (\w+) value: (.*)", message, re.S)
    if m:
        return f"{m[1]}: expected {_TYPE_NAMES.get(m[2], 'a valid ' + m[2])}, got {m[3]}"
    m = re.fullmatch(r"argument (\S+): expected one argument", message)
    if m:
        return f"{m[1]}: expected one value, got none"
    m = re.fullmatch(r"argument (\S+): expected at least one argument", message)
    if m:
        return f"{m[1]}: expected one or more values, got none"
    m = re.fullmatch(r"argument (\S+): ignored explicit argument (.*)", message)
    if m:
        return f"{m[1]}: expected no value (a flag), got {m[2]}"
    m = re.fullmatch(r"the following arguments are required: (.*)", message)
    if m:
        return f"{m[1]}: expected a value (required), got nothing"
    m = re.fullmatch(r"unrecognized arguments: (.*)", message)
    if m:
        return f"arguments: expected the options listed by '{prog} --help', got unrecognized {m[1]}"
    m = re.fullmatch(r"ambiguous option: (\S+) could match (.*)", message)
    if m:
        return f"{m[1]}: expected one option name, got an abbreviation of several: {m[2]}"
    m = re.fullmatch(r"argument (\S+): (.*)", message, re.S)
    if m:
        return f"{m[1]}: {m[2]}"
    return message


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line, ``PROG: error: NAME: expected ..., got ...``, and exit
    status 2 (argparse's status for usage errors). Sub-parsers created from it are of the same class."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {one_line(_normalise(message, self.prog))}\n")


def int_type(low: int | None = None, high=None, *, note: str = ""):
    """argparse ``type=`` for integers in [low, high] (either bound may be None); ``high`` may be a callable; ``note``
    is appended to the expectation (e.g. what the bound is)."""

    def parse(text: str) -> int:
        hi = high() if callable(high) else high
        if low is not None and hi is not None:
            expected = f"an integer in [{low}, {hi}]"
        elif low is not None:
            expected = f"an integer >= {low}"
        elif hi is not None:
            expected = f"an integer <= {hi}"
        else:
            expected = "an integer"
        expected += f" {note}" if note else ""
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if (low is not None and value < low) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    parse.__name__ = "integer"
    return parse


def float_type(low: float | None = None, *, low_open: bool = False, high: float | None = None):
    """argparse ``type=`` for finite numbers >= ``low`` (> ``low`` when ``low_open``) and <= ``high``."""
    parts = ["a finite number"]
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    expected = " ".join(parts[:2]) + (f" and {parts[2]}" if len(parts) > 2 else "")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def available_cpus() -> int:
    """CPUs this process may run on (the affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _reason(exc: OSError) -> str:
    return exc.strerror or one_line(exc)


def check_out_dir(out: str | os.PathLike | None, *, force: bool = True, must_be_new: bool = False,
                  option: str = "--out") -> Path | None:
    """Check, before any work, that ``out`` can be used as the output folder; returns it as a Path (None -> None).

    ``must_be_new``: an existing folder is refused unless ``force``. Missing folders are created, a probe file is
    written and removed in ``out``, and the folders created here are removed again: nothing is left behind, and
    the same folder can be created and written at the end of the run.

    Raises:
      focalkit.InvalidArgumentError: ``out`` is empty, is an existing file, lies under a file, exists (with
        ``must_be_new`` and not ``force``), or cannot be created or written (permissions, read-only file system...).
    """
    if out is None:
        return None
    text = os.fspath(out)
    if not text.strip():
        raise argument_error(option, "a folder path", repr(text))
    path = Path(text)
    try:
        if path.exists() and not path.is_dir():
            raise argument_error(option, "a folder path", f"an existing file {text!r}")
        if path.is_dir() and must_be_new and not force:
            raise argument_error(option, "a folder that does not exist yet (or pass --force to write into it)",
                                 f"existing {text!r}")
        # the missing folders, outermost last; their nearest existing ancestor must be a folder
        missing = []
        probe = path
        while not probe.exists():
            missing.append(probe)
            if probe.parent == probe:
                break
            probe = probe.parent
        if missing and probe.exists() and not probe.is_dir():
            raise argument_error(option, "a folder path whose parents are folders",
                                 f"{text!r}, under the file {str(probe)!r}")
    except (OSError, ValueError) as exc:  # e.g. a name too long, an embedded NUL byte
        if isinstance(exc, InvalidArgumentError):
            raise
        reason = _reason(exc) if isinstance(exc, OSError) else one_line(exc)
        raise argument_error(option, "a usable folder path", f"{text!r} ({reason})") from None
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        probe_file = path / f".focalkit-write-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with open(probe_file, "wb") as fh:
            fh.write(b"probe")
        probe_file.unlink()
    except OSError as exc:
        raise argument_error(option, "a folder that can be created and written", f"{text!r} ({_reason(exc)})") from None
    finally:
        for folder in reversed(created):
            try:
                folder.rmdir()
            except OSError:
                pass
    return path

