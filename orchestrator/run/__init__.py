"""Stage 3: running the suites on guests, observations, shards, merge, Dask (see
orchestrator/__init__.py)."""
