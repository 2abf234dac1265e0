"""What a run was, in the terms dup_mmap() cares about: the kernel's kconfig options and the
fault-injection settings recorded with each observation -> the KernelConfig and FaultSettings the
simulator runs with, or the reasons the run cannot be predicted (NotModelled). Every option ->
behaviour rule lives here; compare turns NotModelled into an `error` verdict naming the option,
never into a prediction made for another kernel.

Kernel options (RULES), read from 6.12 kernel/fork.c dup_mmap() and vm_area_dup(). Per copied
VMA the kernel calls vm_area_dup() (vm_area_struct; vma_lock_alloc() with PER_VMA_LOCK;
dup_anon_vma_name()), vma_dup_policy() (NUMA), dup_userfaultfd(), anon_vma_fork(),
copy_page_range(); after the loop ksm_fork() and khugepaged_fork(). Which of these allocate, and
when, decides the allocation sequence fail-nth counts. A rule says which values the model
handles and why; `suites` limits it to the suites whose predictions it changes.

Fault settings (fault_settings()): the attributes orchestrator/run/faultsetup.py wrote and read
back. fail-nth honours only the stack filter (lib/fault-inject.c should_fail_ex), then
mm/failslab.c skips reclaim-capable allocations when ignore-gfp-wait is Y, and
mm/fail_page_alloc.c skips orders below min-order and, with ignore-gfp-wait Y, reclaim-capable
page allocations.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .fork import FaultSettings, KernelConfig

# include/linux/mmzone.h: MAX_PAGE_ORDER is 10 on x86-64 (no ARCH_FORCE_MAX_ORDER); a
# fail_page_alloc min-order above it keeps every page allocation out of the count.
MAX_PAGE_ORDER = 10
# fail_page_alloc's stack filter with FAULTS=...,page (orchestrator/run/faultsetup.py
# PAGE_FUNCTION): only the child's page tables count, which simulator/fork.py predicts
PAGE_FUNCTION = "copy_page_range"
# What orchestrator/run/faultsetup.py writes by default (and what records made before it was
# recorded are assumed to have had): failslab ignore-gfp-wait N, fail_page_alloc
# ignore-gfp-wait Y and min-order 32, stack filter on dup_mmap.
DEFAULT_SETTINGS = FaultSettings(failslab_ignore_gfp_wait=False, page_ignore_gfp_wait=True,
                                 page_min_order=32, stack_filter="dup_mmap")
FAULTS_ONLY = ("faults",)


@dataclass(frozen=True)
class Rule:
    """One kconfig option: the values the model handles, and what the kernel does with it."""

    option: str  # CONFIG_...
    modelled: tuple[str, ...]  # values the simulator predicts correctly ("n" = not set or absent)
    assumed: str  # its value in kconfig/ (base + faults): used when a record does not carry it
    kernel: str  # what 6.12 does with it under dup_mmap(), i.e. why it matters or not
    todo: str = ""  # what to do when the value is not modelled
    suites: tuple[str, ...] = ()  # suites whose predictions it changes (empty: all)

    def applies(self, suite: str) -> bool:
        return not self.suites or suite in self.suites


RULES: tuple[Rule, ...] = (
    Rule("CONFIG_MMU", ("y",), "y",
         "without an MMU dup_mmap() is the !CONFIG_MMU stub: there is no VMA tree to copy",
         "build with CONFIG_MMU=y"),
    Rule("CONFIG_PER_VMA_LOCK", ("y", "n"), "y",
         "y: vm_area_dup() -> vma_lock_alloc() allocates a vma_lock (GFP_KERNEL, fatal) right "
         "after each vm_area_struct; n: no vma_lock cache, no such allocation "
         "(KernelConfig.per_vma_lock)"),
    Rule("CONFIG_TRANSPARENT_HUGEPAGE", ("n",), "n",
         "anonymous mmaps of a multiple of 2 MiB are 2 MiB-aligned (__get_unmapped_area -> "
         "thp_get_unmapped_area_vmflags), write faults may map huge PMDs whose copy_huge_pmd() "
         "allocates a deposited page table, and khugepaged_fork() allocates an mm_slot when the "
         "parent is registered with khugepaged; none of this is modelled",
         "build with '# CONFIG_TRANSPARENT_HUGEPAGE is not set' (kconfig/base.config)"),
    Rule("CONFIG_MEMCG", ("n",), "n",
         "vm_area_struct, vma_lock, anon_vma and anon_vma_chain are SLAB_ACCOUNT caches: once "
         "a memory cgroup is online, a new slab of them gets an obj_cgroup vector "
         "(account_slab/alloc_slab_obj_exts: a kcalloc under dup_mmap that failslab counts), "
         "which depends on the guest's slab history, not on the scenario",
         "build without CONFIG_MEMCG", FAULTS_ONLY),
    Rule("CONFIG_MEM_ALLOC_PROFILING", ("n",), "n",
         "every slab allocation is tagged: the first one from a slab allocates the slab's "
         "obj_exts vector (alloc_slab_obj_exts: a kcalloc failslab counts), which depends on "
         "the guest's slab history",
         "build without CONFIG_MEM_ALLOC_PROFILING", FAULTS_ONLY),
    Rule("CONFIG_NUMA", ("y", "n"), "n",
         "vma_dup_policy() -> mpol_dup() allocates only for a VMA with a memory policy "
         "(mbind()); the guest programs set none, so no allocation either way"),
    Rule("CONFIG_USERFAULTFD", ("y", "n"), "n",
         "dup_userfaultfd() allocates only for a VMA registered with a userfaultfd; the guest "
         "programs register none"),
    Rule("CONFIG_KSM", ("y", "n"), "n",
         "ksm_fork() allocates an mm_slot only when the parent is MMF_VM_MERGEABLE "
         "(MADV_MERGEABLE, PR_SET_MEMORY_MERGE); the guest programs never ask for it"),
    Rule("CONFIG_ANON_VMA_NAME", ("y", "n"), "n",
         "dup_anon_vma_name() allocates only for a named VMA (PR_SET_VMA_ANON_NAME) whose name "
         "is referenced REFCOUNT_MAX times; the guest programs name none"),
    Rule("CONFIG_SLUB_TINY", ("y", "n"), "n",
         "one failslab check per kmem_cache_alloc()/kmem_cache_alloc_bulk() call "
         "(slab_pre_alloc_hook) either way; it turns SLUB_STATS off (see there)"),
    Rule("CONFIG_SLUB_STATS", ("y",), "y",
         "the counts suite reads the SLUB_STATS alloc_fastpath/alloc_slowpath counters; "
         "without them it observes no allocation at all",
         "run the counts suite on a faults-profile kernel (CONFIG_SLUB_STATS=y)", ("counts",)),
    Rule("CONFIG_SLAB_MERGE_DEFAULT", ("n",), "n",
         "merged caches share one set of SLUB_STATS counters: the counted caches' alloc "
         "counters would include other caches' allocations",
         "build with '# CONFIG_SLAB_MERGE_DEFAULT is not set' (kconfig/faults.config)",
         ("counts",)),
    Rule("CONFIG_KFENCE", ("n",), "n",
         "objects KFENCE hands out are not counted by ALLOC_FASTPATH/ALLOC_SLOWPATH, at random "
         "intervals",
         "build without CONFIG_KFENCE", ("counts",)),
)
OPTIONS: tuple[str, ...] = tuple(r.option for r in RULES)  # what a run records (kconfig.run_record)


@dataclass(frozen=True)
class NotModelled:
    """Something the run did that the simulator cannot predict, and what to do about it."""

    what: str  # CONFIG_X, or fault_settings.<attribute>
    value: str
    why: str
    todo: str
    modelled: str = ""  # the values that would be predicted

    def message(self) -> str:
        return f"{self.what}={self.value} is not modelled: {self.why}; {self.todo}"


# --- The tree itself (orchestrator/prepare/treefacts.py: `kernel_facts` of every record) ------------
# fact -> the values the simulator models. 6.12: dup_mmap() in kernel/fork.c, a failed
# __mt_dup fork marks its failure point with XA_ZERO_ENTRY (or, in the baseline, the child
# holds only the copies), per-VMA locks from vma_lock_cachep, maple nodes preallocated for the
# exact store, no [vvar_vclock] mapping. 7.2: dup_mmap() in mm/mmap.c tears the copies down
# itself, the VMA lock is vm_refcnt inside vm_area_struct, maple nodes come from slab sheaves,
# [vvar_vclock]. facts_model() below turns each value into the KernelConfig field that
# selects the behaviour. Widening the model to another tree's value is one entry here and
# one in FACT_FIELDS (plus the simulator code that models it).
MODELLED_TREE = "6.12"
MODELLED_TREES = "6.12, 7.2"
MODELLED_FACTS: dict[str, tuple] = {
    "dup_mmap_file": ("kernel/fork.c", "mm/mmap.c"),
    "dup_mmap_model": ("baseline", "patched"),
    "fork_failure": ("marker", "copies", "teardown"),
    "vma_lock": ("cache", "embedded", "none"),  # none: 6.1 (before 6.4)
    "maple_alloc": ("prealloc", "ondemand", "sheaves"),  # ondemand: 6.1, sheaves: 7.x
    "vdso_vclock": (False, True),
    "proc_heap": ("strict", "inclusive"),  # inclusive: 6.1 (KernelConfig.proc_heap)
}
# Records without kernel_facts were all made on Debian's 6.12 tree (before forkdiff recorded
# them): they are compared as 6.12.
ASSUMED_FACTS = {"version": MODELLED_TREE, "dup_mmap_file": "kernel/fork.c", "fork_failure": "marker",
                 "vma_lock": "cache", "maple_alloc": "prealloc", "vdso_vclock": False}


def _fact_text(v: object) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def tree_problems(facts: dict | None) -> list[NotModelled]:
    """The facts of the record's tree the simulator does not model, one NotModelled each
    (naming the fact, its value and the tree's version); [] for a tree it models and for
    records without kernel_facts (6.12)."""
    if not facts:
        return []
    version = facts.get("version", "?")
    out = []
    for fact, values in MODELLED_FACTS.items():
        if fact in facts and facts[fact] not in values:
            out.append(NotModelled(
                f"kernel_facts.{fact}", _fact_text(facts[fact]),
                f"the simulator models {fact}=" + " or ".join(map(_fact_text, values))
                + f" ({MODELLED_TREES}); this tree ({version}) has {fact}={_fact_text(facts[fact])}",
                "kernel-vs-simulator verdicts are skipped for this tree; the kernel-only checks "
                "(crashes, leaks, invariants, variant vs variant) still run",
                " or ".join(map(_fact_text, values))))
    return out


def tree_notice(facts: dict | None) -> str | None:
    """One line for a run on a tree the simulator does not model (None when it does)."""
    bad = tree_problems(facts)
    if not bad:
        return None
    diff = ", ".join(f"{nm.what.removeprefix('kernel_facts.')}={nm.value}" for nm in bad)
    return (f"simulator models {MODELLED_TREES}; this tree {(facts or {}).get('version', '?')} "
            f"differs in: {diff} -> kernel-vs-simulator verdicts are skipped; running "
            "kernel-only checks")


def partial_model(facts: dict | None) -> list[str]:
    """What of a modelled tree the simulator follows only in part (one line each): the maple
    tree rules of maple_model() it lacks (`forkdiff oracle check` shows where the port and the
    tree's lib/maple_tree.c differ). [] for 6.1, 6.12 and 7.2."""
    if tree_problems(facts):
        return []  # not modelled at all: tree_notice() says so
    return [f"{nm.what.removeprefix('kernel_facts.')}={nm.value}: {nm.why}"
            for nm in maple_model(facts)[2]]


@dataclass(frozen=True)
class RunModel:
    """The simulator's view of one job's run."""

    config: KernelConfig
    settings: FaultSettings
    not_modelled: tuple[NotModelled, ...] = ()
    assumed: tuple[str, ...] = ()  # what the records did not say, and what was assumed
    options: dict[str, str] = field(default_factory=dict)  # every RULES option, as used
    tree_not_modelled: tuple[NotModelled, ...] = ()  # facts of the tree itself (tree_problems)
    # SLUB_STATS count every object of a bulk allocation (kernel fact slub_bulk_stats; 6.1:
    # no, so its alloc counters fall short of the bulk objects by an amount that depends on
    # the CPU free list, and a count that includes bulk objects is only bounded) ...
    bulk_counted: bool = True
    # ... except in these caches: debug caches (the records' slab_debug) on a tree whose debug
    # slow path hands out single objects without a CPU free list (fact slub_debug_single), so
    # every object, bulk ones too, is one ALLOC_SLOWPATH (orchestrator/run/slubdebug.py)
    single_object_caches: tuple[str, ...] = ()

    @property
    def modelled(self) -> bool:
        return not self.not_modelled and not self.tree_not_modelled

    @property
    def tree_modelled(self) -> bool:
        return not self.tree_not_modelled

    def counts_bulk(self, cache: str) -> bool:
        """Do the alloc counters of `cache` count every object a bulk allocation takes?"""
        return self.bulk_counted or cache in self.single_object_caches


def _value(v: object) -> str:
    return "n" if v in (None, "", "n") else str(v)


def kernel_model(suite: str, kernel_config: dict | None
                 ) -> tuple[KernelConfig, list[NotModelled], list[str], dict[str, str]]:
    """The record's kernel_config (`{"sha256", "options": {CONFIG_X: value}}`, or None for
    records made before it was recorded) -> KernelConfig, what is not modelled, what was
    assumed, and the options used."""
    recorded = (kernel_config or {}).get("options") or {}
    options: dict[str, str] = {}
    missing = []
    for rule in RULES:
        if rule.option in recorded:
            options[rule.option] = _value(recorded[rule.option])
        else:
            options[rule.option] = rule.assumed
            if rule.applies(suite):
                missing.append(f"{rule.option}={rule.assumed}")
    assumed = []
    if missing and kernel_config is None:
        assumed.append("kernel config not recorded (records made before forkdiff recorded it): "
                       "assumed the kconfig/ profiles' values " + ", ".join(missing))
    elif missing:
        assumed.append("kernel config recorded without some options (an older forkdiff): "
                       "assumed " + ", ".join(missing))
    bad = [NotModelled(r.option, options[r.option], r.kernel, r.todo, " or ".join(r.modelled))
           for r in RULES
           if r.applies(suite) and options[r.option] not in r.modelled]
    return KernelConfig(per_vma_lock=options["CONFIG_PER_VMA_LOCK"] == "y"), bad, assumed, options


# ------------------------------------------------------------------ tree facts
# kernel_facts (orchestrator/prepare/treefacts.py, read from the tree's source and carried in every
# observation) -> the KernelConfig fields where kernels differ. One table per fact: the value
# the tree reports -> the field's value; a value without an entry is not modelled. Records
# without facts (made before they were recorded) are 6.12's (the KernelConfig defaults).
FACT_FIELDS: dict[str, tuple[str, dict]] = {
    # fact: (KernelConfig field, {fact value: field value})
    "fork_failure": ("fork_failure", {"marker": "marker", "teardown": "teardown",
                                      "copies": "marker"}),  # copies: baseline, no marker
    "vma_lock": ("vma_lock", {"cache": "cache", "embedded": "embedded", "none": "none"}),
    "maple_alloc": ("maple_alloc", {"prealloc": "prealloc", "ondemand": "ondemand",
                                    "sheaves": "sheaves"}),
    "vdso_vclock": ("vdso_vclock", {True: True, False: False}),
}
# Behaviours the simulator knows only for the versions whose source was read: 6.12
# (linux-source-6.12) and 7.2 (linux-source-7.2). Trees between them that do not report the
# fact are not modelled.
V612, V72 = (6, 12), (7, 2)
# Both are read from the tree (treefacts: anon_vma_fork, slab_sheaves); records made before
# forkdiff read them get the values of the tree's version where the source was read.
VERSION_FIELDS: dict[str, tuple[str, str, str]] = {
    # fact: (6.12 and older, 7.2 and newer, where it is read)
    "anon_vma_fork": ("clone_first", "alloc_first", "mm/rmap.c anon_vma_fork()"),
    "slab_sheaves": (False, True, "mm/slub.c: per-CPU sheaves for every cache"),
    "maple_write": ("big_node", "maple_copy",
                    "lib/maple_tree.c: splits, rebalances and spanning stores through struct "
                    "maple_big_node or struct maple_copy"),
}
VERSION_FIELD_VALUES = {"anon_vma_fork": ("clone_first", "alloc_first"),
                        "slab_sheaves": (False, True),
                        "maple_write": ("big_node", "maple_copy")}
# The maple tree rules the port has read, as (maple_alloc, maple_write): 6.1, 6.12, 7.2.
MAPLE_RULES = {("ondemand", "big_node"), ("prealloc", "big_node"), ("sheaves", "maple_copy")}


def facts_model(facts: dict | None) -> tuple[dict, list[NotModelled]]:
    """kernel_facts -> KernelConfig field values (only the fields that differ from 6.12 need
    be set) and what is not modelled."""
    if not facts:
        return {}, []
    fields: dict = {}
    bad: list[NotModelled] = []
    for fact, (name, table) in FACT_FIELDS.items():
        if fact not in facts:
            continue
        value = facts[fact]
        if value in table:  # other values: tree_problems() names them
            fields[name] = table[value]
    version = tuple(facts.get("version_tuple") or ())
    for fact, (old, new, where) in VERSION_FIELDS.items():
        if fact in facts and facts[fact] in VERSION_FIELD_VALUES[fact]:
            fields[fact] = facts[fact]
        elif fact in facts:
            bad.append(NotModelled(f"kernel_facts.{fact}", str(facts[fact]),
                                   f"{where} matches none of the shapes the simulator models",
                                   "run a 6.1, 6.12 or 7.2 tree",
                                   " or ".join(map(str, VERSION_FIELD_VALUES[fact]))))
        elif not version or version[:2] <= V612:  # no version: the default tree's (6.12)
            fields[fact] = old
        elif version[:2] >= V72:
            fields[fact] = new
        else:
            bad.append(NotModelled(f"kernel_facts.{fact}", f"version {facts.get('version')}",
                                   f"{where} was read in 6.12 and 7.2 only",
                                   "run a 6.12 or a 7.2 (or newer) tree", "6.12, >= 7.2"))
    if fields.get("maple_alloc") == "sheaves" and not fields.get("slab_sheaves"):
        bad.append(NotModelled("kernel_facts.maple_alloc", "sheaves",
                               "maple nodes from sheaves while other caches have none "
                               "(6.18 to 6.19) is not modelled", "run a 6.12 or a 7.2 tree",
                               "prealloc, or sheaves with every cache on sheaves"))
    alloc, write = fields.get("maple_alloc"), fields.get("maple_write")
    if alloc and write and (alloc, write) not in MAPLE_RULES:
        bad.append(NotModelled("kernel_facts.maple_write", write,
                               f"maple_alloc={alloc} with maple_write={write} (a tree between "
                               "6.12 and 7.2) was never read: the port knows ondemand and "
                               "prealloc with big_node (6.1, 6.12), sheaves with maple_copy (7.2)",
                               "run a 6.1, 6.12 or 7.2 tree",
                               " or ".join(f"{a}+{w}" for a, w in sorted(MAPLE_RULES))))
    return fields, bad


def maple_model(facts: dict | None) -> tuple[str, str, list[NotModelled]]:
    """The maple tree rules for a tree with these facts (None: the default tree, 6.12's):
    MapleTree's `alloc` and `write`, and what is not modelled (the oracle check names them).
    A record without maple_write gets its version's (facts_model: VERSION_FIELDS)."""
    value = (facts or {}).get("maple_alloc", "prealloc")
    table = FACT_FIELDS["maple_alloc"][1]
    fields, bad = facts_model(facts)
    write = fields.get("maple_write", "big_node")
    problems = [nm for nm in bad if nm.what in ("kernel_facts.maple_write",
                                                "kernel_facts.maple_alloc")]
    if value in table:
        return table[value], write, problems
    return "prealloc", write, problems + [NotModelled(
        "kernel_facts.maple_alloc", str(value),
        "the tree's lib/maple_tree.c allocates nodes in a way none of the Python port's rules "
        "matches", "compare only trees whose maple_alloc is " + " or ".join(table),
        " or ".join(table))]


def fault_settings(suite: str, recorded: dict | None
                   ) -> tuple[FaultSettings, list[NotModelled], list[str]]:
    """The record's fault_settings (orchestrator/run/faultsetup.py FaultSettings.to_dict(); None
    outside the faults suite) -> FaultSettings, what is not modelled, what was assumed. Only
    the faults suite's predictions depend on them."""
    if not recorded:
        assumed = ([] if suite != "faults" else
                   ["fault settings not recorded: assumed forkdiff's defaults (stack filter on "
                    "dup_mmap, failslab ignore-gfp-wait N, fail_page_alloc ignore-gfp-wait Y "
                    "min-order 32)"])
        return DEFAULT_SETTINGS, [], assumed
    attrs = recorded.get("attrs") or {}
    slab = attrs.get("failslab") or {}
    page = attrs.get("fail_page_alloc")  # absent: the kernel has no fail_page_alloc
    filt = (recorded.get("function") or "dup_mmap") if recorded.get("stack_filter") else None
    if page is None:
        page_wait, min_order = True, MAX_PAGE_ORDER + 1
    else:
        page_wait = page.get("ignore-gfp-wait", "Y") == "Y"
        min_order = int(page.get("min-order", "1"))
    caches = (tuple(sorted(recorded.get("cache_filter") or ()))
              if slab.get("cache-filter") == "Y" else ())
    # FAULTS= (faultsetup.FaultSettings.faults; records before it: slab only)
    kinds = recorded.get("faults") or ["slab"]
    page_filter = recorded.get("page_function") or None
    settings = FaultSettings(failslab_ignore_gfp_wait=slab.get("ignore-gfp-wait", "Y") == "Y",
                             page_ignore_gfp_wait=page_wait, page_min_order=min_order,
                             stack_filter=filt, cache_filter=caches,
                             slab_counted="slab" in kinds, page_stack_filter=page_filter)
    bad: list[NotModelled] = []
    if suite != "faults":
        return settings, bad, []
    if filt is None and not settings.modelled_prefix:
        bad.append(NotModelled(
            "fault_settings.stack_filter", "off",
            "without the dup_mmap stack filter fail-nth also counts the checks copy_process() "
            "makes before dup_mmap (task struct, files, signal, mm_struct, ...), unless "
            "failslab's cache filter keeps only caches fork() uses in dup_mmap() alone",
            "rerun the faults suite without --no-stack-filter", "on dup_mmap"))
    elif filt is not None and filt != "dup_mmap":
        bad.append(NotModelled(
            "fault_settings.function", filt,
            f"the stack filter brackets {filt}, and only dup_mmap's allocations are modelled",
            "rerun the faults suite with the stack filter on dup_mmap", "dup_mmap"))
    # page_scope "fork" (faultsetup, a kernel without any stack filter): every page allocation
    # of the fork syscall counts and is modelled (fork.FORK_PREFIX_PAGES, then the page
    # tables), the guest having kept new slab pages out (faultsetup: min_partial, warm fork)
    fork_scope = (recorded.get("page_scope") == "fork" and settings.page_scope == "fork"
                  and (page or {}).get("ignore-gfp-highmem", "Y") == "Y")
    if min_order <= MAX_PAGE_ORDER and page_filter != PAGE_FUNCTION and not fork_scope:
        bad.append(NotModelled(
            "fault_settings.fail_page_alloc", f"min-order {min_order}, ignore-gfp-wait "
            + ("Y" if page_wait else "N"),
            "page allocations are counted without fail_page_alloc's stack filter on "
            f"{PAGE_FUNCTION}: besides page tables (modelled) they include new slab pages "
            "whenever a cache's free list runs dry, which depends on the guest's whole slab "
            "history, not on the scenario (a kernel without the stack filter, x86-64 before "
            "6.3, cannot restrict them)",
            "rerun the faults suite with FAULTS=slab on this kernel",
            f"min-order > {MAX_PAGE_ORDER}, or the stack filter on {PAGE_FUNCTION}"))
    return settings, bad, []


def trace_caches(config) -> set[str]:
    """The slab caches dup_mmap()'s allocation trace allocates from (simulator/fork.py)."""
    return {"maple_node", "vm_area_struct", "anon_vma", "anon_vma_chain"} | (
        {"vma_lock"} if config.vma_lock_alloc else set())


def _cache_filter_on(recorded_faults: dict | None) -> bool:
    attrs = ((recorded_faults or {}).get("attrs") or {}).get("failslab") or {}
    return attrs.get("cache-filter") == "Y"


def cache_filter_problems(suite: str, config, recorded_faults: dict | None) -> list[NotModelled]:
    """failslab's cache-filter (used with kmemleak on, whose own allocations must not count)
    counts only the caches flagged in /sys/kernel/slab/<cache>/failslab: the trace is the same
    when every cache it allocates from is flagged, and is not modelled otherwise."""
    attrs = ((recorded_faults or {}).get("attrs") or {}).get("failslab") or {}
    if suite != "faults" or attrs.get("cache-filter") != "Y":
        return []
    if "slab" not in ((recorded_faults or {}).get("faults") or ["slab"]):
        return []  # FAULTS=page: the cache filter keeps every slab allocation out on purpose
    missing = sorted(trace_caches(config) - set((recorded_faults or {}).get("cache_filter") or []))
    if not missing:
        return []
    return [NotModelled(
        "fault_settings.failslab.cache-filter", f"Y without {', '.join(missing)}",
        "only caches marked in /sys/kernel/slab/<cache>/failslab are counted, and dup_mmap "
        f"allocates from {', '.join(missing)} too",
        "flag every cache fork uses (forkdiff run --kmemleak does), or rerun with cache-filter N",
        "N, or Y with every cache fork uses")]


def single_object_caches(kernel_facts: dict | None, slab_debug: dict | None) -> tuple[str, ...]:
    """The caches whose alloc counters count every object (RunModel.single_object_caches):
    the debug caches the guest read back (slab_debug["debug_caches"]), on a tree whose slow
    path gives a debug cache single objects (fact slub_debug_single); () otherwise."""
    if (kernel_facts or {}).get("slub_debug_single") is not True:
        return ()
    return tuple(sorted((slab_debug or {}).get("debug_caches") or ()))


def resolve(suite: str, kernel_config: dict | None, recorded_faults: dict | None,
            kernel_facts: dict | None = None, slab_debug: dict | None = None) -> RunModel:
    """One job's run (its suite, and the kernel_config, fault_settings, kernel_facts and
    slab_debug of its records; records without kernel_facts were made on the default tree,
    6.12)."""
    config, bad, assumed, options = kernel_model(suite, kernel_config)
    fields, bad_facts = facts_model(kernel_facts)
    facts = kernel_facts or {}
    config = replace(config, **fields,
                     vdso_pages=int(facts.get("vdso_pages") or config.vdso_pages),
                     proc_heap=facts.get("proc_heap", config.proc_heap))
    settings, bad_f, assumed_f = fault_settings(suite, recorded_faults)
    bad_f = bad_f + cache_filter_problems(suite, config, recorded_faults)
    if config.slab_sheaves and _cache_filter_on(recorded_faults):
        # alloc_empty_sheaf()'s kmalloc is in a kmalloc cache, which the filter leaves out
        config = replace(config, sheaf_kmalloc_counted=False)
    return RunModel(config, settings, tuple(bad + bad_f), tuple(assumed + assumed_f), options,
                    tuple(tree_problems(kernel_facts) + bad_facts),
                    bulk_counted=facts.get("slub_bulk_stats", True) is not False,
                    single_object_caches=single_object_caches(kernel_facts, slab_debug))
