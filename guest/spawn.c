/* spawn: byte-unixbench "spawn" varied by VMA count. Builds the layout (optional), adds
 * 1-page VMAs until the process has --total VMAs (optional), pins itself to CPU 0, then
 * loops fork(); child _exit(0); parent waitpid() for --duration seconds of CLOCK_MONOTONIC
 * (virtual time under QEMU -icount). Records: "layout", then "spawn" (docs/records.md).
 *
 * Before the measured loop, the same loop runs unrecorded for --warmup seconds (default a
 * tenth of --duration): the first forks of a process after its layout is built, and the
 * guest's own settling work after a boot, are not measured. The measured loop is cut into
 * BATCHES equal slices of time; "forks_per_s_median" is the median of the slices' rates. A
 * slice that something else ran in (a kworker, an RCU batch, the other vCPU: under -icount
 * every vCPU's instructions advance the one virtual clock) is an outlier the median drops,
 * where the mean "forks_per_s" takes it in.
 * The loop is bracketed by two marker no-ops (nopl with a magic displacement) that the
 * instruction-count plugin (orchestrator/data/insncount.c) opens and closes a window on;
 * without the plugin they are no-ops like any other. */
#define _GNU_SOURCE
#include "common.h"
#include "layout.h"

#include <errno.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* nopl 0x4b464442(%rax) / nopl 0x4b464445(%rax): insncount's window begin / end */
#define MARK_BEGIN() __asm__ volatile(".byte 0x0f,0x1f,0x80,0x42,0x44,0x46,0x4b" ::: "memory")
#define MARK_END() __asm__ volatile(".byte 0x0f,0x1f,0x80,0x45,0x44,0x46,0x4b" ::: "memory")

enum { BATCHES = 40 };

/* one fork + _exit + waitpid; returns 0, or the errno of a failed fork */
static int spawn_one(void)
{
	pid_t pid = (pid_t)syscall(SYS_fork);
	if (pid == 0)
		_exit(0);
	if (pid < 0)
		return errno ? errno : EAGAIN;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	struct layout L;
	double duration = 10.0, warmup = -1.0;
	unsigned long total = 0;
	int cpu = 0;
	g_prog = "spawn";
	layout_init(&L);
	for (int i = 1; i < argc; i++) {
		if (layout_arg(&L, argc, argv, &i))
			continue;
		if (i + 1 >= argc)
			die(EXIT_USAGE, "args", "unknown option or missing value", 0);
		if (strcmp(argv[i], "--duration") == 0)
			duration = parse_double("--duration", argv[++i]);
		else if (strcmp(argv[i], "--warmup") == 0)
			warmup = parse_double("--warmup", argv[++i]);
		else if (strcmp(argv[i], "--total") == 0)
			total = parse_num("--total", argv[++i]);
		else if (strcmp(argv[i], "--cpu") == 0)
			cpu = (int)parse_num("--cpu", argv[++i]);
		else
			die(EXIT_USAGE, "args", "unknown option", 0);
	}
	if (duration <= 0)
		die(EXIT_USAGE, "args", "--duration must be > 0", 0);
	if (warmup < 0)
		warmup = duration / 10;
	layout_build(&L);
	if (total)
		layout_fill_to(&L, total);
	layout_verify_self(&L);
	long map_count = count_own_vmas();
	layout_report(&L, map_count);

	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0)
		die(EXIT_RUNTIME, "affinity", "sched_setaffinity failed", errno);

	unsigned long forks = 0, failures = 0, warm_forks = 0;
	int last_errno = 0;
	for (double w0 = now_monotonic(); now_monotonic() - w0 < warmup; warm_forks++)
		spawn_one();
	/* slices of the measured loop: rate of each (forks / its seconds) */
	double rate[BATCHES];
	int slices = 0;
	unsigned long slice_forks = 0;
	MARK_BEGIN();
	double t0 = now_monotonic(), t1 = t0, slice_t0 = t0;
	while (t1 - t0 < duration) {
		int e = spawn_one();
		if (e) {
			failures++;
			last_errno = e;
		} else {
			forks++;
			slice_forks++;
		}
		t1 = now_monotonic();
		if (slices < BATCHES && t1 - slice_t0 >= duration / BATCHES) {
			rate[slices++] = (double)slice_forks / (t1 - slice_t0);
			slice_t0 = t1;
			slice_forks = 0;
		}
	}
	MARK_END();
	qsort(rate, (size_t)slices, sizeof(rate[0]), cmp_double);
	double median = slices == 0 ? 0.0
		: slices % 2 ? rate[slices / 2] : (rate[slices / 2 - 1] + rate[slices / 2]) / 2;
	double secs = t1 - t0;
	j_begin();
	j_str("measurement", "spawn");
	j_int("forks", (long long)forks);
	j_dbl("seconds", secs);
	j_dbl("forks_per_s", secs > 0 ? (double)forks / secs : 0.0);
	j_dbl("forks_per_s_median", median);
	j_int("slices", slices);
	j_dbl("warmup_seconds", warmup);
	j_int("warmup_forks", (long long)warm_forks);
	j_int("map_count", map_count);
	j_int("cpu", cpu);
	j_int("fork_failures", (long long)failures);
	if (failures)
		j_int("errno", last_errno);
	j_end();
	layout_cleanup(&L);
	return failures ? EXIT_RUNTIME : 0;
}
