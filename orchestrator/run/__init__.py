"""The execute stage's work: the suites on guests, shards, merge (see
orchestrator/__init__.py)."""
