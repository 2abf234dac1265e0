"""The results folder: its files' names and paths (folder.py), run.json typed (meta.py: RunMeta,
one writer), the observation records (observations.py), the verdict table (verdicts.py), what
the records were made with (provenance.py, elves.py) and new folders (outdir.py). Every stage
reads and writes the folder through this package, which imports none of the stages that use
it (run, analysis, conduct)."""
