/*
 * runtime/stack.c - fiber units (a stack with the fiber's descriptor at its top): mapping in chunks with a guard
 * region below each stack, the per-worker and global caches, giving memory back, the initial frame, and the stack
 * overflow report.
 *
 * A unit is [guard | stack, growing down | descriptor]. The lowest STACK_GUARD bytes (64 KiB) are the guard; the
 * descriptor (struct fiber) sits at the top, and the fiber's first frames right below it, so that a fiber that
 * parks after a few calls touches one page in all (glibc puts struct pthread at the top of a thread's stack for the
 * same reason). Each unit is @size + one page above its guard, so the stack below the descriptor keeps at least the
 * size asked for. Descriptors sit at one of DESC_COLORS cache-line offsets from the top, chosen by the unit's
 * address: at one offset, the same fields of every descriptor would fall into the same L1 set.
 *
 * The guard is installed with MADV_GUARD_INSTALL where the kernel has it (Linux 6.13+: guard markers in the page
 * tables; the mapping stays one VMA and the guard costs no memory), with mprotect(PROT_NONE) otherwise (no memory
 * either, but two VMAs per stack, which vm.max_map_count limits). 64 KiB rather than a page: a frame larger than
 * the guard can step over it into the neighbouring stack, and frames of several KiB are common;
 * -fstack-clash-protection (libfiber is built with it) makes larger ones probe every page.
 *
 * Units of the default size are mapped UNIT_CHUNK at a time, with all their guards installed by one
 * process_madvise() where the kernel allows it (6.13+; else one madvise each): a fresh fiber then costs its one
 * page fault and no system call. Other sizes get a mapping each. While fibers are being spawned, a worker that goes
 * idle populates the top pages of the next units and maps the next chunk ahead (fiber__stack_prefault), which
 * takes the page faults and the system calls off the spawning worker.
 *
 * Descriptors are type-stable for the life of the process, so the address space of a unit is never unmapped: a
 * handle never points to unmapped memory. A stale one (a second join, a handle from an earlier runtime) reads a
 * descriptor that is not FIBER_MAGIC_LIVE and the call returns -EINVAL or -ESRCH. A joinable fiber keeps its unit
 * until fiber_join or fiber_detach (across fiber_runtime_stop too), as a joinable pthread keeps its stack.
 *
 * Freed units are cached per worker (the worker where the last reference went: a detached fiber's, or its
 * joiner's), then in a global cache. Beyond both, and when the caches are trimmed or drained, a unit gives its
 * pages back (MADV_DONTNEED: they read as zeros, its magic as 0) and goes on a cold list for a later spawn of its
 * size. Under ASan a unit is unpoisoned before reuse: the dead fiber's frames left redzones on it. A cached unit
 * keeps the pages its fiber touched resident, so after a burst (10,000 connections, each a fiber, that all close)
 * the global cache would hold thousands of them for good: the monitor calls fiber__stack_cache_trim() every
 * STACK_TRIM_NS while that cache holds any, which gives back the units no spawn needed over the whole period (the
 * cache's low-water mark), the way Go's scavenger returns idle stack spans. A steady spawn rate keeps what it
 * uses; an idle process gives all of the global cache back within two periods. The per-worker caches
 * (STACK_CACHE_WORKER each) are not trimmed; fiber_runtime_stop gives back every cache.
 *
 * Overflow: every worker has an alternate signal stack, and a SIGSEGV handler (SA_ONSTACK) recognises a fault in
 * the running fiber's guard, prints the fiber's id, name, stack bounds, the faulting address and a backtrace, then
 * restores the default action and returns: the faulting instruction faults again and the process dies of SIGSEGV
 * with the original context (the core dump stays useful). Any other SIGSEGV goes to the handler installed before
 * ours, or to the default action.
 */
#include "internal.h"

#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef FIBER_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#ifndef PIDFD_SELF
#define PIDFD_SELF (-10000) /* Linux 6.14+: the calling thread (and its process) without a pidfd */
#endif

#define STACK_GUARD (64u * 1024u)   /* at least; a multiple of the page size */
#define SIGSTACK_SIZE (64u * 1024u) /* the alternate signal stack: the report and backtrace() run on it */
#define UNIT_CHUNK 64		    /* units per mapping of the default size (20 MiB of address space at 256 KiB) */
#define DESC_COLORS 16		    /* cache-line offsets a descriptor may take below the top of its unit */
#define DESC_BYTES ((sizeof(struct fiber) + 63) & ~(size_t)63)
#define COOL_BATCH 64 /* units whose pages one process_madvise gives back */

static size_t page_size;
static atomic_int guard_install_works = 1;  /* cleared the first time the kernel refuses MADV_GUARD_INSTALL */
static atomic_int guard_batch_works = 1;    /* cleared the first time process_madvise refuses it */
static atomic_int dontneed_batch_works = 1; /* likewise for MADV_DONTNEED */
static atomic_int map_error_said;	    /* the vm.max_map_count message is printed once */

/* The chunk being handed out: [chunk_next, chunk_end), units of chunk_unit bytes. stack_lock. */
static char *chunk_next, *chunk_end;
static size_t chunk_unit;
/*
 * Work an idle worker does ahead of spawns (fiber__stack_prefault): the top pages of the units in
 * [chunk_next, prefault_next) are populated (or being populated), and next_chunk, when set, is a chunk of
 * chunk_unit-byte units mapped ahead, with its guards. fresh_taken counts units handed out of chunks, prefault_seen
 * its value at the last prefault: no new spawns, no work. All stack_lock.
 */
static char *prefault_next, *next_chunk;
static atomic_ullong fresh_taken; /* written under stack_lock, read without it: the idle loop's cheap test */
static unsigned long long prefault_seen;
static atomic_int populate_works = 1; /* cleared the first time process_madvise refuses MADV_POPULATE_WRITE */

/* Units whose pages were given back, one list per size. stack_lock; process lifetime. */
struct cold_list {
	struct cold_list *next;
	size_t total;
	void **units; /* a min-heap by address */
	size_t nr, cap;
};
static struct cold_list *cold;

size_t fiber__page_size(void)
{
	if (unlikely(!page_size))
		page_size = (size_t)sysconf(_SC_PAGESIZE);
	return page_size;
}

size_t fiber__stack_guard_size(void)
{
	size_t pg = fiber__page_size();

	return STACK_GUARD > pg ? STACK_GUARD : pg;
}

/* The mapping size of a unit whose stack has @size usable bytes (page-rounded) below the descriptor. */
static inline size_t unit_total(size_t size)
{
	return fiber__stack_guard_size() + size + page_round(DESC_BYTES + (DESC_COLORS - 1) * 64);
}

/* Where the descriptor of the unit at @base sits: one of DESC_COLORS lines below the top, by the unit's address. */
static inline struct fiber *unit_desc(void *base, size_t total)
{
	uintptr_t b = (uintptr_t)base;
	unsigned color = (unsigned)(((b >> 12) * 0x9e3779b97f4a7c15ull) >> 60) % DESC_COLORS;

	return (struct fiber *)(b + total - DESC_BYTES - (size_t)color * 64);
}

/* Tests: take the mprotect path, as on kernels without MADV_GUARD_INSTALL. */
void fiber__stack_guard_markers(bool on)
{
	atomic_store(&guard_install_works, on);
}

static long max_map_count(void)
{
	char buf[32];
	long v = -1;
	int fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		if (n > 0) {
			buf[n] = 0;
			v = strtol(buf, NULL, 10);
		}
		close(fd);
	}
	return v;
}

/* A stack could not be mapped: say why once, naming the limit that is most likely hit. */
static void stack_map_error(const char *what, int err)
{
	bool guard_markers = atomic_load_explicit(&guard_install_works, memory_order_relaxed);

	if (atomic_exchange(&map_error_said, 1))
		return;
	if (err == ENOMEM)
		fiber__start_error("cannot map a fiber stack (%s: ENOMEM): out of address space or at vm.max_map_count "
				   "(%ld mappings; each stack takes %s); raise vm.max_map_count (sysctl), or use fewer "
				   "or smaller fibers",
				   what, max_map_count(),
				   guard_markers ? "one" : "two, as this kernel has no MADV_GUARD_INSTALL");
	else
		fiber__start_error("cannot map a fiber stack (%s: %s)", what, strerror(err));
}

/*
 * Install the guards of @n units of @total bytes each, starting at @base: guard markers (one process_madvise for
 * all of them where the kernel takes MADV_GUARD_INSTALL that way, else one madvise each), else mprotect. 0 or an
 * errno value.
 */
static int guards_install(char *base, size_t total, unsigned n)
{
	size_t guard = fiber__stack_guard_size();

	if (atomic_load_explicit(&guard_install_works, memory_order_relaxed)) {
		if (n > 1 && atomic_load_explicit(&guard_batch_works, memory_order_relaxed)) {
			struct iovec iov[UNIT_CHUNK];
			long r;

			for (unsigned i = 0; i < n; i++) {
				iov[i].iov_base = base + i * total;
				iov[i].iov_len = guard;
			}
			r = syscall(SYS_process_madvise, PIDFD_SELF, iov, (size_t)n, MADV_GUARD_INSTALL, 0u);
			if (r == (long)(n * guard))
				return 0;
			/* Not on this kernel (or only part): one call each; installing a guard twice is harmless. */
			atomic_store(&guard_batch_works, 0);
		}
		unsigned i = 0;

		while (i < n && madvise(base + i * total, guard, MADV_GUARD_INSTALL) == 0)
			i++;
		if (i == n)
			return 0;
		atomic_store(&guard_install_works, 0);
	}
	for (unsigned i = 0; i < n; i++)
		if (mprotect(base + i * total, guard, PROT_NONE))
			return errno;
	return 0;
}

/*
 * Map @n units of @total bytes with their guards; NULL on failure, said once when @report. @ahead: an idle worker
 * mapping before it is needed, which nobody waits for (the allocation-failure tests' hook leaves it alone).
 */
static char *units_map(size_t total, unsigned n, bool report, bool ahead)
{
	bool inject = !ahead && fiber__alloc_should_fail(); /* the allocation-failure tests' hook */
	char *base = inject ? MAP_FAILED
			    : mmap(NULL, total * n, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	int err;

	if (base == MAP_FAILED) {
		if (report)
			stack_map_error("mmap", inject ? ENOMEM : errno);
		return NULL;
	}
	err = guards_install(base, total, n);
	if (err) {
		munmap(base, total * n);
		if (report)
			stack_map_error("mprotect", err);
		return NULL;
	}
	return base;
}

static inline void stack_prepare_reuse(void *base, size_t total)
{
#ifdef FIBER_HAVE_ASAN
	size_t guard = fiber__stack_guard_size();

	ASAN_UNPOISON_MEMORY_REGION((char *)base + guard, total - guard);
#else
	(void)base, (void)total;
#endif
}

/*
 * Give the pages of @n units back (MADV_DONTNEED: they read as zeros afterwards, so a descriptor's magic reads 0):
 * one process_madvise for all of them where the kernel allows it (one TLB flush), else one madvise each. Under
 * ASan the shadow is unpoisoned first: a dead fiber's frames left redzones there, and the next fiber on the unit
 * must not inherit them.
 */
static void units_dontneed(void *const *base, const size_t *total, unsigned n)
{
	size_t guard = fiber__stack_guard_size();
	struct iovec iov[COOL_BATCH];
	size_t bytes = 0;

	for (unsigned i = 0; i < n; i++) {
#ifdef FIBER_HAVE_ASAN
		ASAN_UNPOISON_MEMORY_REGION((char *)base[i] + guard, total[i] - guard);
#endif
		iov[i].iov_base = (char *)base[i] + guard;
		iov[i].iov_len = total[i] - guard;
		bytes += iov[i].iov_len;
	}
	if (n > 1 && atomic_load_explicit(&dontneed_batch_works, memory_order_relaxed)) {
		if (syscall(SYS_process_madvise, PIDFD_SELF, iov, (size_t)n, MADV_DONTNEED, 0u) == (long)bytes)
			return;
		atomic_store(&dontneed_batch_works, 0); /* not on this kernel: one call each (again is harmless) */
	}
	for (unsigned i = 0; i < n; i++)
		madvise(iov[i].iov_base, iov[i].iov_len, MADV_DONTNEED);
}

/* Take a cached unit of exactly @total bytes from @c, or NULL. Most recently freed first (warm pages). */
static void *cache_get(struct stack_cache *c, size_t total)
{
	for (unsigned i = c->nr; i-- > 0;) {
		if (c->size[i] != total)
			continue;
		void *base = c->stacks[i];

		c->nr--;
		c->stacks[i] = c->stacks[c->nr];
		c->size[i] = c->size[c->nr];
		if (c->nr < c->low)
			c->low = c->nr;
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

/* The cold lists are min-heaps by address. */
static void cold_sift_down(struct cold_list *l, size_t i)
{
	for (;;) {
		size_t m = i, c = 2 * i + 1;

		if (c < l->nr && (uintptr_t)l->units[c] < (uintptr_t)l->units[m])
			m = c;
		if (c + 1 < l->nr && (uintptr_t)l->units[c + 1] < (uintptr_t)l->units[m])
			m = c + 1;
		if (m == i)
			return;
		void *t = l->units[i];

		l->units[i] = l->units[m];
		l->units[m] = t;
		i = m;
	}
}

/*
 * A cold unit of @total bytes, or NULL: the one at the lowest address. A fixed order, so that a runtime started
 * again takes the units of the last one in the order that one took them (from a chunk, by rising address): a
 * handle from the earlier runtime keeps reading as stale until the new one has spawned more fibers than the
 * earlier one had when that handle's fiber was spawned. stack_lock held.
 */
static void *cold_get(size_t total)
{
	for (struct cold_list *l = cold; l; l = l->next) {
		if (l->total != total || !l->nr)
			continue;
		void *base = l->units[0];

		l->units[0] = l->units[--l->nr];
		cold_sift_down(l, 0);
		return base;
	}
	return NULL;
}

/*
 * Keep @base (pages given back already) for a later spawn of the same size. stack_lock held. Without memory for
 * the list the unit is kept nowhere: its address space stays reserved and unused, which costs no memory.
 */
static void cold_put(void *base, size_t total)
{
	struct cold_list *l;
	size_t i;

	for (l = cold; l && l->total != total; l = l->next)
		;
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l)
			return;
		l->total = total;
		l->next = cold;
		cold = l;
	}
	if (l->nr == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		void **units = realloc(l->units, cap * sizeof(*units));

		if (!units)
			return;
		l->units = units;
		l->cap = cap;
	}
	for (i = l->nr++; i && (uintptr_t)l->units[(i - 1) / 2] > (uintptr_t)base; i = (i - 1) / 2)
		l->units[i] = l->units[(i - 1) / 2];
	l->units[i] = base;
}

/* Give back the pages of @n units and put them on the cold lists. Takes stack_lock. */
static void units_cool(void *const *base, const size_t *total, unsigned n)
{
	for (unsigned i = 0; i < n; i += COOL_BATCH)
		units_dontneed(base + i, total + i, n - i < COOL_BATCH ? n - i : COOL_BATCH);
	spin_lock(&fiber__rt.stack_lock);
	for (unsigned i = 0; i < n; i++)
		cold_put(base[i], total[i]);
	spin_unlock(&fiber__rt.stack_lock);
}

/*
 * Take the @n oldest units of @c (fewer if it holds fewer) into @base/@total; returns how many. stack_lock held.
 */
static unsigned cache_take_oldest(struct stack_cache *c, void **base, size_t *total, unsigned n)
{
	if (n > c->nr)
		n = c->nr;
	memcpy(base, c->stacks, n * sizeof(*base));
	memcpy(total, c->size, n * sizeof(*total));
	memmove(c->stacks, c->stacks + n, (c->nr - n) * sizeof(*c->stacks));
	memmove(c->size, c->size + n, (c->nr - n) * sizeof(*c->size));
	c->nr -= n;
	if (c->nr < c->low)
		c->low = c->nr;
	return n;
}

/*
 * A unit that no fiber has used: a new chunk's first, the rest kept as the chunk (the default size), or one
 * mapping of its own (other sizes, or when a chunk cannot be mapped). NULL: no address space or no map count left.
 */
static void *unit_fresh(size_t total)
{
	char *base = NULL, *spare = NULL, *ahead = NULL;
	size_t spare_len = 0, ahead_len = 0;

	if (total == unit_total(fiber__rt.stack_size))
		base = units_map(total, UNIT_CHUNK, false, false);
	if (!base)
		return units_map(total, 1, true, false);
	spin_lock(&fiber__rt.stack_lock);
	atomic_fetch_add_explicit(&fresh_taken, 1, memory_order_relaxed);
	if (chunk_next == chunk_end || chunk_unit != total) {
		/* Units of a chunk that were never handed out hold no descriptor: they may go. */
		spare = chunk_next;
		spare_len = (size_t)(chunk_end - chunk_next);
		if (chunk_unit != total && next_chunk) {
			ahead = next_chunk; /* mapped ahead for the old size */
			ahead_len = (size_t)UNIT_CHUNK * chunk_unit;
			next_chunk = NULL;
		}
		chunk_next = base + total;
		chunk_end = base + (size_t)UNIT_CHUNK * total;
		chunk_unit = total;
		prefault_next = NULL;
	} else {
		/* Another thread mapped a chunk meanwhile: give this one back but its first unit. */
		spare = base + total;
		spare_len = (size_t)(UNIT_CHUNK - 1) * total;
	}
	spin_unlock(&fiber__rt.stack_lock);
	if (spare_len)
		munmap(spare, spare_len);
	if (ahead)
		munmap(ahead, ahead_len);
	return base;
}

/*
 * fiber__fiber_alloc - a descriptor with a stack of at least @size usable bytes (already page-rounded) below it:
 * a unit from this worker's cache, then the global cache, the cold lists, the current chunk, or a new mapping.
 * Only the unit's fields (stack_base, stack_size) are set. NULL: out of address space (said on stderr once).
 */
struct fiber *fiber__fiber_alloc(size_t size)
{
	size_t total = unit_total(size);
	struct worker *w = this_worker();
	struct fiber *p;
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
		if (!base)
			base = cold_get(total);
		if (!base && chunk_unit == total && chunk_next == chunk_end && next_chunk) {
			/* The chunk an idle worker mapped ahead. */
			chunk_next = next_chunk;
			chunk_end = next_chunk + (size_t)UNIT_CHUNK * total;
			next_chunk = NULL;
			prefault_next = NULL;
		}
		if (!base && chunk_unit == total && chunk_next != chunk_end) {
			base = chunk_next;
			chunk_next += total;
			atomic_fetch_add_explicit(&fresh_taken, 1, memory_order_relaxed);
		}
		spin_unlock(&fiber__rt.stack_lock);
	}
	if (!base)
		base = unit_fresh(total);
	if (!base)
		return NULL;
	/* Also a fresh mapping: it may reuse addresses of an unmapped one whose shadow is still poisoned. */
	stack_prepare_reuse(base, total);
	p = unit_desc(base, total);
	p->stack_base = base;
	p->stack_size = total;
	return p;
}

#define PREFAULT_BATCH 16 /* units whose top pages one idle-worker call populates */

/*
 * fiber__stack_prefault - an idle worker's share of spawning: while fibers are being spawned (fresh units taken
 * from chunks since the last call), populate the top pages of the next PREFAULT_BATCH units of the current chunk
 * (one process_madvise, MADV_POPULATE_WRITE) and map the next chunk before this one runs out, so that the spawner
 * finds its page present and its chunk mapped. Bounded work (PREFAULT_BATCH page faults, or one chunk mapped),
 * done before the worker starts polling; nothing when no fiber was spawned fresh since the last call, so an idle process does
 * none of it. Context: an idle worker's idle loop.
 */
void fiber__stack_prefault(void)
{
	struct iovec iov[PREFAULT_BATCH];
	size_t pg = fiber__page_size(), total;
	unsigned n = 0;
	bool map_ahead;
	char *start;

	/*
	 * Every idle entry passes here: without new spawns, leave stack_lock's cache line alone. A stale read only
	 * delays the work to the next idle entry (or does it once more for nothing).
	 */
	if (atomic_load_explicit(&fresh_taken, memory_order_relaxed) == READ_ONCE(prefault_seen))
		return;
	spin_lock(&fiber__rt.stack_lock);
	if (atomic_load_explicit(&fresh_taken, memory_order_relaxed) == prefault_seen || !chunk_unit) {
		spin_unlock(&fiber__rt.stack_lock);
		return;
	}
	WRITE_ONCE(prefault_seen, atomic_load_explicit(&fresh_taken, memory_order_relaxed));
	total = chunk_unit;
	start = prefault_next > chunk_next && prefault_next <= chunk_end ? prefault_next : chunk_next;
	while (n < PREFAULT_BATCH && start + (size_t)(n + 1) * total <= chunk_end) {
		iov[n].iov_base = start + (size_t)(n + 1) * total - pg;
		iov[n].iov_len = pg;
		n++;
	}
	map_ahead = !next_chunk && (size_t)(chunk_end - chunk_next) < 2 * PREFAULT_BATCH * total;
	if (map_ahead)
		n = 0; /* one thing per call: a kick waits for at most one of them */
	prefault_next = start + (size_t)n * total;
	spin_unlock(&fiber__rt.stack_lock);
	if (n && atomic_load_explicit(&populate_works, memory_order_relaxed) &&
	    syscall(SYS_process_madvise, PIDFD_SELF, iov, (size_t)n, MADV_POPULATE_WRITE, 0u) < 0 && errno != ENOMEM &&
	    errno != EFAULT)
		atomic_store(&populate_works, 0); /* not on this kernel */
	if (map_ahead) {
		char *base = units_map(total, UNIT_CHUNK, false, true);
		bool kept = false;

		if (!base)
			return;
		spin_lock(&fiber__rt.stack_lock);
		if (!next_chunk && chunk_unit == total) {
			next_chunk = base;
			kept = true;
		}
		spin_unlock(&fiber__rt.stack_lock);
		if (!kept)
			munmap(base, (size_t)UNIT_CHUNK * total);
	}
}

/* Tests: the chunk being handed out and the prefault mark. */
void fiber__stack_chunk_peek(char **next, char **end, char **prefaulted, size_t *unit)
{
	spin_lock(&fiber__rt.stack_lock);
	*next = chunk_next;
	*end = chunk_end;
	*prefaulted = prefault_next;
	*unit = chunk_unit;
	spin_unlock(&fiber__rt.stack_lock);
}

/*
 * fiber__fiber_free - the last reference to @p is gone (or its spawn failed): its unit goes to this worker's
 * cache, the global cache, or, beyond both, gives its pages back and goes cold. The descriptor reads
 * FIBER_MAGIC_FREE (or 0 once cold) from now on. Context: any thread; @p's stack is not in use (a dead fiber's
 * own reference is dropped after the switch away from it, C2).
 */
void fiber__fiber_free(struct fiber *p)
{
	void *base = p->stack_base;
	size_t total = p->stack_size;
	struct worker *w = this_worker();
	bool kept, was_empty;

	WRITE_ONCE(p->magic, FIBER_MAGIC_FREE); /* stale handles peek at it */
	if (w) {
		preempt_disable();
		kept = cache_put(&this_worker()->stacks, base, total);
		preempt_enable_no_resched();
		if (kept)
			return;
	}
	spin_lock(&fiber__rt.stack_lock);
	was_empty = fiber__rt.gstacks.nr == 0;
	kept = cache_put(&fiber__rt.gstacks, base, total);
	if (!kept && fiber__rt.gstacks.cap) {
		/*
		 * The global cache is full (a burst of exits): its oldest units go cold with this one, in one batch, and
		 * make room for the next frees.
		 */
		void *batch[COOL_BATCH];
		size_t sizes[COOL_BATCH];
		unsigned n = cache_take_oldest(&fiber__rt.gstacks, batch, sizes, COOL_BATCH - 1);

		spin_unlock(&fiber__rt.stack_lock);
		batch[n] = base;
		sizes[n] = total;
		units_cool(batch, sizes, n + 1);
		return;
	}
	spin_unlock(&fiber__rt.stack_lock);
	if (!kept)
		units_cool(&base, &total, 1);
	else if (was_empty)
		/*
		 * The global cache was empty, so a monitor with nothing to watch may sleep without a timeout: wake it so
		 * that it comes back to trim. No fence needed: the monitor announces its sleep before it reads the count
		 * under stack_lock (fiber__stack_cached), so either it sees this unit or this load sees it asleep.
		 */
		fiber__monitor_kick();
}

/*
 * fiber__stack_cache_trim - give back the pages of the global cache's units that no spawn needed since the last
 * call (as many as its low-water mark over that time; the oldest first, cache_get takes the newest), and start a
 * new period. Returns how many units stay cached. Context: the monitor thread; takes stack_lock, gives the pages
 * back outside it.
 */
unsigned fiber__stack_cache_trim(void)
{
	struct stack_cache *c = &fiber__rt.gstacks;
	unsigned quota, left;

	spin_lock(&fiber__rt.stack_lock);
	quota = c->low < c->nr ? c->low : c->nr;
	spin_unlock(&fiber__rt.stack_lock);
	while (quota) {
		void *base[COOL_BATCH];
		size_t size[COOL_BATCH];
		unsigned n;

		spin_lock(&fiber__rt.stack_lock);
		n = cache_take_oldest(c, base, size, quota < COOL_BATCH ? quota : COOL_BATCH);
		spin_unlock(&fiber__rt.stack_lock);
		if (!n)
			break;
		units_cool(base, size, n);
		quota -= n;
	}
	spin_lock(&fiber__rt.stack_lock);
	c->low = c->nr;
	left = c->nr;
	spin_unlock(&fiber__rt.stack_lock);
	return left;
}

/* How many units the global cache holds. Context: any thread; takes stack_lock. */
unsigned fiber__stack_cached(void)
{
	unsigned nr;

	spin_lock(&fiber__rt.stack_lock);
	nr = fiber__rt.gstacks.nr;
	spin_unlock(&fiber__rt.stack_lock);
	return nr;
}

/*
 * A cache of @cap units; with no memory for it, a cache of none (every free goes cold). Installed under
 * stack_lock: a plain thread may be freeing a fiber of an earlier runtime into the global cache.
 */
void fiber__stack_cache_init(struct stack_cache *c, unsigned cap)
{
	void **stacks = fiber__malloc(cap * sizeof(*stacks));
	size_t *size = fiber__malloc(cap * sizeof(*size));

	if (!stacks || !size) {
		fiber__free(stacks, cap * sizeof(*stacks));
		fiber__free(size, cap * sizeof(*size));
		stacks = NULL;
		size = NULL;
		cap = 0;
	}
	spin_lock(&fiber__rt.stack_lock);
	c->nr = 0;
	c->low = 0;
	c->stacks = stacks;
	c->size = size;
	c->cap = cap;
	spin_unlock(&fiber__rt.stack_lock);
}

/* Empty @c (its units give their pages back and go cold) and free the cache itself; later frees skip it. */
void fiber__stack_cache_drain(struct stack_cache *c)
{
	void **stacks;
	size_t *size;
	unsigned nr, cap;

	spin_lock(&fiber__rt.stack_lock);
	stacks = c->stacks;
	size = c->size;
	nr = c->nr;
	cap = c->cap;
	c->stacks = NULL;
	c->size = NULL;
	c->nr = c->cap = c->low = 0;
	spin_unlock(&fiber__rt.stack_lock);
	if (nr)
		units_cool(stacks, size, nr);
	fiber__free(stacks, cap * sizeof(*stacks));
	fiber__free(size, cap * sizeof(*size));
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
	void *top = (void *)fiber__stack_top(p);

	return frame_build(top, fiber__trampoline, (uint64_t)(uintptr_t)p->fn, (uint64_t)(uintptr_t)p->arg, false);
}

/* ------------------------------------------------------------------------------------------------------------
 * Stack overflow report. Everything below runs in a signal handler: no locks, no allocation, no stdio.
 * ---------------------------------------------------------------------------------------------------------- */

static struct sigaction old_segv; /* written once before our handler is installed */
static pthread_once_t segv_once = PTHREAD_ONCE_INIT;
static __thread void *worker_sigstack; /* this worker's alternate signal stack, when we installed one */

struct msg {
	char buf[512];
	size_t len;
};

static void msg_str(struct msg *m, const char *s)
{
	while (*s && m->len < sizeof(m->buf))
		m->buf[m->len++] = *s++;
}

static void msg_num(struct msg *m, unsigned long long v, unsigned base)
{
	char tmp[24];
	int n = 0;

	if (base == 16)
		msg_str(m, "0x");
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n && m->len < sizeof(m->buf))
		m->buf[m->len++] = tmp[--n];
}

static void msg_flush(struct msg *m)
{
	size_t off = 0;

	while (off < m->len) {
		ssize_t n = write(STDERR_FILENO, m->buf + off, m->len - off);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	m->len = 0;
}

static void segv_default(const siginfo_t *si)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	/* A fault repeats when the handler returns; a SIGSEGV sent with kill() must be sent again. */
	if (si->si_code <= 0)
		raise(SIGSEGV);
}

static void overflow_report(struct worker *w, struct fiber *p, uintptr_t addr)
{
	uintptr_t base = (uintptr_t)p->stack_base, guard = fiber__stack_guard_size();
	uintptr_t top = fiber__stack_top(p);
	void *frames[64];
	struct msg m = { .len = 0 };
	int n;

	msg_str(&m, "libfiber: stack overflow in fiber ");
	msg_num(&m, p->id, 10);
	msg_str(&m, " \"");
	msg_str(&m, p->name[0] ? p->name : "(no name)");
	msg_str(&m, "\" on worker ");
	msg_num(&m, (unsigned long long)w->id, 10);
	msg_str(&m, ": fault at ");
	msg_num(&m, addr, 16);
	msg_str(&m, ", stack ");
	msg_num(&m, base + guard, 16);
	msg_str(&m, "-");
	msg_num(&m, top, 16);
	msg_str(&m, " (");
	msg_num(&m, (top - base - guard) / 1024, 10);
	msg_str(&m, " KiB), guard ");
	msg_num(&m, base, 16);
	msg_str(&m, "-");
	msg_num(&m, base + guard, 16);
	msg_str(&m, "; give it a larger stack (fiber_attr.stack_size, FIBER_STACK_SIZE)\nlibfiber: backtrace:\n");
	msg_flush(&m);
	n = backtrace(frames, (int)ARRAY_SIZE(frames));
	backtrace_symbols_fd(frames, n, STDERR_FILENO);
	msg_str(&m, "libfiber: the default action of SIGSEGV follows\n");
	msg_flush(&m);
}

/* Did this fault come from @p running over its stack? The address is in its guard, or its rsp is there. */
static bool is_guard_hit(struct fiber *p, uintptr_t addr, const ucontext_t *uc)
{
	uintptr_t base = (uintptr_t)p->stack_base, guard = fiber__stack_guard_size();
	uintptr_t sp = uc ? (uintptr_t)uc->uc_mcontext.gregs[REG_RSP] : 0;

	if (!base)
		return false;
	if (addr >= base && addr < base + guard)
		return true;
	return sp >= base - guard && sp < base + guard;
}

static void segv_handler(int sig, siginfo_t *si, void *ctx)
{
	struct worker *w = this_worker();
	struct fiber *p = w ? w->current : NULL;
	int saved = errno;

	if (p && !is_idle_task(p) && si->si_code > 0 && is_guard_hit(p, (uintptr_t)si->si_addr, ctx)) {
		overflow_report(w, p, (uintptr_t)si->si_addr);
		segv_default(si);
		errno = saved;
		return;
	}
	/* Not ours: whoever handled SIGSEGV before the runtime started. */
	if (old_segv.sa_flags & SA_SIGINFO) {
		if (old_segv.sa_sigaction) {
			old_segv.sa_sigaction(sig, si, ctx);
			errno = saved;
			return;
		}
	} else if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
		old_segv.sa_handler(sig);
		errno = saved;
		return;
	}
	segv_default(si);
	errno = saved;
}

static void segv_install(void)
{
	struct sigaction sa;
	void *frames[2];

	/* The first backtrace() loads the unwinder (it allocates): do it now, not in the handler. */
	backtrace(frames, 2);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = segv_handler;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSEGV, NULL, &old_segv) || sigaction(SIGSEGV, &sa, NULL))
		fiber__start_error("cannot install the SIGSEGV handler: stack overflows will not be reported");
}

/*
 * On a worker thread, at its start: the handler (once per process) and this thread's alternate signal stack; nothing
 * with FIBER_CFG_NO_OVERFLOW_REPORT.
 */
void fiber__overflow_setup(void)
{
	stack_t cur, ss;
	void *base;

	if (fiber__rt.cfg_flags & FIBER_CFG_NO_OVERFLOW_REPORT)
		return;
	pthread_once(&segv_once, segv_install);
	/* Keep an alternate stack someone else installed (ASan gives every thread one). */
	if (sigaltstack(NULL, &cur) || !(cur.ss_flags & SS_DISABLE))
		return;
	base = fiber__alloc_should_fail() ? MAP_FAILED
					  : mmap(NULL, SIGSTACK_SIZE + fiber__page_size(), PROT_READ | PROT_WRITE,
						 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (base == MAP_FAILED)
		return;
	mprotect(base, fiber__page_size(), PROT_NONE); /* an overflow of the handler faults, not corrupts */
	ss.ss_sp = (char *)base + fiber__page_size();
	ss.ss_size = SIGSTACK_SIZE;
	ss.ss_flags = 0;
	if (sigaltstack(&ss, NULL)) {
		munmap(base, SIGSTACK_SIZE + fiber__page_size());
		return;
	}
	worker_sigstack = base;
}

/* On a worker thread, as it leaves: remove and free the alternate stack fiber__overflow_setup installed. */
void fiber__overflow_teardown(void)
{
	stack_t ss;

	if (!worker_sigstack)
		return;
	memset(&ss, 0, sizeof(ss));
	ss.ss_flags = SS_DISABLE;
	sigaltstack(&ss, NULL);
	munmap(worker_sigstack, SIGSTACK_SIZE + fiber__page_size());
	worker_sigstack = NULL;
}
