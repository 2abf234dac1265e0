"""forkdiff simulator: maple tree, mm/VMA model, dup_mmap variants, cost model. Pure Python."""
