"""The conductor of `forkdiff vm-test`: plan -> build -> execute -> finish (docs/architecture.md)."""
