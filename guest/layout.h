/* The layout builder: creates exactly the VMAs a scenario asks for, at the addresses
 * simulator/scenario.py Scenario.layout() computes, and checks /proc/self/maps.
 * Command-line contract (Scenario.guest_args()):
 *     --base 0xADDR --gap N [--repeat N] COUNTxPAGES:PROT:KIND:ADVICE:TOUCH ...
 * (--repeat N: the groups, in order, N times over)
 * Order of operations, per layout VMA in ascending address order:
 *     mmap(MAP_FIXED_NOREPLACE) -> madvise(advice) -> writes (touch) */
#ifndef FORKDIFF_LAYOUT_H
#define FORKDIFF_LAYOUT_H

#include <stddef.h>

#define PAGE 4096UL
#define MAX_GROUPS 64
#define LAYOUT_FILE "/tmp/forkdiff-layout.dat"
#define TOUCH_MAGIC 0x5a5a5a5a5a5a5a5aULL

enum prot_e { P_NONE, P_R, P_RW, P_RX, P_RWX };
enum kind_e { K_ANON, K_SHARED_ANON, K_FILE, K_SHARED_FILE };
enum advice_e { A_NONE, A_DONTFORK, A_WIPEONFORK };
enum touch_e { T_NONE, T_FIRST, T_ALL };

struct group {
	unsigned long count, pages;
	int prot, kind, advice, touch;
};

struct layout {
	unsigned long base, gap, repeat;
	int ngroups;
	struct group g[MAX_GROUPS];
	int fd;                 /* the backing file of file kinds, or -1 */
	unsigned long file_ino; /* its inode number */
	unsigned long next;     /* first address after the layout (end + gap of the last VMA) */
	unsigned long fill_start, fill_count; /* VMAs added by layout_fill_to() */
};

extern const char *const prot_names[], *const kind_names[], *const advice_names[],
	*const touch_names[];

void layout_init(struct layout *L);
/* Consume argv[*i] (and its value) if it belongs to the layout; returns 1 if consumed. */
int layout_arg(struct layout *L, int argc, char **argv, int *i);
unsigned long layout_count(const struct layout *L);
/* Iterate the layout VMAs: for (layout_iter_start(&it); layout_iter_next(L, &it);) ... */
struct layout_iter {
	int g;
	unsigned long rep, j, idx, start, end, addr;
};
void layout_iter_start(const struct layout *L, struct layout_iter *it);
int layout_iter_next(const struct layout *L, struct layout_iter *it);

/* Build the VMAs (exits with EXIT_LAYOUT and a JSON error record on failure). */
void layout_build(struct layout *L);
/* Check every layout VMA appears exactly in the maps text (exits on mismatch). */
void layout_verify(const struct layout *L, const char *maps, size_t len);
/* layout_verify() on a fresh read of /proc/self/maps into a temporary mapping (unmapped again). */
void layout_verify_self(const struct layout *L);
/* Add 1-page anonymous rw VMAs (1-page gaps) after the layout until the process has exactly
 * total VMAs; returns how many were added (exits if it already has more). */
unsigned long layout_fill_to(struct layout *L, unsigned long total);
/* The value touch writes at the start of a page: page address ^ TOUCH_MAGIC. */
static inline unsigned long long touch_value(unsigned long addr) { return addr ^ TOUCH_MAGIC; }
/* Emit the "layout" record: what was built. */
void layout_report(const struct layout *L, long map_count);
void layout_cleanup(struct layout *L);

#endif
