"""A kernel tree resolved once: the tree (its identity computed once), the facts its source shows
(treefacts.detect) and, asked at most once, whether patches/baseline/ applies to it. A run makes
one at the command line (orchestrator/conduct/plan.py) and every kernel build of the run reuses it,
so a tree edited mid-run cannot give two kernels of one run different sources' identities."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from . import treefacts
from .patches import baseline_error
from .tree import KernelTree, resolve_tree


@dataclass(frozen=True, eq=False)
class TreeSource:
    tree: KernelTree
    facts: dict  # treefacts.detect(tree.path)

    @property
    def path(self) -> Path:
        return self.tree.path

    @property
    def model(self) -> str:
        """The simulator model the tree's own dup_mmap() shows: baseline, patched or unknown."""
        return self.facts["dup_mmap_model"]

    @cached_property
    def baseline_cause(self) -> str | None:
        """None when patches/baseline/ applies to the tree, else why not (one dry run)."""
        return baseline_error(self.tree.path)


def resolve_source(tree: str | Path | KernelTree | TreeSource | None = None) -> TreeSource:
    """`tree` resolved (orchestrator.prepare.tree.resolve_tree: None is Debian's 6.12) and its
    facts read; a TreeSource is returned as it is."""
    if isinstance(tree, TreeSource):
        return tree
    kt = resolve_tree(tree)
    return TreeSource(kt, treefacts.detect(kt.path))
