/* observe: tasks that reach a fault sweep's failing children the ways the kernel allows, run
 * beside faultsweep (faultsweep --observers starts it; docs/observers.md).
 *
 *   observe --pid P --observers LIST --seed S --ready PATH --done PATH --out PATH
 *           [--pause-us N] [--zram-mb N]
 *
 * LIST is a comma list of:
 *   swapoff  swapoff/swapon of a zram swap device ("cycled") in a loop. Before the sweep the
 *            lower half (by address) of the parent's anonymous VMAs is swapped out
 *            (process_madvise MADV_PAGEOUT) to a second zram device ("kept", never swapped
 *            off), so every fork copies swap entries early (copy_nonpresent_pte) and the child
 *            joins the swap mmlist, right after the parent. Each iteration pages the parent's
 *            present anonymous pages and a holder process's out to the cycled device, then
 *            swaps it off and on: try_to_unuse() walks the mmlist, the parent (whose pages it
 *            swaps in, holding its mmap lock, while forks wait for it), the children that
 *            joined after it, and the holder, put on the mmlist before the parent, so that the
 *            walk goes on past the parent's children. The holder wakes every 50 µs: each
 *            wakeup may preempt a fork at a cond_resched() inside dup_mmap(), so that the
 *            swapoff can take the mmlist step to a child while its dup_mmap() is half way.
 *   rmap     process_madvise(MADV_COLD, then MADV_PAGEOUT) over the parent's anonymous VMAs in a
 *            loop: reclaim's rmap walk (try_to_unmap, folio_referenced) visits every VMA on
 *            the pages' anon_vmas, the children's copies included.
 *   proc     reads /proc/P/maps, /proc/P/smaps and /proc/P/status in a loop.
 * Each observer is a process of its own named obs-<name> (an oops names it as Comm), with its
 * own xorshift generator seeded from S and its index: the pauses between iterations (0 to
 * --pause-us µs) repeat with the seed. Each records the start and end of every iteration
 * (CLOCK_MONOTONIC, µs; faultsweep records its forks in the same clock) and writes one
 * "observer" record to --out when --done appears. Nothing in an iteration maps memory or
 * forks: the sweep's slab counters (fork's caches) and page-table count see none of it.
 * --ready is created once everything is set up. At the end the swap devices are switched off
 * and reset. */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

#define MAX_RANGES 8192
#define MAX_ITERS 100000
#define PROC_CAP (8UL << 20)
#define HOLDER_PAGES 256 /* the holder's pages on the cycled device (one more on the kept one) */
#define HOLDER_TICK_US 50
#define PAGE 4096UL

enum { OBS_SWAPOFF, OBS_RMAP, OBS_PROC, NOBS };
static const char *const obs_names[NOBS] = {"swapoff", "rmap", "proc"};

static struct iovec ranges[MAX_RANGES];
static int nranges;
static unsigned long long iv[MAX_ITERS][2];
static char procbuf[PROC_CAP];
static pid_t target;
static int pidfd = -1, holder_pidfd = -1;
static char kept_dev[64], cycled_dev[64];
static int kept_id = -1, cycled_id = -1;
static struct iovec holder_range, holder_first;
static unsigned long long errors, first_errno;
static const char *first_error_stage = "";

static unsigned long long now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}

static void note_error(const char *stage, int err)
{
	if (!errors++) {
		first_errno = (unsigned long long)err;
		first_error_stage = stage;
	}
}

static void write_str(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		die(EXIT_RUNTIME, "zram", path, errno);
	ssize_t n = write(fd, val, strlen(val));
	int err = errno;
	close(fd);
	if (n < 0)
		die(EXIT_RUNTIME, "zram", path, err);
}

/* The anonymous private VMAs of the target (no file, or [heap]/[stack]). */
static void read_ranges(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)target);
	long n = read_file(path, procbuf, PROC_CAP);
	if (n < 0)
		die(EXIT_RUNTIME, "maps", "cannot read the target's maps", errno);
	size_t pos = 0;
	struct mline m;
	while (maps_next(procbuf, (size_t)n, &pos, &m) == 1) {
		if (m.perms[3] != 'p' || m.inode != 0)
			continue;
		if (m.pathlen && !(m.pathlen == 6 && memcmp(m.path, "[heap]", 6) == 0) &&
		    !(m.pathlen == 7 && memcmp(m.path, "[stack]", 7) == 0))
			continue;
		if (nranges == MAX_RANGES)
			break;
		ranges[nranges].iov_base = (void *)m.start;
		ranges[nranges].iov_len = m.end - m.start;
		nranges++;
	}
}

/* process_madvise over iovecs, at most 512 per call (UIO_MAXIOV is 1024). */
static void pmadvise(int fd, struct iovec *v, int n, int advice, const char *stage)
{
	for (int i = 0; i < n; i += 512) {
		int c = n - i < 512 ? n - i : 512;
		if (syscall(SYS_process_madvise, fd, v + i, (size_t)c, advice, 0U) < 0 && errno != ESRCH)
			note_error(stage, errno);
	}
}

/* A swap header (mkswap): version 1, last_page, no bad pages, "SWAPSPACE2" at the page end. */
static void mkswap(const char *dev, unsigned long bytes)
{
	static unsigned char hdr[PAGE];
	memset(hdr, 0, sizeof(hdr));
	unsigned int version = 1, last_page = (unsigned int)(bytes / PAGE - 1);
	memcpy(hdr + 1024, &version, 4);
	memcpy(hdr + 1028, &last_page, 4);
	memcpy(hdr + PAGE - 10, "SWAPSPACE2", 10);
	int fd = open(dev, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || pwrite(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) || fsync(fd) < 0)
		die(EXIT_RUNTIME, "mkswap", dev, errno);
	close(fd);
}

/* A zram device of `mb` MiB with a swap header: zram0 if it is free, else a hot-added one. */
static int zram_device(char *dev, size_t cap, unsigned long mb, int avoid)
{
	char path[96], buf[32];
	int id = -1;
	if (avoid != 0 && read_file("/sys/block/zram0/disksize", buf, sizeof(buf)) > 0 && atoll(buf) == 0)
		id = 0;
	if (id < 0) {
		if (read_file("/sys/class/zram-control/hot_add", buf, sizeof(buf)) <= 0)
			die(EXIT_RUNTIME, "zram", "cannot add a zram device (kernel without CONFIG_ZRAM?)", errno);
		id = atoi(buf);
	}
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", id);
	snprintf(buf, sizeof(buf), "%luM", mb);
	write_str(path, buf);
	snprintf(dev, cap, "/dev/zram%d", id);
	mkswap(dev, mb << 20);
	return id;
}

static void zram_release(int id, const char *dev)
{
	char path[96], buf[16];
	if (id < 0)
		return;
	if (swapoff(dev) < 0 && errno != EINVAL)
		note_error("swapoff-end", errno);
	snprintf(path, sizeof(path), "/sys/block/zram%d/reset", id);
	write_str(path, "1");
	if (id > 0) {
		snprintf(buf, sizeof(buf), "%d", id);
		write_str("/sys/class/zram-control/hot_remove", buf);
	}
}

static pid_t holder = -1;

/* The holder: a process with one page on the kept device (so that it joins the mmlist before
 * the target, whose pages are swapped out after) and HOLDER_PAGES pages that every swapoff
 * iteration puts on the cycled device: try_to_unuse() then walks the target and the children
 * after it before it reaches the holder's pages, and goes on while they are in use. */
static void start_holder(void)
{
	int p[2];
	if (pipe(p) < 0)
		die(EXIT_RUNTIME, "holder", "pipe", errno);
	holder = fork();
	if (holder < 0)
		die(EXIT_RUNTIME, "holder", "fork", errno);
	if (holder == 0) {
		prctl(PR_SET_NAME, "obs-holder");
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		char *mem = mmap(NULL, (HOLDER_PAGES + 1) * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (mem == MAP_FAILED)
			_exit(1);
		for (unsigned long i = 0; i <= HOLDER_PAGES; i++)
			mem[i * PAGE] = (char)(i + 1);
		unsigned long addr = (unsigned long)mem;
		if (write(p[1], &addr, sizeof(addr)) != sizeof(addr))
			_exit(1);
		/* and it wakes every HOLDER_TICK_US: each wakeup may preempt a fork at its next
		 * cond_resched() (copy_pte_range() has one), so that a swapoff waiting to walk the
		 * mmlist runs while dup_mmap() is half way */
		for (;;) {
			struct timespec ts = {0, HOLDER_TICK_US * 1000L};
			nanosleep(&ts, NULL);
		}
	}
	close(p[1]);
	unsigned long addr;
	if (read(p[0], &addr, sizeof(addr)) != sizeof(addr))
		die(EXIT_RUNTIME, "holder", "the holder did not start", errno);
	close(p[0]);
	holder_first.iov_base = (void *)addr;
	holder_first.iov_len = PAGE;
	holder_range.iov_base = (void *)(addr + PAGE);
	holder_range.iov_len = HOLDER_PAGES * PAGE;
	holder_pidfd = (int)syscall(SYS_pidfd_open, holder, 0);
	if (holder_pidfd < 0)
		die(EXIT_RUNTIME, "holder", "pidfd_open", errno);
}

static void iteration(int which)
{
	char path[64];
	switch (which) {
	case OBS_SWAPOFF:
		pmadvise(pidfd, ranges, nranges, MADV_PAGEOUT, "target-pageout");
		pmadvise(holder_pidfd, &holder_range, 1, MADV_PAGEOUT, "holder-pageout");
		if (swapoff(cycled_dev) < 0)
			note_error("swapoff", errno);
		if (swapon(cycled_dev, SWAP_FLAG_PREFER | (10 << SWAP_FLAG_PRIO_SHIFT)) < 0)
			note_error("swapon", errno);
		break;
	case OBS_RMAP:
		pmadvise(pidfd, ranges, nranges, MADV_COLD, "madv-cold");
		pmadvise(pidfd, ranges, nranges, MADV_PAGEOUT, "madv-pageout");
		break;
	case OBS_PROC: {
		static const char *const files[] = {"maps", "smaps", "status"};
		for (int i = 0; i < 3; i++) {
			snprintf(path, sizeof(path), "/proc/%d/%s", (int)target, files[i]);
			if (read_file(path, procbuf, PROC_CAP) < 0 && errno != ESRCH && errno != ENOENT)
				note_error(files[i], errno);
		}
		break;
	}
	}
}

static unsigned long long rng;

static unsigned long long xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Touch 256 KiB of stack now, so that no iteration grows the stack VMA (a maple tree store). */
static void __attribute__((noinline)) touch_stack(void)
{
	volatile char pad[256 * 1024];
	for (size_t i = 0; i < sizeof(pad); i += PAGE)
		pad[i] = 1;
}

static void worker(int which, unsigned long long seed, unsigned long pause_us, const char *done,
		   const char *out, int ready_fd)
{
	char name[16];
	snprintf(name, sizeof(name), "obs-%s", obs_names[which]);
	prctl(PR_SET_NAME, name);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	rng = seed ^ (0x9E3779B97F4A7C15ULL * (unsigned long long)(which + 1));
	if (!rng)
		rng = 1;
	touch_stack();
	memset(iv, 0, sizeof(iv)); /* our own copies of the pages, before the sweep */
	iteration(OBS_PROC == which ? OBS_PROC : -1);
	char c = 1;
	if (write(ready_fd, &c, 1) != 1)
		_exit(EXIT_RUNTIME);
	close(ready_fd);
	unsigned long long n = 0, total = 0;
	struct stat st;
	while (stat(done, &st) < 0) {
		unsigned long long t0 = now_us();
		iteration(which);
		unsigned long long t1 = now_us();
		if (n < MAX_ITERS) {
			iv[n][0] = t0;
			iv[n][1] = t1;
			n++;
		}
		total++;
		unsigned long p = pause_us ? (unsigned long)(xorshift() % (pause_us + 1)) : 0;
		if (p) {
			struct timespec ts = {(time_t)(p / 1000000), (long)(p % 1000000) * 1000L};
			while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
				;
		}
	}
	int fd = open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		_exit(EXIT_RUNTIME);
	if (dup2(fd, 1) < 0)
		_exit(EXIT_RUNTIME);
	j_begin();
	j_str("event", "observer");
	j_str("observer", obs_names[which]);
	j_int("seed", (long long)seed);
	j_int("pause_us", (long long)pause_us);
	j_int("iterations", (long long)total);
	j_int("recorded", (long long)n);
	j_int("errors", (long long)errors);
	if (errors) {
		j_str("first_error", first_error_stage);
		j_int("first_errno", (long long)first_errno);
	}
	if (which == OBS_SWAPOFF || which == OBS_RMAP)
		j_int("ranges", nranges);
	j_arr("t_us");
	for (unsigned long long i = 0; i < n; i++) {
		j_int(NULL, (long long)iv[i][0]);
		j_int(NULL, (long long)iv[i][1]);
	}
	j_arr_end();
	j_end();
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *list = NULL, *ready = NULL, *done = NULL, *out = NULL;
	unsigned long long seed = 1;
	unsigned long pause_us = 2000, zram_mb = 64;
	g_prog = "observe";
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc)
			die(EXIT_USAGE, "args", "option without a value", 0);
		if (strcmp(argv[i], "--pid") == 0)
			target = (pid_t)parse_num("--pid", argv[++i]);
		else if (strcmp(argv[i], "--observers") == 0)
			list = argv[++i];
		else if (strcmp(argv[i], "--seed") == 0)
			seed = parse_num("--seed", argv[++i]);
		else if (strcmp(argv[i], "--ready") == 0)
			ready = argv[++i];
		else if (strcmp(argv[i], "--done") == 0)
			done = argv[++i];
		else if (strcmp(argv[i], "--out") == 0)
			out = argv[++i];
		else if (strcmp(argv[i], "--pause-us") == 0)
			pause_us = parse_num("--pause-us", argv[++i]);
		else if (strcmp(argv[i], "--zram-mb") == 0)
			zram_mb = parse_num("--zram-mb", argv[++i]);
		else
			die(EXIT_USAGE, "args", "unknown option", 0);
	}
	if (!target || !list || !ready || !done || !out)
		die(EXIT_USAGE, "args", "--pid, --observers, --ready, --done and --out are needed", 0);
	int want[NOBS] = {0}, nwant = 0;
	char copy[128];
	snprintf(copy, sizeof(copy), "%s", list);
	for (char *save = NULL, *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int found = 0;
		for (int o = 0; o < NOBS; o++)
			if (strcmp(t, obs_names[o]) == 0 && !want[o]) {
				want[o] = found = 1;
				nwant++;
			}
		if (!found)
			die(EXIT_USAGE, "args", "unknown or repeated observer (swapoff, rmap, proc)", 0);
	}
	unlink(out);
	touch_stack();
	read_ranges();
	pidfd = (int)syscall(SYS_pidfd_open, target, 0);
	if (pidfd < 0)
		die(EXIT_RUNTIME, "pidfd", "pidfd_open of the target", errno);
	if (want[OBS_SWAPOFF] || want[OBS_RMAP]) {
		/* the kept device: the holder's first page, then the target's lower half */
		kept_id = zram_device(kept_dev, sizeof(kept_dev), zram_mb, -1);
		if (swapon(kept_dev, SWAP_FLAG_PREFER | (5 << SWAP_FLAG_PRIO_SHIFT)) < 0)
			die(EXIT_RUNTIME, "swapon", kept_dev, errno);
		if (want[OBS_SWAPOFF]) {
			start_holder();
			pmadvise(holder_pidfd, &holder_first, 1, MADV_PAGEOUT, "holder-pageout");
		}
		int half = want[OBS_SWAPOFF] ? (nranges + 1) / 2 : nranges;
		pmadvise(pidfd, ranges, half, MADV_PAGEOUT, "target-pageout");
		if (want[OBS_SWAPOFF]) {
			cycled_id = zram_device(cycled_dev, sizeof(cycled_dev), zram_mb, kept_id);
			if (swapon(cycled_dev, SWAP_FLAG_PREFER | (10 << SWAP_FLAG_PRIO_SHIFT)) < 0)
				die(EXIT_RUNTIME, "swapon", cycled_dev, errno);
			pmadvise(pidfd, ranges + half, nranges - half, MADV_PAGEOUT, "target-pageout");
			pmadvise(holder_pidfd, &holder_range, 1, MADV_PAGEOUT, "holder-pageout");
		}
	}
	int p[2];
	if (pipe(p) < 0)
		die(EXIT_RUNTIME, "workers", "pipe", errno);
	pid_t pids[NOBS];
	int nw = 0;
	for (int o = 0; o < NOBS; o++) {
		if (!want[o])
			continue;
		pid_t w = fork();
		if (w < 0)
			die(EXIT_RUNTIME, "workers", "fork", errno);
		if (w == 0) {
			close(p[0]);
			worker(o, seed, pause_us, done, out, p[1]);
		}
		pids[nw++] = w;
	}
	close(p[1]);
	for (int i = 0; i < nw; i++) {
		char c;
		if (read(p[0], &c, 1) != 1)
			die(EXIT_RUNTIME, "workers", "an observer did not start", errno);
	}
	close(p[0]);
	int fd = open(ready, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		die(EXIT_RUNTIME, "ready", ready, errno);
	close(fd);
	int failed = 0;
	for (int i = 0; i < nw; i++) {
		int st;
		while (waitpid(pids[i], &st, 0) < 0 && errno == EINTR)
			;
		failed |= !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	if (holder > 0) {
		kill(holder, SIGKILL);
		waitpid(holder, NULL, 0);
	}
	zram_release(cycled_id, cycled_dev);
	zram_release(kept_id, kept_dev);
	if (failed)
		die(EXIT_RUNTIME, "workers", "an observer was killed or failed (see the console)", 0);
	return 0;
}
