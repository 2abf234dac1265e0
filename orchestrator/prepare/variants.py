"""Which kernel variants a tree gives, what each is built from, and which simulator model each
is compared with: one decision, used by the run's plan (orchestrator.conduct.plan) and by every
kernel build (orchestrator.prepare.kernel).

    tree's own dup_mmap()      patches/baseline/  PATCHES=  baseline kernel (model)           patched kernel
    no __mt_dup (6.1)          (not tried)        given     the tree as it is (baseline)      the tree + PATCHES
                                                  none      the tree as it is (baseline)      -
    __mt_dup (6.8 on, 6.12)    applies            none      the tree + patches/baseline/      the tree (patched)
                                                            (baseline)
                                                  given     the tree + patches/baseline/      the tree + PATCHES
                                                            (baseline), and the tree as it    (patched)
                                                            is (reference, patched model)
    __mt_dup (7.x)             does not apply     given     the tree as it is (patched):      the tree + PATCHES
                                                            the reference kernel              (patched)
                                                  none      -                                 the tree (patched)

So `baseline` is always the kernel the patched one is measured against, and its model is the
one its source shows, not its name: on 7.x with PATCHES= it is the tree as it is, whose own
dup_mmap() already uses __mt_dup, compared with the "patched" model (7.x removed
mas_expected_entries(), so the pre-series loop cannot be restored there). Without PATCHES= such a
tree gives only `patched`: a second kernel would be the same source.

Measured A/B on every tree: with PATCHES= one kernel of the run is always the tree as it is,
built and measured at the same counts as the tree + PATCHES (REFERENCE_OF says which: on 6.12
the third kernel `reference`, on 6.1 and 7.x `baseline`), so that what PATCHES= change is
measured against the tree's own kernel, not only against a fitted model
(orchestrator/analysis/spawn_model.py). `reference` is built exactly as a run without PATCHES=
builds `patched` (the same cache key: orchestrator/prepare/kernel.py), so it costs nothing when
that kernel is cached.

A kernel's cache key hashes its patches (orchestrator.prepare.kernel), so a baseline built as the
tree as it is (no patches) and one built as the tree + patches/baseline/ never share a key."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# every kernel a run can have, in run order (the simulator's models are only baseline and patched)
KERNELS = ("baseline", "reference", "patched")
# `forkdiff kernel build` without --variant: the tree as it is first (reference, and patched
# without PATCHES=), so that the others start from its objects (kernel._Build.seed); a run's
# order comes from what each variant is made of (conduct/plan.py build_order)
BUILD_ORDER = ("reference", "patched", "baseline")

TREE = "the tree as it is"
TREE_BASELINE = "the tree + patches/baseline/"
TREE_PATCHES = "the tree + PATCHES"


def baseline_made_of(tree_model: str, baseline_error: Callable[[], str | None]) -> str:
    """What the `baseline` kernel of a tree is built from. tree_model: the model the tree's own
    dup_mmap() shows ("baseline": no __mt_dup, "patched": __mt_dup); baseline_error(): None when
    patches/baseline/ applies to the tree, else why not (called only for a "patched" tree)."""
    if tree_model in ("baseline", "unknown") or baseline_error() is not None:
        return TREE
    return TREE_BASELINE


def made_of(variant: str, tree_model: str, baseline_error: Callable[[], str | None],
            patches: Sequence[Path] = ()) -> str:
    """What `variant`'s kernel is built from (TREE, TREE_BASELINE or TREE_PATCHES)."""
    if variant == "reference":
        return TREE
    if variant == "baseline":
        return baseline_made_of(tree_model, baseline_error)
    return TREE_PATCHES if patches else TREE


@dataclass(frozen=True)
class VariantPlan:
    """The kernels of a run: variants in run order, what each is built from, the model each is
    compared with where the tree says it (a patched kernel made from a pre-series tree + PATCHES
    gets its model from its built source: missing here), and the lines the run prints."""

    variants: tuple[str, ...]
    made_of: dict[str, str]
    models: dict[str, str]
    notes: tuple[tuple[str, str], ...] = field(default=())

    @property
    def reference_of(self) -> dict[str, str]:
        """{"patched": the variant that is the tree as it is} when the patched kernel is the tree +
        PATCHES and the run has such a kernel: the measured A/B pair (REFERENCE_OF)."""
        return reference_of(self.made_of)

    @property
    def reference(self) -> bool:
        """True when `baseline` is the tree as it is on a tree whose dup_mmap() already uses
        __mt_dup: the reference kernel for PATCHES=, compared with the "patched" model."""
        return "baseline" in self.variants and self.models.get("baseline") == "patched"


def reference_of(made: dict[str, str]) -> dict[str, str]:
    """{"patched": its reference kernel} from the run's "made of" map: the kernel that is the tree
    as it is, beside a patched kernel that is the tree + PATCHES (empty otherwise)."""
    if made.get("patched") != TREE_PATCHES:
        return {}
    for v in ("reference", "baseline"):
        if made.get(v) == TREE:
            return {"patched": v}
    return {}


def plan(tree_model: str, baseline_error: Callable[[], str | None],
         patches: Sequence[Path] = ()) -> VariantPlan:
    """The kernels a run on this tree builds (see the module's table)."""
    if tree_model == "baseline":
        if patches:
            return VariantPlan(("baseline", "patched"), {"baseline": TREE, "patched": TREE_PATCHES},
                               {"baseline": "baseline"},
                               (("variants", "the tree's own dup_mmap() is the baseline one: "
                                             "baseline = the tree, patched = the tree + PATCHES"),))
        return VariantPlan(("baseline",), {"baseline": TREE}, {"baseline": "baseline"},
                           (("variants", "the tree's own dup_mmap() is the baseline one: baseline = "
                                         "the tree; no PATCHES, so no patched kernel"),))
    if tree_model == "unknown":  # neither shape: the tree's own kernel, kernel-only checks
        why = "the tree's dup_mmap() is neither the baseline nor the __mt_dup one"
        if patches:
            return VariantPlan(("baseline", "patched"), {"baseline": TREE, "patched": TREE_PATCHES},
                               {"baseline": "patched", "patched": "patched"},
                               (("variants", f"{why}: baseline = the tree as it is, patched = the "
                                             "tree + PATCHES (kernel against kernel only)"),))
        return VariantPlan(("patched",), {"patched": TREE}, {"patched": "patched"},
                           (("baseline", f"skipped: {why} (going on with the tree's own kernel; "
                                         "give PATCHES= to compare a change against it)"),))
    if tree_model != "patched":
        raise ValueError(f"unknown dup_mmap model {tree_model!r}")
    patched = TREE_PATCHES if patches else TREE
    cause = baseline_error()
    if cause is None and patches:
        return VariantPlan(("baseline", "reference", "patched"),
                           {"baseline": TREE_BASELINE, "reference": TREE, "patched": patched},
                           {"baseline": "baseline", "reference": "patched", "patched": "patched"},
                           (("variants", "baseline = the tree + patches/baseline/, reference = the "
                                         "tree as it is, patched = the tree + PATCHES (measured "
                                         "against reference)"),))
    if cause is None:
        return VariantPlan(("baseline", "patched"), {"baseline": TREE_BASELINE, "patched": patched},
                           {"baseline": "baseline", "patched": "patched"})
    if patches:
        return VariantPlan(("baseline", "patched"), {"baseline": TREE, "patched": patched},
                           {"baseline": "patched", "patched": "patched"},
                           (("baseline", "the tree as it is, the reference kernel for PATCHES=, "
                                         "compared with the tree's own model (patched), since "
                                         f"{cause}"),
                            ("variants", "baseline = the tree as it is, patched = the tree + PATCHES")))
    return VariantPlan(("patched",), {"patched": TREE}, {"patched": "patched"},
                       (("baseline", f"skipped: {cause} (going on with the tree's own kernel; "
                                     "give PATCHES= to get the tree as it is as the reference "
                                     "kernel)"),))
