"""A line-by-line port of the write path Linux 7.x lib/maple_tree.c rewrote around
struct maple_copy (it replaced maple_big_node): splits (mas_wr_split), rebalances
(mas_wr_rebalance) and spanning stores (mas_wr_spanning_store) copy the data straight from up
to four sources (a sibling, the left part of the node, the maple_copy node holding the new
entries, the right part) into up to three new nodes per level, level by level upwards.

Function names are the kernel's (read next to 7.2's lib/maple_tree.c); the walks, gaps,
ascend/descend, node allocation from the ma_state's pool and the topiary replacement are
maple_core's (the same code in both trees). Trees select this path with
MapleTree(write="maple_copy") (the kernel fact maple_write); maple_core.mas_wr_store_entry()
dispatches here on tree.copy_write.

Operation counters: every slot node_copy() writes counts in O_BNODE_SLOTS (the slots a split,
rebalance or spanning store copies; 6.12 counts its copies through maple_big_node there), the
nodes it builds in O_NODE_BUILDS (mas_pop_node), gap writes in O_GAP_UPDATES (mas_update_gap).
"""

from __future__ import annotations

from . import core as C
from .core import (
    AR_MIN,
    AR_PIVOTS,
    AR_SLOTS,
    LEAF_MIN,
    LEAF_PIVOTS,
    LEAF_SLOTS,
    O_BNODE_SLOTS,
    OPS,
    M,
    MaState,
    Node,
    WrState,
)

CP_PIVOTS = 3  # mt_pivots[maple_copy]


class Cp:
    """struct maple_copy. dst[d] = [node, max]; src[s] = [node, max, start, end] where node
    is a Node or this Cp (the maple_copy source: its slot/pivot/gap arrays). `max` is the
    union member aliasing pivot[2], as in C."""

    __slots__ = ("dst", "src", "slot", "gap", "min", "pivot", "end", "s_count", "d_count",
                 "split", "data", "height")

    def __init__(self):
        self.dst = [[None, 0], [None, 0], [None, 0]]
        self.src = [[None, 0, 0, 0] for _ in range(4)]
        self.slot = [None] * 3
        self.gap = [0] * 3
        self.min = 0
        self.pivot = [0] * 3
        self.end = 0
        self.s_count = 0
        self.d_count = 0
        self.split = 0
        self.data = 0
        self.height = 0

    @property
    def max(self) -> int:
        return self.pivot[2]

    @max.setter
    def max(self, v: int) -> None:
        self.pivot[2] = v


def _slots(leaf: bool) -> int:
    return LEAF_SLOTS if leaf else AR_SLOTS


def _min_slots(leaf: bool) -> int:
    return LEAF_MIN if leaf else AR_MIN


def _arrays(src):
    """(slots, pivots, gaps, npivots, is_copy) of a node or of the maple_copy node."""
    if isinstance(src, Cp):
        return src.slot, src.pivot, src.gap, CP_PIVOTS, True
    return src.slot, src.piv, src.gap, (LEAF_PIVOTS if src.leaf else AR_PIVOTS), False


# ---------------------------------------------------------------- write-state helpers

def wr_mas_setup(wr: WrState, mas: MaState) -> None:
    node = wr.node = mas.node
    wr.leaf = node.leaf
    pivots = wr.pivots = node.piv
    wr.slots = node.slot
    wr.r_min = C.mas_safe_min(mas, pivots, mas.offset)
    wr.r_max = C.mas_safe_pivot(mas, pivots, mas.offset, node.leaf)


def wr_mas_ascend(wr: WrState) -> None:
    mas = wr.mas
    C.mas_ascend(mas)
    wr_mas_setup(wr, mas)
    mas.end = C.ma_data_end(wr.node, mas.max)
    wr.end_piv = wr.r_max  # "Careful, this may be wrong.."
    wr.offset_end = mas.offset


def copy_tree_location(src: MaState, dst: MaState) -> None:
    dst.node = src.node
    dst.offset = src.offset
    dst.min = src.min
    dst.max = src.max
    dst.end = src.end
    dst.depth = src.depth


def rebalance_sib(parent: MaState, sib: MaState) -> None:
    sib.assign(parent)
    if sib.offset < sib.end:  # prioritize move right to pull data left
        sib.offset += 1
    else:
        sib.offset -= 1
    C.mas_descend(sib)
    sib.end = C.mas_data_end(sib)


def spanning_sib(l_wr: WrState, r_wr: WrState, nneighbour: MaState) -> None:
    l_tmp = l_wr.mas.copy()
    r_tmp = r_wr.mas.copy()
    depth = 0
    while True:
        C.mas_ascend(r_tmp)
        C.mas_ascend(l_tmp)
        depth += 1
        if r_tmp.offset < C.mas_data_end(r_tmp):
            r_tmp.offset += 1
            C.mas_descend(r_tmp)
            r_tmp.offset = 0
            depth -= 1
            while depth:
                C.mas_descend(r_tmp)
                depth -= 1
            r_tmp.end = C.mas_data_end(r_tmp)
            nneighbour.assign(r_tmp)
            return
        elif l_tmp.offset:
            l_tmp.offset -= 1
            while True:
                C.mas_descend(l_tmp)
                l_tmp.offset = C.mas_data_end(l_tmp)
                depth -= 1
                if not depth:
                    break
            l_tmp.end = l_tmp.offset
            nneighbour.assign(l_tmp)
            return
        if C.mte_is_root(r_tmp.node):
            break
    raise AssertionError("maple: spanning store found no sibling (WARN_ON_ONCE)")


# ---------------------------------------------------------------- node copies

def node_copy(mas: MaState, src, start: int, size: int, s_max: int, dst: Node,
              d_start: int) -> int:
    s_slots, s_pivots, s_gaps, s_npiv, s_is_cp = _arrays(src)
    d_leaf = dst.leaf
    d_npiv = LEAF_PIVOTS if d_leaf else AR_PIVOTS
    d_slots = dst.slot
    d_slots[d_start:d_start + size] = s_slots[start:start + size]
    OPS[O_BNODE_SLOTS] += size
    if not d_leaf and s_is_cp:
        for i in range(size):
            C.mas_set_parent(d_slots[d_start + i], dst, d_start + i)
    if not d_leaf:  # ma_gaps(dst): arange_64 only
        dst.gap[d_start:d_start + size] = s_gaps[start:start + size]
    if start + size - 1 < s_npiv:
        d_max = s_pivots[start + size - 1]
    else:
        d_max = s_max
    d_pivots = dst.piv
    if d_start + size <= d_npiv:
        d_pivots[d_start + size - 1] = d_max
    size -= 1
    if size:
        d_pivots[d_start:d_start + size] = s_pivots[start:start + size]
    return d_max


def node_finalise(node: Node, end: int) -> None:
    leaf = node.leaf
    max_end = LEAF_SLOTS if leaf else AR_SLOTS
    if end < max_end - 1:
        size = max_end - end
        node.slot[end:max_end] = [None] * size
        if not leaf:
            node.gap[end:max_end] = [0] * size
        size -= 1
        if size:
            node.piv[end:end + size] = [0] * size
    gap_slot = 0
    if not leaf:
        gaps = node.gap
        max_gap = 0
        for i in range(end + 1):
            if i < AR_SLOTS and gaps[i] > max_gap:
                gap_slot = i
                max_gap = gaps[i]
        C.ma_set_meta(node, gap_slot, end - 1)
    elif end <= max_end - 1:
        C.ma_set_meta(node, gap_slot, end - 1)


# ---------------------------------------------------------------- maple_copy set-up

def cp_leaf_init(cp: Cp, mas: MaState, l_wr: WrState, r_wr: WrState) -> None:
    end = 0
    cp.height = 1
    if l_wr.r_min < mas.index:
        end += 1
        cp.slot[0] = l_wr.content
        cp.pivot[0] = mas.index - 1
    cp.slot[end] = l_wr.entry
    cp.pivot[end] = mas.last
    if r_wr.end_piv > mas.last:
        end += 1
        cp.slot[end] = r_wr.slots[r_wr.offset_end]
        cp.pivot[end] = r_wr.end_piv
    cp.min = l_wr.r_min
    cp.max = cp.pivot[end]
    cp.end = end


def cp_data_calc(cp: Cp, l_wr: WrState, r_wr: WrState) -> None:
    cp.data = l_wr.mas.offset + cp.end + 1 + (r_wr.mas.end - r_wr.offset_end)


def data_fits(sib: MaState, mas: MaState, cp: Cp) -> bool:
    space = 2 * _slots(mas.node.leaf)
    new_data = sib.end + 1 + cp.data
    if new_data > space:
        return False
    return new_data < space  # off by one by design (kernel comment)


def push_data_sib(cp: Cp, mas: MaState, sib: MaState, parent: MaState) -> None:
    if not C.mte_is_root(mas.node):
        sib.assign(parent)
        if sib.offset:
            sib.offset -= 1
            C.mas_descend(sib)
            sib.end = C.mas_data_end(sib)
            if data_fits(sib, mas, cp):  # push left
                return
            sib.assign(parent)
        if sib.offset < sib.end:
            sib.offset += 1
            C.mas_descend(sib)
            sib.end = C.mas_data_end(sib)
            if data_fits(sib, mas, cp):  # push right
                return
    sib.end = 0  # no_push


def rebalance_data(cp: Cp, wr: WrState, sib: MaState, parent: MaState) -> None:
    cp_data_calc(cp, wr, wr)
    sib.end = 0
    if cp.data > _slots(wr.leaf):
        push_data_sib(cp, wr.mas, sib, parent)
        if not sib.end:
            return
    elif cp.data <= _min_slots(wr.leaf):
        if wr.mas.min != 0 or wr.mas.max != M:
            rebalance_sib(parent, sib)
        else:
            return
    else:
        return
    cp.data += sib.end + 1


def spanning_data(cp: Cp, l_wr: WrState, r_wr: WrState, sib: MaState) -> None:
    cp_data_calc(cp, l_wr, r_wr)
    if ((l_wr.mas.min != 0 or r_wr.mas.max != M)
            and cp.data <= _min_slots(l_wr.leaf)):
        spanning_sib(l_wr, r_wr, sib)
        cp.data += sib.end + 1
    else:
        sib.end = 0


def split_data(cp: Cp, wr: WrState, sib: MaState, parent: MaState) -> None:
    cp_data_calc(cp, wr, wr)
    if cp.data <= _slots(wr.leaf):
        sib.end = 0
        return
    push_data_sib(cp, wr.mas, sib, parent)
    if sib.end:
        cp.data += sib.end + 1


def dst_setup(cp: Cp, mas: MaState, leaf: bool) -> None:
    slots = _slots(leaf)
    if cp.data <= slots:
        cp.split = cp.data - 1
        cp.d_count = 1
    else:
        cp.split = (cp.data - 1) // 2
        cp.d_count = 2
        if cp.data >= slots * 2 and not _dst_setup_fits(cp, leaf, slots):
            cp.split = (cp.data + 2) // 3  # no other choice but to 3-way split the data
            cp.d_count = 3
    for i in range(cp.d_count):
        cp.dst[i][0] = C.mas_pop_node(mas, leaf)


def _dst_setup_fits(cp: Cp, leaf: bool, slots: int) -> bool:
    """dst_setup()'s test of data == 2 * slots (more never reaches it): False where the kernel
    falls through to the 3-way split, adjusting cp.split as it does."""
    if cp.data != slots * 2:
        return False
    if not leaf:
        return True
    off = cp.split
    s = 0
    while s < cp.s_count:
        s_off = cp.src[s][3] - cp.src[s][2]
        if s_off >= off:
            break
        s_off += 1
        off -= s_off
        s += 1
    off += cp.src[s][2]
    if _arrays(cp.src[s][0])[0][off]:
        return True
    cp.split += 1
    if cp.split < slots:
        return True
    cp.split -= 2
    return cp.data - 2 - cp.split < slots


def append_mas_cp(cp: Cp, mas: MaState, start: int, end: int) -> None:
    src = cp.src[cp.s_count]
    node = mas.node
    src[0] = node
    src[1] = mas.max if mas.end <= end else node.piv[end]
    src[2] = start
    src[3] = end
    cp.s_count += 1


def append_wr_mas_cp(cp: Cp, wr: WrState, start: int, end: int) -> None:
    src = cp.src[cp.s_count]
    src[0] = wr.node
    src[1] = wr.mas.max if wr.mas.end <= end else wr.pivots[end]
    src[2] = start
    src[3] = end
    cp.s_count += 1


def init_cp_src(cp: Cp) -> None:
    src = cp.src[cp.s_count]
    src[0] = cp
    src[1] = cp.max
    src[2] = 0
    src[3] = cp.end
    cp.s_count += 1


def multi_src_setup(cp: Cp, l_wr: WrState, r_wr: WrState, sib: MaState) -> None:
    cp.s_count = 0
    if sib.end and sib.max < l_wr.mas.min:
        append_mas_cp(cp, sib, 0, sib.end)
    if l_wr.mas.offset:  # copy left 0 - offset
        append_wr_mas_cp(cp, l_wr, 0, l_wr.mas.offset - 1)
        cp.src[cp.s_count - 1][1] = (cp.min - 1) & M
    init_cp_src(cp)
    if r_wr.mas.end != r_wr.offset_end:  # copy right from offset + 1
        append_wr_mas_cp(cp, r_wr, r_wr.offset_end + 1, r_wr.mas.end)
    if sib.end and sib.min > r_wr.mas.max:
        append_mas_cp(cp, sib, 0, sib.end)


def cp_data_write(cp: Cp, mas: MaState) -> None:
    data_offset = 0
    s = d = 0
    src, s_max, s_offset, src_end = cp.src[s]
    split = cp.split
    while True:
        dst_offset = 0
        d_max = 0
        dst = cp.dst[d][0]
        dst_size = split + 1
        while dst_size:
            size = src_end - s_offset + 1
            if size >= dst_size:
                size = dst_size
            d_max = node_copy(mas, src, s_offset, size, s_max, dst, dst_offset)
            dst_offset += size
            s_offset += size
            if s_offset > src_end:  # this source is exhausted
                s += 1
                if s >= cp.s_count:
                    cp.dst[d][1] = d_max
                    node_finalise(dst, dst_offset)
                    return
                src, s_max, s_offset, src_end = cp.src[s]
            dst_size -= size
            data_offset += size
        split = cp.split
        cp.dst[d][1] = d_max
        # handle null entries
        if d_max != M and not dst.slot[dst_offset - 1]:
            if s_offset == cp.src[s][2]:
                s -= 1
                src, s_max, _start, src_end = cp.src[s]
                s_offset = src_end
            else:
                s_offset -= 1
            split += 1
            data_offset -= 1
            dst_offset -= 1
            cp.dst[d][1] = dst.piv[dst_offset - 1]
        node_finalise(dst, dst_offset)
        d += 1
        if d == cp.d_count - 1:
            split = cp.data - data_offset
        if d >= cp.d_count:
            return
        if not data_offset <= cp.data:
            return


def cp_dst_to_slots(cp: Cp, mn_min: int, mx: int, mas: MaState) -> None:
    slot_min = mn_min
    for d in range(cp.d_count):
        mn, slot_max = cp.dst[d]
        cp.slot[d] = mn
        cp.pivot[d] = slot_max
        if mn.leaf:  # mt_is_alloc(): every tree here tracks gaps
            cp.gap[d] = C.ma_leaf_max_gap(mn, slot_min, slot_max)
        else:
            cp.gap[d] = mn.gap[mn.mgap]
        slot_min = (slot_max + 1) & M
    cp.end = cp.d_count - 1
    cp.min = mn_min
    cp.max = mx


def cp_is_new_root(cp: Cp, mas: MaState) -> bool:
    if cp.min or cp.max != M:
        return False
    if cp.d_count != 1:
        cp.data = cp.d_count
        cp.s_count = 0
        dst_setup(cp, mas, False)  # maple_arange_64
        init_cp_src(cp)
        node_copy(mas, cp, 0, cp.data, cp.max, cp.dst[0][0], 0)
        node_finalise(cp.dst[0][0], cp.end + 1)
        cp.slot[0] = cp.dst[0][0]
        cp.height += 1
    root = cp.dst[0][0]
    root.parent = None  # ma_parent_ptr(mas_tree_parent(mas))
    root.pslot = 0
    mas.min = 0
    mas.max = M
    mas.depth = 0
    mas.node = mas.tree.root  # mas_root_locked()
    return True


def cp_converged(cp: Cp, mas: MaState, sib: MaState) -> bool:
    if cp.d_count != 1 or sib.end:
        return False
    dst = cp.dst[0][0]
    dst.parent = mas.node.parent
    dst.pslot = mas.node.pslot
    return True


# ---------------------------------------------------------------- ascending

def _ascend_to(cp: Cp, wr: WrState, sib: MaState, parent: MaState, mn: int, mx: int) -> bool:
    """The end the *_ascend() steps share: the new nodes into cp's slots for [mn, mx], then
    stop at a new root or where the tree converged, else go up one level."""
    mas = wr.mas
    cp_dst_to_slots(cp, mn, mx, mas)
    if cp_is_new_root(cp, mas):
        return False
    if cp_converged(cp, mas, sib):
        return False
    cp.height += 1
    copy_tree_location(parent, mas)
    wr_mas_setup(wr, mas)
    return True


def spanning_ascend(cp: Cp, mas: MaState, l_wr: WrState, r_wr: WrState,
                    sib: MaState) -> bool:
    if sib.end:
        if sib.max < l_wr.mas.min:
            l_wr.mas.assign(sib)
        else:
            r_wr.mas.assign(sib)
    cp_dst_to_slots(cp, l_wr.mas.min, r_wr.mas.max, mas)
    if cp_is_new_root(cp, mas):
        return False
    if cp.d_count == 1 and l_wr.mas.node is r_wr.mas.node:  # converged, one destination
        dst = cp.dst[0][0]
        dst.parent = mas.node.parent
        dst.pslot = mas.node.pslot
        return False
    cp.height += 1
    wr_mas_ascend(l_wr)
    wr_mas_ascend(r_wr)
    return True


def split_ascend(cp: Cp, wr: WrState, sib: MaState, parent: MaState) -> bool:
    mas = wr.mas
    mn, mx = mas.min, mas.max  # push right, or normal split
    wr.offset_end = parent.offset
    if sib.end:
        if sib.max < mas.min:
            mn = sib.min  # push left
            parent.offset -= 1
        else:
            mx = sib.max  # push right
            wr.offset_end += 1
    return _ascend_to(cp, wr, sib, parent, mn, mx)


def rebalance_ascend(cp: Cp, wr: WrState, sib: MaState, parent: MaState) -> bool:
    mas = wr.mas
    if not sib.end:
        mn, mx = mas.min, mas.max
    elif sib.min > mas.max:  # move right succeeded
        mn, mx = mas.min, sib.max
        wr.offset_end = parent.offset + 1
    else:
        mn, mx = sib.min, mas.max
        wr.offset_end = parent.offset
        parent.offset -= 1
    return _ascend_to(cp, wr, sib, parent, mn, mx)


def mas_wmb_replace(mas: MaState, cp: Cp) -> None:
    old = mas.node
    mas.node = cp.slot[0]
    C.mas_topiary_replace(mas, old, cp.height)
    if not mas.node.leaf:
        C.mas_update_gap(mas)
    if not mas.flags & C.F_ONESHOT:
        C.mtree_range_walk(mas)


# ---------------------------------------------------------------- the three writers

def _parent_up(parent: MaState) -> None:
    if not C.mte_is_root(parent.node):
        C.mas_ascend(parent)
        parent.end = C.mas_data_end(parent)


def _cp_store(wr: WrState, data, ascend) -> None:
    """The loop 7.x's mas_wr_split() and mas_wr_rebalance() share, with their own data and
    ascend steps (split_data/split_ascend, rebalance_data/rebalance_ascend)."""
    mas = wr.mas
    parent = mas.copy()
    sib = MaState(mas.tree)
    cp = Cp()
    cp_leaf_init(cp, mas, wr, wr)
    while True:
        _parent_up(parent)
        data(cp, wr, sib, parent)
        multi_src_setup(cp, wr, wr, sib)
        dst_setup(cp, mas, wr.leaf)
        cp_data_write(cp, mas)
        if not ascend(cp, wr, sib, parent):
            break
    mas_wmb_replace(mas, cp)


def mas_wr_split(wr: WrState) -> None:
    _cp_store(wr, split_data, split_ascend)


def mas_wr_rebalance(wr: WrState) -> None:
    _cp_store(wr, rebalance_data, rebalance_ascend)


def mas_extend_spanning_null(l_wr: WrState, r_wr: WrState) -> None:
    """7.x's: it also moves l_wr.r_min and r_wr.r_max with the range, and reads the right
    pivot with the right arguments."""
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
        l_wr.r_min = l_mas.index
    if not r_wr.content:
        if r_mas.last < r_wr.r_max:
            r_mas.last = r_wr.r_max
        r_mas.offset += 1
    elif (r_mas.last == r_wr.r_max and r_mas.last < r_mas.max
          and not r_wr.slots[r_mas.offset + 1]):
        r_mas.last = C.mas_safe_pivot(r_mas, r_wr.pivots, r_mas.offset + 1, r_wr.leaf)
        r_mas.offset += 1
        r_wr.r_max = r_mas.last


def mas_wr_spanning_store(wr: WrState) -> None:
    mas = wr.mas
    if not mas.index and mas.last == M:
        C.mas_new_root(mas, wr.entry)
        return
    r_mas = mas.copy()
    if (r_mas.last + 1) & M:  # avoid overflow, walk to the next slot in the tree
        r_mas.last += 1
    r_mas.index = r_mas.last
    r_wr = WrState(r_mas, wr.entry)
    C.mas_wr_walk_index(r_wr)
    r_mas.last = r_mas.index = mas.last
    r_wr.end_piv = r_wr.r_max
    C.mas_wr_walk_index(wr)  # the left side
    if wr.entry is None:
        mas_extend_spanning_null(wr, r_wr)
        mas.last = r_mas.last
    if not mas.index and r_mas.last == M:  # expanding NULLs may cover the entire range
        mas.index, mas.last = 0, M
        mas.status = C.ST_START
        mas.node = None
        C.mas_new_root(mas, wr.entry)
        return
    cp = Cp()
    sib = MaState(mas.tree)
    cp_leaf_init(cp, mas, wr, r_wr)
    while True:
        spanning_data(cp, wr, r_wr, sib)
        multi_src_setup(cp, wr, r_wr, sib)
        dst_setup(cp, mas, wr.leaf)
        cp_data_write(cp, mas)
        if not spanning_ascend(cp, mas, wr, r_wr, sib):
            break
    mas_wmb_replace(mas, cp)
