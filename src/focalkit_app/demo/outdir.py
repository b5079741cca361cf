"""Report-folder handling: refuse to overwrite an existing folder unless forced; check it can be written."""

from __future__ import annotations

from pathlib import Path

from ..cli.checks import check_out_dir as _check_out_dir

__all__ = ["check_out_dir", "make_out_dir"]


def check_out_dir(out: str | Path | None, force: bool) -> Path | None:
    """Validate ``out`` before any work; nothing is left behind here.

    The folder must not exist unless ``force``; missing folders are created, a probe file is written and removed,
    and the created folders are removed again (see :func:`focalkit_app.cli.checks.check_out_dir`).

    Raises:
      focalkit.InvalidArgumentError: ``out`` exists and ``force`` is False, ``out`` exists and is not a folder, lies
        under a file, or cannot be created or written.
    """
    return _check_out_dir(out, force=force, must_be_new=True, option="--out")


def make_out_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
