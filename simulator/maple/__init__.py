"""The maple tree mm uses (MT_FLAGS_ALLOC_RANGE [| MT_FLAGS_USE_RCU]), node for node as Linux
6.12 lib/maple_tree.c builds it (the algorithms are in simulator.maple.core; 6.1's allocation
rules and 7.x's allocation rules and maple_copy write path, simulator.maple.write_copy, are selected
per tree), with every node allocation and free recorded in order.

    t = MapleTree()                      # empty, RCU mode on (mm's MM_MT_FLAGS)
    t.store_range(0x1000, 0x1fff, vma)   # mas_store_gfp(GFP_KERNEL)
    t2 = t.dup()                         # __mt_dup(); t2.alloc_log: 1 single + 1 bulk per internal node
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

from . import core as C
from . import write_copy
from .core import M, MaState, Node, Pool

C._MC = write_copy  # the 7.x write path core dispatches to (core.py's _MC)

__all__ = ["MapleTree", "AllocRecord", "AllocLog", "DupFailed", "ULONG_MAX"]

ULONG_MAX = M


class AllocRecord(NamedTuple):
    """One allocation event of maple nodes. kind: "single" (kmem_cache_alloc), "bulk"
    (kmem_cache_alloc_bulk, `count` objects, one fault-injection check), "sheaf" (`count`
    nodes taken from a prefilled slab sheaf: kmem_cache_prefill_sheaf/refill fill it
    without should_failslab and kmem_cache_alloc_from_sheaf() hands them out without it, so
    no check; trees with `sheaves` set, 7.x), "free" (objects the operation freed, summed per
    operation), "free_rcu" (7.x, `sheaves` trees: how many of those it handed to kfree_rcu()
    through ma_free_rcu(), summed per operation and recorded before "free"; the slab's
    kfree_rcu_sheaf() batches them, see simulator.fork), "fail_single"/"fail_bulk" (a check
    that failed).
    seq: index of the tree operation that made it. Immutable; a NamedTuple rather than a
    frozen dataclass because two are made per store (cheaper to build, and the cyclic GC
    stops tracking tuples of atoms)."""

    op: str
    kind: str
    count: int
    seq: int = 0

    @property
    def is_check(self) -> bool:
        return self.kind not in ("free", "sheaf", "free_rcu")


# Each record is kept packed in one int (seq << 40 | count << 8 | op << 3 | kind): a list of
# ints holds no GC-tracked objects, where a list of tuples made the cyclic GC run a
# generation-0 collection every 700 records (the records were ~90% of the containers a
# store left alive) and cost ~9 MB at 51k VMAs. count < 2**32 (a node count).
_KINDS = ("single", "bulk", "free", "fail_single", "fail_bulk", "sheaf", "free_rcu")
_KIND_CODE = {k: i for i, k in enumerate(_KINDS)}
_OPS = ["store", "erase", "replace", "expect", "bstore", "bdestroy", "dup", ""]
_OP_CODE = {o: i for i, o in enumerate(_OPS)}
_FREE = _KIND_CODE["free"]
_SHEAF = _KIND_CODE["sheaf"]
_FREE_RCU = _KIND_CODE["free_rcu"]
_STORE_BITS = _OP_CODE["store"] << 3
_BSTORE_BITS = _OP_CODE["bstore"] << 3


def _op_bits(op: str) -> int:
    code = _OP_CODE.get(op)
    if code is None:  # an op name of a record built outside this module
        if len(_OPS) >= 32:
            raise ValueError(f"too many allocation-record op names ({op!r})")
        code = _OP_CODE[op] = len(_OPS)
        _OPS.append(op)
    return code << 3


def _pack(r: AllocRecord) -> int:
    if not 0 <= r.count < 1 << 32 or r.seq < 0:
        raise ValueError(f"allocation record out of range: {r!r}")
    return r.seq << 40 | r.count << 8 | _op_bits(r.op) | _KIND_CODE[r.kind]


def _unpack(x: int) -> AllocRecord:
    return AllocRecord(_OPS[(x >> 3) & 31], _KINDS[x & 7], (x >> 8) & 0xFFFFFFFF, x >> 40)


class AllocLog(Sequence):
    """A tree's allocation log: a read-mostly sequence of AllocRecord (indexing and slicing
    give AllocRecords / lists of them; append/extend take AllocRecords), stored packed."""

    __slots__ = ("_recs",)

    def __init__(self, records: Iterable[AllocRecord] = ()):
        self._recs: list[int] = [_pack(r) for r in records]

    def __len__(self) -> int:
        return len(self._recs)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [_unpack(x) for x in self._recs[i]]
        return _unpack(self._recs[i])

    def __iter__(self) -> Iterator[AllocRecord]:
        return map(_unpack, self._recs)

    def append(self, r: AllocRecord) -> None:
        self._recs.append(_pack(r))

    def extend(self, records: Iterable[AllocRecord]) -> None:
        self._recs.extend([_pack(r) for r in records])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AllocLog):
            return self._recs == other._recs
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Iterable[AllocRecord]) -> list[AllocRecord]:
        return list(self) + list(other)

    def __repr__(self) -> str:
        return f"AllocLog({list(self)!r})"


_new_pool = Pool.__new__


class DupFailed(Exception):
    """__mt_dup() returned -ENOMEM (an injected allocation failure)."""


class _FailAt(Exception):
    pass


class MapleTree:
    """An allocation-range maple tree. `rcu` is MT_FLAGS_USE_RCU (mm trees start with it;
    dup_mmap clears it on the child while building it). `alloc` is how the kernel's tree
    gets its nodes (the kernel fact maple_alloc): "prealloc" (6.12: a store asks for its exact
    need before writing), "ondemand" (6.1: the write path asks where it needs nodes) or
    "sheaves" (7.x lib/maple_tree.c: mas_alloc_nodes() takes one node with mt_alloc_one() and
    more from a slab sheaf; mas_prealloc_calc() sizes a store by the vacant/sufficient heights
    its walk found). `write` is the write path of splits, rebalances and spanning stores (the
    kernel fact maple_write): "big_node" (6.1 to 6.x: through struct maple_big_node,
    simulator.maple.core) or "maple_copy" (7.x: struct maple_copy, simulator.maple.write_copy)."""

    ALLOC_MODES = ("prealloc", "ondemand", "sheaves")
    WRITE_MODES = ("big_node", "maple_copy")

    def __init__(self, rcu: bool = True, alloc: str = "prealloc", write: str = "big_node"):
        if alloc not in self.ALLOC_MODES:
            raise ValueError(f"maple node allocation {alloc!r} is not modelled "
                             f"(one of {', '.join(self.ALLOC_MODES)})")
        if write not in self.WRITE_MODES:
            raise ValueError(f"maple write path {write!r} is not modelled "
                             f"(one of {', '.join(self.WRITE_MODES)})")
        self.write = write
        self.copy_write = write == "maple_copy"
        self.root: Node | object | None = None
        self.height = 0
        self.rcu = rcu
        self.alloc = alloc
        self.ondemand = alloc == "ondemand"
        self.sheaves = alloc == "sheaves"
        self._alog = AllocLog()
        self._recs = self._alog._recs  # the packed records, appended to on the hot paths
        self.op_freed = 0
        self.op_rcu_freed = 0  # of op_freed, through kfree_rcu() (7.x ma_free_rcu())
        self.seq = 0
        self._opbits = _OP_CODE[""] << 3  # the current operation's name, packed
        self._bulk: MaState | None = None
        self._fail_countdown = 0

    def __del__(self, _Node=Node) -> None:
        """Break the node <-> parent reference cycles of a tree that is going away, so its
        nodes are freed at once by reference counting instead of waiting for a full pass of
        the cyclic GC (which charges that work to whatever runs then, and keeps the memory
        meanwhile). Nothing reads a node's parent once its tree is gone."""
        root = self.root
        if not isinstance(root, _Node):
            return
        stack = [root]
        while stack:
            for c in stack.pop().slot:  # every child, stale slots past the end included
                if isinstance(c, _Node) and c.parent is not None:
                    c.parent = None
                    if not c.leaf:
                        stack.append(c)

    @property
    def alloc_log(self) -> AllocLog:
        """Every allocation record, in order (a sequence of AllocRecord)."""
        return self._alog

    @alloc_log.setter
    def alloc_log(self, records: Iterable[AllocRecord]) -> None:
        self._alog = records if isinstance(records, AllocLog) else AllocLog(records)
        self._recs = self._alog._recs

    # -------------------------------------------------------------- bookkeeping
    def _log(self, kind: str, count: int) -> None:
        if self._fail_countdown > 0:
            self._fail_countdown -= 1
            if self._fail_countdown == 0:
                self._recs.append(self.seq << 40 | count << 8 | self._opbits
                                  | _KIND_CODE["fail_" + kind])
                raise _FailAt()
        self._recs.append(self.seq << 40 | count << 8 | self._opbits | _KIND_CODE[kind])

    def _log_sheaf(self, count: int) -> None:
        """`count` nodes taken from a prefilled sheaf: recorded, never a check."""
        self._recs.append(self.seq << 40 | count << 8 | self._opbits | _SHEAF)

    def _begin(self, op: str) -> None:
        self._opbits = _op_bits(op)
        self.op_freed = 0
        self.op_rcu_freed = 0

    def _end(self) -> None:
        if self.op_rcu_freed:
            self._recs.append(self.seq << 40 | self.op_rcu_freed << 8 | self._opbits | _FREE_RCU)
            self.op_rcu_freed = 0
        if self.op_freed:
            self._recs.append(self.seq << 40 | self.op_freed << 8 | self._opbits | _FREE)
        self.op_freed = 0
        self.seq += 1

    def _mas(self, first: int, last: int) -> MaState:
        mas = MaState(self, first, last)
        mas.pool = Pool(self._log)
        return mas

    @staticmethod
    def _check_range(first: int, last: int) -> None:
        if not (0 <= first <= last <= M):
            raise ValueError(f"bad range [{first:#x}, {last:#x}]")

    # -------------------------------------------------------------- operations
    def store_range(self, first: int, last: int, entry: object | None) -> None:
        """mas_store_gfp(GFP_KERNEL) of `entry` (None: a NULL store) on [first, last]."""
        if not (0 <= first <= last <= M):
            self._check_range(first, last)
        # _begin("store"), _mas(), _end() inlined: this is the hot path of every mm model
        self._opbits = _STORE_BITS
        self.op_freed = 0
        mas = MaState(self, first, last)  # MA_STATE(mas, tree, first, last)
        mas.flags = C.F_ONESHOT  # not a kernel flag: mas is dropped after the store
        mas.store_type = C.WR_INVALID
        pool = mas.pool = _new_pool(Pool)  # Pool(self._log) without __init__
        pool.avail = 0
        pool.log = self._log
        pool.sheaf = False
        C.mas_store_gfp(mas, entry)
        if self.op_rcu_freed:
            self._recs.append(self.seq << 40 | self.op_rcu_freed << 8 | _STORE_BITS | _FREE_RCU)
            self.op_rcu_freed = 0
        if self.op_freed:
            self._recs.append(self.seq << 40 | self.op_freed << 8 | _STORE_BITS | _FREE)
        self.op_freed = 0
        self.seq += 1

    def erase(self, index: int) -> object | None:
        """mtree_erase(): NULL-store the whole range of the entry holding `index`."""
        self._begin("erase")
        entry = C.mas_erase(self._mas(index, index))
        self._end()
        return entry

    def replace_exact(self, first: int, last: int, entry: object) -> None:
        """The store dup_mmap does over a copied VMA: mas_store() on exactly the range of an
        existing entry, which never allocates."""
        self._check_range(first, last)
        self._begin("replace")
        mas = self._mas(first, last)
        C.mas_store(mas, entry)
        if mas.store_type != C.WR_EXACT_FIT:
            raise ValueError(f"[{first:#x}, {last:#x}] is not exactly one existing range")
        self._end()

    def expected_entries(self, n: int) -> None:
        """mas_expected_entries(): bulk mode, preallocating for n entries."""
        if self.rcu:
            raise ValueError("bulk mode needs the tree out of RCU mode (dup_mmap clears it)")
        self._begin("expect")
        self._bulk = self._mas(0, 0)
        C.mas_expected_entries(self._bulk, n)
        self._end()

    def bulk_store(self, first: int, last: int, entry: object | None) -> None:
        """mas_store() with the bulk ma_state (ascending ranges, as dup_mmap stores them)."""
        if self._bulk is None:
            raise ValueError("bulk_store outside bulk mode: call expected_entries() first")
        if not (0 <= first <= last <= M):
            self._check_range(first, last)
        self._opbits = _BSTORE_BITS  # _begin() / _end() inlined (one call per VMA in dup_mmap)
        self.op_freed = 0
        bulk = self._bulk
        bulk.index = first
        bulk.last = last
        C.mas_store(bulk, entry)
        if self.op_rcu_freed:  # never on a bulk (6.x) tree; kept with its free count
            self._recs.append(self.seq << 40 | self.op_rcu_freed << 8 | _BSTORE_BITS | _FREE_RCU)
            self.op_rcu_freed = 0
        if self.op_freed:
            self._recs.append(self.seq << 40 | self.op_freed << 8 | _BSTORE_BITS | _FREE)
        self.op_freed = 0
        self.seq += 1

    def destroy_bulk(self) -> None:
        """mas_destroy() of the bulk ma_state: rebalance the last leaf, free leftovers."""
        if self._bulk is None:
            raise ValueError("destroy_bulk outside bulk mode")
        self._begin("bdestroy")
        C.mas_destroy(self._bulk)
        self._bulk = None
        self._end()

    def set_rcu(self, on: bool) -> None:
        """mt_set_in_rcu() / mt_clear_in_rcu()."""
        self.rcu = on

    def load(self, index: int) -> object | None:
        root = self.root
        if root is None:
            return None
        if not isinstance(root, Node):
            return root if index == 0 else None
        node = root
        while True:
            piv = node.piv
            n = len(piv)
            off = 0
            while off < n and piv[off] < index:
                off += 1
            nxt = node.slot[off]
            if node.leaf:
                return nxt
            node = nxt

    def dup(self, fail_at_check: int = 0, sheaves: bool | None = None) -> MapleTree:
        """__mt_dup(): a copy built in DFS pre-order, one single allocation for the root and
        one bulk allocation per internal node for all its children. With fail_at_check=k the
        k-th allocation check fails: the copy is freed and DupFailed is raised; its
        alloc_log (attribute `log` of the exception) shows what happened.
        A sheaves tree (7.x mas_dup_alloc() -> mas_alloc_nodes()): an internal node's children
        (always 2 or more) come from the ma_state's slab sheaf (kmem_cache_prefill_sheaf, then
        kmem_cache_refill_sheaf when it holds fewer than needed), recorded as "sheaf", no
        check; the root is still mt_alloc_one(). sheaves=True/False overrides the tree's own
        mode for the copy."""
        alloc = self.alloc if sheaves is None else ("sheaves" if sheaves else
                                                    "prealloc" if self.alloc == "sheaves" else self.alloc)
        new = MapleTree(rcu=self.rcu, alloc=alloc, write=self.write)
        sheaves = new.sheaves
        new._begin("dup")
        new._fail_countdown = fail_at_check
        allocated = 0
        try:
            if isinstance(self.root, Node):
                new._log("single", 1)
                allocated = 1
                stack = [self.root]
                copies: dict[int, Node] = {}
                order: list[Node] = []
                while stack:  # pre-order
                    node = stack.pop()
                    order.append(node)
                    if not node.leaf:
                        end = C.ma_data_end(node, 0)
                        if sheaves:
                            new._log_sheaf(end + 1)
                        else:
                            new._log("bulk", end + 1)
                        allocated += end + 1
                        stack.extend(reversed(node.slot[:end + 1]))
                C.OPS[C.O_DUP_NODES] += len(order)
                C.OPS[C.O_DUP_CHILDREN] += allocated - 1
                for node in order:
                    copies[id(node)] = _copy_node(node)
                for node in order:
                    cp = copies[id(node)]
                    if not node.leaf:
                        for i, child in enumerate(cp.slot):
                            if isinstance(child, Node):
                                cc = copies[id(child)]
                                cp.slot[i] = cc
                                cc.parent = cp
                new.root = copies[id(self.root)]
                new.root.parent = None
            else:
                new.root = self.root
            new.height = self.height
        except _FailAt:
            new.op_freed = allocated
            new._fail_countdown = 0
            new.root = None
            new.height = 0
            new._end()
            err = DupFailed(f"__mt_dup failed at allocation check {fail_at_check}")
            err.log = new.alloc_log  # type: ignore[attr-defined]
            raise err from None
        new._fail_countdown = 0
        new._end()
        return new

    # -------------------------------------------------------------- inspection
    def _walk(self):
        """(node, min, max) in DFS pre-order."""
        root = self.root
        if not isinstance(root, Node):
            return
        stack = [(root, 0, M)]
        while stack:
            node, mn, mx = stack.pop()
            yield node, mn, mx
            if node.leaf:
                continue
            end = C.ma_data_end(node, mx)
            kids = []
            for i in range(end + 1):
                cmin = (node.piv[i - 1] + 1) if i else mn
                cmax = node.piv[i] if i < end and i < C.AR_PIVOTS else mx
                if node.slot[i] is not None:
                    kids.append((node.slot[i], cmin, cmax))
            stack.extend(reversed(kids))

    @property
    def node_count(self) -> int:
        return sum(1 for _ in self._walk())

    @property
    def leaf_count(self) -> int:
        return sum(1 for n, _, _ in self._walk() if n.leaf)

    @property
    def internal_count(self) -> int:
        return sum(1 for n, _, _ in self._walk() if not n.leaf)

    def entries(self) -> list[tuple[int, int, object]]:
        """(first, last, entry) of every non-NULL range, in order."""
        out = []
        root = self.root
        if root is None:
            return out
        if not isinstance(root, Node):
            return [(0, 0, root)]
        for node, mn, mx in self._walk():
            if not node.leaf:
                continue
            end = C.ma_data_end(node, mx)
            lo = mn
            for i in range(end + 1):
                hi = node.piv[i] if i < end else mx
                if node.slot[i] is not None:
                    out.append((lo, hi, node.slot[i]))
                lo = hi + 1
        return out

    def checks(self, seq: int | None = None) -> int:
        """Allocation checks (single + bulk calls, failed ones included) recorded for
        operation `seq` (default: all)."""
        return sum(1 for r in self.alloc_log if r.is_check and (seq is None or r.seq == seq))

    def dump(self) -> dict:
        """The canonical dump the oracle prints (without the allocation log)."""
        root = self.root
        if root is None:
            return {"height": self.height, "root": "empty", "nodes": []}
        if not isinstance(root, Node):
            return {"height": self.height, "root": {"v": _value(root)}, "nodes": []}
        nodes = []
        for node, mn, mx in self._walk():
            end = C.ma_data_end(node, mx)
            npiv = len(node.piv)
            lim = min(end, npiv - 1)
            d: dict = {"t": "l" if node.leaf else "a", "min": mn, "max": mx,
                       "piv": node.piv[:lim + 1]}
            if node.leaf:
                d["s"] = [None if e is None else _value(e) for e in node.slot[:end + 1]]
            else:
                d["s"] = [None if e is None else "n" for e in node.slot[:end + 1]]
                d["g"] = node.gap[:end + 1]
                d["mg"] = node.mgap
            nodes.append(d)
        return {"height": self.height, "root": "node", "nodes": nodes}

    def log_compact(self, since: int = 0) -> list[list]:
        """alloc_log[since:] as the oracle prints it: [seq, kind, count], kind "s"|"b"|"f"|"xs"|
        "xb", and on 7.x trees "h" (sheaf) and "r" (free_rcu)."""
        kinds = {"single": "s", "bulk": "b", "free": "f", "fail_single": "xs", "fail_bulk": "xb",
                 "sheaf": "h", "free_rcu": "r"}
        return [[r.seq, kinds[r.kind], r.count] for r in self.alloc_log[since:]]


def _copy_node(node: Node) -> Node:
    cp = Node.__new__(Node)
    cp.leaf = node.leaf
    cp.piv = node.piv[:]
    cp.slot = node.slot[:]
    cp.gap = node.gap[:] if node.gap is not None else None
    cp.end = node.end
    cp.mgap = node.mgap
    cp.parent = None
    cp.pslot = node.pslot
    return cp


def _value(entry: object):
    return entry if isinstance(entry, int) else getattr(entry, "oracle_value", repr(entry))
