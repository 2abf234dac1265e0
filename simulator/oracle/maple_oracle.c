// SPDX-License-Identifier: GPL-2.0+
/*
 * maple_oracle: replays an operation list on the kernel's own lib/maple_tree.c
 * (built in userspace with the shims of tools/testing/{shared,radix-tree}) and
 * prints the canonical dump forkdiff's Python maple tree prints.
 *
 * This file is ours; the kernel code is #included from the tree given at build
 * time (-I paths), never copied.
 *
 * Input (stdin), one operation per line ('#' starts a comment):
 *   tree rcu|norcu          new empty tree, MT_FLAGS_ALLOC_RANGE|LOCK_EXTERN [|USE_RCU]
 *   store FIRST LAST V|null mas_store_gfp(GFP_KERNEL) on [FIRST, LAST]
 *   erase INDEX             mtree_erase()
 *   expect N                mas_expected_entries() on a fresh ma_state (bulk mode)
 *   bstore FIRST LAST V     mas_store() with that ma_state (no allocation)
 *   bdestroy                mas_destroy() of that ma_state
 *   dup [K]                 __mt_dup(GFP_KERNEL) into a new tree; the K-th allocation
 *                           check fails if K > 0. On success the copy becomes the tree.
 *   replace FIRST LAST V    mas_store() (the exact-fit store dup_mmap does)
 *   rcu on|off              mt_set_in_rcu() / mt_clear_in_rcu()
 *   failnth K               the K-th allocation check of the next operation fails
 *   dump                    print the tree and the allocation log since the last dump
 * Values V are small integers stored as xa_mk_value(V).
 *
 * Output: one JSON line per dump:
 *   {"height":H,"root":"empty"|"node"|{"v":V},"nodes":[...],"log":[[op,kind,n],...]}
 * nodes in DFS pre-order: {"t":"l"|"a","min":..,"max":..,"piv":[..],"s":[..]
 *   [,"g":[..],"mg":M]}; "piv" holds pivots[0..min(end, npivots-1)], "s" the
 *   slots 0..end (null, an integer value, or "n" for a child).
 * log kinds: "s" single allocation, "b" bulk allocation (n objects), "xs"/"xb"
 *   a failed single/bulk allocation check, "f" objects freed by the operation; "h" and
 *   "r" on sheaf trees (FD_HAVE_SHEAVES below).
 * Other lines: {"dup":0|-12} after dup.
 *
 * Trees differ in what their lib/maple_tree.c offers; the build (orchestrator/oracle.py)
 * reads the tree and passes what it found:
 *   -DFD_HAVE_MT_DUP   the tree has __mt_dup() (6.8 on); without it 'dup' is refused
 *                      (exit status 4), since dup_mmap() of such a tree never calls it.
 *   -DFD_DEFINE_MAPLE_RCU_CB  the harness's maple-shared.h declares maple_rcu_cb() (7.x).
 *   -DFD_HAVE_EXPECTED_ENTRIES  the tree has mas_expected_entries() (up to 6.12); without
 *                      it 'expect', 'bstore' and 'bdestroy' are refused the same way.
 *   -DFD_HAVE_SHEAVES  the tree's maple_tree.c takes nodes from slab sheaves (7.x): the log
 *                      gains "h" (n nodes put in a sheaf by kmem_cache_prefill_sheaf() or
 *                      kmem_cache_refill_sheaf(): no failslab check), and a kfree() of a maple
 *                      node (a leftover mt_alloc_one() node, the last node of a destroy walk)
 *                      counts as freed like kmem_cache_free() does. Nodes a returned sheaf
 *                      still holds are not freed by the tree (kmem_cache_return_sheaf()).
 *                      "r" counts the nodes the operation handed to kfree_rcu() (the
 *                      harness's call_rcu(maple_rcu_cb)), logged at its end before "f".
 */
#include "maple-shared.h"	/* the tree's, or ours for trees without tools/testing/shared */
#include <linux/maple_tree.h>
#include <linux/xarray.h>
#include <linux/types.h>
#include <linux/export.h>
#include <linux/slab.h>
#include <linux/limits.h>
#include <asm/barrier.h>
#include <linux/rcupdate.h>
#include <stdio.h>

/* the build passes -include generated/autoconf.h so that CONFIG_64BIT is seen first */
_Static_assert(MAPLE_RANGE64_SLOTS == 16 && MAPLE_ARANGE64_SLOTS == 10, "64-bit maple node layout expected");
#include <string.h>

/* ---- allocation accounting: every maple node allocation passes through here ---- */
static long cur_op;
static long fail_countdown;	/* > 0: the fail_countdown-th check from now fails */
static unsigned long freed_in_op;
static unsigned long rcu_in_op;	/* FD_HAVE_SHEAVES: nodes handed to kfree_rcu() */
static char *logbuf;
static size_t loglen, logcap;

static void log_event(const char *kind, unsigned long n)
{
	char tmp[64];
	int len = snprintf(tmp, sizeof(tmp), "%s[%ld,\"%s\",%lu]",
			   loglen ? "," : "", cur_op, kind, n);
	if (loglen + len + 1 > logcap) {
		logcap = (logcap + len + 1) * 2;
		logbuf = realloc(logbuf, logcap);
	}
	memcpy(logbuf + loglen, tmp, len + 1);
	loglen += len;
}

static bool check_fails(void)
{
	if (fail_countdown > 0 && --fail_countdown == 0)
		return true;
	return false;
}

static void *oracle_alloc(struct kmem_cache *c, int gfp)
{
	void *p;

	if (check_fails()) {
		log_event("xs", 1);
		return NULL;
	}
	p = kmem_cache_alloc(c, gfp);
	if (p)
		log_event("s", 1);
	return p;
}

static int oracle_alloc_bulk(struct kmem_cache *c, gfp_t gfp, size_t n, void **list)
{
	int got;

	if (check_fails()) {
		log_event("xb", n);
		return 0;
	}
	got = kmem_cache_alloc_bulk(c, gfp, n, list);
	if (got)
		log_event("b", got);
	return got;
}

static void oracle_free(struct kmem_cache *c, void *p)
{
	freed_in_op++;
	kmem_cache_free(c, p);
}

static void oracle_free_bulk(struct kmem_cache *c, size_t n, void **list)
{
	freed_in_op += n;
	kmem_cache_free_bulk(c, n, list);
}

#ifdef FD_HAVE_SHEAVES
static struct slab_sheaf *oracle_prefill_sheaf(struct kmem_cache *c, gfp_t gfp, unsigned int n)
{
	struct slab_sheaf *sheaf = kmem_cache_prefill_sheaf(c, gfp, n);

	if (sheaf)
		log_event("h", n);
	return sheaf;
}

static int oracle_refill_sheaf(struct kmem_cache *c, gfp_t gfp, struct slab_sheaf **sheafp,
			       unsigned int n)
{
	unsigned int before = (*sheafp)->size;
	int ret = kmem_cache_refill_sheaf(c, gfp, sheafp, n);

	if (!ret && n > before)
		log_event("h", n - before);
	return ret;
}

static void oracle_kfree(void *p)
{
	if (p)
		freed_in_op++;
	kfree(p);
}
#endif

/* RCU callbacks run at the end of the operation (a grace period per operation). */
struct pending_cb { struct rcu_head *head; void (*fn)(struct rcu_head *); };
static struct pending_cb *pending;
static size_t npending, cappending;

static void oracle_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *))
{
#ifdef FD_HAVE_SHEAVES
	if (fn == maple_rcu_cb)
		rcu_in_op++;
#endif
	if (npending == cappending) {
		cappending = cappending ? cappending * 2 : 1024;
		pending = realloc(pending, cappending * sizeof(*pending));
	}
	pending[npending].head = head;
	pending[npending].fn = fn;
	npending++;
}

static void run_pending(void)
{
	while (npending) {
		size_t n = npending, i;
		struct pending_cb *batch = malloc(n * sizeof(*batch));

		memcpy(batch, pending, n * sizeof(*batch));
		npending = 0;
		for (i = 0; i < n; i++)
			batch[i].fn(batch[i].head);
		free(batch);
	}
}

#define kmem_cache_alloc(c, g)		oracle_alloc(c, g)
#define kmem_cache_alloc_bulk(c, g, n, l) oracle_alloc_bulk(c, g, n, l)
#define kmem_cache_free(c, p)		oracle_free(c, p)
#define kmem_cache_free_bulk(c, n, l)	oracle_free_bulk(c, n, l)
#undef call_rcu
#define call_rcu(h, f)			oracle_call_rcu(h, f)
#ifdef FD_HAVE_SHEAVES
#define kmem_cache_prefill_sheaf(c, g, n) oracle_prefill_sheaf(c, g, n)
#define kmem_cache_refill_sheaf(c, g, s, n) oracle_refill_sheaf(c, g, s, n)
#define kfree(p)			oracle_kfree(p)
#endif

/* some stable trees' maple_tree.c uses fallthrough, which their tools/include lacks */
#ifndef fallthrough
#define fallthrough __attribute__((__fallthrough__))
#endif

#include MAPLE_TREE_C	/* -DMAPLE_TREE_C="<tree>/lib/maple_tree.c" */

#ifdef FD_DEFINE_MAPLE_RCU_CB
/* the kfree_rcu() callback the harness's maple-shared.h names (its maple-shim.c, which would
 * compile maple_tree.c a second time, defines it the same way) */
void maple_rcu_cb(struct rcu_head *head)
{
	kmem_cache_free(maple_node_cache, container_of(head, struct maple_node, rcu));
}
#endif

#undef kmem_cache_alloc
#undef kmem_cache_alloc_bulk
#undef kmem_cache_free
#undef kmem_cache_free_bulk
#undef call_rcu
#ifdef FD_HAVE_SHEAVES
#undef kmem_cache_prefill_sheaf
#undef kmem_cache_refill_sheaf
#undef kfree
#endif

/* ---- dump ---- */
static FILE *out;
static bool first_node;

static void dump_node(struct maple_enode *enode, unsigned long min, unsigned long max)
{
	enum maple_type type = mte_node_type(enode);
	struct maple_node *node = mte_to_node(enode);
	unsigned long *pivots = ma_pivots(node, type);
	void __rcu **slots = ma_slots(node, type);
	unsigned char end = ma_data_end(node, type, pivots, max);
	unsigned char npiv = mt_pivots[type];
	bool leaf = ma_is_leaf(type);
	unsigned char i, lim;

	fprintf(out, "%s{\"t\":\"%s\",\"min\":%lu,\"max\":%lu,\"piv\":[",
		first_node ? "" : ",", leaf ? "l" : (type == maple_arange_64 ? "a" : "r"), min, max);
	lim = end < npiv ? end : npiv - 1;
	for (i = 0; i <= lim; i++)
		fprintf(out, "%s%lu", i ? "," : "", pivots[i]);
	fprintf(out, "],\"s\":[");
	for (i = 0; i <= end; i++) {
		void *e = slots[i];

		if (i)
			fputc(',', out);
		if (!e)
			fputs("null", out);
		else if (leaf && xa_is_value(e))
			fprintf(out, "%lu", xa_to_value(e));
		else if (leaf)
			fprintf(out, "\"p%lx\"", (unsigned long)e);
		else
			fputs("\"n\"", out);
	}
	fputc(']', out);
	if (type == maple_arange_64) {
		unsigned long *gaps = ma_gaps(node, type);

		fprintf(out, ",\"g\":[");
		for (i = 0; i <= end; i++)
			fprintf(out, "%s%lu", i ? "," : "", gaps[i]);
		fprintf(out, "],\"mg\":%u", node->ma64.meta.gap);	/* ma_meta_gap() */
	}
	fputc('}', out);
	first_node = false;
	if (leaf)
		return;
	for (i = 0; i <= end; i++) {
		unsigned long cmin = i ? pivots[i - 1] + 1 : min;
		unsigned long cmax = i < npiv ? pivots[i] : max;

		if (i == end)
			cmax = max;
		if (slots[i])
			dump_node(slots[i], cmin, cmax);
	}
}

static void dump_tree(struct maple_tree *mt)
{
	void *root = mt->ma_root;

	fprintf(out, "{\"height\":%u,\"root\":", mt_height(mt));
	if (!root)
		fputs("\"empty\",\"nodes\":[", out);
	else if (!xa_is_node(root))
		fprintf(out, "{\"v\":%lu},\"nodes\":[", xa_to_value(root));
	else {
		fputs("\"node\",\"nodes\":[", out);
		first_node = true;
		dump_node(mte_safe_root(root), 0, ULONG_MAX);
	}
	fprintf(out, "],\"log\":[%s]}\n", loglen ? logbuf : "");
	loglen = 0;
	if (logbuf)
		logbuf[0] = 0;
}

/* ---- driver ---- */
static void *parse_entry(const char *s)
{
	if (!strcmp(s, "null"))
		return NULL;
	return xa_mk_value(strtoul(s, NULL, 0));
}

static void end_op(void)
{
	run_pending();
	if (rcu_in_op)
		log_event("r", rcu_in_op);
	rcu_in_op = 0;
	if (freed_in_op)
		log_event("f", freed_in_op);
	freed_in_op = 0;
	fail_countdown = 0;
	cur_op++;
}

int main(int argc, char **argv)
{
	static struct maple_tree trees[2];
	struct maple_tree *mt = &trees[0], *spare = &trees[1];
	unsigned int base_flags = MT_FLAGS_ALLOC_RANGE | MT_FLAGS_LOCK_EXTERN;
	char line[512], a[64], b[64], c[64], cmd[32];
	MA_STATE(bmas, mt, 0, 0);
	unsigned long lineno = 0;

	out = stdout;
	setvbuf(stdout, NULL, _IOFBF, 1 << 20);
	rcu_register_thread();
	maple_tree_init();
	mt_set_non_kernel(UINT_MAX);	/* GFP_NOWAIT allocations succeed, as they do in the kernel */
	mt_init_flags(mt, base_flags | MT_FLAGS_USE_RCU);

	while (fgets(line, sizeof(line), stdin)) {
		int n;

		lineno++;
		a[0] = b[0] = c[0] = 0;
		n = sscanf(line, "%31s %63s %63s %63s", cmd, a, b, c);
		if (n < 1 || cmd[0] == '#')
			continue;
		mt_set_non_kernel(UINT_MAX);
		if (!strcmp(cmd, "tree")) {
			mtree_destroy(mt);
			run_pending();
			mt_init_flags(mt, base_flags | (strcmp(a, "norcu") ? MT_FLAGS_USE_RCU : 0));
			loglen = 0;
			freed_in_op = 0;
			rcu_in_op = 0;
			cur_op = 0;
			continue;
		} else if (!strcmp(cmd, "dump")) {
			dump_tree(mt);
			continue;
		} else if (!strcmp(cmd, "failnth")) {
			fail_countdown = strtol(a, NULL, 0);
			continue;
		} else if (!strcmp(cmd, "store")) {
			MA_STATE(mas, mt, strtoul(a, NULL, 0), strtoul(b, NULL, 0));
			mtree_lock(mt);
			mas_store_gfp(&mas, parse_entry(c), GFP_KERNEL);
			mtree_unlock(mt);
		} else if (!strcmp(cmd, "replace")) {
			MA_STATE(mas, mt, strtoul(a, NULL, 0), strtoul(b, NULL, 0));
			mtree_lock(mt);
			mas_store(&mas, parse_entry(c));
			mtree_unlock(mt);
		} else if (!strcmp(cmd, "erase")) {
			mtree_erase(mt, strtoul(a, NULL, 0));
		} else if (!strcmp(cmd, "expect") || !strcmp(cmd, "bstore") ||
			   !strcmp(cmd, "bdestroy")) {
#ifndef FD_HAVE_EXPECTED_ENTRIES
			fprintf(stderr, "line %lu: this tree's lib/maple_tree.c has no mas_expected_entries()\n",
				lineno);
			return 4;
#else
			if (cmd[0] == 'e') {
				MA_STATE(fresh, mt, 0, 0);	/* mas_init(): not in every tree */

				bmas = fresh;
				mtree_lock(mt);
				mas_expected_entries(&bmas, strtoul(a, NULL, 0));
				mtree_unlock(mt);
			} else if (cmd[1] == 's') {
				bmas.index = strtoul(a, NULL, 0);
				bmas.last = strtoul(b, NULL, 0);
				mtree_lock(mt);
				mas_store(&bmas, parse_entry(c));
				mtree_unlock(mt);
			} else {
				mtree_lock(mt);
				mas_destroy(&bmas);
				mtree_unlock(mt);
			}
#endif
		} else if (!strcmp(cmd, "rcu")) {
			if (!strcmp(a, "on"))
				mt_set_in_rcu(mt);
			else
				mt_clear_in_rcu(mt);
			continue;
		} else if (!strcmp(cmd, "dup")) {
#ifndef FD_HAVE_MT_DUP
			fprintf(stderr, "line %lu: this tree's lib/maple_tree.c has no __mt_dup()\n", lineno);
			return 4;
#else
			struct maple_tree *tmp;
			int ret;

			fail_countdown = a[0] ? strtol(a, NULL, 0) : fail_countdown;
			mt_init_flags(spare, mt->ma_flags & ~MT_FLAGS_HEIGHT_MASK);
			mtree_lock(spare);
			ret = __mt_dup(mt, spare, GFP_KERNEL);
			mtree_unlock(spare);
			fprintf(out, "{\"dup\":%d}\n", ret);
			if (ret) {
				if (spare->ma_root) {
					fprintf(stderr, "line %lu: failed __mt_dup left a non-empty tree\n", lineno);
					return 3;
				}
			} else {
				/* the copy becomes the tree; the parent is destroyed unaccounted */
				end_op();
				mtree_destroy(mt);
				run_pending();
				freed_in_op = 0;
				rcu_in_op = 0;
				tmp = mt;
				mt = spare;
				spare = tmp;
				continue;
			}
#endif
		} else {
			fprintf(stderr, "line %lu: unknown operation '%s'\n", lineno, cmd);
			return 2;
		}
		end_op();
	}
	fflush(stdout);
	return 0;
}
