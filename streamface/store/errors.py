"""Exceptions raised by the face store.

Every error is a :class:`StoreError` (itself a :class:`ValueError`), so a caller
that only wants "the store said no" catches one class; the subclasses say why.
Messages are one line naming what went wrong and where.
"""

from __future__ import annotations


class StoreError(ValueError):
    """A face store could not be opened, read or written as asked."""


class NotAStoreError(StoreError):
    """The location holds no Streamface store (missing, empty, or some other data)."""


class StoreVersionError(StoreError):
    """The store was written by a newer Streamface whose format this one cannot read."""


class StoreExistsError(StoreError):
    """A store was to be created where one (or other data) already is."""


class StreamNotFoundError(StoreError, KeyError):
    """The store has no stream of that name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class StoreReadOnlyError(StoreError):
    """A write was attempted through a store opened read-only."""


class StoreLockedError(StoreError):
    """Another writer holds the stream (the message says who)."""


class StoreCorruptError(StoreError):
    """Stored data contradicts the store's own commit records."""
