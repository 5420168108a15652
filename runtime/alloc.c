/*
 * runtime/alloc.c - the runtime's allocator: runtime objects (fiber__malloc/zalloc/free on jemalloc's explicit API
 * or the C library's) and the allocation-failure test hook. Fiber descriptors live at the top of their stacks
 * (runtime/stack.c).
 */
#include "internal.h"

#ifndef FIBER_LIBC_MALLOC
#include <jemalloc/jemalloc.h>
#endif

atomic_long fiber__fail_alloc;
atomic_ulong fiber__alloc_failures, fiber__alloc_calls;

bool fiber__alloc_fail_slow(void)
{
	long n = atomic_load_explicit(&fiber__fail_alloc, memory_order_relaxed);

	atomic_fetch_add_explicit(&fiber__alloc_calls, 1, memory_order_relaxed);
	if (n > 0) {
		n = atomic_fetch_sub_explicit(&fiber__fail_alloc, 1, memory_order_relaxed);
		if (n != 1)
			return false; /* not this one (or another thread took the failing slot) */
	} else if (n == 0) {
		return false;
	}
	atomic_fetch_add_explicit(&fiber__alloc_failures, 1, memory_order_relaxed);
	return true;
}

/* ------------------------------------------------------------------------------------------------------------
 * Allocation
 * ---------------------------------------------------------------------------------------------------------- */

void *fiber__malloc(size_t size)
{
	if (fiber__alloc_should_fail())
		return NULL;
#ifdef FIBER_LIBC_MALLOC
	return malloc(size); /* ASan checks what it allocates */
#else
	return mallocx(size, 0);
#endif
}

void *fiber__zalloc(size_t size)
{
	if (fiber__alloc_should_fail())
		return NULL;
#ifdef FIBER_LIBC_MALLOC
	return calloc(1, size);
#else
	return mallocx(size, MALLOCX_ZERO);
#endif
}

void fiber__free(void *ptr, size_t size)
{
	if (!ptr)
		return;
#ifdef FIBER_LIBC_MALLOC
	(void)size;
	free(ptr);
#else
	sdallocx(ptr, size, 0);
#endif
}
