/* faultsweep: build the layout, then drive fail-nth around fork():
 *   probe: arm /proc/thread-self/fail-nth with a huge value, fork, read back: the number of
 *          fault-injection checks a successful fork makes ("check_count" record);
 *   sweep: for k = 1, 2, ... (unless --count-only): open fail-nth, write k, syscall(SYS_fork)
 *          (the child _exits at once), read back (0 = the k-th check fired, > 0 = fork made
 *          fewer than k checks: the sweep is over), write 0, close; one "fault" record per k,
 *          with the parent's maps compared to the pre-sweep snapshot after every failed fork,
 *          and per k the slab objects the fork allocated ("alloc": SLUB_STATS alloc counters,
 *          exact) and what is left once its frees have settled ("net": 'objects' after
 *          shrinking the caches, polled until it is back where it was before the fork or
 *          --leak-wait-ms has passed: vm_area_struct/vma_lock and maple nodes are freed
 *          through RCU). Ends with a "sweep_end" record (net over the whole sweep).
 *          The JSON lines are held in a file and printed at the end (j_hold), so that sshd
 *          does not map memory while the counters are read.
 * Options: layout args, --max-k K (default 100000), --count-only, --no-slab,
 *          --k-from K (default 1): start the sweep at step K (a long sweep split into k-ranges,
 *          --k-from A --max-k B each, run by different guests; sweep_end then has "k_from"),
 *          --leak-wait-ms MS (bound of the per-k settle; default 500),
 *          --settle-ms MS (bound of the final settle; default 2000),
 *          --page-tables: also count the page-table pages in use (nr_page_table_pages of
 *          /proc/vmstat, after /proc/sys/vm/stat_refresh folds the per-CPU deltas) with the
 *          slab objects: a "page_tables" entry in every "net" (the failure path frees the
 *          child's PUD/PMD/PTE pages too), waited for by the same settle;
 *          --kmsg: before arming each k, write "forkdiff-sweep: k=K" to /dev/kmsg. printk puts
 *          it on the serial console synchronously, so when the kernel dies during fork k the
 *          host's console log names k even though the JSON lines of the run never left the
 *          guest (boot with printk.devkmsg=on, else the kernel ratelimits these lines);
 *          --provoke K:TYPE: at step K write TYPE (BUG, WARNING, EXCEPTION, PANIC, ...) to
 *          LKDTM's /sys/kernel/debug/provoke-crash/DIRECT instead of forking: a real crash in
 *          the middle of a sweep, for testing the framework's crash handling;
 *          --skip K (repeatable, up to 16): do not arm step K (the orchestrator re-runs a sweep
 *          that killed the kernel at K with --skip K, so the other steps are still recorded);
 *          --observers LIST (swapoff,rmap,proc), --observer-seed N, --observer-pause-us N:
 *          start the `observe` program next to this one (docs/observers.md) once the layout is
 *          built, wait until it is set up, and run the sweep beside it; every fork's start and
 *          end (CLOCK_MONOTONIC µs, "fork_us") go into its record, and the observers' records
 *          follow the sweep's output.
 * On a kernel without the fault-injection stack filter (no
 * /sys/kernel/debug/failslab/require-start: x86-64 before 6.3) whose fail_page_alloc counts
 * order 0 (min-order 0, ignore-gfp-wait N: FAULTS=...,page), every page allocation of the
 * fork syscall is a check, new slab pages included. The orchestrator raised every cache's
 * min_partial, so no empty slab is freed; here the caches are flushed instead of shrunk (a
 * shrink frees every empty slab) and WARM_FORKS unarmed forks, alive at once, run before the
 * probe, so that every cache holds the free objects a fork at this layout takes, even with
 * the previous forks' RCU-deferred frees pending, and no fork of the probe or the sweep needs
 * a new slab page. */
#define _GNU_SOURCE
#include "common.h"
#include "layout.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAPS_CAP (16UL << 20)
#define WARM_FORKS 4 /* children alive at once in the warm-up (no stack filter, page checks) */
#define FAIL_NTH "/proc/thread-self/fail-nth"
#define PROBE_NTH 1000000000UL
static char before[MAPS_CAP], now[MAPS_CAP];

/* The counters a sweep settles on: fork's slab caches, then (--page-tables) the page-table
 * pages in use; a slot is -1 when the kernel (or the run) does not have it. */
#define NSLOTS (NCACHES + 1)
#define PT_SLOT NCACHES
static int g_pt; /* --page-tables */

static long long read_pgtables(void)
{
	char vm[16384]; /* on the stack: no new page of the bss, so no new page table of the parent */
	int fd = open("/proc/sys/vm/stat_refresh", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1)
		die(EXIT_RUNTIME, "vmstat", "cannot write /proc/sys/vm/stat_refresh", errno);
	close(fd);
	long n = read_file("/proc/vmstat", vm, sizeof(vm));
	if (n < 0)
		die(EXIT_RUNTIME, "vmstat", "cannot read /proc/vmstat", errno);
	const char *key = "nr_page_table_pages ";
	char *at = strstr(vm, key);
	if (!at)
		die(EXIT_RUNTIME, "vmstat", "no nr_page_table_pages in /proc/vmstat", 0);
	return strtoll(at + strlen(key), NULL, 10);
}

static void read_objects(long long out[NSLOTS])
{
	slab_read_objects(out);
	out[PT_SLOT] = g_pt ? read_pgtables() : -1;
}

static const char *slot_name(int i)
{
	return i == PT_SLOT ? "page_tables" : g_caches[i];
}

struct attempt {
	long pid;
	int err;
	unsigned long remaining;
	unsigned long long t0, t1; /* the fork syscall, CLOCK_MONOTONIC µs */
};

static unsigned long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

/* --observers: the observe program beside the sweep */
#define OBS_READY "/tmp/.observe-ready"
#define OBS_DONE "/tmp/.observe-done"
#define OBS_OUT "/tmp/.observe-out"
static const char *g_observers;
static pid_t g_observer = -1;

/* vfork + exec observe (no copy of this mm), then wait until it says it is set up. */
static void start_observers(const char *self, unsigned long long seed, unsigned long pause_us)
{
	char prog[512], pid[32], seed_s[32], pause_s[32];
	const char *slash = strrchr(self, '/');
	snprintf(prog, sizeof(prog), "%.*sobserve", slash ? (int)(slash - self + 1) : 0, self);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(seed_s, sizeof(seed_s), "%llu", seed);
	snprintf(pause_s, sizeof(pause_s), "%lu", pause_us);
	unlink(OBS_READY);
	unlink(OBS_DONE);
	unlink(OBS_OUT);
	char *const args[] = {prog, "--pid", pid, "--observers", (char *)g_observers, "--seed", seed_s,
			      "--pause-us", pause_s, "--ready", OBS_READY, "--done", OBS_DONE,
			      "--out", OBS_OUT, NULL};
	g_observer = vfork();
	if (g_observer < 0)
		die(EXIT_RUNTIME, "observers", "vfork", errno);
	if (g_observer == 0) {
		execv(prog, args);
		_exit(127);
	}
	struct stat st;
	double t0 = now_monotonic();
	while (stat(OBS_READY, &st) < 0) {
		int status;
		if (waitpid(g_observer, &status, WNOHANG) == g_observer)
			die(EXIT_RUNTIME, "observers", "observe exited before it was set up "
			    "(its records follow; a kernel without swap/zram: the observers profile)", 0);
		if (now_monotonic() - t0 > 120)
			die(EXIT_RUNTIME, "observers", "observe was not set up after 120 s", 0);
		struct timespec ts = {0, 2000000L};
		nanosleep(&ts, NULL);
	}
}

/* Tell the observers to stop, wait for them, and record how they ended. */
static void stop_observers(void)
{
	int fd = open(OBS_DONE, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		die(EXIT_RUNTIME, "observers", "cannot create " OBS_DONE, errno);
	close(fd);
	int status = 0;
	while (waitpid(g_observer, &status, 0) < 0 && errno == EINTR)
		;
	j_begin();
	j_str("event", "observers_end");
	j_str("observers", g_observers);
	j_int("exit_status", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	j_int("signal", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	j_end();
}

/* The observers' records, after the sweep's. */
static void copy_observer_records(void)
{
	static char buf[1 << 16];
	int fd = open(OBS_OUT, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(1, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				_exit(EXIT_RUNTIME);
			off += w;
		}
	}
	close(fd);
	unlink(OBS_OUT);
	unlink(OBS_READY);
	unlink(OBS_DONE);
}

/* Poll the caches' object counts (after a shrink) until they equal `want` or `bound_ms`
 * has passed; `got` holds the last reading. Returns the milliseconds waited. */
static double settle(const long long want[NSLOTS], long long got[NSLOTS],
		     unsigned long bound_ms, int *settled)
{
	double t0 = now_monotonic();
	for (;;) {
		read_objects(got);
		int same = 1;
		for (int i = 0; i < NSLOTS; i++)
			same &= want[i] < 0 || got[i] == want[i];
		double ms = (now_monotonic() - t0) * 1000.0;
		if (same || ms >= (double)bound_ms) {
			*settled = same;
			return ms;
		}
		struct timespec ts = {0, 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
}

/* Wait until the caches' object counts have not changed for `quiet_ms` (frees that earlier
 * work left pending, e.g. RCU-deferred frees of the exec'ing shell's old mm, land before the
 * sweep's baseline is read, not during the sweep); `out` holds the last reading. */
static void quiesce(long long out[NSLOTS], unsigned long quiet_ms, unsigned long bound_ms)
{
	long long now_[NSLOTS];
	double t0 = now_monotonic(), quiet_since = t0;
	read_objects(out);
	while ((now_monotonic() - quiet_since) * 1000.0 < (double)quiet_ms &&
	       (now_monotonic() - t0) * 1000.0 < (double)bound_ms) {
		struct timespec ts = {0, 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
		read_objects(now_);
		if (memcmp(now_, out, sizeof(now_)) != 0) {
			memcpy(out, now_, sizeof(now_));
			quiet_since = now_monotonic();
		}
	}
}

/* {"cache": b - a, ...} for the first n slots this kernel (and run) has. */
static void j_deltas(const char *key, const long long *a, const long long *b, int n)
{
	j_obj(key);
	for (int i = 0; i < n; i++)
		if (a[i] >= 0 && b[i] >= 0)
			j_int(slot_name(i), b[i] - a[i]);
	j_obj_end();
}

static void write_nth(int fd, unsigned long v)
{
	char b[32];
	int n = snprintf(b, sizeof(b), "%lu", v);
	if (pwrite(fd, b, (size_t)n, 0) != n)
		die(EXIT_RUNTIME, "fail-nth", "cannot write " FAIL_NTH, errno);
}

/* One armed fork: open, arm with k, fork, read back, disarm, close, reap. */
static struct attempt armed_fork(unsigned long k)
{
	struct attempt a;
	char b[32];
	int fd = open(FAIL_NTH, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		die(EXIT_RUNTIME, "fail-nth",
		    "cannot open " FAIL_NTH " (kernel without CONFIG_FAULT_INJECTION?)", errno);
	write_nth(fd, k);
	a.t0 = now_us();
	a.pid = syscall(SYS_fork);
	a.err = a.pid < 0 ? errno : 0;
	a.t1 = now_us();
	if (a.pid == 0)
		_exit(0);
	ssize_t n = pread(fd, b, sizeof(b) - 1, 0);
	int rerr = errno;
	write_nth(fd, 0);
	close(fd);
	if (n <= 0)
		die(EXIT_RUNTIME, "fail-nth", "cannot read back " FAIL_NTH, rerr);
	b[n] = 0;
	a.remaining = strtoul(b, NULL, 10);
	if (a.pid > 0) {
		int st;
		while (waitpid((pid_t)a.pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	return a;
}

static long read_maps(char *buf)
{
	long n = read_file("/proc/self/maps", buf, MAPS_CAP);
	if (n < 0)
		die(EXIT_RUNTIME, "maps", "cannot read /proc/self/maps", errno);
	return n;
}

/* First line that differs between the snapshot and now (for the record). */
static void j_first_diff(const char *a, size_t na, const char *b, size_t nb)
{
	size_t i = 0, line = 0;
	while (i < na && i < nb && a[i] == b[i])
		if (a[i++] == '\n')
			line = i;
	size_t ea = line, eb = line;
	while (ea < na && a[ea] != '\n')
		ea++;
	while (eb < nb && b[eb] != '\n')
		eb++;
	j_obj("maps_diff");
	j_strn("before", a + line, ea - line);
	j_strn("after", b + line, eb - line);
	j_obj_end();
}

#define PROVOKE "/sys/kernel/debug/provoke-crash/DIRECT"

static void kmsg_step(int fd, unsigned long k)
{
	char b[64];
	int n = snprintf(b, sizeof(b), "<5>forkdiff-sweep: k=%lu\n", k);
	if (write(fd, b, (size_t)n) != n)
		die(EXIT_RUNTIME, "kmsg", "cannot write /dev/kmsg", errno);
}

static void provoke(const char *type)
{
	int fd = open(PROVOKE, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die(EXIT_RUNTIME, "provoke", "cannot open " PROVOKE " (kernel without CONFIG_LKDTM?)", errno);
	ssize_t n = write(fd, type, strlen(type));
	int err = errno;
	close(fd);
	if (n < 0)
		die(EXIT_RUNTIME, "provoke", "LKDTM refused the crash type", err);
}

int main(int argc, char **argv)
{
	struct layout L;
	unsigned long max_k = 100000, settle_ms = 2000, leak_wait_ms = 500, provoke_k = 0, k_from = 1;
	const char *provoke_type = NULL;
	unsigned long skip[16];
	int count_only = 0, slab = 1, kmsg = -1, nskip = 0;
	unsigned long long obs_seed = 1;
	unsigned long obs_pause_us = 2000;
	g_prog = "faultsweep";
	layout_init(&L);
	for (int i = 1; i < argc; i++) {
		if (layout_arg(&L, argc, argv, &i))
			continue;
		if (strcmp(argv[i], "--count-only") == 0)
			count_only = 1;
		else if (strcmp(argv[i], "--no-slab") == 0)
			slab = 0;
		else if (strcmp(argv[i], "--page-tables") == 0)
			g_pt = 1;
		else if (i + 1 < argc && strcmp(argv[i], "--observers") == 0)
			g_observers = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--observer-seed") == 0)
			obs_seed = parse_num("--observer-seed", argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--observer-pause-us") == 0)
			obs_pause_us = parse_num("--observer-pause-us", argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--max-k") == 0)
			max_k = parse_num("--max-k", argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--k-from") == 0) {
			k_from = parse_num("--k-from", argv[++i]);
			if (k_from < 1)
				die(EXIT_USAGE, "args", "--k-from must be at least 1", 0);
		} else if (i + 1 < argc && strcmp(argv[i], "--settle-ms") == 0)
			settle_ms = parse_num("--settle-ms", argv[++i]);
		else if (i + 1 < argc && strcmp(argv[i], "--leak-wait-ms") == 0)
			leak_wait_ms = parse_num("--leak-wait-ms", argv[++i]);
		else if (strcmp(argv[i], "--kmsg") == 0) {
			if (kmsg < 0 && (kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC)) < 0)
				die(EXIT_RUNTIME, "kmsg", "cannot open /dev/kmsg", errno);
		} else if (i + 1 < argc && strcmp(argv[i], "--skip") == 0) {
			if (nskip == (int)(sizeof(skip) / sizeof(skip[0])))
				die(EXIT_USAGE, "args", "too many --skip options", 0);
			skip[nskip++] = parse_num("--skip", argv[++i]);
		} else if (i + 1 < argc && strcmp(argv[i], "--provoke") == 0) {
			char *colon = strchr(argv[++i], ':');
			if (!colon || !colon[1])
				die(EXIT_USAGE, "args", "--provoke needs K:TYPE", 0);
			*colon = 0;
			provoke_k = parse_num("--provoke", argv[i]);
			provoke_type = colon + 1;
		}
		else
			die(EXIT_USAGE, "args", "unknown option or missing value", 0);
	}
	int warm = 0;
	if (access("/sys/kernel/debug/failslab/require-start", F_OK) != 0) {
		char mo[32], gw[8];
		long n = read_file("/sys/kernel/debug/fail_page_alloc/min-order", mo, sizeof(mo));
		long w = read_file("/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", gw, sizeof(gw));
		warm = g_flush_only = n > 0 && strtol(mo, NULL, 10) == 0 && w > 0 && gw[0] == 'N';
	}
	layout_build(&L);
	long nb = read_maps(before);
	layout_verify(&L, before, (size_t)nb);
	layout_report(&L, count_own_vmas());
	/* write `now` once before the probe: its first page's page tables are then there for
	 * every fork of the sweep, not only from the first failed one on */
	read_maps(now);
	if (g_observers && *g_observers)
		start_observers(argv[0], obs_seed, obs_pause_us);

	struct slabcount s_start[NCACHES], s1[NCACHES];
	long long o_start[NSLOTS], o0[NSLOTS], o1[NSLOTS], a0[NCACHES], a1[NCACHES];
	int settled = 1;
	double waited = 0;
	j_hold("/tmp/.faultsweep-out");
	if (slab)
		quiesce(o_start, 50, settle_ms);
	slab_read_all(s_start);

	if (warm) { /* WARM_FORKS unarmed forks alive at once: every cache grows to what that many
		     * forks here take (see above), so that a fork still finds free objects while
		     * the RCU-deferred frees of the previous ones (task_struct, maple nodes, ...)
		     * are pending */
		int gate[2];
		long pids[WARM_FORKS];
		if (pipe(gate) != 0)
			die(EXIT_RUNTIME, "fork", "cannot make the warm-up pipe", errno);
		for (int i = 0; i < WARM_FORKS; i++) {
			pids[i] = syscall(SYS_fork);
			if (pids[i] == 0) {
				char c;
				close(gate[1]);
				while (read(gate[0], &c, 1) < 0 && errno == EINTR)
					;
				_exit(0);
			}
			if (pids[i] < 0)
				die(EXIT_RUNTIME, "fork", "a warm-up fork failed", errno);
		}
		close(gate[0]);
		close(gate[1]); /* the children read EOF and exit */
		for (int i = 0; i < WARM_FORKS; i++) {
			int st;
			while (waitpid((pid_t)pids[i], &st, 0) < 0 && errno == EINTR)
				;
		}
		if (slab)
			settle(o_start, o1, settle_ms, &settled);
	}
	struct attempt p = armed_fork(PROBE_NTH);
	if (slab) /* the probe's child has exited: let its frees settle before the sweep */
		waited = settle(o_start, o1, settle_ms, &settled);
	j_begin();
	j_str("event", "check_count");
	j_int("checks", (long long)(PROBE_NTH - p.remaining));
	j_int("fork_result", p.pid > 0 ? 1 : -1);
	j_int("errno", p.err);
	j_bool("injected", p.remaining == 0);
	if (slab) {
		j_deltas("net", o_start, o1, NSLOTS);
		j_bool("settled", settled);
		j_dbl("settle_ms", waited);
	}
	j_end();

	unsigned long k = k_from - 1, failures = 0, absorbed = 0, maps_changed = 0;
	int complete = count_only;
	while (!count_only && k < max_k) {
		k++;
		int skipped = 0;
		for (int s = 0; s < nskip; s++)
			skipped |= skip[s] == k;
		if (skipped)
			continue;
		if (kmsg >= 0)
			kmsg_step(kmsg, k);
		if (provoke_type && k == provoke_k)
			provoke(provoke_type);
		if (slab) {
			read_objects(o0);
			slab_read_allocs(a0);
		}
		struct attempt a = armed_fork(k);
		if (slab)
			slab_read_allocs(a1);
		int injected = a.remaining == 0;
		if (!injected) { /* fork made fewer than k checks: the sweep is over */
			complete = 1;
			k--;
			j_begin();
			j_str("event", "not_reached");
			j_int("k", (long long)k + 1);
			j_int("remaining", (long long)a.remaining);
			j_int("fork_result", a.pid > 0 ? 1 : -1);
			j_int("errno", a.err);
			j_end();
			break;
		}
		j_begin();
		j_str("event", "fault");
		j_int("k", (long long)k);
		j_int("fork_result", a.pid > 0 ? 1 : -1);
		j_int("errno", a.err);
		j_bool("injected", injected);
		if (g_observer > 0) {
			j_arr("fork_us");
			j_int(NULL, (long long)a.t0);
			j_int(NULL, (long long)a.t1);
			j_arr_end();
		}
		if (a.pid < 0) {
			failures++;
			long nn = read_maps(now);
			int same = nn == nb && memcmp(before, now, (size_t)nn) == 0;
			j_bool("maps_unchanged", same);
			if (!same) {
				maps_changed++;
				j_first_diff(before, (size_t)nb, now, (size_t)nn);
			}
		} else {
			absorbed++;
		}
		if (slab) {
			j_deltas("alloc", a0, a1, NCACHES);
			waited = settle(o0, o1, leak_wait_ms, &settled);
			j_deltas("net", o0, o1, NSLOTS);
			j_bool("settled", settled);
			j_dbl("settle_ms", waited);
		}
		j_end();
	}

	if (slab)
		waited = settle(o_start, o1, settle_ms, &settled);
	slab_read_all(s1);
	long nn = read_maps(now);
	j_begin();
	j_str("event", "sweep_end");
	j_bool("complete", complete);
	if (k_from > 1)
		j_int("k_from", (long long)k_from);
	j_int("last_k", (long long)k);
	j_int("checks", (long long)(PROBE_NTH - p.remaining));
	j_int("failed_forks", (long long)failures);
	j_int("absorbed_faults", (long long)absorbed);
	j_int("maps_changed", (long long)maps_changed);
	j_bool("maps_unchanged_at_end", nn == nb && memcmp(before, now, (size_t)nn) == 0);
	if (slab) {
		j_deltas("net", o_start, o1, NSLOTS);
		j_bool("settled", settled);
		j_dbl("settle_ms", waited);
		j_int("settle_bound_ms", (long long)settle_ms);
		j_int("leak_wait_ms", (long long)leak_wait_ms);
	}
	j_slab("slab_start", s_start);
	j_slab("slab_end", s1);
	j_end();
	if (g_observer > 0)
		stop_observers();
	j_release();
	if (g_observer > 0)
		copy_observer_records();
	layout_cleanup(&L);
	return 0;
}
