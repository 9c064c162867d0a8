"""The storage contract suite: ``Tx`` and ``Storage`` (storage/types.py) and
the rules (``server.rules.Graph``) checked directly, with no gRPC, on every
backend. See the README's "Tests" section."""
