"""Operation lists for maple trees: the text format both the Python tree and the C oracle
(simulator/oracle/maple_oracle.c) read, and the Python replay that prints the same JSON lines.

    tree rcu|norcu          new empty tree (MT_FLAGS_ALLOC_RANGE [| MT_FLAGS_USE_RCU])
    store FIRST LAST V|null mas_store_gfp(GFP_KERNEL)
    erase INDEX             mtree_erase()
    expect N                mas_expected_entries() (bulk mode)
    bstore FIRST LAST V     mas_store() in bulk mode
    bdestroy                mas_destroy() of the bulk state
    dup [K]                 __mt_dup(); K > 0: the K-th allocation check fails
    replace FIRST LAST V    exact-fit mas_store()
    rcu on|off              mt_set_in_rcu() / mt_clear_in_rcu()
    dump                    print the tree and the allocation log since the last dump
Numbers are decimal or 0x-hex; values V are small integers.
"""

from __future__ import annotations

import json

from . import DupFailed, MapleTree

OPS = {"tree": 1, "store": 3, "erase": 1, "expect": 1, "bstore": 3, "bdestroy": 0,
       "dup": -1, "replace": 3, "rcu": 1, "dump": 0}


class OpsError(ValueError):
    """A malformed operation list; the message names the line."""


def parse(text: str, source: str = "<ops>") -> list[tuple]:
    out: list[tuple] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].split()
        if not line:
            continue
        cmd, args = line[0], line[1:]
        if cmd not in OPS:
            raise OpsError(f"{source}:{n}: unknown operation {cmd!r}")
        want = OPS[cmd]
        if (want >= 0 and len(args) != want) or (want < 0 and len(args) > 1):
            raise OpsError(f"{source}:{n}: {cmd} takes {max(want, 0)} argument(s)")
        try:
            if cmd in ("tree", "rcu"):
                ok = ("rcu", "norcu") if cmd == "tree" else ("on", "off")
                if args[0] not in ok:
                    raise ValueError
                out.append((cmd, args[0]))
            elif cmd in ("store", "bstore", "replace"):
                v = None if args[2] == "null" else int(args[2], 0)
                out.append((cmd, int(args[0], 0), int(args[1], 0), v))
            else:
                out.append((cmd, *(int(a, 0) for a in args)))
        except ValueError:
            raise OpsError(f"{source}:{n}: bad arguments in {raw.strip()!r}") from None
    return out


def format_ops(ops: list[tuple]) -> str:
    lines = []
    for op in ops:
        lines.append(" ".join("null" if a is None else str(a) for a in op))
    return "\n".join(lines) + "\n"


def replay(ops: list[tuple], alloc: str = "prealloc",
           write: str = "big_node") -> tuple[list[str], MapleTree]:
    """Apply `ops` to trees whose node allocation is `alloc` and write path `write`
    (MapleTree); return the JSON lines the oracle would print and the final tree."""
    t = MapleTree(rcu=True, alloc=alloc, write=write)
    out: list[str] = []
    mark = 0
    for op in ops:
        cmd = op[0]
        if cmd == "tree":
            t = MapleTree(rcu=op[1] == "rcu", alloc=alloc, write=write)
            mark = 0
        elif cmd == "store":
            t.store_range(op[1], op[2], op[3])
        elif cmd == "erase":
            t.erase(op[1])
        elif cmd == "expect":
            t.expected_entries(op[1])
        elif cmd == "bstore":
            t.bulk_store(op[1], op[2], op[3])
        elif cmd == "bdestroy":
            t.destroy_bulk()
        elif cmd == "replace":
            t.replace_exact(op[1], op[2], op[3])
        elif cmd == "rcu":
            t.set_rcu(op[1] == "on")
        elif cmd == "dup":
            k = op[1] if len(op) > 1 else 0
            try:
                new = t.dup(fail_at_check=k)
            except DupFailed as err:
                out.append('{"dup":-12}')
                t.alloc_log.extend(_reseq(err.log, t.seq))  # type: ignore[attr-defined]
                t.seq += 1
                continue
            out.append('{"dup":0}')
            old_log = t.alloc_log[mark:]
            seq = t.seq
            new.alloc_log = t.alloc_log[:mark] + old_log + _reseq(new.alloc_log, seq)
            new.seq = seq + 1
            t = new
        elif cmd == "dump":
            d = t.dump()
            d["log"] = t.log_compact(mark)
            mark = len(t.alloc_log)
            out.append(json.dumps(d, separators=(",", ":")))
    return out, t


def _reseq(log, seq):
    from . import AllocRecord
    return [AllocRecord(r.op, r.kind, r.count, seq) for r in log]
