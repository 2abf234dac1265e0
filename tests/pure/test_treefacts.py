"""orchestrator/prepare/treefacts.py on small synthetic trees written here (snippets shaped like the
kernel's own code, one per known shape, plus shapes it must not mistake). The three real trees
(6.1, 6.12, 7.2) are in tests/tree/test_trees.py."""

import pytest

from orchestrator.errors import ForkdiffError
from orchestrator.prepare.treefacts import (
    detect,
    detect_dup_mmap_model,
    find_dup_mmap,
    maple_alloc_of,
    maple_write_of,
    model_of_body,
    version_tuple,
    vma_lock_of,
)

HEAD = "static __latent_entropy int dup_mmap(struct mm_struct *mm, struct mm_struct *oldmm)\n{\n"
BASELINE = HEAD + ("\tretval = mas_expected_entries(&mas, oldmm->map_count);\n"
                   "\tmas_store(&mas, tmp);\n}\n")
MARKER = HEAD + ("\tretval = __mt_dup(&oldmm->mm_mt, &mm->mm_mt, GFP_KERNEL);\n"
                 "\tif (retval) {\n\t\tmas_store(&vmi.mas, XA_ZERO_ENTRY);\n\t}\n}\n")
TEARDOWN = HEAD.replace("static ", "") + (
    "\tretval = __mt_dup(&oldmm->mm_mt, &mm->mm_mt, GFP_KERNEL);\n"
    "\t\tunmap_region(&unmap);\n\t\tcharge = tear_down_vmas(mm, &vmi, tmp, end);\n}\n")
NOMMU_STUB = "int dup_mmap(struct mm_struct *mm, struct mm_struct *oldmm)\n{\n\treturn 0;\n}\n"


def _tree(tmp_path, files: dict[str, str], version=("6", "12", "57")):
    (tmp_path / "Makefile").write_text(
        f"# SPDX\nVERSION = {version[0]}\nPATCHLEVEL = {version[1]}\nSUBLEVEL = {version[2]}\n"
        "EXTRAVERSION =\nNAME = x\n")
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp_path


def test_version_tuple():
    assert version_tuple("6.1.192") == (6, 1, 192)
    assert version_tuple("6.12-rc3") == (6, 12)
    assert version_tuple("7.0.0-rc1") == (7, 0, 0)
    assert version_tuple("unknown") == ()


@pytest.mark.parametrize("where", ["kernel/fork.c", "mm/mmap.c", "mm/fork_mm.c"])
def test_dup_mmap_found_wherever_it_is(tmp_path, where):
    """The usual places and one it has never been in (found by the search)."""
    tree = _tree(tmp_path, {where: "/* x */\n" + MARKER, "kernel/fork.c" if where != "kernel/fork.c"
                            else "kernel/other.c": "int copy_process(void)\n{\n\treturn dup_mmap(mm, oldmm);\n}\n"})
    rel, body = find_dup_mmap(tree)
    assert rel == where and "__mt_dup" in body
    assert detect(tree)["dup_mmap_file"] == where


def test_nommu_stub_loses_to_the_mmu_definition(tmp_path):
    tree = _tree(tmp_path, {"mm/nommu.c": NOMMU_STUB, "mm/mmap.c": TEARDOWN, "kernel/fork.c": "\n"})
    assert find_dup_mmap(tree)[0] == "mm/mmap.c"


def test_no_definition_is_a_clear_error(tmp_path):
    tree = _tree(tmp_path, {"kernel/fork.c": "int x;\n", "mm/mmap.c": "int dup_mmap(struct mm_struct *mm, "
                                                                     "struct mm_struct *oldmm);\n"})
    with pytest.raises(ForkdiffError, match="no dup_mmap\\(\\) definition found in .*kernel/fork.c, mm/mmap.c"):
        detect_dup_mmap_model(tree)


def test_unclassifiable_dup_mmap_is_unknown_and_said_so(tmp_path):
    """A dup_mmap() of neither shape (a tree newer than the model) is not an error: the fact is
    "unknown", the run's notice names it and the verdicts are kernel-only."""
    from simulator.runconfig import tree_notice

    tree = _tree(tmp_path, {"kernel/fork.c": HEAD + "\treturn copy_everything(mm, oldmm);\n}\n"})
    facts = detect(tree)
    assert (facts["dup_mmap_model"], facts["fork_failure"]) == ("unknown", "unknown")
    assert detect_dup_mmap_model(tree) == "unknown"
    notice = tree_notice(facts)
    assert "dup_mmap_model=unknown" in notice and "kernel-only checks" in notice
    with pytest.raises(ForkdiffError, match="neither calls __mt_dup"):
        model_of_body("return copy_everything(mm, oldmm);")


@pytest.mark.parametrize("body,model,failure", [(BASELINE, "baseline", "copies"),
                                                (MARKER, "patched", "marker"),
                                                (TEARDOWN, "patched", "teardown")])
def test_model_and_failure_path(tmp_path, body, model, failure):
    facts = detect(_tree(tmp_path, {"kernel/fork.c": body}))
    assert (facts["dup_mmap_model"], facts["fork_failure"]) == (model, failure)


def test_patched_without_a_known_failure_path_is_unknown(tmp_path):
    body = HEAD + "\tretval = __mt_dup(&oldmm->mm_mt, &mm->mm_mt, GFP_KERNEL);\n}\n"
    assert detect(_tree(tmp_path, {"kernel/fork.c": body}))["fork_failure"] == "unknown"


def test_vma_lock_shapes():
    assert vma_lock_of("struct vma_lock {\n\tstruct rw_semaphore lock;\n};\n") == "cache"
    assert vma_lock_of("struct vm_area_struct {\n\trefcount_t vm_refcnt ____cacheline_aligned;\n};\n") == "embedded"
    assert vma_lock_of("struct vm_area_struct {\n\tunsigned long vm_start;\n};\n") == "none"
    # a comment naming struct vma_lock is not the struct
    assert vma_lock_of("/* see struct vma_lock { in 6.4 */\n") == "none"


def test_maple_alloc_shapes():
    assert maple_alloc_of("static int f(void)\n{\n\treturn kmem_cache_prefill_sheaf(c, gfp, n);\n}\n") == "sheaves"
    pre = ("int mas_preallocate(struct ma_state *mas, void *entry, gfp_t gfp)\n{\n"
           "\trequest = mas_prealloc_calc(mas, entry);\n}\n")
    assert maple_alloc_of(pre) == "prealloc"
    ond = ("int mas_preallocate(struct ma_state *mas, void *entry, gfp_t gfp)\n{\n"
           "\tmas_node_count_gfp(mas, 1 + mas_mt_height(mas) * 3, gfp);\n}\n")
    assert maple_alloc_of(ond) == "ondemand"
    assert maple_alloc_of("int mas_preallocate(struct ma_state *mas)\n{\n\treturn 0;\n}\n") == "unknown"


def test_maple_write_shapes():
    """7.x lib/maple_tree.c declares `struct maple_copy cp;` in mas_wr_split() and friends;
    6.1/6.12 build `struct maple_big_node b_node;` (and never name maple_copy). A file with
    neither is not guessed."""
    seven = "static void mas_wr_split(struct ma_wr_state *wr_mas)\n{\n\tstruct maple_copy cp;\n}\n"
    six = "static void mas_wr_bnode(struct ma_wr_state *wr_mas)\n{\n\tstruct maple_big_node b_node;\n}\n"
    assert maple_write_of(seven) == "maple_copy"
    assert maple_write_of(six) == "big_node"
    assert maple_write_of("struct maple_copyright x;\nstruct maple_big_nodes y;\n") == "unknown"


def test_vdso_vclock_and_json_shape(tmp_path):
    tree = _tree(tmp_path, {"kernel/fork.c": MARKER,
                            "arch/x86/entry/vdso/vma.c": 'static const struct vm_special_mapping m = {\n'
                                                         '\t.name = "[vvar_vclock]",\n};\n'},
                 version=("7", "2", "13"))
    facts = detect(tree)
    assert facts["vdso_vclock"] is True and facts["version"] == "7.2.13"
    assert facts["version_tuple"] == [7, 2, 13]
    assert set(facts) == {"version", "version_tuple", "dup_mmap_file", "dup_mmap_model", "fork_failure",
                          "vma_lock", "maple_alloc", "vdso_vclock", "slub_bulk_stats",
                          "slub_debug_single", "proc_heap", "anon_vma_fork", "slab_sheaves", "maple_write"}
    (tmp_path / "arch/x86/entry/vdso/vma.c").write_text('.name = "[vvar]",\n')
    assert detect(tree)["vdso_vclock"] is False


def test_slub_bulk_stats():
    """mm/slub.c snippets shaped like 6.1 (the bulk loop takes c->freelist objects without a
    stat; only ___slab_alloc() counts), 6.12 (stat(s, ALLOC_FASTPATH) per object) and 7.x
    (stat_add(s, ALLOC_SLOWPATH, i))."""
    from orchestrator.prepare.treefacts import slub_bulk_stats_of

    v61 = ("int kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t flags, size_t size,\n"
           "\t\t\tvoid **p)\n{\n\t\tobject = c->freelist;\n\t\tc->freelist = next;\n}\n"
           "static void *___slab_alloc(struct kmem_cache *s)\n{\n\tstat(s, ALLOC_SLOWPATH);\n}\n")
    v612 = ("int __kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t flags, size_t size,\n"
            "\t\t\tvoid **p)\n{\n\t\tc->freelist = next;\n\t\tstat(s, ALLOC_FASTPATH);\n}\n")
    v72 = ("static bool __kmem_cache_alloc_bulk(struct kmem_cache *s, gfp_t flags,\n"
           "\t\tsize_t size, void **p)\n{\n\tstat_add(s, ALLOC_SLOWPATH, i);\n}\n")
    assert [slub_bulk_stats_of(t) for t in (v61, v612, v72)] == [False, True, True]


def test_slub_debug_single():
    """mm/slub.c snippets shaped like 6.1.176's and 6.12's ___slab_alloc()/get_partial_node():
    a debug cache takes one object from the node's partial list or a new slab and returns it
    (never loading c->freelist); without either branch (the partial list's objects go to the
    CPU free list, or no ___slab_alloc() at all) the fact is false."""
    from orchestrator.prepare.treefacts import slub_debug_single_of

    partial_61 = ("static void *get_partial_node(struct kmem_cache *s, struct kmem_cache_node *n,\n"
                  "\t\t\t      struct partial_context *pc)\n{\n"
                  "\t\tif (kmem_cache_debug(s)) {\n"
                  "\t\t\tobject = alloc_single_from_partial(s, n, slab,\n\t\t\t\t\tpc->orig_size);\n"
                  "\t\t\tif (object)\n\t\t\t\tbreak;\n\t\t}\n\t\tt = acquire_slab(s, n, slab);\n}\n")
    partial_612 = partial_61.replace("if (kmem_cache_debug(s)) {\n\t\t\tobject",
                                     "if (IS_ENABLED(CONFIG_SLUB_TINY) || kmem_cache_debug(s)) {\n"
                                     "\t\t\tvoid *object")
    slow = ("static void *___slab_alloc(struct kmem_cache *s, gfp_t gfpflags, int node,\n"
            "\t\t\t  unsigned long addr, struct kmem_cache_cpu *c, unsigned int orig_size)\n{\n"
            "\tstat(s, ALLOC_SLOWPATH);\n\tif (kmem_cache_debug(s)) {\n"
            "\t\tfreelist = alloc_single_from_new_slab(s, slab, orig_size);\n"
            "\t\treturn freelist;\n\t}\n\tfreelist = slab->freelist;\n}\n")
    assert slub_debug_single_of(partial_61 + slow) is True
    assert slub_debug_single_of(partial_612 + slow) is True
    no_single_partial = partial_61.replace("object = alloc_single_from_partial", "t = acquire_slab")
    assert slub_debug_single_of(no_single_partial + slow) is False
    no_single_new = slow.replace("freelist = alloc_single_from_new_slab", "freelist = slab->freelist; //")
    assert slub_debug_single_of(partial_61 + no_single_new) is False
    assert slub_debug_single_of(partial_61) is False  # no ___slab_alloc() (7.2)


def test_proc_heap():
    """fs/proc/task_mmu.c show_map_vma() as in 6.1 (inclusive bounds) and 6.12 (through
    vma_is_initial_heap() in include/linux/mm.h: strict bounds)."""
    from orchestrator.prepare.treefacts import proc_heap_of

    v61 = ("\t\tif (vma->vm_start <= mm->brk &&\n\t\t    vma->vm_end >= mm->start_brk) {\n"
           "\t\t\tname = \"[heap]\";\n")
    v612 = "\tif (vma_is_initial_heap(vma)) {\n\t\t*name = \"[heap]\";\n"
    mm_h = ("static inline bool vma_is_initial_heap(const struct vm_area_struct *vma)\n{\n"
            "\treturn vma->vm_start < vma->vm_mm->brk &&\n\t\tvma->vm_end > vma->vm_mm->start_brk;\n}\n")
    assert proc_heap_of(v61) == "inclusive"
    assert proc_heap_of(v612, mm_h) == "strict"
    assert proc_heap_of(v612, "") == "unknown"


def test_anon_vma_fork_order_and_slab_sheaves():
    """mm/rmap.c anon_vma_fork(): 6.12 clones first, then anon_vma_alloc(); 7.2 allocates
    first (snippets shaped like both). mm/slub.c: calculate_sheaf_capacity() gives every
    cache sheaves (7.x); a tree without it has none, or only opted-in ones."""
    from orchestrator.prepare.treefacts import anon_vma_fork_of, slab_sheaves_of

    old = ("int anon_vma_fork(struct vm_area_struct *vma, struct vm_area_struct *pvma)\n{\n"
           "\terror = anon_vma_clone(vma, pvma);\n\tanon_vma = anon_vma_alloc();\n}\n")
    new = ("int anon_vma_fork(struct vm_area_struct *vma, struct vm_area_struct *pvma)\n{\n"
           "\tanon_vma = anon_vma_alloc();\n\trc = anon_vma_clone(vma, pvma, VMA_OP_FORK);\n}\n")
    assert anon_vma_fork_of(old) == "clone_first"
    assert anon_vma_fork_of(new) == "alloc_first"
    assert anon_vma_fork_of("") == "unknown"
    assert slab_sheaves_of("s->sheaf_capacity = calculate_sheaf_capacity(s, args);") is True
    assert slab_sheaves_of("s->sheaf_capacity = args->sheaf_capacity;") is False
