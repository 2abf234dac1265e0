"""The finish stage's work: comparison with the simulator, report, KCIDB export (see
orchestrator/__init__.py)."""
