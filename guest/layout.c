/* The layout builder; see layout.h for the contract. */
#define _GNU_SOURCE
#include "layout.h"

#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef MADV_WIPEONFORK
#define MADV_WIPEONFORK 18
#endif

const char *const prot_names[] = {"none", "r", "rw", "rx", "rwx"};
const char *const kind_names[] = {"anon", "shared-anon", "file", "shared-file"};
const char *const advice_names[] = {"none", "dontfork", "wipeonfork"};
const char *const touch_names[] = {"none", "first", "all"};
static const int prot_bits[] = {PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE,
				PROT_READ | PROT_EXEC, PROT_READ | PROT_WRITE | PROT_EXEC};

void layout_init(struct layout *L)
{
	memset(L, 0, sizeof(*L));
	L->base = 0x100000000UL;
	L->gap = 1;
	L->repeat = 1;
	L->fd = -1;
}

static int lookup(const char *const names[], int n, const char *s, size_t len)
{
	for (int i = 0; i < n; i++)
		if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0)
			return i;
	return -1;
}

static void parse_spec(struct layout *L, const char *spec)
{
	char msg[256];
	if (L->ngroups == MAX_GROUPS)
		die(EXIT_USAGE, "args", "too many layout groups", 0);
	struct group *g = &L->g[L->ngroups];
	char *end;
	g->count = strtoul(spec, &end, 10);
	if (end == spec || *end != 'x' || g->count == 0)
		goto bad;
	const char *p = end + 1;
	g->pages = strtoul(p, &end, 10);
	if (end == p || *end != ':' || g->pages == 0)
		goto bad;
	p = end + 1;
	int *fields[4] = {&g->prot, &g->kind, &g->advice, &g->touch};
	const char *const *names[4] = {prot_names, kind_names, advice_names, touch_names};
	const int counts[4] = {5, 4, 3, 3};
	for (int f = 0; f < 4; f++) {
		const char *q = strchr(p, ':');
		size_t len = q ? (size_t)(q - p) : strlen(p);
		if ((f < 3) != (q != NULL))
			goto bad;
		*fields[f] = lookup(names[f], counts[f], p, len);
		if (*fields[f] < 0)
			goto bad;
		p = q ? q + 1 : p + len;
	}
	if (g->touch != T_NONE && !(prot_bits[g->prot] & PROT_WRITE)) {
		snprintf(msg, sizeof(msg), "layout spec %s: touch needs 'w' in prot", spec);
		die(EXIT_USAGE, "args", msg, 0);
	}
	if (g->advice == A_WIPEONFORK && g->kind != K_ANON) {
		snprintf(msg, sizeof(msg), "layout spec %s: wipeonfork needs kind anon", spec);
		die(EXIT_USAGE, "args", msg, 0);
	}
	L->ngroups++;
	return;
bad:
	snprintf(msg, sizeof(msg),
		 "bad layout spec '%s' (want COUNTxPAGES:PROT:KIND:ADVICE:TOUCH)", spec);
	die(EXIT_USAGE, "args", msg, 0);
}

int layout_arg(struct layout *L, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (strcmp(a, "--base") == 0 || strcmp(a, "--gap") == 0 || strcmp(a, "--repeat") == 0) {
		if (*i + 1 >= argc)
			die(EXIT_USAGE, "args", "option needs a value", 0);
		unsigned long long v = parse_num(a, argv[++*i]);
		if (a[2] == 'b') {
			if (v % PAGE || v == 0)
				die(EXIT_USAGE, "args", "--base must be a positive multiple of 4096", 0);
			L->base = v;
		} else if (a[2] == 'r') {
			if (v == 0)
				die(EXIT_USAGE, "args", "--repeat must be >= 1", 0);
			L->repeat = v;
		} else {
			L->gap = v;
		}
		return 1;
	}
	if (a[0] != '-') {
		parse_spec(L, a);
		return 1;
	}
	return 0;
}

unsigned long layout_count(const struct layout *L)
{
	unsigned long n = 0;
	for (int g = 0; g < L->ngroups; g++)
		n += L->g[g].count;
	return n * L->repeat;
}

void layout_iter_start(const struct layout *L, struct layout_iter *it)
{
	memset(it, 0, sizeof(*it));
	it->addr = L->base;
	it->idx = (unsigned long)-1;
}

int layout_iter_next(const struct layout *L, struct layout_iter *it)
{
	while (it->g < L->ngroups && it->j == L->g[it->g].count) {
		it->g++;
		it->j = 0;
		if (it->g == L->ngroups && it->rep + 1 < L->repeat) {
			it->g = 0;
			it->rep++;
		}
	}
	if (it->g >= L->ngroups)
		return 0;
	const struct group *g = &L->g[it->g];
	it->start = it->addr;
	it->end = it->start + g->pages * PAGE;
	it->addr = it->end + L->gap * PAGE;
	it->idx++;
	it->j++;
	return 1;
}

static void make_file(struct layout *L)
{
	unsigned long pages = 0;
	for (int g = 0; g < L->ngroups; g++)
		if ((L->g[g].kind == K_FILE || L->g[g].kind == K_SHARED_FILE) && L->g[g].pages > pages)
			pages = L->g[g].pages;
	if (!pages)
		return;
	unlink(LAYOUT_FILE);
	L->fd = open(LAYOUT_FILE, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (L->fd < 0)
		die(EXIT_LAYOUT, "layout", "cannot create " LAYOUT_FILE, errno);
	if (ftruncate(L->fd, (off_t)(pages * PAGE)) != 0)
		die(EXIT_LAYOUT, "layout", "cannot size " LAYOUT_FILE, errno);
	struct stat st;
	if (fstat(L->fd, &st) != 0)
		die(EXIT_LAYOUT, "layout", "cannot stat " LAYOUT_FILE, errno);
	L->file_ino = st.st_ino;
}

static void map_one(unsigned long start, unsigned long len, int prot, int flags, int fd,
		    unsigned long idx)
{
	void *p = mmap((void *)start, len, prot, flags | MAP_FIXED_NOREPLACE, fd, 0);
	if (p == MAP_FAILED || (unsigned long)p != start) {
		int e = p == MAP_FAILED ? errno : EEXIST;
		if (p != MAP_FAILED)
			munmap(p, len);
		char msg[160];
		snprintf(msg, sizeof(msg), "mmap of VMA %lu at 0x%lx (%lu bytes) failed", idx, start,
			 len);
		die(EXIT_LAYOUT, "layout", msg, e);
	}
}

void layout_build(struct layout *L)
{
	struct layout_iter it;
	char msg[160];
	make_file(L);
	for (layout_iter_start(L, &it); layout_iter_next(L, &it);) {
		const struct group *g = &L->g[it.g];
		unsigned long len = it.end - it.start;
		int flags = 0, fd = -1;
		switch (g->kind) {
		case K_ANON: flags = MAP_PRIVATE | MAP_ANONYMOUS; break;
		case K_SHARED_ANON: flags = MAP_SHARED | MAP_ANONYMOUS; break;
		case K_FILE: flags = MAP_PRIVATE; fd = L->fd; break;
		default: flags = MAP_SHARED; fd = L->fd; break;
		}
		map_one(it.start, len, prot_bits[g->prot], flags, fd, it.idx);
		if (g->advice != A_NONE) {
			int adv = g->advice == A_DONTFORK ? MADV_DONTFORK : MADV_WIPEONFORK;
			if (madvise((void *)it.start, len, adv) != 0) {
				snprintf(msg, sizeof(msg), "madvise(%s) of VMA %lu at 0x%lx failed",
					 advice_names[g->advice], it.idx, it.start);
				die(EXIT_LAYOUT, "layout", msg, errno);
			}
		}
		unsigned long touched = g->touch == T_ALL ? g->pages : g->touch == T_FIRST ? 1 : 0;
		for (unsigned long pg = 0; pg < touched; pg++) {
			unsigned long a = it.start + pg * PAGE;
			*(volatile unsigned long long *)a = touch_value(a);
		}
	}
	L->next = it.addr;
}

static int perms_ok(const struct group *g, const char *perms)
{
	int pb = prot_bits[g->prot];
	int shared = g->kind == K_SHARED_ANON || g->kind == K_SHARED_FILE;
	return perms[0] == ((pb & PROT_READ) ? 'r' : '-') &&
	       perms[1] == ((pb & PROT_WRITE) ? 'w' : '-') &&
	       perms[2] == ((pb & PROT_EXEC) ? 'x' : '-') && perms[3] == (shared ? 's' : 'p');
}

void layout_verify(const struct layout *L, const char *maps, size_t len)
{
	struct layout_iter it;
	struct mline m;
	size_t pos = 0;
	int have = 0, r;
	char msg[320];
	for (layout_iter_start(L, &it); layout_iter_next(L, &it);) {
		const struct group *g = &L->g[it.g];
		/* advance to the first line ending after this VMA's start */
		while (!have || m.end <= it.start) {
			r = maps_next(maps, len, &pos, &m);
			if (r < 0)
				die(EXIT_LAYOUT, "verify", "malformed line in /proc/self/maps", 0);
			if (r == 0) {
				snprintf(msg, sizeof(msg), "VMA %lu [0x%lx-0x%lx) is missing from /proc/self/maps",
					 it.idx, it.start, it.end);
				die(EXIT_LAYOUT, "verify", msg, 0);
			}
			have = 1;
		}
		int file = g->kind == K_FILE || g->kind == K_SHARED_FILE;
		const char *why = NULL;
		if (m.start != it.start || m.end != it.end)
			why = m.start > it.start || m.end < it.end ? "is missing or split" : "was merged";
		else if (!perms_ok(g, m.perms))
			why = "has the wrong permissions";
		else if (file && (m.inode != L->file_ino || m.offset != 0))
			why = "does not map offset 0 of " LAYOUT_FILE;
		else if (g->kind == K_ANON && m.inode != 0)
			why = "is not anonymous";
		if (why) {
			snprintf(msg, sizeof(msg),
				 "VMA %lu [0x%lx-0x%lx %s %s] %s: /proc/self/maps has 0x%lx-0x%lx %s",
				 it.idx, it.start, it.end, prot_names[g->prot], kind_names[g->kind], why,
				 m.start, m.end, m.perms);
			die(EXIT_LAYOUT, "verify", msg, 0);
		}
	}
}

void layout_verify_self(const struct layout *L)
{
	size_t cap = (layout_count(L) + L->fill_count + 4096) * 160;
	cap = (cap + PAGE - 1) & ~(PAGE - 1);
	char *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		die(EXIT_RUNTIME, "verify", "cannot map a buffer for /proc/self/maps", errno);
	long n = read_file("/proc/self/maps", buf, cap);
	if (n < 0)
		die(EXIT_RUNTIME, "verify", "cannot read /proc/self/maps", errno);
	layout_verify(L, buf, (size_t)n);
	munmap(buf, cap);
}

unsigned long layout_fill_to(struct layout *L, unsigned long total)
{
	char msg[160];
	long have = count_own_vmas();
	if (have < 0)
		die(EXIT_RUNTIME, "fill", "cannot read /proc/self/maps", errno);
	if ((unsigned long)have > total) {
		snprintf(msg, sizeof(msg), "the process already has %ld VMAs, more than --total %lu",
			 have, total);
		die(EXIT_LAYOUT, "fill", msg, 0);
	}
	unsigned long start = L->next ? L->next : L->base;
	if (L->ngroups && L->gap == 0)
		start += PAGE; /* never adjacent to the last layout VMA */
	unsigned long add = total - (unsigned long)have;
	for (unsigned long i = 0; i < add; i++)
		map_one(start + 2 * i * PAGE, PAGE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, layout_count(L) + i);
	L->fill_start = start;
	L->fill_count = add;
	long now = count_own_vmas();
	if (now != (long)total) {
		snprintf(msg, sizeof(msg), "after adding %lu VMAs the process has %ld, not %lu", add,
			 now, total);
		die(EXIT_LAYOUT, "fill", msg, 0);
	}
	return add;
}

void layout_report(const struct layout *L, long map_count)
{
	j_begin();
	j_str("event", "layout");
	j_hex("base", L->base);
	j_int("gap_pages", (long long)L->gap);
	j_int("repeat", (long long)L->repeat);
	j_arr("groups");
	for (int i = 0; i < L->ngroups; i++) {
		const struct group *g = &L->g[i];
		char spec[128];
		snprintf(spec, sizeof(spec), "%lux%lu:%s:%s:%s:%s", g->count, g->pages,
			 prot_names[g->prot], kind_names[g->kind], advice_names[g->advice],
			 touch_names[g->touch]);
		j_str(NULL, spec);
	}
	j_arr_end();
	j_int("layout_vmas", (long long)layout_count(L));
	j_int("added", (long long)L->fill_count);
	if (L->fill_count)
		j_hex("fill_start", L->fill_start);
	j_int("map_count", map_count);
	j_bool("verified", 1);
	j_end();
}

void layout_cleanup(struct layout *L)
{
	if (L->fd >= 0) {
		close(L->fd);
		unlink(LAYOUT_FILE);
		L->fd = -1;
	}
}
