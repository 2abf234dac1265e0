"""simulator.slub: SLUB's fast/slow paths over the spawn loop, on tiny caches whose expected
counts are worked out by hand from mm/slub.c (6.12) below each test; the slab geometry
recorded with the instruction profile (parse_slab_geometry); slub_work's fallback."""

from __future__ import annotations

from orchestrator.run.insnprofile import parse_slab_geometry, slab_geometry_command
from simulator.insn_cost import slub_work
from simulator.slub import SlabGeometry, SlubCache, _Slab, spawn_counts, spawn_loop


def test_cpu_partial_slabs_is_slub_set_cpu_partial():
    # DIV_ROUND_UP(cpu_partial * 2, objs_per_slab): the 6.12 perf kernels' vm_area_struct
    # (28 per slab, cpu_partial 120) -> 9 slabs, vma_lock (102) -> 3
    assert SlabGeometry(28, 120, 5).cpu_partial_slabs == 9
    assert SlabGeometry(102, 120, 5).cpu_partial_slabs == 3
    assert SlabGeometry(4, 4, 1).cpu_partial_slabs == 2


def test_fewer_objects_than_a_slab_are_all_fast():
    # 4 per slab, 3 objects a fork. Fork 1 from an empty cache: the first allocation finds
    # no CPU slab (slow, new_slab), the other two pop c->freelist; the three frees hit
    # c->slab (fast). Fork 2 on: c->freelist holds 4 objects, everything is fast.
    geo = SlabGeometry(4, 4, 1)
    first, second = spawn_loop(geo, 3, 2)
    assert first == {"fast_allocs": 2, "slow_allocs": 1, "new_slabs": 1, "fast_frees": 3,
                     "slow_frees": 0, "discards": 0, "drains": 0}
    assert second == {"fast_allocs": 3, "slow_allocs": 0, "new_slabs": 0, "fast_frees": 3,
                      "slow_frees": 0, "discards": 0, "drains": 0}
    assert spawn_counts(geo, 3) == {k: float(v) for k, v in second.items()}


def test_a_slab_and_a_half_reuses_the_cpu_partial_slab():
    # 4 per slab, cpu_partial_slabs 2, 6 objects a fork. Steady state: CPU slab A with 4
    # free, CPU partial list [B] (empty). Allocations: 4 fast from A; the 5th finds
    # c->freelist empty (slow), A is full (DEACTIVATE_BYPASS), B comes off the CPU partial
    # list; the 6th is fast. Frees: A's 4 objects are not in c->slab (B): slow; the first
    # finds A full (prior == NULL) and puts it on the CPU partial list; B's 2 are fast.
    # The end state is the start's with A and B swapped.
    assert spawn_counts(SlabGeometry(4, 4, 1), 6) == {
        "fast_allocs": 5.0, "slow_allocs": 1.0, "new_slabs": 0.0, "fast_frees": 2.0,
        "slow_frees": 4.0, "discards": 0.0, "drains": 0.0}


def test_slabs_beyond_the_partial_lists_are_new_and_discarded():
    # 2 per slab, cpu_partial 1 -> cpu_partial_slabs 1, min_partial 1, 8 objects a fork.
    # Steady state: CPU slab A (2 free), CPU partial [B], node partial [C], all empty.
    # Allocations: a1 a2 from A (fast); a3 slow -> B off the CPU partial list, a4 fast;
    # a5 slow -> get_partial_node() takes C, a6 fast; a7 slow -> both lists empty:
    # new_slab() D, a8 fast: 5 fast, 3 slow, 1 new slab.
    # Frees: o1 (A, full) -> put_cpu_partial: [A]; o2 empties A (stays there). o3 (B, full)
    # -> the list holds 1 >= cpu_partial_slabs: drain, __put_partials([A]): the node holds 0
    # < min_partial, A is added; [B]. o4 empties B. o5 (C, full) -> drain [B]: empty and the
    # node holds 1 >= min_partial: B is discarded; [C]. o6 empties C. o7 o8: D is c->slab,
    # fast. End: CPU slab D (2 free), CPU partial [C], node [A]: the start's shape.
    want = {"fast_allocs": 5.0, "slow_allocs": 3.0, "new_slabs": 1.0, "fast_frees": 2.0,
            "slow_frees": 6.0, "discards": 1.0, "drains": 2.0}
    geo = SlabGeometry(2, 1, 1)
    assert spawn_counts(geo, 8) == want
    # from an empty cache the first fork takes 4 new slabs and reaches the same shape
    first, second = spawn_loop(geo, 8, 2)
    assert first["new_slabs"] == 4 and first["discards"] == 1
    assert {k: float(v) for k, v in second.items()} == want


def test_get_partial_node_moves_slabs_until_more_than_half_cpu_partial():
    # get_partial_node(): the node list's head becomes the CPU slab; the following ones go
    # to the CPU partial list (each put at its head) until ++partial_slabs > cpu_partial / 2
    # (cpu_partial 2: after the second moved slab). Node: 5 free slabs -> CPU slab n0,
    # CPU partial [n2, n1], node [n3, n4].
    c = SlubCache(SlabGeometry(1, 2, 10))
    node = [_Slab(1) for _ in range(5)]
    for s in node:
        s.on_node = True
    c.node = list(node)
    got = c.alloc()
    assert got is node[0] and c.cpu is node[0]
    assert c.cpu_partial == [node[2], node[1]]
    assert c.node == [node[3], node[4]]
    assert c.n["slow_allocs"] == 1 and c.n["new_slabs"] == 0


def test_a_free_emptying_a_node_partial_slab_discards_it_at_min_partial():
    # __slab_free() of the last object of a slab on the node partial list: discarded when
    # the node holds min_partial slabs or more (itself included), kept below that
    geo = SlabGeometry(2, 2, 2)
    for on_node, discarded in ((2, True), (1, False)):
        c = SlubCache(geo)
        slabs = [_Slab(1) for _ in range(on_node)]
        for s in slabs:
            s.on_node, s.live = True, 1
        c.node = list(slabs)
        c.free(slabs[0])
        assert c.n["slow_frees"] == 1
        assert c.n["discards"] == (1 if discarded else 0)
        assert (slabs[0] in c.node) is not discarded


def test_parse_slab_geometry():
    text = ("vm_area_struct objs_per_slab 28\nvm_area_struct order 0\n"
            "vm_area_struct cpu_partial 120\nvm_area_struct min_partial 5\n"
            "vma_lock objs_per_slab \nmaple_node objs_per_slab 16\nmaple_node slab_size 256\n"
            "junk line\n")
    assert parse_slab_geometry(text) == {
        "vm_area_struct": {"objs_per_slab": 28, "order": 0, "cpu_partial": 120,
                           "min_partial": 5},
        "maple_node": {"objs_per_slab": 16, "slab_size": 256}}
    assert "/sys/kernel/slab/vma_lock/objs_per_slab" in slab_geometry_command()


def test_slub_work_from_geometry_and_its_fallbacks():
    work = {"vmas_copied": 6, "avc_allocs": 0, "anon_vma_allocs": 0}
    geo = {"vm_area_struct": {"objs_per_slab": 4, "cpu_partial": 4, "min_partial": 1},
           "vma_lock": {"objs_per_slab": 4, "cpu_partial": 4, "min_partial": 1},
           "anon_vma_chain": {"objs_per_slab": 4, "cpu_partial": 4, "min_partial": 1},
           "anon_vma": {"objs_per_slab": 4, "cpu_partial": 4, "min_partial": 1}}
    # two caches of 6 objects a fork, as test_a_slab_and_a_half_reuses_the_cpu_partial_slab
    assert slub_work(work, geo) == {"slub_fast_allocs": 10.0, "slub_slow_allocs": 2.0,
                                    "slub_new_slabs": 0.0, "slub_fast_frees": 4.0,
                                    "slub_slow_frees": 8.0, "slub_discards": 0.0,
                                    "slub_drains": 0.0}
    # a kernel without a vma_lock cache (its other caches' geometry read): not counted
    no_lock = {k: v for k, v in geo.items() if k != "vma_lock"}
    assert slub_work(work, no_lock)["slub_fast_allocs"] == 5.0
    # no geometry recorded: every object of every cache counted as fast, nothing else
    fb = slub_work({"vmas_copied": 6, "avc_allocs": 3, "anon_vma_allocs": 1}, None)
    assert fb["slub_fast_allocs"] == fb["slub_fast_frees"] == 6 + 6 + 3 + 1
    assert fb["slub_slow_allocs"] == fb["slub_slow_frees"] == fb["slub_new_slabs"] == 0
