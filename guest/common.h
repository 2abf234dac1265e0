/* Shared helpers of the forkdiff guest programs: a JSON-lines writer on stdout that never
 * calls malloc (so the process's VMA set is not disturbed by stdio), whole-file reads,
 * /proc/self/maps parsing and slab counters. See docs/records.md for the records. */
#ifndef FORKDIFF_COMMON_H
#define FORKDIFF_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define EXIT_USAGE 2   /* bad command line */
#define EXIT_LAYOUT 3  /* the layout could not be built or verified exactly */
#define EXIT_RUNTIME 4 /* a system call the program needs failed */

extern const char *g_prog; /* program name, put in every record */

/* JSON writer: j_begin() opens a record {"prog":..., then key/value calls, j_end() closes it
 * with a newline and writes it out. key may be NULL inside arrays. */
void j_begin(void);
void j_end(void);
void j_str(const char *key, const char *val);
void j_strn(const char *key, const char *val, size_t n);
void j_int(const char *key, long long val);
void j_hex(const char *key, unsigned long long val);
void j_dbl(const char *key, double val);
void j_bool(const char *key, int val);
void j_null(const char *key);
void j_obj(const char *key);
void j_obj_end(void);
void j_arr(const char *key);
void j_arr_end(void);
void j_flush(void);
/* Hold the JSON lines in `path` (unlinked at once) instead of writing them to stdout, and
 * copy them to stdout at j_release() (die() releases too). A fault sweep holds its output so
 * that sshd, which forwards stdout, does not grow its buffers (mmap/brk: VMAs and maple nodes)
 * while the sweep reads slab counters. */
void j_hold(const char *path);
void j_release(void);

/* {"prog":..,"event":"error","stage":stage,"message":msg,"errno":e} then exit(code). */
void die(int code, const char *stage, const char *msg, int err) __attribute__((noreturn));

/* Read a whole file into buf (NUL-terminated); returns its length or -1 (errno set). */
long read_file(const char *path, char *buf, size_t cap);

/* One line of /proc/<pid>/maps. path points into the text (not NUL-terminated). */
struct mline {
	unsigned long start, end, offset, inode;
	char perms[5];
	char dev[16];
	const char *path;
	int pathlen;
};

/* Parse the line starting at *pos in text[0..len); advances *pos past its newline.
 * Returns 1 on a line, 0 at the end, -1 on a malformed line. */
int maps_next(const char *text, size_t len, size_t *pos, struct mline *out);
int mline_is_vsyscall(const struct mline *m);
/* Emit one map line as a JSON object (array element). */
void j_mline(const struct mline *m);
/* Emit all lines of a maps text as a JSON array under key. Returns the number of VMAs
 * (lines other than [vsyscall]). */
long j_maps(const char *key, const char *text, size_t len);

/* VMAs of the calling process: lines of /proc/self/maps other than [vsyscall]. Streams the
 * file through a small stack buffer, so it touches no heap or large buffer. -1 on error. */
long count_own_vmas(void);

/* Slab counters of one cache from /sys/kernel/slab/<cache>/. Fields are -1 when the file
 * does not exist (e.g. SLUB_STATS off). alloc = alloc_fastpath + alloc_slowpath,
 * free = free_fastpath + free_slowpath, objects = first number of 'objects'. */
struct slabcount {
	long long objects, alloc, free;
};
void slab_read(const char *cache, struct slabcount *out);
/* Emit {"cache":{"objects":..,"alloc":..,"free":..}, ...} for the default caches under key. */
#define NCACHES 5
extern const char *const g_caches[NCACHES];
void slab_read_all(struct slabcount out[NCACHES]);
/* Write 1 to /sys/kernel/slab/<cache>/shrink for the default caches: per-CPU slabs go back to
 * the node lists, so that 'objects' then counts exactly the objects in use. */
/* 1: slab_shrink_all() only flushes the per-CPU slabs (cpu_partial written back), freeing no
 * empty slab (faultsweep with page allocations counted and no stack filter) */
extern int g_flush_only;
void slab_shrink_all(void);
/* alloc_fastpath + alloc_slowpath of the default caches (-1: no such cache or no SLUB_STATS). */
void slab_read_allocs(long long out[NCACHES]);
/* Shrink, then read 'objects' of the default caches (-1: no such cache). */
void slab_read_objects(long long out[NCACHES]);
void j_slab(const char *key, const struct slabcount c[NCACHES]);

/* Parse a decimal or 0x-prefixed unsigned number; exits with EXIT_USAGE on junk. */
unsigned long long parse_num(const char *what, const char *s);
double parse_double(const char *what, const char *s);

double now_monotonic(void);

#endif
