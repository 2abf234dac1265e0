/* Shared helpers of the guest programs; see common.h. No malloc, no stdio streams. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *g_prog = "guest";

/* ---- JSON writer ---------------------------------------------------------------------- */

static char obuf[1 << 16];
static size_t olen;
static int out_fd = 1;  /* where j_flush writes: stdout, or the held file (j_hold) */
static int first[64]; /* per nesting depth: no element written yet */
static int depth;

void j_flush(void)
{
	size_t off = 0;
	while (off < olen) {
		ssize_t n = write(out_fd, obuf + off, olen - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(EXIT_RUNTIME);
		}
		off += (size_t)n;
	}
	olen = 0;
}

static void put(const char *s, size_t n)
{
	while (n) {
		if (olen == sizeof(obuf))
			j_flush();
		size_t room = sizeof(obuf) - olen;
		size_t k = n < room ? n : room;
		memcpy(obuf + olen, s, k);
		olen += k;
		s += k;
		n -= k;
	}
}

static void puts_(const char *s) { put(s, strlen(s)); }

static void put_escaped(const char *s, size_t n)
{
	put("\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			char e[2] = {'\\', (char)c};
			put(e, 2);
		} else if (c < 0x20 || c >= 0x7f) {
			char e[8];
			snprintf(e, sizeof(e), "\\u%04x", c);
			put(e, 6);
		} else {
			put((const char *)&c, 1);
		}
	}
	put("\"", 1);
}

static void key_(const char *key)
{
	if (!first[depth])
		put(",", 1);
	first[depth] = 0;
	if (key) {
		put_escaped(key, strlen(key));
		put(":", 1);
	}
}

void j_begin(void)
{
	depth = 0;
	first[0] = 1;
	put("{", 1);
	key_("prog");
	put_escaped(g_prog, strlen(g_prog));
}

void j_end(void)
{
	put("}\n", 2);
	depth = 0;
	j_flush();
}

void j_str(const char *key, const char *val)
{
	key_(key);
	put_escaped(val, strlen(val));
}

void j_strn(const char *key, const char *val, size_t n)
{
	key_(key);
	put_escaped(val, n);
}

void j_int(const char *key, long long val)
{
	char b[32];
	key_(key);
	int n = snprintf(b, sizeof(b), "%lld", val);
	put(b, (size_t)n);
}

void j_hex(const char *key, unsigned long long val)
{
	char b[32];
	key_(key);
	int n = snprintf(b, sizeof(b), "\"0x%llx\"", val);
	put(b, (size_t)n);
}

void j_dbl(const char *key, double val)
{
	char b[64];
	key_(key);
	int n = snprintf(b, sizeof(b), "%.6f", val);
	put(b, (size_t)n);
}

void j_bool(const char *key, int val)
{
	key_(key);
	puts_(val ? "true" : "false");
}

void j_null(const char *key)
{
	key_(key);
	puts_("null");
}

void j_obj(const char *key)
{
	key_(key);
	put("{", 1);
	first[++depth] = 1;
}

void j_obj_end(void)
{
	put("}", 1);
	depth--;
}

void j_arr(const char *key)
{
	key_(key);
	put("[", 1);
	first[++depth] = 1;
}

void j_arr_end(void)
{
	put("]", 1);
	depth--;
}

void j_hold(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die(EXIT_RUNTIME, "output", "cannot create the held output file", errno);
	unlink(path); /* nothing is left behind; the open file lives until j_release */
	j_flush();
	out_fd = fd;
}

void j_release(void)
{
	if (out_fd == 1)
		return;
	j_flush();
	int fd = out_fd;
	out_fd = 1;
	if (lseek(fd, 0, SEEK_SET) < 0)
		_exit(EXIT_RUNTIME);
	for (;;) {
		ssize_t n = read(fd, obuf, sizeof(obuf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		olen = (size_t)n;
		j_flush();
	}
	close(fd);
}

void die(int code, const char *stage, const char *msg, int err)
{
	j_release();
	j_flush();
	j_begin();
	j_str("event", "error");
	j_str("stage", stage);
	j_str("message", msg);
	if (err) {
		j_int("errno", err);
		j_str("strerror", strerror(err));
	}
	j_end();
	_exit(code);
}

/* ---- files ---------------------------------------------------------------------------- */

long read_file(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	while (len + 1 < cap) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (len + 1 >= cap) {
		errno = EFBIG;
		return -1;
	}
	buf[len] = 0;
	return (long)len;
}

/* ---- /proc/self/maps ------------------------------------------------------------------ */

static unsigned long hexnum(const char *s, size_t len, size_t *i, int *ok)
{
	unsigned long v = 0;
	size_t start = *i;
	while (*i < len) {
		char c = s[*i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			break;
		v = v * 16 + (unsigned long)d;
		(*i)++;
	}
	if (*i == start)
		*ok = 0;
	return v;
}

static int expect(const char *s, size_t len, size_t *i, char c)
{
	if (*i < len && s[*i] == c) {
		(*i)++;
		return 1;
	}
	return 0;
}

int maps_next(const char *text, size_t len, size_t *pos, struct mline *m)
{
	size_t i = *pos;
	if (i >= len)
		return 0;
	size_t eol = i;
	while (eol < len && text[eol] != '\n')
		eol++;
	int ok = 1;
	m->start = hexnum(text, eol, &i, &ok);
	ok &= expect(text, eol, &i, '-');
	m->end = hexnum(text, eol, &i, &ok);
	ok &= expect(text, eol, &i, ' ');
	if (i + 4 > eol)
		return -1;
	memcpy(m->perms, text + i, 4);
	m->perms[4] = 0;
	i += 4;
	ok &= expect(text, eol, &i, ' ');
	m->offset = hexnum(text, eol, &i, &ok);
	ok &= expect(text, eol, &i, ' ');
	size_t d = 0;
	while (i < eol && text[i] != ' ' && d + 1 < sizeof(m->dev))
		m->dev[d++] = text[i++];
	m->dev[d] = 0;
	ok &= expect(text, eol, &i, ' ');
	m->inode = 0;
	size_t istart = i;
	while (i < eol && text[i] >= '0' && text[i] <= '9')
		m->inode = m->inode * 10 + (unsigned long)(text[i++] - '0');
	if (i == istart)
		ok = 0;
	while (i < eol && text[i] == ' ')
		i++;
	m->path = text + i;
	m->pathlen = (int)(eol - i);
	*pos = eol < len ? eol + 1 : eol;
	return ok ? 1 : -1;
}

int mline_is_vsyscall(const struct mline *m)
{
	return m->pathlen == 10 && memcmp(m->path, "[vsyscall]", 10) == 0;
}

void j_mline(const struct mline *m)
{
	j_obj(NULL);
	j_hex("start", m->start);
	j_hex("end", m->end);
	j_str("perms", m->perms);
	j_hex("offset", m->offset);
	j_str("dev", m->dev);
	j_int("inode", (long long)m->inode);
	j_strn("path", m->path, (size_t)m->pathlen);
	j_obj_end();
}

long j_maps(const char *key, const char *text, size_t len)
{
	size_t pos = 0;
	struct mline m;
	long n = 0;
	int r;
	j_arr(key);
	while ((r = maps_next(text, len, &pos, &m)) != 0) {
		if (r < 0)
			die(EXIT_RUNTIME, "maps", "malformed line in /proc/self/maps", 0);
		j_mline(&m);
		if (!mline_is_vsyscall(&m))
			n++;
	}
	j_arr_end();
	return n;
}

long count_own_vmas(void)
{
	char buf[16384];
	char tail[16];
	size_t tl = 0;
	long lines = 0, vsys = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n') {
				lines++;
				if (tl >= 10 && memcmp(tail + tl - 10, "[vsyscall]", 10) == 0)
					vsys++;
				tl = 0;
			} else {
				if (tl == sizeof(tail)) {
					memmove(tail, tail + 1, sizeof(tail) - 1);
					tl--;
				}
				tail[tl++] = buf[i];
			}
		}
	}
	close(fd);
	return lines - vsys;
}

/* ---- slab counters -------------------------------------------------------------------- */

const char *const g_caches[NCACHES] = {"maple_node", "vm_area_struct", "vma_lock", "anon_vma",
				       "anon_vma_chain"};

static long long slab_file(const char *cache, const char *file)
{
	char path[256], buf[512];
	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/%s", cache, file);
	if (read_file(path, buf, sizeof(buf)) < 0)
		return -1;
	return strtoll(buf, NULL, 10); /* first number: the total over CPUs/nodes */
}

static long long slab_allocs(const char *cache)
{
	long long af = slab_file(cache, "alloc_fastpath"), as = slab_file(cache, "alloc_slowpath");
	return (af < 0 || as < 0) ? -1 : af + as;
}

void slab_read(const char *cache, struct slabcount *c)
{
	c->objects = slab_file(cache, "objects");
	c->alloc = slab_allocs(cache);
	long long ff = slab_file(cache, "free_fastpath"), fs = slab_file(cache, "free_slowpath");
	c->free = (ff < 0 || fs < 0) ? -1 : ff + fs;
}

void slab_read_allocs(long long out[NCACHES])
{
	for (int i = 0; i < NCACHES; i++)
		out[i] = slab_allocs(g_caches[i]);
}

void slab_read_all(struct slabcount out[NCACHES])
{
	for (int i = 0; i < NCACHES; i++)
		slab_read(g_caches[i], &out[i]);
}

int g_flush_only;

/* Write a cache's cpu_partial back unchanged: mm/slub.c cpu_partial_store() calls flush_all(),
 * which moves the per-CPU slabs to the node's partial list ('objects' is then exact), and,
 * unlike shrink, frees no empty slab while min_partial is above the node's partial count. */
static void slab_flush(const char *cache)
{
	char path[256], val[32];
	snprintf(path, sizeof(path), "/sys/kernel/slab/%s/cpu_partial", cache);
	long n = read_file(path, val, sizeof(val));
	if (n <= 0)
		return; /* cache does not exist in this kernel */
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, (size_t)n) != n)
		die(EXIT_RUNTIME, "slab", "cannot write a slab cache's cpu_partial file", errno);
	close(fd);
}

void slab_shrink_all(void)
{
	char path[256];
	for (int i = 0; i < NCACHES; i++) {
		if (g_flush_only) {
			slab_flush(g_caches[i]);
			continue;
		}
		snprintf(path, sizeof(path), "/sys/kernel/slab/%s/shrink", g_caches[i]);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* cache does not exist in this kernel */
		if (write(fd, "1", 1) != 1) {
			int e = errno;
			close(fd);
			die(EXIT_RUNTIME, "slab", "cannot write a slab cache's shrink file", e);
		}
		close(fd);
	}
}

void slab_read_objects(long long out[NCACHES])
{
	slab_shrink_all();
	for (int i = 0; i < NCACHES; i++)
		out[i] = slab_file(g_caches[i], "objects");
}

static void j_maybe(const char *key, long long v)
{
	if (v < 0)
		j_null(key);
	else
		j_int(key, v);
}

void j_slab(const char *key, const struct slabcount c[NCACHES])
{
	j_obj(key);
	for (int i = 0; i < NCACHES; i++) {
		if (c[i].objects < 0 && c[i].alloc < 0)
			continue; /* cache does not exist in this kernel */
		j_obj(g_caches[i]);
		j_maybe("objects", c[i].objects);
		j_maybe("alloc", c[i].alloc);
		j_maybe("free", c[i].free);
		j_obj_end();
	}
	j_obj_end();
}

/* ---- misc ----------------------------------------------------------------------------- */

unsigned long long parse_num(const char *what, const char *s)
{
	char *end;
	errno = 0;
	if (!s || !*s || *s == '-')
		die(EXIT_USAGE, "args", what, 0);
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end)
		die(EXIT_USAGE, "args", what, errno);
	return v;
}

double parse_double(const char *what, const char *s)
{
	char *end;
	if (!s || !*s)
		die(EXIT_USAGE, "args", what, 0);
	double v = strtod(s, &end);
	if (*end || v < 0)
		die(EXIT_USAGE, "args", what, 0);
	return v;
}

double now_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
