/* mapsprobe: build the layout, report the parent's maps, fork; the child reports its own
 * maps, VMA count and what it sees of the layout (WIPEONFORK pages read as zero, DONTFORK
 * VMAs absent, written pages copied); the parent reports its maps after the fork and whether
 * they equal the ones before. Records: layout, parent_before, child, child_layout,
 * parent_after (docs/records.md). */
#define _GNU_SOURCE
#include "common.h"
#include "layout.h"

#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAPS_CAP (16UL << 20)
static char before[MAPS_CAP], now[MAPS_CAP];

static long read_maps(char *buf)
{
	long n = read_file("/proc/self/maps", buf, MAPS_CAP);
	if (n < 0)
		die(EXIT_RUNTIME, "maps", "cannot read /proc/self/maps", errno);
	return n;
}

/* Is [start,end) exactly one line of the maps text? Does any line overlap it? */
static void find(const char *text, size_t len, unsigned long start, unsigned long end,
		 int *exact, int *overlap)
{
	struct mline m;
	size_t pos = 0;
	*exact = *overlap = 0;
	while (maps_next(text, len, &pos, &m) > 0) {
		if (m.start < end && start < m.end)
			*overlap = 1;
		if (m.start == start && m.end == end)
			*exact = 1;
	}
}

static int all_zero(unsigned long start, unsigned long end)
{
	for (const volatile unsigned long long *p = (void *)start; (unsigned long)p < end; p++)
		if (*p)
			return 0;
	return 1;
}

static void child(const struct layout *L)
{
	long n = read_maps(now);
	j_begin();
	j_str("event", "child");
	long count = j_maps("maps", now, (size_t)n);
	j_int("map_count", count);
	j_end();

	struct layout_iter it;
	unsigned long copied_ok = 0, copied_bad = 0;
	j_begin();
	j_str("event", "child_layout");
	j_arr("vmas"); /* only the layout VMAs with advice != none */
	for (layout_iter_start(L, &it); layout_iter_next(L, &it);) {
		const struct lvma *g = &it.v;
		int exact, overlap;
		if (g->advice == A_NONE) {
			/* written pages of copied private/shared memory keep their contents */
			unsigned long pages = layout_readable(g->prot) ? g->touched : 0;
			for (unsigned long pg = 0; pg < pages; pg++) {
				unsigned long a = it.start + pg * PAGE;
				if (*(volatile unsigned long long *)a == touch_value(a))
					copied_ok++;
				else
					copied_bad++;
			}
			continue;
		}
		find(now, (size_t)n, it.start, it.end, &exact, &overlap);
		j_obj(NULL);
		j_int("index", (long long)it.idx);
		j_hex("start", it.start);
		j_hex("end", it.end);
		j_str("advice", advice_names[g->advice]);
		j_bool("present", exact);
		j_bool("overlapped", overlap);
		if (g->advice == A_WIPEONFORK && exact && layout_readable(g->prot))
			j_bool("zero", all_zero(it.start, it.end));
		else
			j_null("zero");
		j_obj_end();
	}
	j_arr_end();
	j_int("touched_pages_copied", (long long)copied_ok);
	j_int("touched_pages_differ", (long long)copied_bad);
	j_end();
}

int main(int argc, char **argv)
{
	struct layout L;
	g_prog = "mapsprobe";
	layout_init(&L);
	for (int i = 1; i < argc; i++)
		if (!layout_arg(&L, argc, argv, &i))
			die(EXIT_USAGE, "args", "unknown option", 0);
	layout_build(&L);
	long nb = read_maps(before);
	layout_verify(&L, before, (size_t)nb);
	layout_report(&L, count_own_vmas());

	j_begin();
	j_str("event", "parent_before");
	long count_before = j_maps("maps", before, (size_t)nb);
	j_int("map_count", count_before);
	j_end();

	pid_t pid = (pid_t)syscall(SYS_fork);
	if (pid < 0)
		die(EXIT_RUNTIME, "fork", "fork failed", errno);
	if (pid == 0) {
		child(&L);
		_exit(0);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	long na = read_maps(now);
	j_begin();
	j_str("event", "parent_after");
	long count_after = j_maps("maps", now, (size_t)na);
	j_int("map_count", count_after);
	j_bool("unchanged", na == nb && memcmp(before, now, (size_t)na) == 0);
	j_int("child_status", WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st));
	j_end();
	layout_cleanup(&L);
	return 0;
}
