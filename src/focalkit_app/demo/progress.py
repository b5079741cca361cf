"""Progress bar (tqdm on stderr) or a silent stand-in."""

from __future__ import annotations

__all__ = ["progress_bar"]


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="run", leave=False, dynamic_ncols=True)
