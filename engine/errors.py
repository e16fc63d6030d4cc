"""Exceptions raised by the engine.

Every message is one line that says what went wrong, where, and what to do about it,
so the CLI can print it as is.
"""

from __future__ import annotations


class EngineError(Exception):
    """Base class of the engine's own errors."""


class ModelError(EngineError):
    """A model is unknown, missing, corrupt, fails its checksum or cannot be prepared."""


class BackendError(EngineError):
    """A device or inference backend was asked for that this machine cannot provide."""
