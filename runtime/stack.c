/*
 * runtime/stack.c - fiber stacks: mmap with a guard region below each, a per-worker cache, the initial frame, and
 * the stack overflow report.
 *
 * A stack is one anonymous mapping: the lowest STACK_GUARD bytes (64 KiB) are the guard, the rest is the stack,
 * growing down from the top. The guard is installed with MADV_GUARD_INSTALL where the kernel has it (Linux 6.13+:
 * guard markers in the page tables; the mapping stays one VMA and the guard costs no memory), with
 * mprotect(PROT_NONE) otherwise (no memory either, but two VMAs per stack, which vm.max_map_count limits). 64 KiB
 * rather than a page: a frame larger than the guard can step over it into the neighbouring stack, and frames of
 * several KiB are common; -fstack-clash-protection (libfiber is built with it) makes larger ones probe every page.
 *
 * Freed stacks are cached per worker (the worker that reaps a dead fiber keeps its stack for the next spawn of the
 * same size on that worker), then in a global cache; only beyond both are they unmapped. Under ASan a cached stack is
 * unpoisoned before reuse: the dead fiber's frames left redzones on it. A cached stack keeps the pages its fiber
 * touched resident, so after a burst (10,000 connections, each a fiber, that all close) the global cache would
 * hold thousands of them for good: the monitor calls fiber__stack_cache_trim() every STACK_TRIM_NS while that cache
 * holds any, which unmaps the stacks no spawn needed over the whole period (the cache's low-water mark), the way
 * Go's scavenger returns idle stack spans. A steady spawn rate keeps what it uses; an idle process gives all of
 * the global cache back within two periods. The per-worker caches (STACK_CACHE_WORKER each) are not trimmed.
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
#include <ucontext.h>
#include <unistd.h>

#ifdef FIBER_HAVE_ASAN
#include <sanitizer/asan_interface.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define STACK_GUARD (64u * 1024u)   /* at least; a multiple of the page size */
#define SIGSTACK_SIZE (64u * 1024u) /* the alternate signal stack: the report and backtrace() run on it */

static size_t page_size;
static atomic_int guard_install_works = 1; /* cleared the first time the kernel refuses MADV_GUARD_INSTALL */
static atomic_int map_error_said;	   /* the vm.max_map_count message is printed once */

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

static void *stack_map(size_t total)
{
	size_t guard = fiber__stack_guard_size();
	bool inject = fiber__alloc_should_fail(); /* the allocation-failure tests' hook */
	void *base = inject ? MAP_FAILED
			    : mmap(NULL, total, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	int err;

	if (base == MAP_FAILED) {
		stack_map_error("mmap", inject ? ENOMEM : errno);
		return NULL;
	}
	if (atomic_load_explicit(&guard_install_works, memory_order_relaxed)) {
		if (madvise(base, guard, MADV_GUARD_INSTALL) == 0)
			return base;
		atomic_store(&guard_install_works, 0);
	}
	if (mprotect(base, guard, PROT_NONE)) {
		err = errno;
		munmap(base, total);
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
 * Unmap a stack. Under ASan its shadow is unpoisoned first: a dead fiber's frames left redzones there, and ASan
 * does not clear the shadow of unmapped memory, so the next mapping at that address (another stack, but also an
 * io_uring ring or anything else) would inherit them and fault on its first legitimate write.
 */
static void stack_unmap(void *base, size_t total)
{
#ifdef FIBER_HAVE_ASAN
	ASAN_UNPOISON_MEMORY_REGION(base, total);
#endif
	munmap(base, total);
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

/*
 * Allocate @size usable bytes (already page-rounded) plus the guard for @p: from this worker's cache, then the
 * global one, then mmap. 0 or -ENOMEM.
 */
int fiber__stack_alloc(struct fiber *p, size_t size)
{
	size_t total = size + fiber__stack_guard_size();
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
	bool kept, was_empty;

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
	was_empty = fiber__rt.gstacks.nr == 0;
	kept = cache_put(&fiber__rt.gstacks, base, total);
	spin_unlock(&fiber__rt.stack_lock);
	if (!kept)
		stack_unmap(base, total);
	else if (was_empty)
		/*
		 * The global cache was empty, so a monitor with nothing to watch may sleep without a timeout: wake it so
		 * that it comes back to trim. No fence needed: the monitor announces its sleep before it reads the count
		 * under stack_lock (fiber__stack_cached), so either it sees this stack or this load sees it asleep.
		 */
		fiber__monitor_kick();
}

/*
 * fiber__stack_cache_trim - unmap the global cache's stacks that no spawn needed since the last call (as many as
 * its low-water mark over that time; the oldest first, cache_get takes the newest), and start a new period.
 * Returns how many stacks stay cached. Context: the monitor thread; takes stack_lock, unmaps outside it.
 */
unsigned fiber__stack_cache_trim(void)
{
	struct stack_cache *c = &fiber__rt.gstacks;
	unsigned quota, left;

	spin_lock(&fiber__rt.stack_lock);
	quota = c->low < c->nr ? c->low : c->nr;
	spin_unlock(&fiber__rt.stack_lock);
	while (quota) {
		void *base[64];
		size_t size[64];
		unsigned n;

		spin_lock(&fiber__rt.stack_lock);
		n = quota < 64 ? quota : 64;
		if (n > c->nr)
			n = c->nr;
		memcpy(base, c->stacks, n * sizeof(*base));
		memcpy(size, c->size, n * sizeof(*size));
		memmove(c->stacks, c->stacks + n, (c->nr - n) * sizeof(*c->stacks));
		memmove(c->size, c->size + n, (c->nr - n) * sizeof(*c->size));
		c->nr -= n;
		spin_unlock(&fiber__rt.stack_lock);
		for (unsigned i = 0; i < n; i++)
			stack_unmap(base[i], size[i]);
		if (!n)
			break;
		quota -= n;
	}
	spin_lock(&fiber__rt.stack_lock);
	c->low = c->nr;
	left = c->nr;
	spin_unlock(&fiber__rt.stack_lock);
	return left;
}

/* How many stacks the global cache holds. Context: any thread; takes stack_lock. */
unsigned fiber__stack_cached(void)
{
	unsigned nr;

	spin_lock(&fiber__rt.stack_lock);
	nr = fiber__rt.gstacks.nr;
	spin_unlock(&fiber__rt.stack_lock);
	return nr;
}

/* A cache of @cap stacks; with no memory for it, a cache of none (every free unmaps). */
void fiber__stack_cache_init(struct stack_cache *c, unsigned cap)
{
	c->nr = 0;
	c->low = 0;
	c->stacks = fiber__malloc(cap * sizeof(*c->stacks));
	c->size = fiber__malloc(cap * sizeof(*c->size));
	c->cap = cap;
	if (!c->stacks || !c->size) {
		fiber__stack_cache_drain(c); /* frees the half that was allocated */
		c->stacks = NULL;
		c->size = NULL;
		c->cap = 0;
	}
}

/* Unmap every cached stack and free the cache itself. */
void fiber__stack_cache_drain(struct stack_cache *c)
{
	while (c->nr) {
		c->nr--;
		stack_unmap(c->stacks[c->nr], c->size[c->nr]);
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
	uintptr_t top = base + p->stack_size;
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
