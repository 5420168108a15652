/*
 * runtime/stack.c - fiber stacks: mmap with a guard page below each, a per-worker cache, the initial frame.
 *
 * A stack is one anonymous mapping: the lowest page is the guard (MADV_GUARD_INSTALL where the kernel has it,
 * which keeps the mapping one VMA; mprotect(PROT_NONE) otherwise), the rest is the stack, growing down from the top.
 * Freed stacks are cached per worker (the worker that reaps a dead fiber keeps its stack for the next spawn of the
 * same size on that worker), then in a global cache; only beyond both are they unmapped. Under ASan a cached stack is
 * unpoisoned before reuse: the dead fiber's frames left redzones on it.
 */
#include "internal.h"

#include <sys/mman.h>
#include <unistd.h>

#ifdef FIBER_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

static size_t page_size;
static atomic_int guard_install_works = 1; /* cleared the first time the kernel refuses MADV_GUARD_INSTALL */

size_t fiber__page_size(void)
{
	if (unlikely(!page_size))
		page_size = (size_t)sysconf(_SC_PAGESIZE);
	return page_size;
}

static void *stack_map(size_t total)
{
	size_t guard = fiber__page_size();
	void *base = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK,
			  -1, 0);

	if (base == MAP_FAILED)
		return NULL;
	if (atomic_load_explicit(&guard_install_works, memory_order_relaxed)) {
		if (madvise(base, guard, MADV_GUARD_INSTALL) == 0)
			return base;
		atomic_store(&guard_install_works, 0);
	}
	if (mprotect(base, guard, PROT_NONE)) {
		munmap(base, total);
		return NULL;
	}
	return base;
}

static inline void stack_prepare_reuse(void *base, size_t total)
{
#ifdef FIBER_HAVE_ASAN
	size_t guard = fiber__page_size();

	ASAN_UNPOISON_MEMORY_REGION((char *)base + guard, total - guard);
#else
	(void)base, (void)total;
#endif
}

/* Take a cached stack of exactly @total bytes from @c, or NULL. Most recently freed first (warm pages). */
static void *cache_get(struct stack_cache *c, size_t total)
{
	for (unsigned i = c->nr; i-- > 0;) {
		if (c->size[i] != total)
			continue;
		void *base = c->stacks[i];

		c->nr--;
		c->stacks[i] = c->stacks[c->nr];
		c->size[i] = c->size[c->nr];
		return base;
	}
	return NULL;
}

static bool cache_put(struct stack_cache *c, void *base, size_t total)
{
	if (c->nr == c->cap)
		return false;
	c->stacks[c->nr] = base;
	c->size[c->nr++] = total;
	return true;
}

/*
 * Allocate @size usable bytes (already page-rounded) plus the guard page for @p: from this worker's cache, then the
 * global one, then mmap. 0 or -ENOMEM.
 */
int fiber__stack_alloc(struct fiber *p, size_t size)
{
	size_t total = size + fiber__page_size();
	struct worker *w = this_worker();
	void *base = NULL;

	if (w) {
		/* Pinned to this worker while touching its cache: a preempted fiber could resume elsewhere. */
		preempt_disable();
		base = cache_get(&this_worker()->stacks, total);
		preempt_enable_no_resched();
	}
	if (!base) {
		spin_lock(&fiber__rt.stack_lock);
		base = cache_get(&fiber__rt.gstacks, total);
		spin_unlock(&fiber__rt.stack_lock);
	}
	if (!base)
		base = stack_map(total);
	if (!base)
		return -ENOMEM;
	/* Also a fresh mapping: it may reuse addresses of an unmapped stack whose shadow is still poisoned. */
	stack_prepare_reuse(base, total);
	p->stack_base = base;
	p->stack_size = total;
	return 0;
}

/* Release @p's stack; called by the fiber that runs after @p died (C2), or on a spawn error path. */
void fiber__stack_free(struct fiber *p)
{
	void *base = p->stack_base;
	size_t total = p->stack_size;
	struct worker *w = this_worker();
	bool kept;

	if (!base)
		return;
	p->stack_base = NULL;
	if (w) {
		preempt_disable();
		kept = cache_put(&this_worker()->stacks, base, total);
		preempt_enable_no_resched();
		if (kept)
			return;
	}
	spin_lock(&fiber__rt.stack_lock);
	kept = cache_put(&fiber__rt.gstacks, base, total);
	spin_unlock(&fiber__rt.stack_lock);
	if (!kept)
		munmap(base, total);
}

/* A cache of @cap stacks; with no memory for it, a cache of none (every free unmaps). */
void fiber__stack_cache_init(struct stack_cache *c, unsigned cap)
{
	c->nr = 0;
	c->stacks = fiber__malloc(cap * sizeof(*c->stacks));
	c->size = fiber__malloc(cap * sizeof(*c->size));
	c->cap = c->stacks && c->size ? cap : 0;
}

/* Unmap every cached stack and free the cache itself. */
void fiber__stack_cache_drain(struct stack_cache *c)
{
	while (c->nr) {
		c->nr--;
		munmap(c->stacks[c->nr], c->size[c->nr]);
	}
	fiber__free(c->stacks, c->cap * sizeof(*c->stacks));
	fiber__free(c->size, c->cap * sizeof(*c->size));
	c->stacks = NULL;
	c->size = NULL;
	c->cap = 0;
}

/*
 * Build a frame at the top of a stack that fiber__switch can "return" into: the FP control words, six zeroed
 * callee-saved registers (rbx, r12 given) and the return address. With @as_call the target starts as a called C
 * function does (rsp % 16 == 8); otherwise (the trampoline) with rsp % 16 == 0.
 */
static void *frame_build(void *stack_top, void (*ret)(void), uint64_t rbx, uint64_t r12, bool as_call)
{
	uintptr_t top = (uintptr_t)stack_top & ~(uintptr_t)15;
	/* The return slot: after ret, rsp = slot + 8. */
	uintptr_t slot = as_call ? top - 16 : top - 8;
	uint64_t *sp = (uint64_t *)(slot - (FRAME_SIZE - 8));

	memset(sp, 0, FRAME_SIZE);
	((uint32_t *)sp)[0] = FIBER_MXCSR_DEFAULT;
	((uint16_t *)sp)[2] = FIBER_FPUCW_DEFAULT;
	sp[FRAME_RBX / 8] = rbx;
	sp[FRAME_R12 / 8] = r12;
	sp[FRAME_RET / 8] = (uint64_t)(uintptr_t)ret;
	return sp;
}

void *fiber__frame_init(void *stack_top, void (*entry)(void))
{
	return frame_build(stack_top, entry, 0, 0, true);
}

/* The first frame of a new fiber: fiber__switch returns into fiber__trampoline with rbx = fn, r12 = arg. */
__hidden void *fiber__fiber_frame_init(struct fiber *p)
{
	void *top = (char *)p->stack_base + p->stack_size;

	return frame_build(top, fiber__trampoline, (uint64_t)(uintptr_t)p->fn, (uint64_t)(uintptr_t)p->arg, false);
}
