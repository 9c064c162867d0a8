"""AdminService (R1-R4, B3 through UpsertUser, GetStats) through the API, on
every backend, a module per rule."""
