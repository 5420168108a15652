/*
 * runtime/fiber.c - the runtime's life cycle and the fiber calls of the public API: start, stop, run, spawn, join,
 * detach, exit, self, id, sleep, cancel; fiber descriptors and the runtime's allocator.
 *
 * Descriptors are type-stable while the runtime runs: they come from jemalloc (mallocx) in slabs, are recycled
 * through a per-worker cache and a global list, and go back to jemalloc only when the runtime stops. So a stale
 * handle (a second join) reads a descriptor marked FIBER_MAGIC_FREE instead of freed memory.
 *
 * Reference counting (usage): a running fiber holds one reference on itself, dropped by the fiber that runs after
 * its death (finish_task_switch); a joinable fiber's handle holds another, dropped by fiber_join or fiber_detach.
 */
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef FIBER_HAVE_ASAN
#include <jemalloc/jemalloc.h>
#endif

struct runtime fiber__rt;
static pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER; /* start/stop against each other */

/* ------------------------------------------------------------------------------------------------------------
 * Allocation
 * ---------------------------------------------------------------------------------------------------------- */

void *fiber__malloc(size_t size)
{
#ifdef FIBER_HAVE_ASAN
	return malloc(size); /* ASan checks what it allocates */
#else
	return mallocx(size, 0);
#endif
}

void *fiber__zalloc(size_t size)
{
#ifdef FIBER_HAVE_ASAN
	return calloc(1, size);
#else
	return mallocx(size, MALLOCX_ZERO);
#endif
}

void fiber__free(void *ptr, size_t size)
{
	if (!ptr)
		return;
#ifdef FIBER_HAVE_ASAN
	(void)size;
	free(ptr);
#else
	sdallocx(ptr, size, 0);
#endif
}

/* ------------------------------------------------------------------------------------------------------------
 * Descriptors
 * ---------------------------------------------------------------------------------------------------------- */

#define DESC_SLAB 64         /* descriptors per slab */
#define DESC_CACHE_MAX 128   /* per-worker cache; beyond it descriptors go to the global list */

struct desc_slab {
	struct desc_slab *next;
	struct fiber descs[DESC_SLAB];
};
static struct desc_slab *slabs; /* desc_lock */

static struct fiber *desc_refill(void)
{
	struct desc_slab *s = fiber__zalloc(sizeof(*s));
	struct fiber *head = NULL;

	if (!s)
		return NULL;
	for (int i = DESC_SLAB - 1; i > 0; i--) {
		s->descs[i].magic = FIBER_MAGIC_FREE;
		s->descs[i].desc_next = head;
		head = &s->descs[i];
	}
	s->descs[0].magic = FIBER_MAGIC_FREE;
	spin_lock(&fiber__rt.desc_lock);
	s->next = slabs;
	slabs = s;
	/* descs[1..] join the global list; descs[0] is the caller's. */
	s->descs[DESC_SLAB - 1].desc_next = fiber__rt.desc_free;
	fiber__rt.desc_free = head;
	fiber__rt.desc_free_nr += DESC_SLAB - 1;
	spin_unlock(&fiber__rt.desc_lock);
	return &s->descs[0];
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

void fiber__desc_free(struct fiber *p)
{
	struct worker *w = this_worker();

	p->magic = FIBER_MAGIC_FREE;
	if (w) {
		preempt_disable();
		w = this_worker();
		if (w->descs.nr < DESC_CACHE_MAX) {
			p->desc_next = w->descs.head;
			w->descs.head = p;
			w->descs.nr++;
			preempt_enable_no_resched();
			return;
		}
		preempt_enable_no_resched();
	}
	spin_lock(&fiber__rt.desc_lock);
	p->desc_next = fiber__rt.desc_free;
	fiber__rt.desc_free = p;
	fiber__rt.desc_free_nr++;
	spin_unlock(&fiber__rt.desc_lock);
}

void fiber__desc_cache_drain(struct fiber_cache *c)
{
	/* The memory belongs to the slabs, which are freed as a whole at stop. */
	c->head = NULL;
	c->nr = 0;
}

static void desc_slabs_free(void)
{
	while (slabs) {
		struct desc_slab *s = slabs;

		slabs = s->next;
		fiber__free(s, sizeof(*s));
	}
	fiber__rt.desc_free = NULL;
	fiber__rt.desc_free_nr = 0;
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

/* Parse an unsigned environment value with an optional K/M/G suffix. 0 absent, 1 parsed, -1 malformed. */
static int env_size(const char *name, unsigned long long *out)
{
	const char *s = getenv(name);
	char *end;
	unsigned long long v;

	if (!s || !*s)
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return -1;
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	}
	if (*end)
		return -1;
	*out = v;
	return 1;
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

int fiber_runtime_start(const struct fiber_config *cfg)
{
	struct fiber_config c;
	unsigned long long v, rr_ms;
	long ncpu;
	int ret, r;

	if (this_worker())
		return -EBUSY;
	fiber_config_init(&c);
	if (cfg)
		c = *cfg;
	if (c.flags & ~FIBER_CFG_NO_PIN)
		return -EINVAL;
	if (c.workers > FIBER_MAX_WORKERS || c.tick_hz > 100000 || c.io_entries > 32768)
		return -EINVAL;
	if (c.stack_size && !stack_size_valid(c.stack_size))
		return -EINVAL;

	if (!c.workers) {
		r = env_size("FIBER_WORKERS", &v);
		if (r < 0 || (r > 0 && (v == 0 || v > FIBER_MAX_WORKERS))) {
			fprintf(stderr, "libfiber: FIBER_WORKERS=\"%s\" is not a number of workers in 1..%d\n",
				getenv("FIBER_WORKERS"), FIBER_MAX_WORKERS);
			return -EINVAL;
		}
		if (r > 0) {
			c.workers = (unsigned)v;
		} else {
			ncpu = sysconf(_SC_NPROCESSORS_ONLN);
			c.workers = ncpu > 0 ? (unsigned)(ncpu > FIBER_MAX_WORKERS ? FIBER_MAX_WORKERS : ncpu) : 1;
		}
	}
	if (!c.stack_size) {
		r = env_size("FIBER_STACK_SIZE", &v);
		if (r < 0 || (r > 0 && !stack_size_valid((size_t)v))) {
			fprintf(stderr, "libfiber: FIBER_STACK_SIZE=\"%s\" is not a stack size in %u..%zu bytes "
					"(K, M, G suffixes allowed)\n",
				getenv("FIBER_STACK_SIZE"), FIBER_STACK_MIN, (size_t)FIBER_STACK_MAX);
			return -EINVAL;
		}
		c.stack_size = r > 0 ? (size_t)v : 256 * 1024;
	}
	if (!c.tick_hz) {
		r = env_size("FIBER_TICK_HZ", &v);
		if (r < 0 || (r > 0 && v > 100000)) {
			fprintf(stderr, "libfiber: FIBER_TICK_HZ=\"%s\" is not a tick rate in 0..100000 Hz\n",
				getenv("FIBER_TICK_HZ"));
			return -EINVAL;
		}
		c.tick_hz = r > 0 ? (unsigned)v : 1000;
		if (r > 0 && v == 0)
			c.tick_hz = 0; /* FIBER_TICK_HZ=0: no tick at all (profilers) */
	}
	r = env_size("FIBER_RR_TIMESLICE_MS", &v);
	if (r < 0 || (r > 0 && (v == 0 || v > 100000))) {
		fprintf(stderr, "libfiber: FIBER_RR_TIMESLICE_MS=\"%s\" is not a time slice in 1..100000 ms\n",
			getenv("FIBER_RR_TIMESLICE_MS"));
		return -EINVAL;
	}
	rr_ms = r > 0 ? v : 100;

	pthread_mutex_lock(&rt_lock);
	if (atomic_load(&fiber__rt.running)) {
		pthread_mutex_unlock(&rt_lock);
		return -EBUSY;
	}
	fiber__clock_init();
	fiber__rt.stack_size = page_round(c.stack_size);
	fiber__rt.tick_hz = c.tick_hz;
	fiber__rt.cfg_flags = c.flags;
	fiber__rt.tick_ns = c.tick_hz ? 1000000000ull / c.tick_hz : 1000000ull;
	fiber__rt.rr_timeslice_ns = rr_ms * 1000000ull;
	/* sysctl_sched_base_slice: 0.75 ms scaled by 1 + ilog2(min(cpus, 8)), as the kernel's tunable scaling */
	fiber__rt.base_slice_ns = 750000ull * (1u + (unsigned)(31 - __builtin_clz(c.workers < 8 ? c.workers : 8)));
	spin_lock_init(&fiber__rt.dl_lock);
	atomic_store(&fiber__rt.nr_stoppers, 0);
	atomic_store(&fiber__rt.stopping, 0);
	atomic_store(&fiber__rt.nr_fibers, 0);
	atomic_store(&fiber__rt.stop_waiting, 0);
	spin_lock_init(&fiber__rt.desc_lock);
	spin_lock_init(&fiber__rt.stack_lock);
	fiber__stack_cache_init(&fiber__rt.gstacks, STACK_CACHE_GLOBAL);
	for (unsigned i = 0; i < ARRAY_SIZE(fiber__rt.idle_mask); i++)
		atomic_store(&fiber__rt.idle_mask[i], 0);
	if (!atomic_load(&fiber__rt.next_id))
		atomic_store(&fiber__rt.next_id, 1); /* id 0 is the idle fibers' */
	ret = fiber__workers_start(c.workers);
	if (ret) {
		if (ret == -EAGAIN)
			fprintf(stderr, "libfiber: cannot create %u worker threads (RLIMIT_NPROC or memory); "
					"lower fiber_config.workers or FIBER_WORKERS\n",
				c.workers);
		pthread_mutex_unlock(&rt_lock);
		return ret;
	}
	ret = fiber__stoppers_start();
	if (ret) {
		fiber__stoppers_stop();
		fiber__workers_stop();
		desc_slabs_free();
		pthread_mutex_unlock(&rt_lock);
		return ret;
	}
	atomic_store_explicit(&fiber__rt.running, 1, memory_order_release);
	pthread_mutex_unlock(&rt_lock);
	return 0;
}

/* Wait until no fiber is left (nr_fibers is also the futex word). */
static void wait_for_fibers(void)
{
	atomic_store(&fiber__rt.stop_waiting, 1);
	for (;;) {
		int n = atomic_load_explicit(&fiber__rt.nr_fibers, memory_order_acquire);

		if (n == 0)
			break;
		/* A timeout as a safety net only: the last reaper wakes us. */
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		syscall(SYS_futex, &fiber__rt.nr_fibers, FUTEX_WAIT_PRIVATE, n, &ts, NULL, 0);
	}
	atomic_store(&fiber__rt.stop_waiting, 0);
}

int fiber_runtime_stop(void)
{
	if (this_worker())
		return -EDEADLK;
	pthread_mutex_lock(&rt_lock);
	if (!atomic_load(&fiber__rt.running)) {
		pthread_mutex_unlock(&rt_lock);
		return -ESRCH;
	}
	wait_for_fibers();
	fiber__stoppers_stop();
	fiber__workers_stop();
	atomic_store(&fiber__rt.running, 0);
	spin_lock(&fiber__rt.stack_lock);
	fiber__stack_cache_drain(&fiber__rt.gstacks);
	spin_unlock(&fiber__rt.stack_lock);
	desc_slabs_free();
	pthread_mutex_unlock(&rt_lock);
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

	return w && !is_idle_task(w->current) ? w->id : -1;
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

static bool runtime_running(void)
{
	return atomic_load_explicit(&fiber__rt.running, memory_order_acquire) &&
	       !atomic_load_explicit(&fiber__rt.stopping, memory_order_relaxed);
}

static void fiber_init(struct fiber *p, const struct fiber_attr *attr, void *(*fn)(void *), void *arg, bool detached)
{
	unsigned n = fiber__rt.nr_workers;
	int cnt = 0;

	/* Everything but the descriptor-cache fields starts from zero. */
	memset(p, 0, offsetof(struct fiber, desc_next));
	p->magic = FIBER_MAGIC_LIVE;
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
	CPU_ZERO(&p->cpus_mask);
	if (CPU_COUNT(&attr->affinity) == 0) {
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
	if (CPU_COUNT(set) == 0)
		return 1;
	for (unsigned i = 0; i < fiber__rt.nr_workers; i++)
		if (CPU_ISSET(i, set))
			return 1;
	return 0;
}

int fiber_spawn(fiber_t **out, const struct fiber_attr *attr, void *(*fn)(void *), void *arg)
{
	struct fiber_attr def;
	struct fiber *p;
	size_t size;
	int ret;

	if (!fn)
		return -EINVAL;
	if (!attr) {
		fiber_attr_init(&def);
		attr = &def;
	}
	if (attr->flags & ~FIBER_ATTR_DETACHED)
		return -EINVAL;
	if (attr->stack_size && !stack_size_valid(attr->stack_size))
		return -EINVAL;
	if (!runtime_running())
		return -ESRCH;
	if (!affinity_valid(&attr->affinity))
		return -EINVAL;
	ret = fiber__sched_attr_check_spawn(&attr->sched);
	if (ret)
		return ret;

	size = attr->stack_size ? page_round(attr->stack_size) : fiber__rt.stack_size;
	p = fiber__desc_alloc();
	if (!p)
		return -ENOMEM;
	fiber_init(p, attr, fn, arg, out == NULL || (attr->flags & FIBER_ATTR_DETACHED));
	ret = fiber__stack_alloc(p, size);
	if (ret) {
		fiber__desc_free(p);
		return ret;
	}
	fiber__sched_fork(p, &attr->sched);
	p->sp = fiber__fiber_frame_init(p);
	if (out)
		*out = (attr->flags & FIBER_ATTR_DETACHED) ? NULL : p;
	atomic_fetch_add_explicit(&fiber__rt.nr_fibers, 1, memory_order_relaxed);
	fiber_list(p);
	fiber__wake_up_new_task(p);
	/* The return from a runtime call is a preemption point. */
	fiber__preempt_point();
	return 0;
}

/* Join from a plain pthread: sleep in the kernel on the exited flag. */
static void join_wait_pthread(struct fiber *f)
{
	atomic_store_explicit(&f->pthread_joiner, 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_seq_cst); /* pairs with the fence in fiber__exit */
	while (!atomic_load_explicit(&f->exited, memory_order_acquire))
		syscall(SYS_futex, &f->exited, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
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
		if (f->cpu == w->id && task_on_rq_queued(f))
			fiber__set_next_buddy(rq, f);
		spin_unlock(&rq->lock);
		preempt_enable_no_resched();
	}
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

int fiber_join(fiber_t *f, void **retval)
{
	struct fiber *self = current_fiber();
	int expected = JOIN_JOINABLE;
	int ret;

	if (!f)
		return -EINVAL;
	if (!atomic_load_explicit(&fiber__rt.running, memory_order_acquire))
		return -ESRCH;
	if (self && !is_idle_task(self) && f == self)
		return -EDEADLK;
	if (f->magic != FIBER_MAGIC_LIVE)
		return -EINVAL;
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

	if (!f || f->magic != FIBER_MAGIC_LIVE)
		return -EINVAL;
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
	return f ? f->id : 0;
}

int fiber_sleep(uint64_t ns)
{
	struct fiber *curr = fiber_self();
	struct fiber_timer t;
	uint64_t expires;
	int ret = 0;

	if (!curr) {
		struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

		return nanosleep(&ts, NULL) ? -errno : 0;
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
	t.idx = -1;
	t.fn = NULL;
	/* The timer goes on the heap of the worker we are on now; we may wake up elsewhere. */
	preempt_disable();
	fiber__timer_add(&this_worker()->timers, &t, expires, curr);
	preempt_enable_no_resched();
	for (;;) {
		fiber__set_current_state(TASK_INTERRUPTIBLE);
		if (atomic_load_explicit(&t.fired, memory_order_acquire))
			break;
		if (fiber__signal_pending(curr)) {
			ret = -ECANCELED;
			break;
		}
		fiber__schedule();
	}
	atomic_store_explicit(&curr->state, TASK_RUNNING, memory_order_relaxed);
	fiber__timer_del(&t);
	return ret;
}

int fiber_cancel(fiber_t *f)
{
	if (!f)
		return -EINVAL;
	if (!atomic_load_explicit(&fiber__rt.running, memory_order_acquire) || f->magic != FIBER_MAGIC_LIVE ||
	    atomic_load_explicit(&f->exited, memory_order_acquire))
		return -ESRCH;
	atomic_store_explicit(&f->cancel_pending, true, memory_order_relaxed);
	/* The flag first, then the wake-up: try_to_wake_up's fence orders them (as signal_wake_up does). */
	fiber__try_to_wake_up(f, TASK_INTERRUPTIBLE, 0);
	fiber__preempt_point();
	return 0;
}
