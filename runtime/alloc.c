/*
 * runtime/alloc.c - the runtime's allocator: runtime objects (fiber__malloc/zalloc/free on jemalloc's explicit API
 * or the C library's), the allocation-failure test hook, and the fiber descriptors.
 *
 * Descriptors are type-stable for the life of the process: they come from mmap'd slabs that are never unmapped,
 * are recycled through a per-worker cache and a global list, and at fiber_runtime_stop every slab none of whose
 * descriptors is in use is given back to the kernel (MADV_DONTNEED: its pages read as zeros afterwards). So a
 * handle never points to freed memory: a stale one (a second join, a handle from an earlier runtime) reads a
 * descriptor that is not FIBER_MAGIC_LIVE and the call returns -EINVAL or -ESRCH. A joinable fiber that exited
 * and was not joined keeps its descriptor - across fiber_runtime_stop too - until fiber_join or fiber_detach.
 */
#include "internal.h"

#include <sys/mman.h>

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

/* ------------------------------------------------------------------------------------------------------------
 * Descriptors
 * ---------------------------------------------------------------------------------------------------------- */

#define DESC_SLAB 128	   /* descriptors per slab */
#define DESC_CACHE_MAX 128 /* per-worker cache; beyond it descriptors go to the global list */

/* A slab header lives apart from its descriptors, so that giving the descriptors' pages back keeps the header. */
struct desc_slab {
	struct desc_slab *next;
	struct fiber *descs; /* DESC_SLAB descriptors, page aligned, never unmapped */
	size_t bytes;
	bool cold; /* pages given back (MADV_DONTNEED); not on the free list */
};
static struct desc_slab *slabs; /* fiber__rt.desc_lock; only grows */

/* Put the FREE descriptors of a warm slab on the global free list. desc_lock held. */
static void slab_link_free(struct desc_slab *s, struct fiber *except)
{
	for (int i = DESC_SLAB - 1; i >= 0; i--) {
		struct fiber *p = &s->descs[i];

		if (p == except || p->magic != FIBER_MAGIC_FREE)
			continue;
		p->desc_next = fiber__rt.desc_free;
		fiber__rt.desc_free = p;
	}
}

static void slab_warm(struct desc_slab *s)
{
	for (int i = 0; i < DESC_SLAB; i++)
		s->descs[i].magic = FIBER_MAGIC_FREE;
	s->cold = false;
}

/* A descriptor from a cold slab, or a new slab; its other descriptors join the global list. NULL: no memory. */
static struct fiber *desc_refill(void)
{
	size_t bytes = (sizeof(struct fiber) * DESC_SLAB + fiber__page_size() - 1) & ~(fiber__page_size() - 1);
	struct desc_slab *s, *fresh;
	struct fiber *p;

	spin_lock(&fiber__rt.desc_lock);
	for (s = slabs; s && !s->cold; s = s->next)
		;
	if (s) {
		slab_warm(s);
		p = &s->descs[0];
		slab_link_free(s, p);
		spin_unlock(&fiber__rt.desc_lock);
		return p;
	}
	spin_unlock(&fiber__rt.desc_lock);

	fresh = fiber__malloc(sizeof(*fresh));
	if (!fresh)
		return NULL;
	fresh->descs = fiber__alloc_should_fail()
			   ? MAP_FAILED
			   : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fresh->descs == MAP_FAILED) {
		fiber__free(fresh, sizeof(*fresh));
		return NULL;
	}
	fresh->bytes = bytes;
	slab_warm(fresh);
	p = &fresh->descs[0];
	spin_lock(&fiber__rt.desc_lock);
	fresh->next = slabs;
	slabs = fresh;
	slab_link_free(fresh, p);
	spin_unlock(&fiber__rt.desc_lock);
	return p;
}

struct fiber *fiber__desc_alloc(void)
{
	struct fiber *p = NULL;
	struct worker *w = this_worker();

	if (w) {
		preempt_disable();
		w = this_worker();
		if (w->descs.head) {
			p = w->descs.head;
			w->descs.head = p->desc_next;
			w->descs.nr--;
		}
		preempt_enable_no_resched();
	}
	if (!p) {
		spin_lock(&fiber__rt.desc_lock);
		p = fiber__rt.desc_free;
		if (p)
			fiber__rt.desc_free = p->desc_next;
		spin_unlock(&fiber__rt.desc_lock);
	}
	if (!p)
		p = desc_refill();
	return p;
}

/* Onto the global list. The magic is changed under the lock: stop's rebuild of the list reads it there. */
static void desc_free_global(struct fiber *p)
{
	spin_lock(&fiber__rt.desc_lock);
	WRITE_ONCE(p->magic, FIBER_MAGIC_FREE); /* stale handles peek at it */
	p->desc_next = fiber__rt.desc_free;
	fiber__rt.desc_free = p;
	spin_unlock(&fiber__rt.desc_lock);
}

void fiber__desc_free(struct fiber *p)
{
	struct worker *w = this_worker();

	if (w) {
		preempt_disable();
		w = this_worker();
		if (w->descs.nr < DESC_CACHE_MAX) {
			WRITE_ONCE(p->magic, FIBER_MAGIC_FREE); /* stale handles peek at it */
			p->desc_next = w->descs.head;
			w->descs.head = p;
			w->descs.nr++;
			preempt_enable_no_resched();
			return;
		}
		preempt_enable_no_resched();
	}
	desc_free_global(p);
}

/* A stopping worker's cache goes back to the global list. */
void fiber__desc_cache_drain(struct fiber_cache *c)
{
	while (c->head) {
		struct fiber *p = c->head;

		c->head = p->desc_next;
		desc_free_global(p);
	}
	c->nr = 0;
}

/*
 * At stop: give back the pages of every slab with no descriptor in use (a joinable fiber that was not joined keeps
 * its slab), and rebuild the free list from the slabs that stay. Plain threads may still free descriptors (a
 * late fiber_join or fiber_detach); they take desc_lock too.
 */
void fiber__desc_slabs_trim(void)
{
	int saved = errno;

	spin_lock(&fiber__rt.desc_lock);
	fiber__rt.desc_free = NULL;
	for (struct desc_slab *s = slabs; s; s = s->next) {
		bool busy = false;

		if (s->cold)
			continue;
		for (int i = 0; i < DESC_SLAB && !busy; i++)
			busy = s->descs[i].magic != FIBER_MAGIC_FREE;
		if (!busy && madvise(s->descs, s->bytes, MADV_DONTNEED) == 0)
			s->cold = true;
		else
			slab_link_free(s, NULL);
	}
	spin_unlock(&fiber__rt.desc_lock);
	errno = saved;
}
