"""Exception types raised by focalkit, and the one shape of their messages.

Every error focalkit raises for bad input is one of these. They subclass the built-in ``ValueError`` /
``TypeError`` so that existing ``except ValueError`` code keeps working, and they share the base
:class:`FocalKitError` so that callers can catch everything focalkit raises in one clause.

Messages name the argument, what was expected and what was received, e.g.::

    InvalidArgumentError: gamma: expected a number >= 0.0, got -1.0

This module imports nothing beyond the standard library, so the PyTorch core, the JAX and the Keras front-ends all
raise the same types with the same text.
"""

from __future__ import annotations

__all__ = ["FocalKitError", "InvalidArgumentError", "InvalidTypeError", "argument_error", "type_error"]


class FocalKitError(Exception):
    """Base class of every exception raised by focalkit for bad input."""


class InvalidArgumentError(FocalKitError, ValueError):
    """An argument has the right type but a wrong value, shape, range or device."""


class InvalidTypeError(FocalKitError, TypeError):
    """An argument has the wrong type or dtype (e.g. integer logits, float class indices)."""


def argument_error(name: str, expected: str, got: object) -> InvalidArgumentError:
    """Build an :class:`InvalidArgumentError` with the standard ``name: expected ..., got ...`` message.

    Example:
        >>> str(argument_error("gamma", "a number >= 0.0", -1.0))
        'gamma: expected a number >= 0.0, got -1.0'
    """
    return InvalidArgumentError(f"{name}: expected {expected}, got {got}")


def type_error(name: str, expected: str, got: object) -> InvalidTypeError:
    """Build an :class:`InvalidTypeError` with the standard ``name: expected ..., got ...`` message."""
    return InvalidTypeError(f"{name}: expected {expected}, got {got}")
