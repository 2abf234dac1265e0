/* SPDX-License-Identifier: GPL-2.0+ */
/*
 * forkdiff's stand-in for tools/testing/shared/maple-shared.h on trees whose
 * userspace maple tree harness still lives in tools/testing/radix-tree only
 * (6.1 and earlier): the same definitions tools/testing/radix-tree/maple.c
 * makes before it #includes lib/maple_tree.c.
 */
#ifndef __FORKDIFF_MAPLE_SHARED_H__
#define __FORKDIFF_MAPLE_SHARED_H__

#define CONFIG_DEBUG_MAPLE_TREE
#define CONFIG_MAPLE_SEARCH
#define MAPLE_32BIT (MAPLE_NODE_SLOTS > 31)
#include "test.h"
#include <stdlib.h>
#include <time.h>
#include "linux/init.h"

#define module_init(x)
#define module_exit(x)
#define MODULE_AUTHOR(x)
#define MODULE_LICENSE(x)
#define dump_stack()	assert(0)

#endif /* __FORKDIFF_MAPLE_SHARED_H__ */
