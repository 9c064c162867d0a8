"""C1-C6, C8, ListConnections and N1 (ListFeedSources) through the API, on
every backend, a module per rule."""
