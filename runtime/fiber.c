/*
 * runtime/fiber.c - the runtime's life cycle and the fiber calls of the public API: start, stop, run, spawn, join,
 * detach, exit, self, id, sleep, cancel; fiber descriptors and the runtime's allocator.
 *
 * Descriptors are type-stable for the life of the process: they come from mmap'd slabs that are never unmapped,
 * are recycled through a per-worker cache and a global list, and at fiber_runtime_stop every slab none of whose
 * descriptors is in use is given back to the kernel (MADV_DONTNEED: its pages read as zeros afterwards). So a
 * handle never points to freed memory: a stale one (a second join, a handle from an earlier runtime) reads a
 * descriptor that is not FIBER_MAGIC_LIVE and the call returns -EINVAL or -ESRCH. A joinable fiber that exited
 * and was not joined keeps its descriptor - across fiber_runtime_stop too - until fiber_join or fiber_detach.
 *
 * Reference counting (usage): a running fiber holds one reference on itself, dropped by the fiber that runs after
 * its death (finish_task_switch); a joinable fiber's handle holds another, dropped by fiber_join or fiber_detach.
 *
 * Plain threads and the runtime's end: a plain pthread that calls into a running runtime (spawn, cancel, setattr)
 * holds it open for the duration of the call (fiber__rt_enter/fiber__rt_exit); fiber_runtime_stop closes that gate
 * before it frees the workers and waits until the calls in flight have left. Fibers need no gate: while one runs,
 * nr_fibers is not 0 and stop waits.
 */
#include "io.h"

#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef FIBER_LIBC_MALLOC
#include <jemalloc/jemalloc.h>
#endif

struct runtime fiber__rt;
#define GATE_CLOSED (1 << 30) /* fiber__rt.gate: stop has begun to tear the runtime down */
static pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER; /* start/stop against each other */
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

#define DESC_SLAB 128        /* descriptors per slab */
#define DESC_CACHE_MAX 128   /* per-worker cache; beyond it descriptors go to the global list */

/* A slab header lives apart from its descriptors, so that giving the descriptors' pages back keeps the header. */
struct desc_slab {
	struct desc_slab *next;
	struct fiber *descs;     /* DESC_SLAB descriptors, page aligned, never unmapped */
	size_t bytes;
	bool cold;               /* pages given back (MADV_DONTNEED); not on the free list */
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
		fiber__rt.desc_free_nr++;
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
	fresh->descs = fiber__alloc_should_fail() ? MAP_FAILED
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
		if (p) {
			fiber__rt.desc_free = p->desc_next;
			fiber__rt.desc_free_nr--;
		}
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
	fiber__rt.desc_free_nr++;
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
static void desc_slabs_trim(void)
{
	int saved = errno;

	spin_lock(&fiber__rt.desc_lock);
	fiber__rt.desc_free = NULL;
	fiber__rt.desc_free_nr = 0;
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

/* ------------------------------------------------------------------------------------------------------------
 * Runtime
 * ---------------------------------------------------------------------------------------------------------- */

const char *fiber_version(void)
{
#define STR2(x) #x
#define STR(x) STR2(x)
	return STR(FIBER_VERSION_MAJOR) "." STR(FIBER_VERSION_MINOR) "." STR(FIBER_VERSION_PATCH);
}

void fiber_config_init(struct fiber_config *cfg)
{
	if (cfg)
		memset(cfg, 0, sizeof(*cfg));
}

static int stack_size_valid(size_t size)
{
	return size >= FIBER_STACK_MIN && size <= FIBER_STACK_MAX;
}

static size_t page_round(size_t size)
{
	size_t pg = fiber__page_size();

	return (size + pg - 1) & ~(pg - 1);
}

static int runtime_start(const struct fiber_config *cfg)
{
	struct fiber__start_cfg c;
	struct fiber_config dbg;
	int ret;

	if (this_worker()) {
		fiber__start_error("fiber_runtime_start called from a fiber or worker: the runtime is running");
		return -EBUSY;
	}
	ret = fiber__config_resolve(cfg, &c); /* env.c; prints what it refuses */
	if (ret)
		return ret;
	/* The debugging fields (stats.c, trace.c) are resolved apart from the rest: env FIBER_DUMP_SIGNAL, ... */
	fiber_config_init(&dbg);
	if (cfg)
		dbg = *cfg;
	ret = fiber__debug_config(&dbg);
	if (ret)
		return ret;

	pthread_mutex_lock(&rt_lock);
	if (atomic_load(&fiber__rt.running)) {
		pthread_mutex_unlock(&rt_lock);
		fiber__start_error("a runtime is already running; fiber_runtime_stop() it first");
		return -EBUSY;
	}
	fiber__clock_init();
	ret = fiber__trace_start(dbg.trace_file, c.workers + c.spare_threads); /* first: nothing to undo when it fails */
	if (ret) {
		pthread_mutex_unlock(&rt_lock);
		return ret;
	}
	fiber__rt.stack_size = page_round(c.stack_size);
	fiber__rt.tick_hz = c.tick_hz;
	fiber__rt.cfg_flags = c.flags;
	fiber__rt.tick_ns = c.tick_hz ? 1000000000ull / c.tick_hz : 1000000ull;
	fiber__rt.rr_timeslice_ns = c.rr_timeslice_ms * 1000000ull;
	fiber__rt.pin_workers = c.pin;
	fiber__rt.host_policy = c.host_policy;
	fiber__rt.host_priority = c.host_priority;
	fiber__rt.io_entries = c.io_entries;
	fiber__rt.spare_threads = c.spare_threads;
	/* sysctl_sched_base_slice: 0.75 ms scaled by 1 + ilog2(min(cpus, 8)), as the kernel's tunable scaling */
	fiber__rt.base_slice_ns = 750000ull * (1u + (unsigned)(31 - __builtin_clz(c.workers < 8 ? c.workers : 8)));
	spin_lock_init(&fiber__rt.dl_lock);
	atomic_store(&fiber__rt.nr_stoppers, 0);
	atomic_store(&fiber__rt.stopping, 0);
	atomic_store(&fiber__rt.nr_fibers, 0);
	atomic_store(&fiber__rt.stop_waiting, 0);
	fiber__rt.gen++;
	/* desc_lock is not re-initialized: a plain thread may be freeing a descriptor of an earlier runtime. */
	spin_lock_init(&fiber__rt.stack_lock);
	fiber__stack_cache_init(&fiber__rt.gstacks, STACK_CACHE_GLOBAL);
	for (unsigned i = 0; i < ARRAY_SIZE(fiber__rt.idle_mask); i++)
		atomic_store(&fiber__rt.idle_mask[i], 0);
	if (!atomic_load(&fiber__rt.next_id))
		atomic_store(&fiber__rt.next_id, 1); /* id 0 is the idle fibers' */
	ret = fiber__io_select(); /* uring.c: io_uring, or the poll path when the kernel refuses it */
	if (!ret)
		ret = fiber__workers_start(c.workers);
	if (ret) { /* worker.c (or uring.c) printed what failed */
		fiber__io_release();
		fiber__trace_stop();
		fiber__stack_cache_drain(&fiber__rt.gstacks);
		pthread_mutex_unlock(&rt_lock);
		return ret;
	}
	ret = fiber__stoppers_start();
	if (!ret)
		ret = fiber__monitor_start();
	if (ret) {
		if (ret == -ENOMEM)
			fiber__start_error("out of memory for the stopper fibers; lower fiber_config.workers or "
					   "FIBER_STACK_SIZE, or raise the memory limit");
		else
			fiber__start_error("cannot create the monitor thread (%s); raise RLIMIT_NPROC or lower "
					   "fiber_config.workers", strerror(-ret));
		fiber__stoppers_stop();
		fiber__workers_stop();
		fiber__io_release();
		fiber__trace_stop();
		fiber__stack_cache_drain(&fiber__rt.gstacks);
		desc_slabs_trim();
		pthread_mutex_unlock(&rt_lock);
		return ret;
	}
	/* Open the gate for plain threads; the count of late callers that saw it closed stays balanced. */
	atomic_fetch_and(&fiber__rt.gate, ~GATE_CLOSED);
	atomic_store_explicit(&fiber__rt.running, 1, memory_order_release);
	fiber__debug_start(&dbg);
	pthread_mutex_unlock(&rt_lock);
	return 0;
}

/*
 * A plain thread's way into a runtime call that touches the workers: true if the runtime runs and stays until
 * fiber__rt_exit. A fiber (or a worker's own thread) needs no gate: the runtime cannot stop under it.
 */
bool fiber__rt_enter(void)
{
	if (this_worker())
		return atomic_load_explicit(&fiber__rt.running, memory_order_acquire);
	/* seq_cst: pairs with stop's fetch_or of GATE_CLOSED; either we see it closed or stop sees us inside. */
	if (!(atomic_fetch_add_explicit(&fiber__rt.gate, 1, memory_order_seq_cst) & GATE_CLOSED) &&
	    atomic_load_explicit(&fiber__rt.running, memory_order_acquire))
		return true;
	fiber__rt_exit();
	return false;
}

void fiber__rt_exit(void)
{
	if (this_worker())
		return;
	if (atomic_fetch_sub_explicit(&fiber__rt.gate, 1, memory_order_release) == (GATE_CLOSED | 1))
		fiber__futex(&fiber__rt.gate, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

int fiber_runtime_start(const struct fiber_config *cfg)
{
	int saved = errno; /* environment parsing, mmap, madvise: the caller's errno stays as it was */
	int ret = runtime_start(cfg);

	errno = saved;
	return ret;
}

/* Wait until no fiber is left (nr_fibers is also the futex word). */
static void wait_for_nr_fibers(void)
{
	for (;;) {
		int n = atomic_load_explicit(&fiber__rt.nr_fibers, memory_order_acquire);

		if (n == 0)
			break;
		/* A timeout as a safety net only: the last reaper wakes us. */
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		fiber__futex(&fiber__rt.nr_fibers, FUTEX_WAIT_PRIVATE, n, &ts);
	}
}

/*
 * Wait until no fiber is left and no plain thread is inside a runtime call. Fibers may spawn fibers until the
 * last one exits; plain threads may spawn until the gate closes. A plain spawn that got through the gate before
 * it closed may still add a fiber, so after the calls in flight have left, look at nr_fibers again.
 */
static void wait_for_fibers(void)
{
	/* seq_cst: a plain spawn that does not see it got through the gate first, and is waited for below. */
	atomic_store_explicit(&fiber__rt.stop_waiting, 1, memory_order_seq_cst);
	for (;;) {
		int g;

		wait_for_nr_fibers();
		atomic_fetch_or_explicit(&fiber__rt.gate, GATE_CLOSED, memory_order_seq_cst);
		while ((g = atomic_load_explicit(&fiber__rt.gate, memory_order_acquire)) != GATE_CLOSED)
			fiber__futex(&fiber__rt.gate, FUTEX_WAIT_PRIVATE, g, NULL);
		if (!atomic_load_explicit(&fiber__rt.nr_fibers, memory_order_acquire))
			break;
	}
	atomic_store(&fiber__rt.stop_waiting, 0);
}

int fiber_runtime_stop(void)
{
	int saved = errno;

	if (this_worker())
		return -EDEADLK;
	pthread_mutex_lock(&rt_lock);
	if (!atomic_load(&fiber__rt.running)) {
		pthread_mutex_unlock(&rt_lock);
		return -ESRCH;
	}
	wait_for_fibers();
	fiber__debug_stop(); /* after the wait: a program that hangs in stop still gets its dump, its deadlock report */
	fiber__monitor_stop();
	fiber__stoppers_stop();
	fiber__workers_stop();
	fiber__io_release(); /* the readiness path's poller: every fiber has exited */
	fiber__trace_stop(); /* the workers are gone: the buffers are quiescent */
	atomic_store(&fiber__rt.running, 0);
	spin_lock(&fiber__rt.stack_lock);
	fiber__stack_cache_drain(&fiber__rt.gstacks);
	spin_unlock(&fiber__rt.stack_lock);
	desc_slabs_trim();
	pthread_mutex_unlock(&rt_lock);
	errno = saved;
	return 0;
}

struct run_arg {
	void (*fn)(void *);
	void *arg;
};

static void *run_main(void *a)
{
	struct run_arg *ra = a;

	ra->fn(ra->arg);
	return NULL;
}

int fiber_run(const struct fiber_config *cfg, void (*fn)(void *), void *arg)
{
	struct run_arg ra = { fn, arg };
	struct fiber_attr attr;
	int ret;

	if (!fn)
		return -EINVAL;
	ret = fiber_runtime_start(cfg);
	if (ret)
		return ret;
	fiber_attr_init(&attr);
	attr.name = "main";
	attr.flags = FIBER_ATTR_DETACHED;
	ret = fiber_spawn(NULL, &attr, run_main, &ra);
	fiber_runtime_stop();
	return ret;
}

unsigned fiber_worker_count(void)
{
	return atomic_load_explicit(&fiber__rt.running, memory_order_acquire) ? fiber__rt.nr_workers : 0;
}

int fiber_worker_id(void)
{
	struct worker *w = this_worker();

	return w && !is_idle_task(w->current) && !w->spare ? w->id : -1; /* a spare thread is no worker */
}

/* ------------------------------------------------------------------------------------------------------------
 * Fibers
 * ---------------------------------------------------------------------------------------------------------- */

void fiber_attr_init(struct fiber_attr *attr)
{
	if (!attr)
		return;
	memset(attr, 0, sizeof(*attr));
	attr->sched.policy = FIBER_SCHED_NORMAL;
	CPU_ZERO(&attr->affinity);
}

/*
 * May a fiber be spawned now? Fibers may spawn until the last one has exited (fiber_run's main fiber spawns while
 * stop waits for it). A plain thread may not once fiber_runtime_stop has begun: otherwise a thread that keeps
 * spawning would keep the runtime from ever stopping. (Its other calls - wake-ups, cancel - still work then.)
 */
static bool spawn_allowed(void)
{
	if (!atomic_load_explicit(&fiber__rt.running, memory_order_acquire) ||
	    atomic_load_explicit(&fiber__rt.stopping, memory_order_relaxed))
		return false;
	return this_worker() || !atomic_load_explicit(&fiber__rt.stop_waiting, memory_order_seq_cst);
}

/* An empty affinity mask (= every worker), without counting its bits (CPU_COUNT) on the spawn path. */
static inline bool mask_empty(const void *mask, size_t size)
{
	const unsigned char *b = mask;
	uint64_t acc = 0, w;

	for (size_t i = 0; i + sizeof(w) <= size; i += sizeof(w)) {
		memcpy(&w, b + i, sizeof(w));
		acc |= w;
	}
	for (size_t i = size & ~(sizeof(w) - 1); i < size; i++)
		acc |= b[i];
	return !acc;
}
#define cpuset_empty(set) mask_empty((set), sizeof(*(set)))

static void fiber_init(struct fiber *p, const struct fiber_attr *attr, void *(*fn)(void *), void *arg, bool detached)
{
	unsigned n = fiber__rt.nr_workers;
	int cnt = 0;

	/* Everything but the descriptor-cache fields starts from zero. */
	memset(p, 0, offsetof(struct fiber, desc_next));
	WRITE_ONCE(p->magic, FIBER_MAGIC_LIVE);
	p->rt_gen = fiber__rt.gen;
	p->id = atomic_fetch_add_explicit(&fiber__rt.next_id, 1, memory_order_relaxed);
	p->fn = fn;
	p->arg = arg;
	atomic_init(&p->state, TASK_NEW);
	spin_lock_init(&p->pi_lock);
	fiber__init_waitqueue_head(&p->join_wq);
	atomic_init(&p->usage, detached ? 1 : 2);
	atomic_init(&p->join_state, detached ? JOIN_DETACHED : JOIN_JOINABLE);
	if (attr->name)
		snprintf(p->name, sizeof(p->name), "%s", attr->name);
	/* p->cpus_mask is zero already (the memset above) */
	if (cpuset_empty(&attr->affinity)) {
		for (unsigned i = 0; i < n; i++)
			CPU_SET(i, &p->cpus_mask);
		cnt = (int)n;
	} else {
		for (unsigned i = 0; i < n; i++) {
			if (CPU_ISSET(i, &attr->affinity)) {
				CPU_SET(i, &p->cpus_mask);
				cnt++;
			}
		}
	}
	p->nr_cpus_allowed = cnt;
	p->cpu = this_worker() ? this_worker()->id : 0;
	if (!CPU_ISSET(p->cpu, &p->cpus_mask))
		for (p->cpu = 0; !CPU_ISSET(p->cpu, &p->cpus_mask); p->cpu++)
			;
	p->wake_cpu = p->cpu;
}

/* Keep every fiber on its home worker's list, for fiber_dump. */
static void fiber_list(struct fiber *p)
{
	struct worker *w = &fiber__rt.workers[p->cpu];

	p->home = p->cpu;
	spin_lock(&w->all_lock);
	list_add_tail(&p->all, &w->all_fibers);
	spin_unlock(&w->all_lock);
	fiber__trace_name(p);
}

void fiber__fiber_unlist(struct fiber *p)
{
	struct worker *w = &fiber__rt.workers[p->home];

	spin_lock(&w->all_lock);
	list_del_init(&p->all);
	spin_unlock(&w->all_lock);
}

/* A runtime fiber (the stoppers): pinned to @cpu, detached, not counted as a user fiber. */
struct fiber *fiber__spawn_kthread(int cpu, void *(*fn)(void *), void *arg, const struct sched_class *cls,
				   const char *name)
{
	struct fiber_attr attr;
	struct fiber *p = fiber__desc_alloc();

	if (!p)
		return NULL;
	fiber_attr_init(&attr);
	attr.name = name;
	CPU_SET(cpu, &attr.affinity);
	fiber_init(p, &attr, fn, arg, true);
	p->flags |= PF_KTHREAD;
	if (fiber__stack_alloc(p, fiber__rt.stack_size)) {
		fiber__desc_free(p);
		return NULL;
	}
	fiber__sched_fork(p, &attr.sched);
	p->sched_class = cls;
	p->policy = FIBER_SCHED_FIFO; /* what the stopper looks like from outside, as in Linux */
	p->rt_priority = 99;
	p->prio = p->normal_prio = 0;
	p->sp = fiber__fiber_frame_init(p);
	if (cls == &fiber__stop_sched_class)
		cpu_rq(cpu)->stop = p;
	fiber_list(p);
	fiber__wake_up_new_task(p);
	return p;
}

static int affinity_valid(const cpu_set_t *set)
{
	if (cpuset_empty(set))
		return 1;
	for (unsigned i = 0; i < fiber__rt.nr_workers; i++)
		if (CPU_ISSET(i, set))
			return 1;
	return 0;
}

/* What fiber_attr_init() sets, for fiber_spawn(NULL attr) without initialising one per call. */
static const struct fiber_attr default_attr = { .sched = { .policy = FIBER_SCHED_NORMAL } };

int fiber_spawn(fiber_t **out, const struct fiber_attr *attr, void *(*fn)(void *), void *arg)
{
	struct fiber *p;
	size_t size;
	int ret, saved = errno;

	if (!fn)
		return -EINVAL;
	if (!attr)
		attr = &default_attr;
	if (attr->flags & ~FIBER_ATTR_DETACHED)
		return -EINVAL;
	if (attr->stack_size && !stack_size_valid(attr->stack_size))
		return -EINVAL;
	ret = fiber__sched_attr_check_spawn(&attr->sched);
	if (ret)
		return ret;
	/* A plain thread holds the runtime open until the fiber is queued (stop then waits for it). */
	if (!fiber__rt_enter())
		return -ESRCH;
	if (!spawn_allowed()) {
		ret = -ESRCH;
		goto out;
	}
	ret = -EINVAL;
	if (!affinity_valid(&attr->affinity))
		goto out;

	size = attr->stack_size ? page_round(attr->stack_size) : fiber__rt.stack_size;
	ret = -ENOMEM;
	p = fiber__desc_alloc();
	if (!p)
		goto out;
	fiber_init(p, attr, fn, arg, out == NULL || (attr->flags & FIBER_ATTR_DETACHED));
	ret = fiber__stack_alloc(p, size);
	if (ret) {
		fiber__desc_free(p);
		goto out;
	}
	fiber__sched_fork(p, &attr->sched);
	ret = fiber__sched_admit_new(p);
	if (ret) {
		fiber__stack_free(p);
		fiber__desc_free(p);
		goto out;
	}
	p->sp = fiber__fiber_frame_init(p);
	if (out)
		*out = (attr->flags & FIBER_ATTR_DETACHED) ? NULL : p;
	atomic_fetch_add_explicit(&fiber__rt.nr_fibers, 1, memory_order_relaxed);
	fiber_list(p);
	fiber__wake_up_new_task(p);
	ret = 0;
out:
	fiber__rt_exit();
	errno = saved;
	/* The return from a runtime call is a preemption point. */
	fiber__preempt_point();
	return ret;
}

/* Join from a plain pthread: sleep in the kernel on the exited flag. */
static void join_wait_pthread(struct fiber *f)
{
	atomic_store_explicit(&f->pthread_joiner, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst); /* pairs with the fence in fiber__exit */
	while (!atomic_load_explicit(&f->exited, memory_order_acquire))
		fiber__futex(&f->exited, FUTEX_WAIT_PRIVATE, 0, NULL);
}

/* Join from a fiber: an interruptible wait on the fiber's join queue (a cancellation point). */
static int join_wait_fiber(struct fiber *f)
{
	struct wait_queue_entry e = { .flags = 0 };
	int ret = 0;

	INIT_LIST_HEAD(&e.entry);
	/*
	 * yield_to's buddy half: if the fiber we wait for is queued on this worker, it runs next (while eligible).
	 * Joins then run depth-first, which keeps a tree of spawns (skynet) from growing breadth-first.
	 */
	if (!atomic_load_explicit(&f->exited, memory_order_acquire)) {
		struct worker *w;
		struct rq *rq;

		preempt_disable();
		w = this_worker();
		rq = &w->rq;
		spin_lock(&rq->lock);
		if (READ_ONCE(f->cpu) == w->id && task_on_rq_queued(f)) /* f->cpu: a waker may move it */
			fiber__set_next_buddy(rq, f);
		spin_unlock(&rq->lock);
		preempt_enable_no_resched();
	}
	fiber__set_wait(current_fiber(), "join", f);
	for (;;) {
		fiber__prepare_to_wait(&f->join_wq, &e, TASK_INTERRUPTIBLE);
		if (atomic_load_explicit(&f->exited, memory_order_acquire))
			break;
		if (fiber__signal_pending(current_fiber())) {
			ret = -ECANCELED;
			break;
		}
		fiber__schedule();
	}
	fiber__finish_wait(&f->join_wq, &e);
	return ret;
}

/*
 * A handle whose descriptor is not live: joined or detached already in this runtime (-EINVAL, as pthread_join
 * would say), or a leftover of an earlier runtime (-ESRCH). Either way nothing is written through it.
 */
static int stale_handle(const struct fiber *f)
{
	return atomic_load_explicit(&fiber__rt.running, memory_order_acquire) && f->rt_gen == fiber__rt.gen ? -EINVAL
													  : -ESRCH;
}

/*
 * Join works on any live handle, also after the runtime that ran the fiber has stopped (the fiber has exited then:
 * stop waits for every fiber), so a handle is never left dangling.
 */
int fiber_join(fiber_t *f, void **retval)
{
	struct fiber *self = current_fiber();
	int expected = JOIN_JOINABLE;
	int ret;

	if (!f)
		return -EINVAL;
	if (self && !is_idle_task(self) && f == self)
		return -EDEADLK;
	if (READ_ONCE(f->magic) != FIBER_MAGIC_LIVE)
		return stale_handle(f);
	if (!atomic_compare_exchange_strong(&f->join_state, &expected, JOIN_JOINING))
		return -EINVAL;
	if (self && !is_idle_task(self)) {
		if (fiber__signal_pending(self)) {
			atomic_store(&f->join_state, JOIN_JOINABLE);
			return -ECANCELED;
		}
		ret = join_wait_fiber(f);
		if (ret) {
			atomic_store(&f->join_state, JOIN_JOINABLE);
			return ret;
		}
	} else {
		join_wait_pthread(f);
	}
	if (retval)
		*retval = f->retval;
	atomic_store(&f->join_state, JOIN_DONE);
	fiber__put_task_struct(f); /* the handle's reference */
	fiber__preempt_point();
	return 0;
}

int fiber_detach(fiber_t *f)
{
	int expected = JOIN_JOINABLE;

	if (!f)
		return -EINVAL;
	if (READ_ONCE(f->magic) != FIBER_MAGIC_LIVE)
		return stale_handle(f);
	if (!atomic_compare_exchange_strong(&f->join_state, &expected, JOIN_DETACHED))
		return -EINVAL;
	fiber__put_task_struct(f);
	fiber__preempt_point();
	return 0;
}

void fiber_exit(void *retval)
{
	struct worker *w = this_worker();

	if (!w || is_idle_task(w->current)) {
		fprintf(stderr, "libfiber: fiber_exit called outside a fiber; ending the calling thread\n");
		pthread_exit(retval);
	}
	fiber__exit(retval);
}

fiber_t *fiber_self(void)
{
	struct fiber *p = current_fiber();

	return p && !is_idle_task(p) ? p : NULL;
}

uint64_t fiber_id(const fiber_t *f)
{
	return f && READ_ONCE(f->magic) == FIBER_MAGIC_LIVE ? f->id : 0;
}

int fiber_sleep(uint64_t ns)
{
	struct fiber *curr = fiber_self();
	struct fiber_timer *t;
	uint64_t expires;
	int ret = 0;

	if (!curr) {
		struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };
		int saved = errno;

		ret = nanosleep(&ts, NULL) ? -errno : 0;
		errno = saved;
		return ret;
	}
	if (fiber__signal_pending(curr))
		return -ECANCELED;
	if (!ns) {
		fiber_yield();
		return 0;
	}
	expires = fiber__sched_clock() + ns;
	if (expires < ns)
		expires = UINT64_MAX - 1;
	/* The fiber's own timer (nothing to allocate), on the heap of the worker we are on now; we may wake elsewhere. */
	t = &curr->timer;
	fiber__timer_init(t, NULL, curr);
	preempt_disable();
	fiber__timer_add(&this_worker()->timers, t, expires, curr);
	preempt_enable_no_resched();
	fiber__set_wait(curr, "sleep", t);
	for (;;) {
		fiber__set_current_state(TASK_INTERRUPTIBLE);
		if (atomic_load_explicit(&t->fired, memory_order_acquire))
			break;
		if (fiber__signal_pending(curr)) {
			ret = -ECANCELED;
			break;
		}
		fiber__schedule();
	}
	atomic_store_explicit(&curr->state, TASK_RUNNING, memory_order_relaxed);
	fiber__set_wait(curr, NULL, NULL);
	fiber__timer_del(t);
	return ret;
}

int fiber_cancel(fiber_t *f)
{
	if (!f)
		return -EINVAL;
	if (!fiber__rt_enter())
		return -ESRCH;
	if (READ_ONCE(f->magic) != FIBER_MAGIC_LIVE || f->rt_gen != fiber__rt.gen ||
	    atomic_load_explicit(&f->exited, memory_order_acquire)) {
		fiber__rt_exit();
		return -ESRCH;
	}
	atomic_store_explicit(&f->cancel_pending, true, memory_order_relaxed);
	/* The flag first, then the wake-up: try_to_wake_up's fence orders them (as signal_wake_up does). */
	fiber__try_to_wake_up(f, TASK_INTERRUPTIBLE, 0);
	fiber__rt_exit();
	fiber__preempt_point();
	return 0;
}
