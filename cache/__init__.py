"""Caching: one reader interface, layers of it, stacked by the deployment.

Counters and relationships are read through a ``CounterReader`` and a
``RelationshipReader`` (``readers.py``). Each layer implements them over the
layer below:

- ``sql.py``: SQL, the innermost layer and the truth;
- ``redis_cache.py``: Redis, shared by every process on it;
- ``local.py``: this process's memory;
- ``near.py``: the in-process layer over Redis, kept coherent by Redis pub/sub.

``build.py`` picks the stack from the deployment shape. Two rules hold in
every layer: the version rule (``versions.py``: the higher counter version
wins; a relationship entry is valid while both users' versions are the ones
it was read at) and the staleness bound (``freshness.py``: an entry read from
SQL longer than ``--max-staleness`` ago is a miss). Redis clients, errors and
scripts are in ``redis_client.py``. Nothing here imports grpc.
"""

from .build import Readers, Shape, build, cached_readers
from .readers import CounterReader, RelationshipReader

__all__ = ["CounterReader", "Readers", "RelationshipReader", "Shape", "build", "cached_readers"]
