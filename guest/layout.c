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

const char *const prot_names[] = {"none", "r", "w", "rw", "x", "rx", "wx", "rwx"};
const char *const kind_names[] = {"anon", "shared-anon", "file", "shared-file"};
const char *const advice_names[] = {"none", "dontfork", "wipeonfork"};
const char *const touch_names[] = {"none", "first", "all"};
static const int prot_bits[] = {PROT_NONE, PROT_READ, PROT_WRITE, PROT_READ | PROT_WRITE,
				PROT_EXEC, PROT_READ | PROT_EXEC, PROT_WRITE | PROT_EXEC,
				PROT_READ | PROT_WRITE | PROT_EXEC};

static struct group groups_store[MAX_LAYOUT_GROUPS];
static struct lvma list_store[MAX_LIST_VMAS];
static unsigned long list_file_pages[MAX_LIST_FILES], list_file_ino[MAX_LIST_FILES];

int layout_readable(int prot)
{
	return (prot_bits[prot] & PROT_READ) != 0;
}

void layout_init(struct layout *L)
{
	memset(L, 0, sizeof(*L));
	L->base = 0x100000000UL;
	L->gap = 1;
	L->repeat = 1;
	L->fd = -1;
	L->g = groups_store;
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
	if (L->ngroups == MAX_LAYOUT_GROUPS)
		die(EXIT_USAGE, "args", "too many layout groups", 0);
	if (L->list)
		die(EXIT_USAGE, "args", "layout groups and --layout-list cannot be combined", 0);
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
	const int counts[4] = {8, 4, 3, 3};
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

static int name_field(const char *const names[], int n, const char **p)
{
	const char *q = *p;
	while (*q == ' ')
		q++;
	const char *e = q;
	while (*e && *e != ' ' && *e != '\n')
		e++;
	*p = e;
	return lookup(names, n, q, (size_t)(e - q));
}

static void list_line(struct layout *L, const char *line, unsigned long lineno)
{
	char msg[320];
	const char *p = line;
	char *end;
	struct lvma v;
	if (L->nlist == MAX_LIST_VMAS)
		die(EXIT_USAGE, "args", "--layout-list has too many VMAs", 0);
	v.start = strtoul(p, &end, 16);
	if (end == p)
		goto bad;
	p = end;
	v.pages = strtoul(p, &end, 10);
	if (end == p || v.pages == 0)
		goto bad;
	p = end;
	if ((v.prot = name_field(prot_names, 8, &p)) < 0 || (v.kind = name_field(kind_names, 4, &p)) < 0)
		goto bad;
	v.file = (int)strtol(p, &end, 10);
	if (end == p || v.file < -1 || v.file >= MAX_LIST_FILES)
		goto bad;
	p = end;
	v.pgoff = strtoul(p, &end, 10);
	if (end == p)
		goto bad;
	p = end;
	if ((v.advice = name_field(advice_names, 3, &p)) < 0)
		goto bad;
	v.touched = strtoul(p, &end, 10);
	if (end == p || v.touched > v.pages)
		goto bad;
	p = end;
	v.flags = (int)strtol(p, &end, 10);
	if (end == p || v.flags < 0 || v.flags > (VF_NORESERVE | VF_MAPPED_WRITABLE))
		goto bad;
	int file = v.kind == K_FILE || v.kind == K_SHARED_FILE;
	if (v.start % PAGE || file != (v.file >= 0))
		goto bad;
	if (L->nlist && v.start < list_store[L->nlist - 1].start + list_store[L->nlist - 1].pages * PAGE) {
		snprintf(msg, sizeof(msg), "--layout-list line %lu: VMA at 0x%lx overlaps or is below the previous one",
			 lineno, v.start);
		die(EXIT_USAGE, "args", msg, 0);
	}
	if (file) {
		if (v.file >= L->nfiles)
			L->nfiles = v.file + 1;
		if (v.pgoff + v.pages > list_file_pages[v.file])
			list_file_pages[v.file] = v.pgoff + v.pages;
	}
	list_store[L->nlist++] = v;
	return;
bad:
	snprintf(msg, sizeof(msg), "--layout-list line %lu is not 'START PAGES PROT KIND FILE PGOFF ADVICE "
		 "TOUCHED FLAGS': %.160s", lineno, line);
	die(EXIT_USAGE, "args", msg, 0);
}

static void read_list(struct layout *L, const char *path)
{
	char buf[65536 + 512];
	size_t have = 0;
	unsigned long lineno = 0;
	if (L->ngroups || L->list)
		die(EXIT_USAGE, "args", "--layout-list cannot be combined with groups or given twice", 0);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(EXIT_USAGE, "args", "cannot open the --layout-list file", errno);
	L->list = list_store;
	L->list_path = path;
	for (;;) {
		ssize_t n = read(fd, buf + have, 65536);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die(EXIT_USAGE, "args", "cannot read the --layout-list file", errno);
		}
		have += (size_t)n;
		size_t pos = 0;
		for (;;) {
			char *nl = memchr(buf + pos, '\n', have - pos);
			if (!nl && !(n == 0 && pos < have))
				break;
			if (nl)
				*nl = 0;
			else
				buf[have] = 0;
			lineno++;
			if (buf[pos])
				list_line(L, buf + pos, lineno);
			pos = nl ? (size_t)(nl - buf) + 1 : have;
		}
		if (have - pos > 512)
			die(EXIT_USAGE, "args", "--layout-list has a line longer than 512 bytes", 0);
		memmove(buf, buf + pos, have - pos);
		have -= pos;
		if (n == 0)
			break;
	}
	close(fd);
	if (!L->nlist)
		die(EXIT_USAGE, "args", "--layout-list is empty", 0);
	L->gap = 1; /* the fill (layout_fill_to) starts a page after the last VMA */
}

int layout_arg(struct layout *L, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	if (strcmp(a, "--layout-list") == 0) {
		if (*i + 1 >= argc)
			die(EXIT_USAGE, "args", "option needs a value", 0);
		read_list(L, argv[++*i]);
		return 1;
	}
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
	if (L->list)
		return L->nlist;
	for (unsigned long g = 0; g < L->ngroups; g++)
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
	if (L->list) {
		if (it->j == L->nlist)
			return 0;
		it->v = L->list[it->j++];
		it->idx++;
		it->start = it->v.start;
		it->end = it->start + it->v.pages * PAGE;
		it->addr = it->end + L->gap * PAGE;
		return 1;
	}
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
	it->v.start = it->addr;
	it->v.pages = g->pages;
	it->v.pgoff = 0;
	it->v.touched = g->touch == T_ALL ? g->pages : g->touch == T_FIRST ? 1 : 0;
	it->v.prot = g->prot;
	it->v.kind = g->kind;
	it->v.advice = g->advice;
	it->v.file = -1;
	it->v.flags = 0;
	it->start = it->addr;
	it->end = it->start + g->pages * PAGE;
	it->addr = it->end + L->gap * PAGE;
	it->idx++;
	it->j++;
	return 1;
}

static void create_file(const char *path, unsigned long pages, unsigned long *ino, int keep, int *fdp)
{
	char msg[160];
	unlink(path);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(msg, sizeof(msg), "cannot create %s", path);
		die(EXIT_LAYOUT, "layout", msg, errno);
	}
	if (ftruncate(fd, (off_t)(pages * PAGE)) != 0) {
		snprintf(msg, sizeof(msg), "cannot size %s", path);
		die(EXIT_LAYOUT, "layout", msg, errno);
	}
	struct stat st;
	if (fstat(fd, &st) != 0)
		die(EXIT_LAYOUT, "layout", "cannot stat a layout file", errno);
	*ino = st.st_ino;
	if (keep)
		*fdp = fd;
	else
		close(fd);
}

static void make_file(struct layout *L)
{
	char path[64];
	if (L->list) {
		for (int f = 0; f < L->nfiles; f++) {
			if (!list_file_pages[f])
				continue;
			snprintf(path, sizeof(path), LIST_FILE_FMT, f);
			create_file(path, list_file_pages[f], &list_file_ino[f], 0, NULL);
		}
		return;
	}
	unsigned long pages = 0;
	for (unsigned long g = 0; g < L->ngroups; g++)
		if ((L->g[g].kind == K_FILE || L->g[g].kind == K_SHARED_FILE) && L->g[g].pages > pages)
			pages = L->g[g].pages;
	if (!pages)
		return;
	create_file(LAYOUT_FILE, pages, &L->file_ino, 1, &L->fd);
}

static void map_one(unsigned long start, unsigned long len, int prot, int flags, int fd,
		    unsigned long pgoff, unsigned long idx)
{
	void *p = mmap((void *)start, len, prot, flags | MAP_FIXED_NOREPLACE, fd, (off_t)(pgoff * PAGE));
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
	char msg[160], path[64];
	int cur_file = -1, cur_fd = -1;
	make_file(L);
	for (layout_iter_start(L, &it); layout_iter_next(L, &it);) {
		const struct lvma *v = &it.v;
		unsigned long len = it.end - it.start;
		int flags = 0, fd = -1;
		switch (v->kind) {
		case K_ANON: flags = MAP_PRIVATE | MAP_ANONYMOUS; break;
		case K_SHARED_ANON: flags = MAP_SHARED | MAP_ANONYMOUS; break;
		case K_FILE: flags = MAP_PRIVATE; fd = L->fd; break;
		default: flags = MAP_SHARED; fd = L->fd; break;
		}
		if (v->file >= 0) {
			if (v->file != cur_file) {
				if (cur_fd >= 0)
					close(cur_fd);
				snprintf(path, sizeof(path), LIST_FILE_FMT, v->file);
				cur_fd = open(path, O_RDWR | O_CLOEXEC);
				if (cur_fd < 0)
					die(EXIT_LAYOUT, "layout", "cannot open a layout file", errno);
				cur_file = v->file;
			}
			fd = cur_fd;
		}
		if (v->flags & VF_NORESERVE)
			flags |= MAP_NORESERVE;
		int prot = prot_bits[v->prot];
		if ((v->flags & VF_MAPPED_WRITABLE) && !(prot & PROT_WRITE))
			prot |= PROT_READ | PROT_WRITE;
		map_one(it.start, len, prot, flags, fd, v->pgoff, it.idx);
		if (v->advice != A_NONE) {
			int adv = v->advice == A_DONTFORK ? MADV_DONTFORK : MADV_WIPEONFORK;
			if (madvise((void *)it.start, len, adv) != 0) {
				snprintf(msg, sizeof(msg), "madvise(%s) of VMA %lu at 0x%lx failed",
					 advice_names[v->advice], it.idx, it.start);
				die(EXIT_LAYOUT, "layout", msg, errno);
			}
		}
		for (unsigned long pg = 0; pg < v->touched; pg++) {
			unsigned long a = it.start + pg * PAGE;
			*(volatile unsigned long long *)a = touch_value(a);
		}
		if (prot != prot_bits[v->prot] && mprotect((void *)it.start, len, prot_bits[v->prot]) != 0) {
			snprintf(msg, sizeof(msg), "mprotect(%s) of VMA %lu at 0x%lx failed",
				 prot_names[v->prot], it.idx, it.start);
			die(EXIT_LAYOUT, "layout", msg, errno);
		}
	}
	if (cur_fd >= 0)
		close(cur_fd);
	L->next = it.addr;
}

static int perms_ok(const struct lvma *g, const char *perms)
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
		const struct lvma *g = &it.v;
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
		else if (file && g->file < 0 && (m.inode != L->file_ino || m.offset != 0))
			why = "does not map offset 0 of " LAYOUT_FILE;
		else if (file && g->file >= 0 &&
			 (m.inode != list_file_ino[g->file] || m.offset != g->pgoff * PAGE))
			why = "does not map its file at its offset";
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
	if ((L->ngroups || L->list) && L->gap == 0)
		start += PAGE; /* never adjacent to the last layout VMA */
	unsigned long add = total - (unsigned long)have;
	for (unsigned long i = 0; i < add; i++)
		map_one(start + 2 * i * PAGE, PAGE, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, layout_count(L) + i);
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
	if (L->list) {
		j_str("list", L->list_path);
		j_int("files", L->nfiles);
	}
	j_arr("groups");
	for (unsigned long i = 0; i < L->ngroups; i++) {
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
	char path[64];
	for (int f = 0; f < L->nfiles; f++) {
		snprintf(path, sizeof(path), LIST_FILE_FMT, f);
		if (list_file_pages[f])
			unlink(path);
	}
	if (L->fd >= 0) {
		close(L->fd);
		unlink(LAYOUT_FILE);
		L->fd = -1;
	}
}
