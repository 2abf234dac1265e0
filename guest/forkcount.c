/* forkcount: slab objects allocated and freed per fork(). Builds the layout (and --total
 * filler VMAs, optional), then R times (--repeats, default 15): read the SLUB_STATS
 * counters of the default caches (alloc = alloc_fastpath + alloc_slowpath, free =
 * free_fastpath + free_slowpath), fork a child that _exits at once, wait, read again.
 * Records: "layout", one "repeat" per fork (deltas per cache), then "summary" (medians).
 * Why those counters count every object, bulk allocations included: docs/records.md. */
#define _GNU_SOURCE
#include "common.h"
#include "layout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_REPEATS 1000

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return (x > y) - (x < y);
}

static long long median(long long *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_ll);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long long dalloc[NCACHES][MAX_REPEATS], dfree[NCACHES][MAX_REPEATS];

int main(int argc, char **argv)
{
	struct layout L;
	unsigned long total = 0;
	int repeats = 15;
	g_prog = "forkcount";
	layout_init(&L);
	for (int i = 1; i < argc; i++) {
		if (layout_arg(&L, argc, argv, &i))
			continue;
		if (i + 1 < argc && strcmp(argv[i], "--repeats") == 0)
			repeats = (int)parse_num("--repeats", argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--total") == 0)
			total = parse_num("--total", argv[++i]);
		else
			die(EXIT_USAGE, "args", "unknown option or missing value", 0);
	}
	if (repeats < 1 || repeats > MAX_REPEATS)
		die(EXIT_USAGE, "args", "--repeats must be in 1..1000", 0);
	layout_build(&L);
	if (total)
		layout_fill_to(&L, total);
	layout_verify_self(&L);
	long map_count = count_own_vmas();
	layout_report(&L, map_count);

	struct slabcount s0[NCACHES], s1[NCACHES];
	slab_read_all(s0);
	if (s0[0].alloc < 0)
		die(EXIT_RUNTIME, "slab",
		    "no /sys/kernel/slab/maple_node/alloc_fastpath (kernel without CONFIG_SLUB_STATS?)",
		    0);
	for (int r = 0; r < repeats; r++) {
		slab_read_all(s0);
		pid_t pid = (pid_t)syscall(SYS_fork);
		if (pid == 0)
			_exit(0);
		if (pid < 0)
			die(EXIT_RUNTIME, "fork", "fork failed", errno);
		int st;
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
		slab_read_all(s1);
		j_begin();
		j_str("event", "repeat");
		j_int("repeat", r);
		j_int("map_count", map_count);
		j_obj("delta");
		for (int c = 0; c < NCACHES; c++) {
			if (s0[c].alloc < 0 || s1[c].alloc < 0)
				continue;
			dalloc[c][r] = s1[c].alloc - s0[c].alloc;
			dfree[c][r] = s1[c].free - s0[c].free;
			j_obj(g_caches[c]);
			j_int("alloc", dalloc[c][r]);
			j_int("free", dfree[c][r]);
			j_obj_end();
		}
		j_obj_end();
		j_end();
	}
	j_begin();
	j_str("event", "summary");
	j_int("repeats", repeats);
	j_int("map_count", map_count);
	j_obj("median");
	for (int c = 0; c < NCACHES; c++) {
		if (s0[c].alloc < 0)
			continue;
		j_obj(g_caches[c]);
		j_int("alloc", median(dalloc[c], repeats));
		j_int("free", median(dfree[c], repeats));
		j_obj_end();
	}
	j_obj_end();
	j_end();
	layout_cleanup(&L);
	return 0;
}
