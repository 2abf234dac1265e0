"""forkdiff's data in an installed wheel: the repository's kconfig/, patches/, scenarios/ and
guest/ sources, mapped here at build time (pyproject.toml [tool.setuptools.package-dir]).
Found through orchestrator.resources; in a checkout the repository folders are used."""
