"""A line-by-line port of the write path of Linux 6.12 lib/maple_tree.c, restricted to the
allocation-range tree mm uses (leaves maple_leaf_64, internal nodes maple_arange_64).

Function names are the kernel's, so a reader can hold this file next to lib/maple_tree.c.
7.x trees (tree.copy_write) write splits, rebalances and spanning stores through struct
maple_copy instead: simulator.maple.write_copy, dispatched from mas_wr_store_entry(); the rest of this
file serves both (7.x frees every replaced node with ma_free_rcu(), tree.sheaves).
Nodes keep the kernel's raw arrays (pivots, slots, gaps, metadata end and gap offset, parent
and parent slot), because the algorithms read stale and zeroed array cells exactly as C
does (e.g. ma_data_end() reads the last pivot). Not modelled: dense/range_64 nodes (no
non-alloc trees), RCU readers (dead-node retries never happen single-threaded), the aliasing
of maple_big_node's gap[] over slot[21..] (never read back), and the maple_alloc chaining of
preallocated nodes (only their number matters: see Pool).
"""

from __future__ import annotations

from bisect import bisect_left

M = (1 << 64) - 1  # ULONG_MAX

LEAF_SLOTS, LEAF_PIVOTS, LEAF_MIN = 16, 15, 6          # maple_leaf_64
AR_SLOTS, AR_PIVOTS, AR_MIN = 10, 9, 4                 # maple_arange_64
MAPLE_ALLOC_SLOTS = 30                                  # 64-bit: MAPLE_NODE_SLOTS - 1
BIG = 40                                                # >= MAPLE_BIG_NODE_SLOTS (34)

# store types (enum store_type)
WR_INVALID, WR_NEW_ROOT, WR_STORE_ROOT, WR_EXACT_FIT, WR_SPANNING, WR_SPLIT, WR_REBALANCE, \
    WR_APPEND, WR_NODE_STORE, WR_SLOT_STORE = range(10)

# ma_state status
ST_START, ST_ACTIVE, ST_NONE, ST_ROOT = range(4)

F_BULK, F_REBALANCE, F_PREALLOC = 1, 2, 4
# Not a kernel flag: the ma_state is dropped right after this store (MapleTree.store_range),
# so the mtree_range_walk() that only repositions it after a split or rebalance is skipped
# (it reads the tree and writes nothing but the ma_state).
F_ONESHOT = 8

# Operation counters (not kernel state): the work the write path does, in units the two
# dup_mmap variants share, for the timing cost model (simulator.cost). Indices 0..9 count the
# stores of each store type (WR_*); the others are named below. Counting never changes what a
# store does; callers read OPS before and after the work they want to count (ops_snapshot()).
O_WALK = 10          # nodes visited by write walks (mas_wr_walk: one per level descended)
O_SLOT_WRITES = 11   # slots and pivots written in place (append, slot store, exact fit)
O_NODE_BUILDS = 12   # new nodes built by the write path (node store, split, rebalance, root)
O_BUILD_SLOTS = 13   # slots written into nodes the write path builds (mas_wr_node_store)
O_BNODE_SLOTS = 14   # slots copied through maple_big_node (mas_mab_cp + mab_mas_cp); 7.x:
                     # slots node_copy() writes (split, rebalance, spanning store)
O_GAP_UPDATES = 15   # parent gap writes (mas_parent_gap: one per level it writes)
O_DUP_NODES = 16     # whole nodes copied by __mt_dup (memcpy of a maple_node)
O_DUP_CHILDREN = 17  # child pointers __mt_dup re-points at the copies (and their parents)
O_LEAF_GAPS = 18     # mas_leaf_max_gap() calls (a store that changes a slot's NULL-ness
                     # re-scans its leaf for the largest gap: mas_update_gap)
O_LEAF_GAP_SLOTS = 19  # slots that mas_leaf_max_gap()'s loop steps over (its cost per call)
O_WALK_PIVOTS = 20   # pivots a write walk steps past to find its slot (mas_wr_node_walk's
                     # loop, from the ma_state's offset: 0 at the root, the slot's at a leaf
                     # the iterator stands on)
O_GAP_SCAN_SLOTS = 21  # parent gaps ma_max_gap() scans (all end + 1 of them) when
                       # mas_parent_gap() lowers a node's largest gap
O_ASCENTS = 22       # mas_ascend() calls of the write path (split, rebalance, siblings)
O_ASCEND_LOOPS = 23  # iterations of mas_ascend()'s ancestor loop in those calls
OPS = [0] * 24
OP_NAMES = {WR_NEW_ROOT: "st_new_root", WR_STORE_ROOT: "st_store_root",
            WR_EXACT_FIT: "st_exact_fit", WR_SPANNING: "st_spanning", WR_SPLIT: "st_split",
            WR_REBALANCE: "st_rebalance", WR_APPEND: "st_append", WR_NODE_STORE: "st_node_store",
            WR_SLOT_STORE: "st_slot_store", O_WALK: "walk_nodes", O_SLOT_WRITES: "slot_writes",
            O_NODE_BUILDS: "node_builds", O_BUILD_SLOTS: "build_slots",
            O_BNODE_SLOTS: "bnode_slots", O_GAP_UPDATES: "gap_updates",
            O_DUP_NODES: "dup_nodes", O_DUP_CHILDREN: "dup_children",
            O_LEAF_GAPS: "leaf_gap_scans", O_LEAF_GAP_SLOTS: "leaf_gap_slots",
            O_WALK_PIVOTS: "walk_pivots", O_GAP_SCAN_SLOTS: "gap_scan_slots",
            O_ASCENTS: "write_ascents", O_ASCEND_LOOPS: "write_ascend_loops"}


def ops_snapshot() -> list[int]:
    return OPS[:]


def ops_since(before: list[int]) -> dict[str, int]:
    """The counters' growth since ops_snapshot() returned `before`, by name."""
    return {name: OPS[i] - before[i] for i, name in OP_NAMES.items()}


def slots_of(leaf: bool) -> int:
    return LEAF_SLOTS if leaf else AR_SLOTS


def pivots_of(leaf: bool) -> int:
    return LEAF_PIVOTS if leaf else AR_PIVOTS


def min_slots_of(leaf: bool) -> int:
    return LEAF_MIN if leaf else AR_MIN


DEAD = object()  # the parent of a dead node (see Node)


class Node:
    """struct maple_node as leaf_64 or arange_64. parent None = root (parent is the tree);
    parent DEAD = dead node (the kernel points a dead node's parent at itself; a sentinel
    leaves no reference cycle, so dead nodes are freed by reference counting)."""

    __slots__ = ("leaf", "piv", "slot", "gap", "end", "mgap", "parent", "pslot")

    def __init__(self, leaf: bool):
        self.leaf = leaf
        if leaf:
            self.piv = [0] * LEAF_PIVOTS
            self.slot = [None] * LEAF_SLOTS
            self.gap = None
        else:
            self.piv = [0] * AR_PIVOTS
            self.slot = [None] * AR_SLOTS
            self.gap = [0] * AR_SLOTS
        self.end = 0
        self.mgap = 0
        self.parent = None
        self.pslot = 0


class Pool:
    """The nodes an ma_state holds (mas->alloc): allocated in one single allocation plus bulk
    chunks of at most 30, handed out by mas_pop_node, returned by mas_push_node."""

    __slots__ = ("avail", "log", "sheaf")

    def __init__(self, log):
        self.avail = 0
        self.log = log  # callable(kind, count)
        # 7.x: the nodes are in a prefilled slab sheaf (mas->sheaf), not mt_alloc_one()'s
        # mas->alloc; what a sheaf still holds at mas_destroy() goes back with
        # kmem_cache_return_sheaf() and is not freed by the tree
        self.sheaf = False


class BigNode:
    __slots__ = ("pivot", "slot", "gap", "b_end", "leaf")

    def __init__(self):
        self.pivot = [0] * BIG
        self.slot = [None] * BIG
        self.gap = [0] * BIG
        self.b_end = 0
        self.leaf = True

    def clear(self):
        self.pivot = [0] * BIG
        self.slot = [None] * BIG
        self.gap = [0] * BIG
        self.b_end = 0


class MaState:
    __slots__ = ("tree", "index", "last", "node", "min", "max", "offset", "end", "depth",
                 "status", "flags", "pool", "store_type")

    def __init__(self, tree, index=0, last=0):
        self.tree = tree
        self.index = index
        self.last = last
        self.node = None
        self.min = 0
        self.max = M
        self.offset = 0
        self.end = 0
        self.depth = 0
        self.status = ST_START
        self.flags = 0
        self.pool = None
        self.store_type = WR_INVALID

    def copy(self) -> MaState:
        n = MaState.__new__(MaState)
        n.tree = self.tree
        n.index = self.index
        n.last = self.last
        n.node = self.node
        n.min = self.min
        n.max = self.max
        n.offset = self.offset
        n.end = self.end
        n.depth = self.depth
        n.status = self.status
        n.flags = self.flags
        n.pool = self.pool
        n.store_type = self.store_type
        return n

    def assign(self, o: MaState) -> None:
        self.tree = o.tree
        self.index = o.index
        self.last = o.last
        self.node = o.node
        self.min = o.min
        self.max = o.max
        self.offset = o.offset
        self.end = o.end
        self.depth = o.depth
        self.status = o.status
        self.flags = o.flags
        self.pool = o.pool
        self.store_type = o.store_type


class WrState:
    __slots__ = ("mas", "node", "r_min", "r_max", "leaf", "offset_end", "pivots", "end_piv",
                 "slots", "entry", "content", "new_end")

    def __init__(self, mas, entry):
        self.mas = mas
        self.node = None
        self.r_min = 0
        self.r_max = 0
        self.leaf = True
        self.offset_end = 0
        self.pivots = None
        self.end_piv = 0
        self.slots = None
        self.entry = entry
        self.content = None
        # not a kernel field: mas_wr_new_end() as mas_wr_store_type() computed it (nothing
        # between that and mas_wr_store_entry() changes what it reads)
        self.new_end = 0


class NoMem(Exception):
    """An allocation check failed (fault injection)."""


# ---------------------------------------------------------------- node helpers

def ma_data_end(node: Node, mx: int) -> int:
    if not node.leaf:
        return node.end
    p = node.piv[LEAF_PIVOTS - 1]
    if not p:
        return node.end
    if p == mx:
        return LEAF_PIVOTS - 1
    return LEAF_PIVOTS


def mas_data_end(mas: MaState) -> int:
    return ma_data_end(mas.node, mas.max)


def mas_safe_pivot(mas: MaState, pivots, piv: int, leaf: bool) -> int:
    if piv >= (LEAF_PIVOTS if leaf else AR_PIVOTS):
        return mas.max
    return pivots[piv]


def mas_safe_min(mas: MaState, pivots, offset: int) -> int:
    if offset:
        return (pivots[offset - 1] + 1) & M
    return mas.min


def ma_set_meta(node: Node, offset: int, end: int) -> None:
    node.mgap = offset
    node.end = end


def mas_leaf_set_meta(node: Node, end: int) -> None:
    if end < LEAF_SLOTS - 1:
        ma_set_meta(node, 0, end)


def mte_is_root(node: Node) -> bool:
    return node.parent is None


def mas_set_parent(enode: Node, parent: Node, slot: int) -> None:
    enode.parent = parent
    enode.pslot = slot


def mte_set_node_dead(node: Node) -> None:
    node.parent = DEAD


def mas_is_root_limits(mas: MaState) -> bool:
    return not mas.min and mas.max == M


def mas_descend(mas: MaState) -> None:
    node = mas.node
    pivots = node.piv
    if mas.offset:
        mas.min = (pivots[mas.offset - 1] + 1) & M
    mas.max = mas_safe_pivot(mas, pivots, mas.offset, node.leaf)
    mas.node = node.slot[mas.offset]


def mas_ascend(mas: MaState) -> int:
    OPS[O_ASCENTS] += 1
    a_node = mas.node
    if a_node.parent is None:
        mas.offset = 0
        return 0
    p_node = a_node.parent
    if p_node is DEAD:  # ma_dead_node()
        return 1
    mas.offset = a_node.pslot
    a_enode = p_node
    mas.node = a_enode
    if a_enode.parent is None:
        mas.max = M
        mas.min = 0
        return 0
    mn, mx = 0, M
    set_min = set_max = False
    if not mas.offset:
        mn = mas.min
        set_min = True
    if mas.max == M:
        set_max = True
    while True:
        OPS[O_ASCEND_LOOPS] += 1
        # p_enode = a_enode; a_node = mte_parent(p_enode); a_slot = mte_parent_slot(p_enode)
        a_slot = a_enode.pslot
        a_enode = a_node = a_enode.parent
        pivots = a_node.piv
        if not set_min and a_slot:
            set_min = True
            mn = (pivots[a_slot - 1] + 1) & M
        if not set_max and a_slot < AR_PIVOTS:
            set_max = True
            mx = pivots[a_slot]
        if a_node.parent is None:
            break
        if set_min and set_max:
            break
    mas.max = mx
    mas.min = mn
    return 0


# ---------------------------------------------------------------- allocation

def mas_alloc_nodes(mas: MaState, requested: int) -> None:
    """mas_node_count() from an empty ma_state: one single allocation, then bulk chunks."""
    pool = mas.pool
    pool.log("single", 1)
    pool.avail += 1
    requested -= 1
    while requested:
        n = min(requested, MAPLE_ALLOC_SLOTS)
        pool.log("bulk", n)
        pool.avail += n
        requested -= n


def mas_node_count(mas: MaState, count: int) -> None:
    """Make sure the ma_state holds `count` nodes. On a tree that allocates on demand (6.1's
    maple tree: MapleTree.ondemand) the write path calls it where it needs nodes, and a
    preallocated (bulk) ma_state that still holds nodes is never topped up: mas_alloc_nodes()
    returns at once under MA_STATE_PREALLOC when anything is allocated."""
    if mas.pool.avail < count:
        if mas.flags & F_PREALLOC and mas.pool.avail:
            return
        if mas.pool.avail:
            # only the kernel's retry paths top up a non-empty ma_state
            raise NotImplementedError("top-up of a non-empty node pool")
        mas_alloc_nodes(mas, count - mas.pool.avail)


_new_node = Node.__new__
_ZERO_LEAF_PIV = [0] * LEAF_PIVOTS
_NULL_LEAF_SLOT = [None] * LEAF_SLOTS
_ZERO_AR_PIV = [0] * AR_PIVOTS
_NULL_AR_SLOT = [None] * AR_SLOTS
_ZERO_AR_GAP = [0] * AR_SLOTS


def new_node(leaf: bool) -> Node:
    """Node(leaf) without the __init__ call (the hot allocation path)."""
    OPS[O_NODE_BUILDS] += 1
    n = _new_node(Node)
    n.leaf = leaf
    if leaf:
        n.piv = _ZERO_LEAF_PIV[:]
        n.slot = _NULL_LEAF_SLOT[:]
        n.gap = None
    else:
        n.piv = _ZERO_AR_PIV[:]
        n.slot = _NULL_AR_SLOT[:]
        n.gap = _ZERO_AR_GAP[:]
    n.end = 0
    n.mgap = 0
    n.parent = None
    n.pslot = 0
    return n


def mas_pop_node(mas: MaState, leaf: bool) -> Node:
    pool = mas.pool
    if pool.avail <= 0:
        if not mas.tree.sheaves or mas.tree.copy_write:
            raise AssertionError("maple: ran out of preallocated nodes")
        # sheaves with the big-node write path (not a tree the port has read: runconfig says
        # so): 7.x sizes a rebalance or spanning store for its own write path
        # (mas_prealloc_calc), which can need fewer nodes than 6.12's: take the extra nodes
        # from the sheaf (no check either way; only the node count differs)
        mas.tree._log_sheaf(1)
        pool.avail += 1
    pool.avail -= 1
    return new_node(leaf)  # zeroed, as mas_pop_node()'s memset leaves it


def mas_free(mas: MaState, node: Node) -> None:
    t = mas.tree
    if t.rcu or t.sheaves:  # 7.x (sheaves): ma_free_rcu() whatever the tree's mode
        t.op_freed += 1
        if t.sheaves:
            t.op_rcu_freed += 1  # 7.x ma_free_rcu() is kfree_rcu()
    else:
        mas.pool.avail += 1  # mas_push_node: freed at mas_destroy


def subtree_nodes(node: Node, mx: int) -> int:
    if node.leaf:
        return 1
    n = 1
    end = ma_data_end(node, mx)
    for i in range(end + 1):
        cmax = node.piv[i] if i < AR_PIVOTS and i < end else mx
        child = node.slot[i]
        if child is not None:
            n += subtree_nodes(child, cmax)
    return n


# ---------------------------------------------------------------- gaps

def mas_leaf_max_gap(mas: MaState) -> int:
    return ma_leaf_max_gap(mas.node, mas.min, mas.max)


def ma_leaf_max_gap(mn: Node, mas_min: int, mas_max: int) -> int:
    OPS[O_LEAF_GAPS] += 1
    slots = mn.slot
    pivots = mn.piv
    max_gap = 0
    if not slots[0]:
        max_gap = pivots[0] - mas_min + 1
        i = 2
    else:
        i = 1
    # ma_data_end() of a leaf, inlined
    p = pivots[LEAF_PIVOTS - 1]
    if not p:
        max_piv = mn.end - 1
    elif p == mas_max:
        max_piv = LEAF_PIVOTS - 2
    else:
        max_piv = LEAF_PIVOTS - 1
    if max_piv < 0:
        max_piv = 255  # unsigned char wrap in C; never reached with more than one slot
        return max_gap
    if mas_max == M and max_piv + 1 < LEAF_SLOTS and not slots[max_piv + 1]:
        gap = M - pivots[max_piv]
        if gap > max_gap:
            max_gap = gap
        if max_gap > pivots[max_piv] - mas_min:
            return max_gap
    while i <= max_piv:
        OPS[O_LEAF_GAP_SLOTS] += 1
        if slots[i]:
            i += 1
        else:
            gap = pivots[i] - pivots[i - 1]
            if gap > max_gap:
                max_gap = gap
            i += 2
    return max_gap


def ma_max_gap(node: Node) -> tuple[int, int]:
    end = node.end
    OPS[O_GAP_SCAN_SLOTS] += end + 1
    gaps = node.gap
    max_gap = max(gaps[:end + 1])
    if max_gap <= 0:
        return 0, end
    # the C loop runs from end down to 0 and keeps the first (highest) offset of the maximum
    offset = end
    while gaps[offset] != max_gap:
        offset -= 1
    return max_gap, offset


def mas_max_gap(mas: MaState) -> int:
    node = mas.node
    if node.leaf:
        return mas_leaf_max_gap(mas)
    return node.gap[node.mgap]


def mas_parent_gap(mas: MaState, offset: int, new: int) -> None:
    pnode = mas.node.parent
    while True:
        pgaps = pnode.gap
        meta_offset = pnode.mgap
        meta_gap = pgaps[meta_offset]
        pgaps[offset] = new
        OPS[O_GAP_UPDATES] += 1
        if meta_gap == new:
            return
        if offset != meta_offset:
            if meta_gap > new:
                return
            pnode.mgap = offset
        elif new < meta_gap:
            # ma_max_gap(pnode) inlined: the highest offset of the largest gap
            end = pnode.end
            OPS[O_GAP_SCAN_SLOTS] += end + 1
            new = max(pgaps[:end + 1])
            if new <= 0:
                new = 0
                meta_offset = end
            else:
                meta_offset = end
                while pgaps[meta_offset] != new:
                    meta_offset -= 1
            pnode.mgap = meta_offset
        if pnode.parent is None:
            return
        # ascend: penode = pnode; pnode = mte_parent(penode); offset = mte_parent_slot(penode)
        offset = pnode.pslot
        pnode = pnode.parent


def mas_update_gap(mas: MaState) -> None:
    node = mas.node
    parent = node.parent
    if parent is None:
        return
    # mas_max_gap() inlined
    max_gap = mas_leaf_max_gap(mas) if node.leaf else node.gap[node.mgap]
    pslot = node.pslot
    if parent.gap[pslot] != max_gap:
        mas_parent_gap(mas, pslot, max_gap)


def mte_set_gap(node: Node, gap: int, val: int) -> None:
    if not node.leaf:
        node.gap[gap] = val


# ---------------------------------------------------------------- tree placement

def mas_put_in_tree(mas: MaState, old: Node, new_height: int | None = None) -> None:
    """new_height: 7.x passes the tree's new height (6.12 reads mas->depth)."""
    node = mas.node
    if node.parent is None:  # mte_is_root(mas->node): parent copied from the old root
        mas.tree.root = node
        mas.tree.height = mas.depth if new_height is None else new_height
    else:
        node.parent.slot[node.pslot] = node
    mte_set_node_dead(old)


def mas_replace_node(mas: MaState, old: Node) -> None:
    mas_put_in_tree(mas, old)
    mas_free(mas, old)


def mab_shift_right(b: BigNode, shift: int) -> None:
    size = b.b_end
    b.pivot[shift:shift + size] = b.pivot[0:size]
    b.slot[shift:shift + size] = b.slot[0:size]
    if not b.leaf:
        b.gap[shift:shift + size] = b.gap[0:size]
    del b.pivot[BIG:], b.slot[BIG:], b.gap[BIG:]


def mab_middle_node(b: BigNode, split: int, slot_count: int) -> bool:
    size = b.b_end
    if size >= 2 * slot_count:
        return True
    if not b.slot[split] and size >= 2 * slot_count - 1:
        return True
    return False


def mab_no_null_split(b: BigNode, split: int, slot_count: int) -> int:
    if not b.slot[split]:
        if split < slot_count - 1 and (b.b_end - split) > min_slots_of(b.leaf):
            split += 1
        else:
            split -= 1
    return split


def mab_calc_split(mas: MaState, bn: BigNode) -> tuple[int, int]:
    b_end = bn.b_end
    split = b_end // 2
    slot_count = slots_of(bn.leaf)
    if mas.flags & F_BULK:
        mid_split = 0
        split = b_end - min_slots_of(bn.leaf)
        if not bn.leaf:
            return split, mid_split
        mas.flags |= F_REBALANCE
        if not bn.slot[split]:
            split -= 1
        return split, mid_split
    if mab_middle_node(bn, split, slot_count):
        split = b_end // 3
        mid_split = split * 2
    else:
        mid_split = 0
    split = mab_no_null_split(bn, split, slot_count)
    if mid_split:
        mid_split = mab_no_null_split(bn, mid_split, slot_count)
    return split, mid_split


def mas_mab_cp(mas: MaState, mas_start: int, mas_end: int, b: BigNode, mab_start: int) -> None:
    node = mas.node
    leaf = node.leaf
    pivots = node.piv
    i = mas_start
    j = mab_start
    bp = b.pivot
    done = False
    if not i:
        bp[j] = pivots[i]
        i += 1
        if i > mas_end:
            done = True
        else:
            j += 1
    if not done:
        npiv = LEAF_PIVOTS if leaf else AR_PIVOTS
        piv_end = mas_end if mas_end < npiv else npiv
        mx = mas.max
        if i < piv_end:
            # copy pivots up to (and including) the first 0 or max, as the C loop does
            seg = pivots[i:piv_end]
            k = n = piv_end - i
            if 0 in seg:
                k = seg.index(0)
            if mx in seg:
                km = seg.index(mx)
                if km < k:
                    k = km
                    done = True
            if k < n:
                bp[j:j + k + 1] = seg[:k + 1]
            else:
                bp[j:j + n] = seg
            i += k
            j += k
        if not done and i <= mas_end:
            bp[j] = mx if i >= npiv else pivots[i]
    j += 1
    b.b_end = j
    j -= mab_start
    OPS[O_BNODE_SLOTS] += j
    bs = b.slot
    nslot = node.slot
    bs[mab_start:mab_start + j] = nslot[mas_start:mas_start + j]
    if len(nslot) < mas_start + j:  # C copies past the array end (into the next field)
        for k in range(len(nslot) - mas_start, j):
            bs[mab_start + k] = None
    if not leaf:
        g = node.gap[mas_start:mas_start + j]
        if len(g) < j:
            g += [0] * (j - len(g))
        b.gap[mab_start:mab_start + j] = g
    if mab_start + j > BIG or len(bs) != BIG:  # a copy past the big node's arrays
        del b.pivot[BIG:], bs[BIG:], b.gap[BIG:]


def mab_mas_cp(b: BigNode, mab_start: int, mab_end: int, mas: MaState, new_max: bool) -> None:
    node = mas.node
    leaf = node.leaf
    npiv = LEAF_PIVOTS if leaf else AR_PIVOTS
    slots = node.slot
    pivots = node.piv
    if mab_end - mab_start > npiv:
        mab_end -= 1
    if not pivots[npiv - 1]:
        slots[npiv] = None
    bp = b.pivot
    # the C loop copies bp[mab_start] and then on while i <= mab_end and bp[i] != 0
    if mab_end > mab_start:
        seg = bp[mab_start + 1:mab_end + 1]
        k = 1 + (seg.index(0) if 0 in seg else len(seg))
    else:
        k = 1
    i = mab_start + k
    OPS[O_BNODE_SLOTS] += k
    if k <= npiv:
        pivots[0:k] = bp[mab_start:i]
    else:
        pivots[0:npiv] = bp[mab_start:mab_start + npiv]
    slots[0:k] = b.slot[mab_start:i]
    if len(slots) > npiv + 1:
        del slots[npiv + 1:]
    if new_max:
        mas.max = bp[i - 1]
    end = k - 1
    if not leaf:
        gaps = node.gap
        if k > len(gaps):
            raise IndexError("maple: big node copy past the gap array")
        g = b.gap[mab_start:i]
        gaps[0:k] = g
        max_gap = max(g)
        # the C loop runs downwards and keeps the first (highest) offset of the maximum
        offset = 0
        if max_gap > 0:
            offset = end
            while g[offset] != max_gap:
                offset -= 1
        node.mgap = offset
        node.end = end
    elif end < LEAF_SLOTS - 1:
        node.mgap = 0
        node.end = end


def mas_bulk_rebalance(mas: MaState, end: int, leaf: bool) -> None:
    if not (mas.flags & F_BULK):
        return
    if mte_is_root(mas.node):
        return
    if end > min_slots_of(leaf):
        mas.flags &= ~F_REBALANCE


def mas_store_b_node(wr: WrState, b: BigNode, offset_end: int) -> None:
    mas = wr.mas
    b.leaf = wr.leaf
    b_end = 0
    slot = mas.offset
    if slot:
        mas_mab_cp(mas, 0, slot - 1, b, 0)
        b_end = b.b_end
        piv = b.pivot[b_end - 1]
    else:
        piv = (mas.min - 1) & M
    if ((piv + 1) & M) < mas.index:
        b.slot[b_end] = wr.content
        if not wr.content:
            b.gap[b_end] = (mas.index - 1 - piv) & M
        b.pivot[b_end] = mas.index - 1
        b_end += 1
    mas.offset = b_end
    b.slot[b_end] = wr.entry
    b.pivot[b_end] = mas.last
    if mas.last >= mas.max:
        b.b_end = b_end
        return
    # mas_safe_pivot() inlined
    piv = mas.max if offset_end >= (LEAF_PIVOTS if wr.leaf else AR_PIVOTS) else wr.pivots[offset_end]
    if piv > mas.last:
        if piv == M:
            if mas.flags & F_BULK:  # mas_bulk_rebalance() returns at once outside bulk mode
                mas_bulk_rebalance(mas, b.b_end, wr.leaf)
        if offset_end != slot:
            wr.content = wr.slots[offset_end]
        b_end += 1
        b.slot[b_end] = wr.content
        if not wr.content:
            b.gap[b_end] = (piv - mas.last + 1) & M
        b.pivot[b_end] = piv
    slot = offset_end + 1
    if slot > mas.end:
        b.b_end = b_end
        return
    b_end += 1
    mas_mab_cp(mas, slot, mas.end + 1, b, b_end)
    b.b_end -= 1


def mas_prev_sibling(mas: MaState) -> bool:
    node = mas.node
    p_slot = node.pslot
    if mte_is_root(node):
        return False
    if not p_slot:
        return False
    mas_ascend(mas)
    mas.offset = p_slot - 1
    mas_descend(mas)
    return True


def mas_next_sibling(mas: MaState) -> bool:
    node = mas.node
    if node.parent is None:  # mte_is_root()
        return False
    # the kernel ascends a copy of mas ("parent = *mas") and assigns it back on success;
    # mas_ascend() only moves node, offset, min and max, so those are saved and restored
    saved = mas.node, mas.offset, mas.min, mas.max
    mas_ascend(mas)
    mas.offset = node.pslot + 1
    if mas.offset > mas_data_end(mas):
        mas.node, mas.offset, mas.min, mas.max = saved
        return False
    mas_descend(mas)
    return True


def parent_slot(node: Node) -> int:
    """mte_parent_slot(): 0 for the root."""
    return 0 if node.parent is None else node.pslot


def mas_wr_node_walk(wr: WrState) -> None:
    mas = wr.mas
    node = wr.node = mas.node
    pivots = wr.pivots = node.piv
    count = mas.end = ma_data_end(node, mas.max)
    offset = mas.offset
    index = mas.index
    while offset < count and index > pivots[offset]:
        offset += 1
    OPS[O_WALK_PIVOTS] += offset - mas.offset
    wr.r_max = pivots[offset] if offset < count else mas.max
    wr.r_min = mas_safe_min(mas, pivots, offset)
    wr.offset_end = mas.offset = offset


# ---------------------------------------------------------------- subtree state (mast)

class Mast:
    __slots__ = ("l", "m", "r", "orig_l", "orig_r", "bn")


def mast_rebalance_next(mast: Mast) -> None:
    b_end = mast.bn.b_end
    mas_mab_cp(mast.orig_r, 0, slots_of(mast.orig_r.node.leaf), mast.bn, b_end)
    mast.orig_r.last = mast.orig_r.max


def mast_rebalance_prev(mast: Mast) -> None:
    end = mas_data_end(mast.orig_l) + 1
    b_end = mast.bn.b_end
    mab_shift_right(mast.bn, end)
    mas_mab_cp(mast.orig_l, 0, end - 1, mast.bn, 0)
    mast.l.min = mast.orig_l.min
    mast.orig_l.index = mast.orig_l.min
    mast.bn.b_end = end + b_end
    mast.l.offset += end


def mast_spanning_rebalance(mast: Mast) -> bool:
    r_tmp = mast.orig_r.copy()
    l_tmp = mast.orig_l.copy()
    depth = 0
    while True:
        mas_ascend(mast.orig_r)
        mas_ascend(mast.orig_l)
        depth += 1
        if mast.orig_r.offset < mas_data_end(mast.orig_r):
            mast.orig_r.offset += 1
            while True:
                mas_descend(mast.orig_r)
                mast.orig_r.offset = 0
                depth -= 1
                if not depth:
                    break
            mast_rebalance_next(mast)
            mast.orig_l.assign(l_tmp)
            return True
        elif mast.orig_l.offset != 0:
            mast.orig_l.offset -= 1
            while True:
                mas_descend(mast.orig_l)
                mast.orig_l.offset = mas_data_end(mast.orig_l)
                depth -= 1
                if not depth:
                    break
            mast_rebalance_prev(mast)
            mast.orig_r.assign(r_tmp)
            return True
        if mte_is_root(mast.orig_r.node):
            break
    mast.orig_r.assign(r_tmp)
    mast.orig_l.assign(l_tmp)
    return False


def mast_ascend(mast: Mast) -> None:
    wr = WrState(mast.orig_r, None)
    mas_ascend(mast.orig_l)
    mas_ascend(mast.orig_r)
    mast.orig_r.offset = 0
    mast.orig_r.index = mast.r.max
    if mast.orig_r.last < mast.orig_r.index:
        mast.orig_r.last = mast.orig_r.index
    wr.leaf = mast.orig_r.node.leaf
    mas_wr_node_walk(wr)
    mast.orig_l.offset = 0
    mast.orig_l.index = mast.l.min
    wr.mas = mast.orig_l
    wr.leaf = mast.orig_l.node.leaf
    mas_wr_node_walk(wr)
    mast.bn.leaf = wr.leaf


def mas_new_ma_node(mas: MaState, b: BigNode) -> Node:
    return mas_pop_node(mas, b.leaf)


def mas_mab_to_node(mas: MaState, b: BigNode):
    slot_count = slots_of(b.leaf)
    left = mas_pop_node(mas, b.leaf)
    right = middle = None
    mid_split = 0
    if b.b_end < slot_count:
        split = b.b_end
    else:
        split, mid_split = mab_calc_split(mas, b)
        right = mas_pop_node(mas, b.leaf)
    if mid_split:
        middle = mas_pop_node(mas, b.leaf)
    return split, mid_split, left, right, middle


def mab_set_b_end(b: BigNode, mas: MaState, entry) -> None:
    if not entry:
        return
    b_end = b.b_end
    b.slot[b_end] = entry
    node = mas.node  # mas_max_gap()
    b.gap[b_end] = mas_leaf_max_gap(mas) if node.leaf else node.gap[node.mgap]
    b.pivot[b_end] = mas.max
    b.b_end = b_end + 1


def mas_set_split_parent(mas: MaState, left, right, slot: int, split: int) -> int:
    if mas.status == ST_NONE:
        return slot
    if slot <= split:
        mas_set_parent(mas.node, left, slot)
    elif right:
        mas_set_parent(mas.node, right, slot - split - 1)
    return slot + 1


def mast_set_split_parents(mast: Mast, left, middle, right, split: int, mid_split: int) -> None:
    if mast.l.status == ST_NONE:
        return
    lft, r = left, right
    if middle:
        r = middle
    slot = mast.l.offset

    def check(lft, r, split):
        if r is right:
            return lft, r, split
        if slot < mid_split:
            return lft, r, split
        return r, right, mid_split

    lft, r, split = check(lft, r, split)
    slot = mas_set_split_parent(mast.l, lft, r, slot, split)
    lft, r, split = check(lft, r, split)
    slot = mas_set_split_parent(mast.m, lft, r, slot, split)
    lft, r, split = check(lft, r, split)
    slot = mas_set_split_parent(mast.r, lft, r, slot, split)


def mas_topiary_replace(mas: MaState, old: Node, new_height: int | None = None) -> None:
    """mas_topiary_replace(). The kernel walks both trees with three ma_states per level
    (mas_find_child / mas_adopt_children); here a level is a list of (node, min, max) of the
    active states, in the same order, with the same limit of three per level. The new tree's
    states only need their nodes (all internal: ma_data_end() is the node's end); the old
    tree's need the limits mas_descend() gives, for the whole-subtree test against
    [mas.index, mas.last] (the index/last every copied state carries)."""
    tree = mas.tree
    mas_put_in_tree(mas, old, new_height)
    active = mas.status != ST_NONE
    # new tree: find up to three new children per level, adopt every child
    level = [mas.node] if active else []
    while level and not level[0].leaf:
        found: list[Node] = []
        nf = 0
        for p in level:
            # mas_find_child() up to three in all, then mas_adopt_children(): the test of a
            # child's parent precedes its adoption, so one pass does both
            for off, c in enumerate(p.slot[:p.end + 1]):
                if c.parent is p:
                    if nf < 3:
                        found.append(c)
                        nf += 1
                else:
                    c.parent = p
                c.pslot = off
        if not found:
            break
        level = found
    if old.leaf:
        mas_free(mas, old)
        return
    # old tree: kill the replaced nodes, whole subtrees inside [index, last] at once
    idx = mas.index
    lst = mas.last
    subtrees: list[tuple[Node, int]] = []
    olevel = [(old, mas.min, mas.max)] if active else []
    while True:
        ofound: list[tuple[Node, int, int]] = []
        for p, pmin, pmax in olevel:
            if len(ofound) >= 3:
                break
            piv = p.piv
            for off, c in enumerate(p.slot[:p.end + 1]):
                if c.parent is p:
                    cmin = (piv[off - 1] + 1) & M if off else pmin
                    cmax = piv[off] if off < AR_PIVOTS else pmax
                    if cmin >= idx and cmax <= lst:
                        c.parent = DEAD
                        subtrees.append((c, cmax))
                    else:
                        ofound.append((c, cmin, cmax))
                        if len(ofound) == 3:
                            break
        if not ofound:
            break
        _topiary_free(mas, olevel, tree.rcu or tree.sheaves)
        olevel = ofound
        if ofound[0][0].leaf:
            break
    _topiary_free(mas, olevel, tree.rcu or tree.sheaves)
    for node, mx in subtrees:  # mas_mat_destroy: whole subtrees freed
        tree.op_freed += subtree_nodes_dead(node, mx)


def _topiary_free(mas: MaState, level, in_rcu: bool) -> None:
    """mas_topiary_node() of each active state of a level (mas_free() of each node; 7.x
    always ma_free_rcu(), `in_rcu` True)."""
    for node, _, _ in level:
        node.parent = DEAD
    if in_rcu:
        t = mas.tree
        t.op_freed += len(level)
        if t.sheaves:
            t.op_rcu_freed += len(level)  # 7.x ma_free_rcu() is kfree_rcu()
    else:
        mas.pool.avail += len(level)  # mas_push_node() each


def subtree_nodes_dead(node: Node, mx: int) -> int:
    return subtree_nodes(node, mx)


def mas_wmb_replace(mas: MaState, old: Node) -> None:
    mas_topiary_replace(mas, old)
    if mas.node.leaf:
        return
    mas_update_gap(mas)


def mast_cp_to_nodes(mast: Mast, left, middle, right, split: int, mid_split: int) -> None:
    new_lmax = True
    for st, nd in ((mast.l, left), (mast.m, middle), (mast.r, right)):
        if nd is not None:
            st.node = nd
            st.status = ST_ACTIVE
        else:
            st.node = None
            st.status = ST_NONE
    mast.l.min = mast.orig_l.min
    if split == mast.bn.b_end:
        mast.l.max = mast.orig_r.max
        new_lmax = False
    mab_mas_cp(mast.bn, 0, split, mast.l, new_lmax)
    if middle:
        mab_mas_cp(mast.bn, 1 + split, mid_split, mast.m, True)
        mast.m.min = (mast.bn.pivot[split] + 1) & M
        split = mid_split
    mast.r.max = mast.orig_r.max
    if right:
        mab_mas_cp(mast.bn, 1 + split, mast.bn.b_end, mast.r, False)
        mast.r.min = (mast.bn.pivot[split] + 1) & M


def mast_combine_cp_left(mast: Mast) -> None:
    l_slot = mast.orig_l.offset
    if not l_slot:
        return
    mas_mab_cp(mast.orig_l, 0, l_slot - 1, mast.bn, 0)


def mast_combine_cp_right(mast: Mast) -> None:
    if mast.bn.pivot[mast.bn.b_end - 1] >= mast.orig_r.max:
        return
    mas_mab_cp(mast.orig_r, mast.orig_r.offset + 1, slots_of(mast.orig_r.node.leaf), mast.bn,
               mast.bn.b_end)
    mast.orig_r.last = mast.orig_r.max


def mtree_range_walk(mas: MaState):
    nxt = mas.node
    mn = mas.min
    mx = mas.max
    index = mas.index
    while True:
        last = nxt
        node = nxt
        pivots = node.piv
        leaf = node.leaf
        # ma_data_end() inlined
        if leaf and pivots[LEAF_PIVOTS - 1]:
            end = LEAF_PIVOTS - 1 if pivots[LEAF_PIVOTS - 1] == mx else LEAF_PIVOTS
        else:
            end = node.end
        prev_min = mn
        prev_max = mx
        if pivots[0] >= index:
            offset = 0
            mx = pivots[0]
        else:
            # the first offset in [1, end) whose pivot is >= index, else end (the C loop;
            # pivots[1:end] ascend in a valid node)
            offset = bisect_left(pivots, index, 1, end) if end > 1 else 1
            if offset < end:
                mx = pivots[offset]
            mn = (pivots[offset - 1] + 1) & M
        nxt = node.slot[offset]
        if leaf:
            break
    mas.end = end
    mas.offset = offset
    mas.index = mn
    mas.last = mx
    mas.min = prev_min
    mas.max = prev_max
    mas.node = last
    return nxt


def mas_spanning_rebalance(mas: MaState, mast: Mast, count: int) -> None:
    tree = mas.tree
    l_mas = MaState(tree, mas.index, mas.index)
    r_mas = MaState(tree, mas.index, mas.last)
    m_mas = MaState(tree, mas.index, mas.index)
    mast.l, mast.m, mast.r = l_mas, m_mas, r_mas
    l_mas.status = r_mas.status = m_mas.status = ST_NONE
    bn = mast.bn
    left = middle = right = None
    if (mast.orig_l.min != 0 or mast.orig_r.max != M) and bn.b_end <= min_slots_of(bn.leaf):
        mast_spanning_rebalance(mast)
    l_mas.depth = 0
    jumped_new_root = False
    while count:
        count -= 1
        bn.b_end -= 1
        bn.leaf = mast.orig_l.node.leaf
        split, mid_split, left, right, middle = mas_mab_to_node(mas, bn)
        mast_set_split_parents(mast, left, middle, right, split, mid_split)
        mast_cp_to_nodes(mast, left, middle, right, split, mid_split)
        bn.clear()
        bn.leaf = left.leaf
        l_mas.depth += 1
        if mas_is_root_limits(mast.l):
            jumped_new_root = True
            break
        mast_ascend(mast)
        mast_combine_cp_left(mast)
        l_mas.offset = bn.b_end
        mab_set_b_end(bn, l_mas, left)
        mab_set_b_end(bn, m_mas, middle)
        mab_set_b_end(bn, r_mas, right)
        mast_combine_cp_right(mast)
        mast.orig_l.last = mast.orig_l.max
        if bn.b_end > min_slots_of(mast.orig_l.node.leaf):  # mast_sufficient
            continue
        if bn.b_end >= slots_of(mast.orig_l.node.leaf):  # mast_overflow
            continue
        if mas_is_root_limits(mast.orig_l):
            break
        mast_spanning_rebalance(mast)
        if not count:
            count += 1
    if not jumped_new_root:
        l_mas.node = mas_pop_node(mas, mast.orig_l.node.leaf)
        l_mas.depth += 1
        mab_mas_cp(bn, 0, slots_of(bn.leaf) - 1, l_mas, True)
        slot = 0
        mas_set_parent(left, l_mas.node, slot)
        if middle:
            slot += 1
            mas_set_parent(middle, l_mas.node, slot)
        if right:
            slot += 1
            mas_set_parent(right, l_mas.node, slot)
    if jumped_new_root or mas_is_root_limits(mast.l):
        mast.l.node.parent = None
        mast.l.node.pslot = 0
        while not mte_is_root(mast.orig_l.node):
            mast_ascend(mast)
    else:
        src = mast.orig_l.node
        l_mas.node.parent = src.parent
        l_mas.node.pslot = src.pslot
    old = mast.orig_l.node
    mas.depth = l_mas.depth
    mas.node = l_mas.node
    mas.min = l_mas.min
    mas.max = l_mas.max
    mas.offset = l_mas.offset
    mas_wmb_replace(mas, old)
    if not mas.flags & F_ONESHOT:
        mtree_range_walk(mas)


def mas_rebalance(mas: MaState, b: BigNode) -> None:
    empty_count = mas.tree.height
    if mas.tree.ondemand:  # 6.1: "mas_node_count(mas, 1 + empty_count * 3)"
        mas_node_count(mas, 1 + empty_count * 3)
    b.b_end += 1
    b_end = b.b_end
    mast = Mast()
    l_mas = mas.copy()
    r_mas = mas.copy()
    mast.orig_l = l_mas
    mast.orig_r = r_mas
    mast.bn = b
    b.leaf = mas.node.leaf
    if mas_next_sibling(r_mas):
        mas_mab_cp(r_mas, 0, slots_of(r_mas.node.leaf), b, b_end)
        r_mas.last = r_mas.index = r_mas.max
    else:
        mas_prev_sibling(l_mas)
        shift = mas_data_end(l_mas) + 1
        mab_shift_right(b, shift)
        mas.offset += shift
        mas_mab_cp(l_mas, 0, shift - 1, b, 0)
        b.b_end = shift + b_end
        l_mas.index = l_mas.last = l_mas.min
    mas_spanning_rebalance(mas, mast, empty_count)


def mas_destroy_rebalance(mas: MaState, end: int) -> None:
    node = mas.node
    split = LEAF_SLOTS // 2
    in_rcu = mas.tree.rcu
    if in_rcu:
        raise NotImplementedError("bulk mode in an RCU tree (dup_mmap clears RCU first)")
    l_mas = mas.copy()
    mas_prev_sibling(l_mas)
    slots = [None] * LEAF_SLOTS
    pivs = [0] * LEAF_PIVOTS
    left = l_mas.node
    l_slots = left.slot
    l_pivs = left.piv
    if not l_slots[split]:
        split += 1
    tmp = mas_data_end(l_mas) - split
    slots[0:tmp] = l_slots[split + 1:split + 1 + tmp]
    pivs[0:tmp] = l_pivs[split + 1:split + 1 + tmp]
    pivs[tmp] = l_mas.max
    slots[tmp:tmp + end] = node.slot[0:end]
    pivs[tmp:tmp + end] = node.piv[0:end]
    del slots[LEAF_SLOTS:], pivs[LEAF_PIVOTS:]
    l_mas.max = l_pivs[split]
    mas.min = (l_mas.max + 1) & M
    old_eparent = left.parent
    tmp += end
    if tmp < LEAF_PIVOTS:
        pivs[tmp:] = [0] * (LEAF_PIVOTS - tmp)
    if tmp < LEAF_SLOTS:
        slots[tmp:] = [None] * (LEAF_SLOTS - tmp)
    node.piv = pivs
    node.slot = slots
    ma_set_meta(node, 0, tmp - 1)
    old_eparent.piv[parent_slot(left)] = l_pivs[split]
    tmp = split + 1
    l_pivs[tmp:] = [0] * (LEAF_PIVOTS - tmp)
    l_slots[tmp:] = [None] * (LEAF_SLOTS - tmp)
    ma_set_meta(left, 0, split)
    eparent = old_eparent
    gap = mas_leaf_max_gap(mas)
    mte_set_gap(eparent, parent_slot(mas.node), gap)
    gap = mas_leaf_max_gap(l_mas)
    mte_set_gap(eparent, parent_slot(l_mas.node), gap)
    mas_ascend(mas)
    mas_update_gap(mas)


def mas_split_final_node(mast: Mast, mas: MaState, height: int) -> None:
    bn = mast.bn
    node = mas.node
    if node.parent is None:  # mte_is_root()
        bn.leaf = False
        mas.depth = height
    leaf = bn.leaf
    ancestor = mas_pop_node(mas, leaf)
    l_mas = mast.l
    r_mas = mast.r
    lnode = l_mas.node  # mas_set_parent() x2
    lnode.parent = ancestor
    lnode.pslot = l_mas.offset
    rnode = r_mas.node
    rnode.parent = ancestor
    rnode.pslot = r_mas.offset
    ancestor.parent = node.parent
    ancestor.pslot = node.pslot
    l_mas.node = ancestor
    mab_mas_cp(bn, 0, (LEAF_SLOTS if leaf else AR_SLOTS) - 1, l_mas, True)
    mas.offset = bn.b_end - 1


def mast_fill_bnode(mast: Mast, mas: MaState, skip: int) -> None:
    cp = True
    bn = mast.bn
    bn.clear()
    if mas.node.parent is None:  # mte_is_root()
        cp = False
    else:
        mas_ascend(mas)
        node = mas.node
        mas.offset = 0 if node.parent is None else node.pslot  # parent_slot()
    l_mas = mast.l
    if cp and l_mas.offset:
        mas_mab_cp(mas, 0, l_mas.offset - 1, bn, 0)
    split = b_end = bn.b_end
    # mab_set_b_end(bn, mast->l, mast->l->node) and (bn, mast->r, mast->r->node) inlined:
    # both nodes are non-NULL; mas_max_gap() of each
    bslot = bn.slot
    bgap = bn.gap
    bpiv = bn.pivot
    node = l_mas.node
    bslot[b_end] = node
    bgap[b_end] = mas_leaf_max_gap(l_mas) if node.leaf else node.gap[node.mgap]
    bpiv[b_end] = l_mas.max
    b_end += 1
    r_mas = mast.r
    r_mas.offset = b_end
    node = r_mas.node
    bslot[b_end] = node
    bgap[b_end] = mas_leaf_max_gap(r_mas) if node.leaf else node.gap[node.mgap]
    bpiv[b_end] = r_mas.max
    bn.b_end = b_end = b_end + 1
    if bpiv[b_end - 1] == mas.max:
        cp = False
    leaf = mas.node.leaf
    if cp:
        mas_mab_cp(mas, split + skip, (LEAF_SLOTS if leaf else AR_SLOTS) - 1, bn, bn.b_end)
    bn.b_end -= 1
    bn.leaf = leaf


def mast_split_data(mast: Mast, mas: MaState, split: int) -> None:
    bn = mast.bn
    l_mas = mast.l
    r_mas = mast.r
    mab_mas_cp(bn, 0, split, l_mas, True)
    r_mas.node.piv[0] = r_mas.max
    mab_mas_cp(bn, split + 1, bn.b_end, r_mas, False)
    node = mas.node
    l_mas.offset = 0 if node.parent is None else node.pslot  # parent_slot()
    l_mas.max = lmax = bn.pivot[split]
    r_mas.min = (lmax + 1) & M
    if node.leaf:
        return
    p_slot = mast.orig_l.offset
    p_slot = mas_set_split_parent(mast.orig_l, mast.l.node, mast.r.node, p_slot, split)
    mas_set_split_parent(mast.orig_r, mast.l.node, mast.r.node, p_slot, split)


def mas_push_data(mas: MaState, height: int, mast: Mast, left: bool) -> bool:
    bn = mast.bn
    slot_total = bn.b_end
    # Fast refusal: no sibling, or not enough room in it. Reads the sibling's node and
    # limit as mas_prev_sibling()/mas_next_sibling() would find them, without the ma_state
    # copy (a refused push changes nothing).
    node = mas.node
    parent = node.parent
    if parent is None:
        return False
    if parent is not DEAD:
        if left:
            off = node.pslot - 1
            if off < 0:
                return False
        else:
            off = node.pslot + 1
            if off > parent.end:
                return False
        if off < AR_PIVOTS:
            sib = parent.slot[off]
            space = 2 * (LEAF_SLOTS if node.leaf else AR_SLOTS) - 2
            if bn.leaf:
                space -= 1
            if mas.max == M:
                space -= 1
            if slot_total + ma_data_end(sib, parent.piv[off]) >= space:
                return False
    tmp_mas = mas.copy()
    tmp_mas.depth = mast.l.depth
    if left:
        if not mas_prev_sibling(tmp_mas):
            return False
    elif not mas_next_sibling(tmp_mas):
        return False
    end = ma_data_end(tmp_mas.node, tmp_mas.max)  # mas_data_end()
    slot_total += end
    space = 2 * (LEAF_SLOTS if mas.node.leaf else AR_SLOTS) - 2  # slots_of()
    if bn.leaf:
        space -= 1
    if mas.max == M:
        space -= 1
    if slot_total >= space:
        return False
    bn.b_end += 1
    if left:
        mab_shift_right(bn, end + 1)
        mas_mab_cp(tmp_mas, 0, end, bn, 0)
        bn.b_end = slot_total + 1
    else:
        mas_mab_cp(tmp_mas, 0, end, bn, bn.b_end)
    slot_count = LEAF_SLOTS if bn.leaf else AR_SLOTS  # slots_of(bn.leaf)
    split = slot_count - 2
    if left:
        mas.assign(tmp_mas)
        tmp_mas.node = mast.l.node
        mast.l.assign(tmp_mas)
    else:
        tmp_mas.node = mast.r.node
        mast.r.assign(tmp_mas)
        split = (slot_total - split) & 0xFF
    split = mab_no_null_split(bn, split, slot_count)
    if left:
        mast.orig_l.offset += end + 1
    mast_split_data(mast, mas, split)
    mast_fill_bnode(mast, mas, 2)
    mas_split_final_node(mast, mas, height + 1)
    return True


def mas_split(mas: MaState, b: BigNode) -> None:
    tree = mas.tree
    height = 0
    mas.depth = tree.height
    if tree.ondemand:  # 6.1: "Allocation failures will happen early."
        mas_node_count(mas, 1 + mas.depth * 2)
    mast = Mast()
    # MA_STATE(l_mas)/MA_STATE(r_mas) are overwritten with *mas before their first use
    l_mas = mas.copy()
    r_mas = mas.copy()
    first = True
    prev_l = MaState(tree, mas.index, mas.last)
    prev_r = MaState(tree, mas.index, mas.last)
    mast.l, mast.r, mast.orig_l, mast.orig_r, mast.bn = l_mas, r_mas, prev_l, prev_r, b
    mast.m = None
    while True:
        h = height
        height += 1
        if not h <= mas.depth:
            break
        leaf = b.leaf
        if (LEAF_SLOTS if leaf else AR_SLOTS) > b.b_end:  # slots_of()
            mas_split_final_node(mast, mas, height)
            break
        if first:
            first = False
        else:
            l_mas.assign(mas)
            r_mas.assign(mas)
        l_mas.node = mas_pop_node(mas, leaf)
        r_mas.node = mas_pop_node(mas, leaf)
        if mas_push_data(mas, height, mast, True):
            break
        if mas_push_data(mas, height, mast, False):
            break
        split, _mid = mab_calc_split(mas, b)
        mast_split_data(mast, mas, split)
        mast.r.max = mas.max
        mast_fill_bnode(mast, mas, 1)
        prev_l.assign(mast.l)
        prev_r.assign(mast.r)
    old = mas.node
    mas.node = l_mas.node
    mas_wmb_replace(mas, old)
    if not mas.flags & F_ONESHOT:
        mtree_range_walk(mas)


def mas_commit_b_node(wr: WrState, b: BigNode) -> None:
    if wr.mas.store_type == WR_REBALANCE:
        mas_rebalance(wr.mas, b)
    else:
        mas_split(wr.mas, b)


def mas_root_expand(mas: MaState, entry) -> int:
    tree = mas.tree
    contents = tree.root
    if tree.ondemand:  # 6.1
        mas_node_count(mas, 1)
    node = mas_pop_node(mas, True)
    pivots = node.piv
    slots = node.slot
    node.parent = None
    mas.node = node
    mas.status = ST_ACTIVE
    slot = 0
    if mas.index:
        if contents is not None:
            slots[slot] = contents
            if mas.index > 1:
                slot += 1
        pivots[slot] = mas.index - 1
        slot += 1
    slots[slot] = entry
    mas.offset = slot
    pivots[slot] = mas.last
    if mas.last != M:
        slot += 1
        pivots[slot] = M
    mas.depth = 1
    tree.height = 1
    ma_set_meta(node, 0, slot)
    tree.root = node
    return slot


def mas_store_root(mas: MaState, entry) -> None:
    if entry is None:
        if not mas.index:
            mas.tree.root = None
    elif mas.last != 0 or mas.index != 0:
        mas_root_expand(mas, entry)
    else:
        mas.tree.root = entry  # xa_mk_value entries are never node-like ((v & 3) != 2)
        mas.status = ST_START


def mas_is_span_wr(wr: WrState) -> bool:
    mx = wr.r_max
    last = wr.mas.last
    if last < mx:
        return False
    if wr.leaf:
        mx = wr.mas.max
        if last < mx:
            return False
    if last == mx:
        if wr.entry is not None or last == M:
            return False
    return True


def mas_wr_walk_descend(wr: WrState) -> None:
    wr.leaf = wr.mas.node.leaf
    mas_wr_node_walk(wr)
    wr.slots = wr.node.slot


def mas_wr_walk_traverse(wr: WrState) -> None:
    mas = wr.mas
    mas.max = wr.r_max
    mas.min = wr.r_min
    mas.node = wr.content
    mas.offset = 0
    mas.depth += 1


def mas_wr_walk(wr: WrState) -> bool:
    """mas_wr_walk() with mas_wr_walk_descend(), mas_wr_node_walk(), mas_is_span_wr() and
    mas_wr_walk_traverse() inlined (the hottest loop of every store)."""
    mas = wr.mas
    node = mas.node
    mn = mas.min
    mx = mas.max
    offset = mas.offset
    depth = d0 = mas.depth
    index = mas.index
    last = mas.last
    entry = wr.entry
    while True:
        pivots = node.piv
        if node.leaf:
            leaf = True
            p = pivots[LEAF_PIVOTS - 1]
            count = node.end if not p else LEAF_PIVOTS - 1 if p == mx else LEAF_PIVOTS
            if offset < count and index > pivots[offset]:
                # the first pivot >= index (pivots[offset:count] ascend in a valid node)
                o0 = offset
                offset = bisect_left(pivots, index, offset + 1, count)
                OPS[O_WALK_PIVOTS] += offset - o0
            r_max = pivots[offset] if offset < count else mx
            r_min = (pivots[offset - 1] + 1) & M if offset else mn
            # mas_is_span_wr() of a leaf: up to the node's max
            span = not (last < r_max or last < mx
                        or (last == mx and (entry is not None or last == M)))
            break
        count = node.end
        if offset < count and index > pivots[offset]:
            o0 = offset
            offset = bisect_left(pivots, index, offset + 1, count)
            OPS[O_WALK_PIVOTS] += offset - o0
        r_max = pivots[offset] if offset < count else mx
        # mas_is_span_wr() of an internal node: up to the slot's max
        if last >= r_max and (last > r_max or (entry is None and last != M)):
            r_min = (pivots[offset - 1] + 1) & M if offset else mn
            leaf = False
            span = True
            break
        node = node.slot[offset]
        if offset:
            mn = (pivots[offset - 1] + 1) & M
            offset = 0
        mx = r_max
        depth += 1
    OPS[O_WALK] += depth - d0 + 1
    wr.leaf = leaf
    wr.node = node
    wr.pivots = pivots
    wr.slots = slots = node.slot
    wr.r_max = r_max
    wr.r_min = r_min
    wr.offset_end = offset
    mas.offset = offset
    mas.end = count
    mas.node = node
    mas.min = mn
    mas.max = mx
    if span:
        if depth != mas.depth:
            wr.content = node  # set by the last mas_wr_walk_traverse()
        mas.depth = depth
        return False
    mas.depth = depth
    wr.content = slots[offset]
    return True


def mas_wr_walk_index(wr: WrState) -> None:
    mas = wr.mas
    while True:
        mas_wr_walk_descend(wr)
        wr.content = wr.slots[mas.offset]
        if wr.leaf:
            return
        mas_wr_walk_traverse(wr)


def mas_extend_spanning_null(l_wr: WrState, r_wr: WrState) -> None:
    r_mas = r_wr.mas
    l_mas = l_wr.mas
    l_slot = l_mas.offset
    if not l_wr.content:
        l_mas.index = l_wr.r_min
    if l_mas.index == l_wr.r_min and l_slot and not l_wr.slots[l_slot - 1]:
        if l_slot > 1:
            l_mas.index = (l_wr.pivots[l_slot - 2] + 1) & M
        else:
            l_mas.index = l_mas.min
        l_mas.offset = l_slot - 1
    if not r_wr.content:
        if r_mas.last < r_wr.r_max:
            r_mas.last = r_wr.r_max
        r_mas.offset += 1
    elif (r_mas.last == r_wr.r_max and r_mas.last < r_mas.max
          and not r_wr.slots[r_mas.offset + 1]):
        # 6.12 passes (pivots, type, offset + 1) to mas_safe_pivot(mas, pivots, piv, type):
        # piv is the leaf type (1) and every type index it can take has more than one pivot.
        r_mas.last = r_wr.pivots[1]
        r_mas.offset += 1


def mas_new_root(mas: MaState, entry) -> None:
    tree = mas.tree
    root = tree.root
    if entry is None and not mas.index and mas.last == M:
        mas.depth = 0
        tree.height = 0
        tree.root = None
        mas.status = ST_START
    else:
        if tree.ondemand:  # 6.1
            mas_node_count(mas, 1)
        node = mas_pop_node(mas, True)
        node.parent = None
        mas.node = node
        mas.status = ST_ACTIVE
        node.slot[0] = entry
        node.piv[0] = mas.last
        mas.depth = 1
        tree.height = 1
        tree.root = node
    if isinstance(root, Node):
        tree.op_freed += subtree_nodes(root, M)  # mte_destroy_walk


def mas_wr_spanning_store(wr: WrState) -> None:
    mas = wr.mas
    tree = mas.tree
    if not mas.index and mas.last == M:
        mas_new_root(mas, wr.entry)
        return
    height = tree.height
    if tree.ondemand:  # 6.1: "three new entries per level plus a new root"
        mas_node_count(mas, 1 + height * 3)
    r_mas = mas.copy()
    if (r_mas.last + 1) & M:
        r_mas.last += 1
    r_mas.index = r_mas.last
    r_wr = WrState(r_mas, wr.entry)
    mas_wr_walk_index(r_wr)
    r_mas.last = r_mas.index = mas.last
    l_mas = mas.copy()
    l_wr = WrState(l_mas, wr.entry)
    mas_wr_walk_index(l_wr)
    if wr.entry is None:
        mas_extend_spanning_null(l_wr, r_wr)
        mas.offset = l_mas.offset
        mas.index = l_mas.index
        mas.last = l_mas.last = r_mas.last
    if not l_mas.index and r_mas.last == M:
        mas.index, mas.last = 0, M
        mas.status = ST_START
        mas.node = None
        mas_new_root(mas, wr.entry)
        return
    b = BigNode()
    mas_store_b_node(l_wr, b, l_mas.end)
    if r_mas.max > r_mas.last:
        mas_mab_cp(r_mas, r_mas.offset, r_mas.end, b, b.b_end + 1)
    else:
        b.b_end += 1
    l_mas.index = l_mas.last = mas.index
    mast = Mast()
    mast.bn = b
    mast.orig_l = l_mas
    mast.orig_r = r_mas
    mas_spanning_rebalance(mas, mast, height + 1)


def mas_wr_node_store(wr: WrState, new_end: int) -> None:
    mas = wr.mas
    offset_end = wr.offset_end
    leaf = wr.leaf
    node_pivots = LEAF_PIVOTS if leaf else AR_PIVOTS
    in_rcu = mas.tree.rcu
    if mas.last == wr.end_piv:
        offset_end += 1
    elif wr.r_max == M and mas.flags & F_BULK:  # it returns at once outside bulk mode
        mas_bulk_rebalance(mas, mas.end, leaf)
    if in_rcu:
        if mas.tree.ondemand:
            # 6.1: mas_wr_node_store() asks for its node in RCU mode, and so does the
            # mas_commit_b_node() its refusals fall back to (mas_reuse_node() only off RCU)
            mas_node_count(mas, 1)
        # mas_pop_node() inlined
        pool = mas.pool
        if pool.avail <= 0:
            raise AssertionError("maple: ran out of preallocated nodes")
        pool.avail -= 1
    newnode = new_node(leaf)
    old = mas.node
    newnode.parent = old.parent
    newnode.pslot = old.pslot
    dst_pivots = newnode.piv
    dst_slots = newnode.slot
    src_pivots = wr.pivots
    src_slots = wr.slots
    off = mas.offset
    dst_pivots[0:off] = src_pivots[0:off]
    dst_slots[0:off] = src_slots[0:off]
    index = mas.index
    if wr.r_min < index:
        dst_slots[off] = wr.content
        dst_pivots[off] = index - 1
        off += 1
        mas.offset = off
    if off < node_pivots:
        dst_pivots[off] = mas.last
    dst_slots[off] = wr.entry
    end = mas.end
    if not offset_end > end:
        dst_offset = off + 1
        copy_size = end - offset_end + 1
        dst_slots[dst_offset:dst_offset + copy_size] = src_slots[offset_end:offset_end + copy_size]
        dst_pivots[dst_offset:dst_offset + copy_size - 1] = \
            src_pivots[offset_end:offset_end + copy_size - 1]
        nslots = LEAF_SLOTS if leaf else AR_SLOTS
        if len(dst_slots) > nslots:  # the copy can run past the arrays: truncate
            del dst_slots[nslots:]
        if len(dst_pivots) > node_pivots:
            del dst_pivots[node_pivots:]
        if new_end < node_pivots:
            dst_pivots[new_end] = mas.max
    if new_end < LEAF_SLOTS - 1:  # mas_leaf_set_meta(): only ever reached for leaves
        newnode.mgap = 0
        newnode.end = new_end
    OPS[O_BUILD_SLOTS] += new_end + 1
    if in_rcu:
        mas.node = newnode
        # mas_replace_node(): mas_put_in_tree(), mas_free() (in RCU mode) inlined
        parent = newnode.parent
        if parent is None:
            tree = mas.tree
            tree.root = newnode
            tree.height = mas.depth
        else:
            parent.slot[newnode.pslot] = newnode
        old.parent = DEAD
        tree = mas.tree
        tree.op_freed += 1
        if tree.sheaves:
            tree.op_rcu_freed += 1  # 7.x ma_free_rcu() is kfree_rcu()
    else:
        old.piv = newnode.piv
        old.slot = newnode.slot
        if not leaf:
            old.gap = newnode.gap
        old.end = newnode.end
        old.mgap = newnode.mgap
    # mas_update_gap(mas) inlined
    node = mas.node
    parent = node.parent
    if parent is not None:
        max_gap = mas_leaf_max_gap(mas) if leaf else node.gap[node.mgap]  # mas_max_gap()
        pslot = node.pslot
        if parent.gap[pslot] != max_gap:
            mas_parent_gap(mas, pslot, max_gap)
    mas.end = new_end


def mas_wr_slot_store(wr: WrState) -> None:
    mas = wr.mas
    offset = mas.offset
    slots = wr.slots
    gap = False
    gap |= not slots[offset]
    gap |= not slots[offset + 1]
    if wr.offset_end - offset == 1:
        OPS[O_SLOT_WRITES] += 2
        if mas.index == wr.r_min:
            slots[offset] = wr.entry
            wr.pivots[offset] = mas.last
        else:
            slots[offset + 1] = wr.entry
            wr.pivots[offset] = mas.index - 1
            mas.offset += 1
    elif not mas.tree.rcu:
        OPS[O_SLOT_WRITES] += 4
        gap |= not slots[offset + 2]
        slots[offset + 1] = wr.entry
        wr.pivots[offset] = mas.index - 1
        wr.pivots[offset + 1] = mas.last
        mas.offset += 1
    else:
        return
    if not wr.entry or gap:
        mas_update_gap(mas)


def mas_wr_extend_null(wr: WrState) -> None:
    mas = wr.mas
    if not wr.slots[wr.offset_end]:
        mas.last = wr.end_piv
    else:
        if (mas.last == wr.end_piv and mas.end != wr.offset_end
                and not wr.slots[wr.offset_end + 1]):
            wr.offset_end += 1
            if wr.offset_end == mas.end:
                mas.last = mas.max
            else:
                mas.last = wr.pivots[wr.offset_end]
            wr.end_piv = mas.last
    if not wr.content:
        mas.index = wr.r_min
    else:
        if mas.index == wr.r_min and mas.offset and not wr.slots[mas.offset - 1]:
            mas.offset -= 1
            wr.r_min = mas.index = mas_safe_min(mas, wr.pivots, mas.offset)
            wr.r_max = wr.pivots[mas.offset]


def mas_wr_end_piv(wr: WrState) -> None:
    mas = wr.mas
    while wr.offset_end < mas.end and mas.last > wr.pivots[wr.offset_end]:
        wr.offset_end += 1
    if wr.offset_end < mas.end:
        wr.end_piv = wr.pivots[wr.offset_end]
    else:
        wr.end_piv = mas.max


def mas_wr_new_end(wr: WrState) -> int:
    mas = wr.mas
    new_end = mas.end + 2
    new_end -= wr.offset_end - mas.offset
    if wr.r_min == mas.index:
        new_end -= 1
    if wr.end_piv == mas.last:
        new_end -= 1
    return new_end


def mas_wr_append(wr: WrState, new_end: int) -> None:
    mas = wr.mas
    end = mas.end
    pivots = wr.pivots
    if new_end < (LEAF_PIVOTS if wr.leaf else AR_PIVOTS):
        pivots[new_end] = pivots[end]
        ma_set_meta(wr.node, 0, new_end)
    slots = wr.slots
    OPS[O_SLOT_WRITES] += 2 * (new_end - end) + 1  # new slots and pivots, the end pivot
    if new_end == end + 1:
        if mas.last == wr.r_max:
            slots[new_end] = wr.entry
            pivots[end] = mas.index - 1
            mas.offset = new_end
        else:
            slots[new_end] = wr.content
            pivots[end] = mas.last
            slots[end] = wr.entry
    else:
        slots[new_end] = wr.content
        pivots[end + 1] = mas.last
        slots[end + 1] = wr.entry
        pivots[end] = mas.index - 1
        mas.offset = end + 1
    if not wr.content or not wr.entry:
        mas_update_gap(mas)
    mas.end = new_end


def mas_wr_bnode(wr: WrState) -> None:
    b = BigNode()
    mas_store_b_node(wr, b, wr.offset_end)
    mas_commit_b_node(wr, b)


def mas_wr_store_entry(wr: WrState) -> None:
    mas = wr.mas
    # new_end = mas_wr_new_end(wr): computed by mas_wr_store_type() for the store types
    # that use it (it sets wr.new_end before choosing any of them)
    st = mas.store_type
    OPS[st] += 1
    # the kernel's switch; the commonest cases first
    if st == WR_NODE_STORE:
        mas_wr_node_store(wr, wr.new_end)
    elif st == WR_SPLIT or st == WR_REBALANCE:
        if mas.tree.copy_write:  # 7.x: struct maple_copy (simulator.maple.write_copy)
            if st == WR_SPLIT:
                _MC.mas_wr_split(wr)
            else:
                _MC.mas_wr_rebalance(wr)
        else:
            mas_wr_bnode(wr)
    elif st == WR_APPEND:
        mas_wr_append(wr, wr.new_end)
    elif st == WR_SLOT_STORE:
        mas_wr_slot_store(wr)
    elif st == WR_EXACT_FIT:
        OPS[O_SLOT_WRITES] += 1
        wr.slots[mas.offset] = wr.entry
        if (wr.entry is not None) ^ (wr.content is not None):
            mas_update_gap(mas)
    elif st == WR_SPANNING:
        if mas.tree.copy_write:
            _MC.mas_wr_spanning_store(wr)
        else:
            mas_wr_spanning_store(wr)
    elif st == WR_NEW_ROOT:
        mas_new_root(mas, wr.entry)
    elif st == WR_STORE_ROOT:
        mas_store_root(mas, wr.entry)
    else:
        raise AssertionError("maple: invalid store type")


def mas_start(mas: MaState):
    if mas.status == ST_START:
        mas.min = 0
        mas.max = M
        mas.depth = 0
        root = mas.tree.root
        if isinstance(root, Node):
            mas.depth = 1
            mas.status = ST_ACTIVE
            mas.node = root
            mas.offset = 0
            return None
        mas.node = None
        if root is None:
            mas.status = ST_NONE
            mas.offset = 31
            return None
        mas.status = ST_ROOT
        mas.offset = 31
        if mas.index > 0:
            return None
        return root
    return None


def mas_reset(mas: MaState) -> None:
    mas.status = ST_START
    mas.node = None


def mas_wr_prealloc_setup(wr: WrState) -> None:
    mas = wr.mas
    reset = False
    if mas.status != ST_ACTIVE:
        if mas.status == ST_START:
            wr.content = mas_start(mas)
            return
        if mas.status == ST_NONE:
            reset = True
    if not reset:
        if mas.last > mas.max:
            reset = True
        elif wr.entry is not None:
            pass
        elif mas.node is not None and mas.node.leaf and mas.last == mas.max:
            reset = True
    if reset:
        mas_reset(mas)
    wr.content = mas_start(mas)


def mas_prealloc_calc(mas: MaState, entry) -> int:
    st = mas.store_type
    # the kernel's switch; the commonest cases first
    if st == WR_NODE_STORE:
        return 1 if mas.tree.rcu else 0
    if st == WR_APPEND or st == WR_EXACT_FIT or st == WR_SLOT_STORE:
        return 0
    h = mas.tree.height
    if mas.tree.sheaves:
        return _prealloc_calc_7x(mas, st, h)
    if st == WR_SPLIT:
        return h * 2 + 1
    if st == WR_NEW_ROOT:
        return 1
    if st == WR_STORE_ROOT:
        if mas.last != 0 or mas.index != 0:
            return 1
        return 0
    if st == WR_SPANNING:
        return h * 3 + 1
    if st == WR_REBALANCE:
        return h * 2 - 1
    return h * 3 + 1


def _wr_heights(mas: MaState) -> tuple[int, int]:
    """7.x mas_wr_walk()'s vacant_height and sufficient_height: over the internal nodes the
    walk passed above mas.node (the leaf, or the node where a spanning store stopped), the
    deepest with room (end < slots - 1) sets vacant_height = depth + 1, the deepest with more
    than the minimum (root: end > 2; others: end > mt_min_slots + 1) sufficient_height =
    depth + 1 (the root is depth 0); 0 when none."""
    path = []
    n = mas.node.parent if isinstance(mas.node, Node) else None
    while n is not None and n is not DEAD:
        path.append(n)
        n = n.parent
    vacant = sufficient = 0
    for depth, node in enumerate(reversed(path)):  # top-down, as the walk goes
        if node.end < AR_SLOTS - 1:
            vacant = depth + 1
        if node.parent is None:
            if node.end > 2:
                sufficient = 1
        elif node.end > AR_MIN + 1:
            sufficient = depth + 1
    return vacant, sufficient


def _prealloc_calc_7x(mas: MaState, st: int, h: int) -> int:
    """7.x mas_prealloc_calc() for the store types whose need depends on the tree: a split
    rewrites the levels below the deepest vacant node, a spanning store or rebalance those
    below the deepest sufficient one when it lies above the vacant one."""
    vacant, sufficient = _wr_heights(mas)
    delta = h - vacant
    if st == WR_SPLIT:
        return delta * 2 + 1
    if st == WR_NEW_ROOT:
        return 1
    if st == WR_STORE_ROOT:
        return 1 if (mas.last != 0 or mas.index != 0) else 0
    if st == WR_SPANNING:
        return ((h - sufficient) if sufficient < vacant else delta) * 3 + 1
    if st == WR_REBALANCE:
        return ((h - sufficient) if sufficient < vacant else delta) * 2 + 1
    return h * 3 + 1


def mas_wr_store_type(wr: WrState) -> None:
    mas = wr.mas
    if mas.status in (ST_NONE, ST_ROOT):
        mas.store_type = WR_STORE_ROOT
        return
    if not mas_wr_walk(wr):
        mas.store_type = WR_SPANNING
        return
    # mas_wr_end_piv() inlined
    offset_end = wr.offset_end
    end = mas.end
    last = mas.last
    pivots = wr.pivots
    while offset_end < end and last > pivots[offset_end]:
        offset_end += 1
    wr.offset_end = offset_end
    wr.end_piv = pivots[offset_end] if offset_end < end else mas.max
    if wr.entry is None:
        mas_wr_extend_null(wr)
        last = mas.last
    index = mas.index
    # mas_wr_new_end() inlined
    offset = mas.offset
    new_end = end + 2 - (wr.offset_end - offset)
    if wr.r_min == index:
        new_end -= 1
    if wr.end_piv == last:
        new_end -= 1
    wr.new_end = new_end
    if mas.tree.ondemand:
        mas.store_type = mas_wr_modify_type_61(wr)
        return
    leaf = wr.leaf
    rcu = mas.tree.rcu
    if wr.r_min == index and wr.r_max == last:
        mas.store_type = WR_EXACT_FIT
        return
    if not index and last == M:
        mas.store_type = WR_NEW_ROOT
        return
    min_slots = LEAF_MIN if leaf else AR_MIN
    if new_end < min_slots:
        if mas.node.parent is not None and not (mas.flags & F_BULK):
            mas.store_type = WR_REBALANCE
            return
        mas.store_type = WR_NODE_STORE
        return
    if new_end >= (LEAF_SLOTS if leaf else AR_SLOTS):
        mas.store_type = WR_SPLIT
        return
    if not rcu and offset == end:
        mas.store_type = WR_APPEND
        return
    if new_end == end and (not rcu or wr.offset_end - offset == 1):
        mas.store_type = WR_SLOT_STORE
        return
    if mas.node.parent is None or new_end >= min_slots or (mas.flags & F_BULK):
        mas.store_type = WR_NODE_STORE
        return
    mas.store_type = WR_INVALID


def mas_wr_modify_type_61(wr: WrState) -> int:
    """6.1 (MapleTree.ondemand) has no store types: mas_wr_store_entry() tests for a new root,
    then mas_wr_modify() tries the writers in turn (exact fit, append, slot store, node store)
    and falls back to mas_wr_bnode() -> mas_commit_b_node() (rebalance, split, or the node
    rewritten: in place off RCU, mas_reuse_node(), a new node in RCU mode). This returns the
    store type whose writer here writes what 6.1's chosen writer writes; the choice decides
    which stores allocate (a 6.1 slot store in place where 6.12 rebuilds a small root node)."""
    mas = wr.mas
    index, last = mas.index, mas.last
    if not index and last == M:
        return WR_NEW_ROOT
    if wr.r_min == index and wr.r_max == last:
        return WR_EXACT_FIT
    slots = LEAF_SLOTS if wr.leaf else AR_SLOTS
    end, offset = mas.end, mas.offset
    node_size = end - wr.offset_end + offset + 2 + (1 if mas.max == M else 0)
    if node_size < slots:  # else "slot and node store will not fit, go to the slow path"
        if (wr.entry is not None and end < slots - 1 and offset == end and not mas.tree.rcu
                and ((index != wr.r_min and last == wr.r_max)
                     or (index == wr.r_min and last < wr.r_max))):  # mas_wr_append()
            return WR_APPEND
        if wr.offset_end - offset <= 1 and mas_wr_slot_store_fits_61(wr):
            return WR_SLOT_STORE
        if mas_wr_node_store_fits_61(wr):
            return WR_NODE_STORE
    new_end = wr.new_end  # mas_store_b_node()'s b_end
    if new_end < min_slots_of(wr.leaf) and mas.node.parent is not None:
        return WR_REBALANCE
    if new_end >= slots:
        return WR_SPLIT
    return WR_NODE_STORE


def mas_wr_slot_store_fits_61(wr: WrState) -> bool:
    """6.1 mas_wr_slot_store()'s tests (it writes as mas_wr_slot_store() here does)."""
    mas = wr.mas
    offset, last = mas.offset, mas.last
    if wr.r_max > last and (wr.r_min != mas.index or offset != mas.end):
        return False
    if offset == mas.end - 1:
        lmax = mas.max
    elif offset + 1 < len(wr.pivots):
        lmax = wr.pivots[offset + 1]  # past the end it reads a stale pivot, as C does
    else:
        raise NotImplementedError("6.1 slot store reading past the pivots of a full node")
    if lmax < last:
        return False
    if wr.r_min == mas.index:
        if lmax == last:
            return False
        if wr.r_max > last:
            raise NotImplementedError("6.1 slot store over a stale pivot past the node's end")
        return True
    return lmax == last


def mas_wr_node_store_fits_61(wr: WrState) -> bool:
    """6.1 mas_wr_node_store()'s tests: its own count of the node's new end, refused when it
    does not fit or a non-root node would drop to its minimum (outside bulk mode)."""
    mas = wr.mas
    offset = mas.offset
    new_end = mas.end
    if mas.last == wr.r_max:
        if mas.last == mas.max:
            new_end = offset
    elif mas.last < wr.r_max:
        new_end += 1
    else:
        offset_end = wr.offset_end + (1 if wr.end_piv == mas.last else 0)
        new_end -= offset_end - offset - 1
    if wr.r_min < mas.index:
        new_end += 1
    if new_end >= (LEAF_SLOTS if wr.leaf else AR_SLOTS):
        return False
    return not (mas.node.parent is not None and new_end <= min_slots_of(wr.leaf)
                and not mas.flags & F_BULK)


def mas_destroy(mas: MaState) -> None:
    if mas.flags & F_REBALANCE:
        mas_start(mas)
        mtree_range_walk(mas)
        end = mas.end + 1
        if end < min_slots_of(mas.node.leaf) - 1:
            mas_destroy_rebalance(mas, end)
        mas.flags &= ~F_REBALANCE
    mas.flags &= ~(F_BULK | F_PREALLOC)
    mas_empty_nodes(mas)


def mas_empty_nodes(mas: MaState) -> None:
    """Free the nodes the ma_state still holds (6.12 mas_destroy(): all freed; 7.x
    mas_empty_nodes(): a sheaf is returned, an mt_alloc_one() node kfree()d)."""
    pool = mas.pool
    if pool.avail:
        if not pool.sheaf:
            mas.tree.op_freed += pool.avail
        pool.avail = 0
        pool.sheaf = False


def mas_store_gfp(mas: MaState, entry) -> None:
    wr = WrState(mas, entry)  # MA_WR_STATE(wr_mas, mas, entry)
    if mas.status == ST_START:  # mas_wr_prealloc_setup() of a fresh ma_state: mas_start()
        wr.content = mas_start(mas)
    else:
        mas_wr_prealloc_setup(wr)
    mas_wr_store_type(wr)
    # 6.12 asks for the store's exact need up front; 6.1 (ondemand) asks where the write path
    # needs nodes (mas_node_count() calls in the store functions) and frees what is left in
    # mas_nomem() -> mas_destroy(), as below
    request = 0 if mas.tree.ondemand else mas_prealloc_calc(mas, entry)
    if request:
        # mas_node_count() inlined; mas_alloc_nodes() of one node is one single allocation
        pool = mas.pool
        if request == 1 and not pool.avail:
            pool.log("single", 1)
            pool.avail = 1
        elif mas.tree.sheaves and not pool.avail:
            # 7.x mas_alloc_nodes(): more than one node -> kmem_cache_prefill_sheaf()
            mas.tree._log_sheaf(request)
            pool.avail = request
            pool.sheaf = True
        else:
            mas_node_count(mas, request)
    mas_wr_store_entry(wr)
    if mas.flags & F_REBALANCE:
        mas_destroy(mas)
    else:
        # mas_destroy() without a pending bulk rebalance, inlined
        mas.flags &= ~(F_BULK | F_PREALLOC)
        mas_empty_nodes(mas)


def mas_store(mas: MaState, entry):
    wr = WrState(mas, entry)
    mas_wr_prealloc_setup(wr)
    mas_wr_store_type(wr)
    if mas.flags & F_PREALLOC or mas.tree.ondemand:
        # 6.1's mas_store() neither preallocates nor destroys: a store that needs nodes
        # asks for them itself (GFP_NOWAIT), from a preallocated state's nodes first
        mas_wr_store_entry(wr)
        return wr.content
    request = mas_prealloc_calc(mas, entry)
    if request:
        mas_node_count(mas, request)
    mas_wr_store_entry(wr)
    mas_destroy(mas)
    return wr.content


def mas_expected_entries(mas: MaState, nr_entries: int) -> None:
    nonleaf_cap = AR_SLOTS - 2
    mas.flags |= F_BULK
    nr_nodes = max(nr_entries, nr_entries * 2 + 1)
    nr_nodes = -(-nr_nodes // (LEAF_SLOTS - 2))
    nr_nodes += -(-nr_nodes // nonleaf_cap)
    mas_node_count(mas, nr_nodes + 3)
    mas.flags |= F_PREALLOC


def mas_state_walk(mas: MaState):
    entry = mas_start(mas)
    if mas.status == ST_NONE:
        return None
    if mas.status == ST_ROOT:
        return entry
    return mtree_range_walk(mas)


def mas_erase(mas: MaState):
    mas.status = ST_START
    entry = mas_state_walk(mas)
    if entry is None:
        return None
    mas_reset(mas)
    mas_store_gfp(mas, None)
    return entry


# the 7.x write path (maple_copy) dispatched from mas_wr_store_entry(): simulator.maple.write_copy,
# which is built on this module's helpers; the package (simulator/maple/__init__.py) sets it once
# both are loaded, so neither module imports the other both ways
_MC = None
