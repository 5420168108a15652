/*
 * runtime/alloc.c - the runtime's allocator: runtime objects (fiber__malloc/zalloc/free on jemalloc's explicit API
 * or the C library's) and the allocation-failure test hook. Fiber descriptors live at the top of their stacks
 * (runtime/stack.c).
 */
#include "internal.h"

#include <string.h>

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

#define LINES(size) (((size) + 63) & ~(size_t)63)
#ifdef FIBER_LIBC_MALLOC
#define LINES_FLAGS 0
#else
#define LINES_FLAGS (MALLOCX_ALIGN(64))
#endif

/* Zeroed and cache-line aligned, for objects laid out in cache-line groups (the workers); fiber__free_lines frees. */
void *fiber__zalloc_lines(size_t size)
{
	void *p;

	if (fiber__alloc_should_fail())
		return NULL;
#ifdef FIBER_LIBC_MALLOC
	p = aligned_alloc(64, LINES(size));
	if (p)
		memset(p, 0, LINES(size));
#else
	p = mallocx(LINES(size), MALLOCX_ZERO | LINES_FLAGS);
#endif
	return p;
}

/* Free what an allocation of @size with jemalloc @flags returned (the C library build ignores both). */
static void free_sized(void *ptr, size_t size, int flags)
{
	if (!ptr)
		return;
#ifdef FIBER_LIBC_MALLOC
	(void)size;
	(void)flags;
	free(ptr);
#else
	sdallocx(ptr, size, flags);
#endif
}

void fiber__free_lines(void *ptr, size_t size)
{
	free_sized(ptr, LINES(size), LINES_FLAGS);
}

void fiber__free(void *ptr, size_t size)
{
	free_sized(ptr, size, 0);
}
