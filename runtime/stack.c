/*
 * runtime/stack.c - fiber stacks: mmap with a guard page below each, a per-worker cache, the initial frame.
 *
 * A stack is one anonymous mapping: the lowest page is the guard (MADV_GUARD_INSTALL where the kernel has it,
 * which keeps the mapping one VMA; mprotect(PROT_NONE) otherwise), the rest is the stack, growing down from the top.
 * Stacks of the default size are cached per worker (the worker that reaps a dead fiber keeps its stack for the next
 * spawn on that worker); spawns from plain pthreads use a small global cache. Under ASan a cached stack is
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

/* Allocate @size usable bytes (already page-rounded) plus the guard page for @p. 0 or -ENOMEM. */
int fiber__stack_alloc(struct fiber *p, size_t size)
{
	size_t total = size + fiber__page_size();
	void *base = NULL;

	if (size == fiber__rt.stack_size) {
		struct worker *w;

		/* Pin to this worker while touching its cache: a preempted fiber could resume elsewhere. */
		w = this_worker();
		if (w) {
			preempt_disable();
			w = this_worker();
			if (w->stacks.nr)
				base = w->stacks.stacks[--w->stacks.nr];
			preempt_enable_no_resched();
		} else {
			spin_lock(&fiber__rt.stack_lock);
			if (fiber__rt.gstacks.nr)
				base = fiber__rt.gstacks.stacks[--fiber__rt.gstacks.nr];
			spin_unlock(&fiber__rt.stack_lock);
		}
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

	if (!base)
		return;
	p->stack_base = NULL;
	if (total == fiber__rt.stack_size + fiber__page_size()) {
		struct worker *w = this_worker();

		if (w && w->stacks.nr < ARRAY_SIZE(w->stacks.stacks)) {
			w->stacks.stacks[w->stacks.nr++] = base;
			return;
		}
		if (!w) {
			spin_lock(&fiber__rt.stack_lock);
			if (fiber__rt.gstacks.nr < ARRAY_SIZE(fiber__rt.gstacks.stacks)) {
				fiber__rt.gstacks.stacks[fiber__rt.gstacks.nr++] = base;
				base = NULL;
			}
			spin_unlock(&fiber__rt.stack_lock);
			if (!base)
				return;
		}
	}
	munmap(base, total);
}

void fiber__stack_cache_drain(struct stack_cache *c)
{
	size_t total = fiber__rt.stack_size + fiber__page_size();

	while (c->nr)
		munmap(c->stacks[--c->nr], total);
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
