/* The layout builder: creates exactly the VMAs a scenario asks for, at the addresses
 * simulator/scenario.py Scenario.layout() computes, and checks /proc/self/maps.
 * Command-line contract (Scenario.guest_args()), either groups of identical VMAs:
 *     --base 0xADDR --gap N [--repeat N] COUNTxPAGES:PROT:KIND:ADVICE:TOUCH ...
 * (--repeat N: the groups, in order, N times over), or a list of VMAs in a file:
 *     --layout-list PATH
 * one VMA a line (Scenario.guest_list()), ascending:
 *     START_HEX PAGES PROT KIND FILE PGOFF ADVICE TOUCHED FLAGS
 * (FILE: index of LIST_FILE_FMT, -1 for anonymous; PGOFF in pages; TOUCHED: pages written
 * from the first; FLAGS: VF_NORESERVE | VF_MAPPED_WRITABLE).
 * Order of operations, per layout VMA in ascending address order:
 *     mmap(MAP_FIXED_NOREPLACE) -> madvise(advice) -> writes (touch) -> mprotect(PROT) (only
 *     with VF_MAPPED_WRITABLE, which maps the VMA writable first).
 * Storage is static (bss: only the entries used are ever touched, so memory is linear in the
 * layout); nothing is malloc()ed, since a heap or mmap()ed block would be a VMA the simulator
 * does not know. */
#ifndef FORKDIFF_LAYOUT_H
#define FORKDIFF_LAYOUT_H

#include <stddef.h>

#define PAGE 4096UL
#define MAX_LAYOUT_GROUPS 131072UL /* more than argv can hold (ARG_MAX / the shortest spec) */
#define MAX_LIST_VMAS 262144UL     /* a list's VMAs: above vm.max_map_count (65530) */
#define MAX_LIST_FILES 65536       /* simulator/scenario.py MAX_LIST_FILES */
#define LAYOUT_FILE "/tmp/forkdiff-layout.dat"
#define LIST_FILE_FMT "/tmp/forkdiff-layout-%d.dat"
#define TOUCH_MAGIC 0x5a5a5a5a5a5a5a5aULL
#define VF_NORESERVE 1
#define VF_MAPPED_WRITABLE 2

enum prot_e { P_NONE, P_R, P_W, P_RW, P_X, P_RX, P_WX, P_RWX };
enum kind_e { K_ANON, K_SHARED_ANON, K_FILE, K_SHARED_FILE };
enum advice_e { A_NONE, A_DONTFORK, A_WIPEONFORK };
enum touch_e { T_NONE, T_FIRST, T_ALL };

struct group {
	unsigned long count, pages;
	int prot, kind, advice, touch;
};

/* One layout VMA as built (a group's VMA or a list line). */
struct lvma {
	unsigned long start, pages, pgoff, touched;
	int prot, kind, advice, file, flags;
};

struct layout {
	unsigned long base, gap, repeat;
	unsigned long ngroups;
	struct group *g;        /* static storage, MAX_LAYOUT_GROUPS */
	struct lvma *list;      /* a list's VMAs (static storage), or NULL */
	unsigned long nlist;
	int nfiles;             /* a list's files: indices 0 .. nfiles-1 */
	int fd;                 /* the groups' backing file of file kinds, or -1 */
	unsigned long file_ino; /* its inode number */
	unsigned long next;     /* first address after the layout (end + gap of the last VMA) */
	unsigned long fill_start, fill_count; /* VMAs added by layout_fill_to() */
	const char *list_path;
};

extern const char *const prot_names[], *const kind_names[], *const advice_names[],
	*const touch_names[];

void layout_init(struct layout *L);
/* Consume argv[*i] (and its value) if it belongs to the layout; returns 1 if consumed. */
int layout_arg(struct layout *L, int argc, char **argv, int *i);
unsigned long layout_count(const struct layout *L);
/* Iterate the layout VMAs: for (layout_iter_start(&it); layout_iter_next(L, &it);) ...
 * it.v is the current VMA (start, pages, prot, ...). */
struct layout_iter {
	unsigned long g, rep, j, idx, start, end, addr;
	struct lvma v;
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
/* Whether pages of this prot can be read (PROT_READ set). */
int layout_readable(int prot);
/* Emit the "layout" record: what was built. */
void layout_report(const struct layout *L, long map_count);
void layout_cleanup(struct layout *L);

#endif
