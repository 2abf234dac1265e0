#!/usr/bin/env python3
"""A real process with many mappings, for `forkdiff scenario from-maps`: it does what a
storage engine or search index does with its segment files (a read-only header page, the body
at a later offset, a writable private copy of a tail page, a shared read-write log), runs worker
threads (each stack with its PROT_NONE guard page), keeps malloc arenas with guard regions,
then writes its own /proc/self/maps and smaps and exits. The kernel places every mapping
(top-down, merging what it merges); nothing is laid out by hand.

    python3 tools/mapmany.py --files 400 --out /tmp/mapmany   # /tmp/mapmany.maps, .smaps
"""

from __future__ import annotations

import argparse
import mmap
import os
import random
import shutil
import tempfile
import threading


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=400, help="segment files (about 5 VMAs each)")
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True, help="writes OUT.maps and OUT.smaps")
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    page = mmap.PAGESIZE
    tmp = tempfile.mkdtemp(prefix="mapmany-")
    keep = []
    try:
        for i in range(args.files):
            pages = rnd.randint(4, 40)
            path = os.path.join(tmp, f"seg{i:05d}.dat")
            with open(path, "wb") as fh:
                fh.write(os.urandom(64) + bytes(pages * page - 64))
            fd = os.open(path, os.O_RDWR)
            keep.append(mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ, offset=0))  # header
            body = rnd.randint(1, pages - 3)
            keep.append(mmap.mmap(fd, body * page, mmap.MAP_PRIVATE, mmap.PROT_READ,
                                  offset=2 * page))  # body, skipping the index page
            tail = mmap.mmap(fd, page, mmap.MAP_PRIVATE, mmap.PROT_READ | mmap.PROT_WRITE,
                             offset=(pages - 1) * page)
            tail[0:8] = b"modified"  # a private copy: an anon_vma
            keep.append(tail)
            if i % 3 == 0:
                log = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                                offset=(pages - 2) * page)
                log[0:4] = b"log!"
                keep.append(log)
            if i % 5 == 0:  # an arena: written pages, a guard in the middle
                n = rnd.randint(3, 12)
                a = mmap.mmap(-1, n * page, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
                for p in range(0, n, 2):
                    a[p * page] = 1
                keep.append(a)
            os.close(fd)
        stop = threading.Event()
        threads = [threading.Thread(target=stop.wait, daemon=True) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for ext in ("maps", "smaps"):
            with open(f"/proc/self/{ext}") as src, open(f"{args.out}.{ext}", "w") as dst:
                dst.write(src.read())
        stop.set()
        for t in threads:
            t.join()
    finally:
        for m in keep:
            m.close()
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
