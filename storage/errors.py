"""Errors the storage layer raises; driver errors never leave it.

StorageError
├── StorageUnavailable   the database cannot be reached or kept failing; safe to retry
└── StorageConflict      a transient conflict that outlived its retries
"""


class StorageError(Exception):
    """Base class of storage errors."""


class StorageUnavailable(StorageError):
    """The database cannot be reached; the transaction did not commit."""


class StorageConflict(StorageUnavailable):
    """Serialization failures or deadlocks kept recurring; nothing was written."""
