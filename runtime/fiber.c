/*
 * runtime/fiber.c - the fiber life cycle and the fiber calls of the public API: spawn, join, detach, exit, self,
 * id, sleep, cancel; the runtime's own fibers (fiber__spawn_kthread).
 *
 * Reference counting (usage): a running fiber holds one reference on itself, dropped by the fiber that runs after
 * its death (finish_task_switch); a joinable fiber's handle holds another, dropped by fiber_join or fiber_detach.
 * Descriptors are type-stable (stack.c), so a stale handle is told by its magic.
 */
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int stack_size_valid(size_t size)
{
	return size >= FIBER_STACK_MIN && size <= FIBER_STACK_MAX;
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
	/* Pairs with wait_for_fibers' seq_cst store of stop_waiting (runtime.c). */
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

/*
 * Unique for the life of the process: a worker (@w; NULL on a plain thread) takes ids from next_id ID_BATCH at a
 * time, so that spawns on two workers do not share a cache line per spawn; ids still never repeat (a block's unused
 * rest is never handed out).
 */
#define ID_BATCH 64

static uint64_t fiber_new_id(struct worker *w)
{
	if (w) {
		if (unlikely(w->id_next == w->id_end)) {
			w->id_next = atomic_fetch_add_explicit(&fiber__rt.next_id, ID_BATCH, memory_order_relaxed);
			w->id_end = w->id_next + ID_BATCH;
		}
		return w->id_next++;
	}
	return atomic_fetch_add_explicit(&fiber__rt.next_id, 1, memory_order_relaxed);
}

/*
 * @all_cpus: attr->affinity is empty (every worker), as the caller found it once (fiber_spawn's check of the mask
 * serves both its validation and this).
 */
static void fiber_init(struct fiber *p, struct worker *w, const struct fiber_attr *attr, void *(*fn)(void *), void *arg,
		       bool detached, bool all_cpus)
{
	unsigned n = fiber__rt.nr_workers;
	int cnt = 0;

	/* Everything but the unit's fields starts from zero. */
	memset(p, 0, offsetof(struct fiber, stack_base));
	WRITE_ONCE(p->magic, FIBER_MAGIC_LIVE);
	p->rt_gen = fiber__rt.gen;
	p->id = fiber_new_id(w);
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
	if (all_cpus) {
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
	p->cpu = w ? w->id : 0;
	if (!CPU_ISSET(p->cpu, &p->cpus_mask))
		for (p->cpu = 0; !CPU_ISSET(p->cpu, &p->cpus_mask); p->cpu++)
			;
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
	struct fiber *p = fiber__fiber_alloc(fiber__rt.stack_size);

	if (!p)
		return NULL;
	fiber_attr_init(&attr);
	attr.name = name;
	CPU_SET(cpu, &attr.affinity);
	fiber_init(p, this_worker(), &attr, fn, arg, true, false);
	p->flags |= PF_KTHREAD;
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

/* @empty: cpuset_empty(@set), which the caller knows already */
static int affinity_valid(const cpu_set_t *set, bool empty)
{
	if (empty)
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
	struct worker *w;
	struct fiber *p;
	size_t size;
	int ret, saved = errno;
	bool all_cpus;

	if (!fn)
		return -EINVAL;
	if (!attr) {
		/* The defaults pass every check below: only the empty affinity mask is left to know. */
		attr = &default_attr;
		all_cpus = true;
	} else {
		if (attr->flags & ~FIBER_ATTR_DETACHED)
			return -EINVAL;
		if (attr->stack_size && !stack_size_valid(attr->stack_size))
			return -EINVAL;
		ret = fiber__sched_attr_check_spawn(&attr->sched);
		if (ret)
			return ret;
		all_cpus = cpuset_empty(&attr->affinity);
	}
	/* A plain thread holds the runtime open until the fiber is queued (stop then waits for it). */
	if (!fiber__rt_enter())
		return -ESRCH;
	if (!spawn_allowed()) {
		ret = -ESRCH;
		goto out;
	}
	ret = -EINVAL;
	if (!affinity_valid(&attr->affinity, all_cpus))
		goto out;

	size = attr->stack_size ? page_round(attr->stack_size) : fiber__rt.stack_size;
	ret = -ENOMEM;
	p = fiber__fiber_alloc(size);
	if (!p)
		goto out;
	/* The spawner's worker, read once: nothing below switches before the new fiber is queued. */
	w = this_worker();
	fiber_init(p, w, attr, fn, arg, out == NULL || (attr->flags & FIBER_ATTR_DETACHED), all_cpus);
	fiber__sched_fork(p, &attr->sched);
	ret = fiber__sched_admit_new(p, &attr->sched);
	if (ret) {
		fiber__fiber_free(p);
		goto out;
	}
	p->sp = fiber__fiber_frame_init(p);
	if (out)
		*out = (attr->flags & FIBER_ATTR_DETACHED) ? NULL : p;
	fiber__live_get(w);
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
	 * yield_to's buddy half: if the fiber we wait for is queued on this worker, it runs next (the buddy rule).
	 * Joins then run depth-first, which keeps a tree of spawns (skynet) from growing breadth-first.
	 */
	if (!atomic_load_explicit(&f->exited, memory_order_acquire)) {
		struct worker *w;
		struct rq *rq;

		preempt_disable();
		w = this_worker();
		rq = &w->rq;
		spin_lock(&rq->lock);
		/* f->cpu: a waker may move it */
		if (READ_ONCE(f->cpu) == w->id && task_on_rq_queued(f) && f->sched_class->yield_to_task)
			f->sched_class->yield_to_task(rq, f);
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
