"""Report-folder handling: refuse to overwrite an existing folder unless forced."""

from __future__ import annotations

from pathlib import Path

__all__ = ["check_out_dir", "make_out_dir"]


def check_out_dir(out: str | Path | None, force: bool) -> Path | None:
    """Validate ``out`` before any work; nothing is created here.

    Raises:
      focalkit.InvalidArgumentError: ``out`` exists and ``force`` is False, or ``out`` exists and is not a folder.
    """
    import focalkit

    if out is None:
        return None
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise focalkit.InvalidArgumentError(f"--out: expected a folder path, got an existing file {str(path)!r}")
    if path.exists() and not force:
        raise focalkit.InvalidArgumentError(
            f"--out: expected a folder that does not exist yet (or pass --force to write into it), got existing "
            f"{str(path)!r}")
    return path


def make_out_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
