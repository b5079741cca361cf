"""Module lookup for the back-end dispatch, kept apart so that the back-end packages can use it without importing
their parent package."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

__all__ = ["import_submodule"]


def import_submodule(name: str) -> ModuleType:
    """``importlib.import_module`` of an absolute module name, taken from ``sys.modules`` once imported: every call of
    a loss looks its back-end's function up, and the import machinery costs microseconds even for a loaded module.

    Example:
        >>> import_submodule("focalkit.backends.contract").__name__
        'focalkit.backends.contract'
    """
    module = sys.modules.get(name)
    return module if module is not None else importlib.import_module(name)
