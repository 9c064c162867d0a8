"""Storage: the schema, the SQL engines behind one transaction interface,
counters and migrations. Nothing here imports grpc."""

from .engine import SqlStorage, open_storage
from .errors import StorageConflict, StorageError, StorageUnavailable
from .types import Storage, Tx

__all__ = [
    "SqlStorage",
    "Storage",
    "StorageConflict",
    "StorageError",
    "StorageUnavailable",
    "Tx",
    "open_storage",
]
