"""B1-B6 and the relationship read paths through the API, on every backend,
a module per rule."""
