"""Stage 4: comparison with the simulator, verdicts, report, KCIDB export (see
orchestrator/__init__.py)."""
