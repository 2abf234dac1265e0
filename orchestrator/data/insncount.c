/* insncount: a QEMU TCG plugin counting guest instructions per kernel function, between two
 * markers a guest program executes (forkdiff's own code; built against the qemu-plugin.h of
 * the QEMU that runs it, orchestrator/prepare/qemuplugin.py).
 *
 *   -plugin insncount.so,map=System.map,out=FILE
 *
 * map: the kernel's System.map. Every text symbol (t/T/w/W) owns [its address, the next
 *      symbol's address); an instruction is charged to the symbol owning its address,
 *      "[user]" below the kernel half, "[kernel]" above it outside System.map's text.
 * Counting: each translation block gets, per symbol its instructions belong to, an inline
 *      add of that symbol's instruction count (run whenever the block starts: a block left
 *      early by an exception counts whole), and an inline add of one "entry" when the
 *      block starts at a symbol's first byte (calls, plus jumps back to the first byte).
 * Markers: a guest program executes `nopl 0x4b464442(%rax)` (0f 1f 80 42 44 46 4b, a no-op
 *      anywhere, with or without this plugin) to begin a window and `nopl 0x4b464445(%rax)`
 *      (... 45 44 46 4b) to end it; only in user mode. At the end marker the plugin appends
 *      the window's counts (end minus begin) to FILE and flushes it:
 *
 *        window N
 *        <instructions> <entries> <symbol>     one line per symbol with a count
 *        end N <instructions of the window>
 *
 * Under -icount with one vCPU no two blocks run at once: the counters need no atomics.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

#define KERNEL_HALF 0xffff800000000000ULL

struct sym {
	uint64_t addr;
	char *name;
};

static struct sym *syms;
static size_t nsyms;
static uint64_t text_end;
/* slots: 0 = [user], 1 = [kernel], 2.. = syms[i - 2] */
static uint64_t *insns, *entries, *base_insns, *base_entries;
static size_t nslots;
static FILE *out;
static int window, open_window;

static const uint8_t MARK_BEGIN[7] = {0x0f, 0x1f, 0x80, 0x42, 0x44, 0x46, 0x4b};
static const uint8_t MARK_END[7] = {0x0f, 0x1f, 0x80, 0x45, 0x44, 0x46, 0x4b};

static int cmp_sym(const void *a, const void *b)
{
	const struct sym *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static int load_map(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[512], name[400], type;
	unsigned long long addr;
	size_t cap = 4096;
	if (!f)
		return -1;
	syms = g_new(struct sym, cap);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %c %399s", &addr, &type, name) != 3)
			continue;
		if (strcmp(name, "_etext") == 0)
			text_end = addr;
		if (type != 't' && type != 'T' && type != 'w' && type != 'W')
			continue;
		if (nsyms == cap) {
			cap *= 2;
			syms = g_renew(struct sym, syms, cap);
		}
		syms[nsyms].addr = addr;
		syms[nsyms].name = g_strdup(name);
		nsyms++;
	}
	fclose(f);
	qsort(syms, nsyms, sizeof(*syms), cmp_sym);
	return nsyms ? 0 : -1;
}

static size_t slot_of(uint64_t vaddr)
{
	size_t lo = 0, hi = nsyms;
	if (vaddr < KERNEL_HALF)
		return 0;
	if (!nsyms || vaddr < syms[0].addr || (text_end && vaddr >= text_end))
		return 1;
	while (hi - lo > 1) { /* the last symbol at or below vaddr */
		size_t mid = (lo + hi) / 2;
		if (syms[mid].addr <= vaddr)
			lo = mid;
		else
			hi = mid;
	}
	return lo + 2;
}

static const char *slot_name(size_t s)
{
	return s == 0 ? "[user]" : s == 1 ? "[kernel]" : syms[s - 2].name;
}

static void on_marker(unsigned int vcpu, void *udata)
{
	(void)vcpu;
	if (udata == (void *)MARK_BEGIN) {
		memcpy(base_insns, insns, nslots * sizeof(*insns));
		memcpy(base_entries, entries, nslots * sizeof(*entries));
		open_window = 1;
		return;
	}
	if (!open_window)
		return;
	uint64_t total = 0;
	fprintf(out, "window %d\n", window);
	for (size_t s = 0; s < nslots; s++) {
		uint64_t n = insns[s] - base_insns[s], e = entries[s] - base_entries[s];
		if (!n && !e)
			continue;
		total += n;
		fprintf(out, "%" PRIu64 " %" PRIu64 " %s\n", n, e, slot_name(s));
	}
	fprintf(out, "end %d %" PRIu64 "\n", window, total);
	fflush(out);
	window++;
	open_window = 0;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	(void)id;
	size_t n = qemu_plugin_tb_n_insns(tb);
	size_t run_slot = (size_t)-1;
	uint64_t run_len = 0;
	for (size_t i = 0; i < n; i++) {
		struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
		uint64_t va = qemu_plugin_insn_vaddr(insn);
		size_t s = slot_of(va);
		if (i == 0 && s >= 2 && syms[s - 2].addr == va)
			qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
								 &entries[s], 1);
		if (s == 0 && qemu_plugin_insn_size(insn) == 7) {
			const uint8_t *b = qemu_plugin_insn_data(insn);
			const uint8_t *m = memcmp(b, MARK_BEGIN, 7) == 0 ? MARK_BEGIN
					   : memcmp(b, MARK_END, 7) == 0 ? MARK_END : NULL;
			if (m)
				qemu_plugin_register_vcpu_insn_exec_cb(insn, on_marker,
								       QEMU_PLUGIN_CB_NO_REGS, (void *)m);
		}
		if (s != run_slot) {
			if (run_len)
				qemu_plugin_register_vcpu_tb_exec_inline(
					tb, QEMU_PLUGIN_INLINE_ADD_U64, &insns[run_slot], run_len);
			run_slot = s;
			run_len = 0;
		}
		run_len++;
	}
	if (run_len)
		qemu_plugin_register_vcpu_tb_exec_inline(tb, QEMU_PLUGIN_INLINE_ADD_U64,
							 &insns[run_slot], run_len);
}

static void on_plugin_exit(qemu_plugin_id_t id, void *p)
{
	(void)id;
	(void)p;
	if (out)
		fclose(out);
	out = NULL;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
					   int argc, char **argv)
{
	const char *map = NULL, *path = NULL;
	(void)info;
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "map=", 4) == 0)
			map = argv[i] + 4;
		else if (strncmp(argv[i], "out=", 4) == 0)
			path = argv[i] + 4;
		else {
			fprintf(stderr, "insncount: unknown argument %s\n", argv[i]);
			return -1;
		}
	}
	if (!map || !path) {
		fprintf(stderr, "insncount: needs map=System.map and out=FILE\n");
		return -1;
	}
	if (load_map(map) != 0) {
		fprintf(stderr, "insncount: no text symbols in %s\n", map);
		return -1;
	}
	out = fopen(path, "w");
	if (!out) {
		fprintf(stderr, "insncount: cannot write %s\n", path);
		return -1;
	}
	fprintf(out, "insncount symbols %zu\n", nsyms);
	fflush(out);
	nslots = nsyms + 2;
	insns = g_new0(uint64_t, nslots);
	entries = g_new0(uint64_t, nslots);
	base_insns = g_new0(uint64_t, nslots);
	base_entries = g_new0(uint64_t, nslots);
	qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
	qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
	return 0;
}
