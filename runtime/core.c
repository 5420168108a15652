/*
 * runtime/core.c - the scheduler core (the mechanism): schedule, __schedule, context_switch,
 * prepare/finish_task_switch, schedule_tail, try_to_wake_up and the remote wakelist, wake_q, resched_curr, the
 * preemption points, the preempt notifiers, the change pattern, migration (move_queued_task, affine_move_task, the
 * stopper's migration_cpu_stop), the PI boost, migrate_disable/enable and blocking_begin/end. The attribute calls
 * of the API are in syscalls.c, placement (select_task_rq) in balance.c.
 *
 * It promises the kernel's switch safety (KERNEL_MAP §4, §6):
 *   A1  rq->lock is taken in __schedule before prev->state is read and released exactly once, by the fiber that
 *       runs next, in finish_task_switch, through a freshly read this_worker().
 *   A2  every resume path (the return of fiber__switch, the trampoline's schedule_tail) calls
 *       finish_task_switch(last) exactly once, with the "last" that fiber__switch returned.
 *   B1  next->on_cpu = 1 before the switch; prev->on_cpu = 0 with release semantics after prev->state was read
 *       and before the rq unlock.
 *   B2  try_to_wake_up never enqueues a fiber with on_rq == 0 until it has seen on_cpu == 0 (acquire), or it
 *       hands the wake-up to the owning worker's wakelist, which that worker drains after its switch completed.
 *   C1  a dead fiber's state is read before its on_cpu is cleared; C2 its stack is freed by the next fiber after
 *       the unlock.
 *   P1  preempt_count == 2 across every fiber__switch (checked under FIBER_DEBUG).
 * core.c knows only the ordered class table; policy lives in runtime/sched_*.c.
 */
#include "io.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef FIBER_HAVE_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

/* used: this_worker() reads it from inline assembly only, which link-time optimisation does not see. */
__thread struct worker *fiber__tls_worker __attribute__((tls_model("initial-exec"), used)) __hidden;
struct fiber__test_hooks *_Atomic fiber__hooks __hidden;
atomic_int fiber__preempt_notifier_key __hidden;

/* ------------------------------------------------------------------------------------------------------------
 * The ordered class table: the only thing core.c knows about policy.
 * ---------------------------------------------------------------------------------------------------------- */

const struct sched_class *const fiber__classes[NR_SCHED_CLASSES] = {
	&fiber__stop_sched_class, &fiber__dl_sched_class,   &fiber__rt_sched_class,
	&fiber__fair_sched_class, &fiber__idle_sched_class,
};

const struct sched_class *fiber__policy_classes[NR_POLICIES] __hidden;

/* The classes' task_free hooks, in table order: a dead fiber walks only these, not the whole table. */
static void (*task_free_hooks[NR_SCHED_CLASSES])(struct fiber *p);
static unsigned nr_task_free_hooks;

/*
 * policy -> class, and the task_free hooks, from the table (at load time: fiber_setattr's checks may run before
 * any runtime start).
 */
__attribute__((constructor)) static void policy_classes_init(void)
{
	for (unsigned i = 0; i < ARRAY_SIZE(fiber__classes); i++) {
		for (unsigned policy = 0; policy < NR_POLICIES; policy++)
			if (fiber__classes[i]->policies & (1u << policy))
				fiber__policy_classes[policy] = fiber__classes[i];
		if (fiber__classes[i]->task_free)
			task_free_hooks[nr_task_free_hooks++] = fiber__classes[i]->task_free;
	}
}

/* ------------------------------------------------------------------------------------------------------------
 * Small helpers
 * ---------------------------------------------------------------------------------------------------------- */

void fiber__bug(const char *file, int line, const char *cond)
{
	fprintf(stderr, "libfiber: BUG at %s:%d: %s\n", file, line, cond);
	fflush(stderr);
	abort();
}

static inline long futex_wake(atomic_uint *uaddr, int nr)
{
	return fiber__futex(uaddr, FUTEX_WAKE_PRIVATE, nr, NULL);
}

void fiber__update_rq_clock(struct rq *rq)
{
	lockdep_assert_held(&rq->lock);
	rq->clock = fiber__sched_clock();
	if (unlikely(rq->clock >= rq->steal_next))
		fiber__steal_sample(rq);
}

void fiber__get_task_struct(struct fiber *p)
{
	atomic_fetch_add_explicit(&p->usage, 1, memory_order_relaxed);
}

void fiber__put_task_struct(struct fiber *p)
{
	/* acq_rel: each put releases its holder's writes; the last one acquires them all before the free. */
	if (atomic_fetch_sub_explicit(&p->usage, 1, memory_order_acq_rel) == 1)
		fiber__fiber_free(p);
}

static int migration_dest(struct fiber *p);

/* ------------------------------------------------------------------------------------------------------------
 * Enqueue, dequeue, activate, block (they own rq->nr_running and p->on_rq)
 * ---------------------------------------------------------------------------------------------------------- */

/* The classes own rq->nr_running (add_nr_running/sub_nr_running): a throttled DL fiber is queued but not counted. */
static void enqueue_task(struct rq *rq, struct fiber *p, int flags)
{
	lockdep_assert_held(&rq->lock);
	if (!(flags & ENQUEUE_RESTORE) && rq->curr != p)
		p->wait_start = rq->clock; /* sched_info: runnable and waiting from now */
	p->sched_class->enqueue_task(rq, p, flags);
}

static void dequeue_task(struct rq *rq, struct fiber *p, int flags)
{
	lockdep_assert_held(&rq->lock);
	if (!(flags & DEQUEUE_SAVE) && p->wait_start) {
		p->wait_sum += rq->clock - p->wait_start;
		p->wait_start = 0;
	}
	p->sched_class->dequeue_task(rq, p, flags);
}

void fiber__activate_task(struct rq *rq, struct fiber *p, int flags)
{
	enqueue_task(rq, p, flags);
	atomic_store_explicit(&p->on_rq, TASK_ON_RQ_QUEUED, memory_order_relaxed);
}

/* Migration-style removal: on_rq = MIGRATING covers the gap between the two rq locks (B4). */
void fiber__deactivate_task(struct rq *rq, struct fiber *p, int flags)
{
	atomic_store_explicit(&p->on_rq, TASK_ON_RQ_MIGRATING, memory_order_relaxed);
	dequeue_task(rq, p, flags);
}

/*
 * block_task: prev goes to sleep. The release store of on_rq = 0 comes last: from then on try_to_wake_up may
 * take p over (it then waits for on_cpu == 0 before touching it).
 */
static void block_task(struct rq *rq, struct fiber *p)
{
	dequeue_task(rq, p, DEQUEUE_SLEEP);
	/* Pairs with try_to_wake_up's acquire load of on_rq (and its fence after it). */
	atomic_store_explicit(&p->on_rq, 0, memory_order_release);
}

/*
 * set_task_cpu: p now belongs to @cpu's rq. Callers hold p->pi_lock with p RUNNING or WAKING and not queued (a
 * wake-up), or p's old rq lock with on_rq == MIGRATING (a migration) - never for a fiber that sleeps or whose
 * wake-up sits on a wakelist, which the wakelist's owner completes on its own rq (the p->cpu rule in internal.h).
 */
static void set_task_cpu(struct fiber *p, int cpu)
{
	if (p->cpu != cpu) {
		p->nr_migrations++;
		fiber__trace_migrate(p, p->cpu, cpu);
		WRITE_ONCE(p->cpu, cpu); /* task_rq() peeks at it before taking the lock */
	}
}

/* ------------------------------------------------------------------------------------------------------------
 * resched_curr and kicking a sleeping worker (the reschedule IPI, KERNEL_MAP §6.4)
 * ---------------------------------------------------------------------------------------------------------- */

/*
 * Kick @w out of its futex sleep if it is asleep. Setting NEED_RESCHED on the idle fiber changes the futex word, so
 * an idle loop that is about to sleep sees it (its futex_wait fails with EAGAIN) and one that is asleep is woken.
 * A worker whose idle fiber is POLLING (not asleep) is not woken: it will look by itself. Nor is one whose idle
 * fiber has NEED_RESCHED already: whoever set it saw it clear and kicked (or saw POLLING), and the worker clears it
 * only in its idle loop, before looking for work again (do_idle). This is resched_curr's rule, which sends no IPI
 * when the flag is already set. Without it, every wakep while a kicked worker was still on its way out of the
 * ring's wait wrote the eventfd again: 115,070 writes against 5,894 sleeps for 200,000 spawn+joins on two workers.
 */
void fiber__kick_worker(struct worker *w)
{
	/* Full barrier: pairs with idle_sleep's seq_cst clear of TIF_POLLING before its re-checks (worker.c). */
	unsigned old = atomic_fetch_or_explicit(&w->idle_fiber.tif, TIF_NEED_RESCHED, memory_order_seq_cst);

	if (!(old & (TIF_POLLING | TIF_NEED_RESCHED))) {
		atomic_fetch_add_explicit(&w->nr_kicks, 1, memory_order_relaxed);
		if (old & TIF_RING_WAIT)
			fiber__io_kick(w); /* asleep in its ring: the eventfd read it keeps armed ends the wait */
		else
			futex_wake(&w->idle_fiber.tif, 1);
	}
}

void fiber__resched_curr(struct rq *rq)
{
	struct fiber *curr = rq->curr;
	struct worker *w = this_worker();

	lockdep_assert_held(&rq->lock);
	if (test_tsk_need_resched(curr))
		return;
	if (w && &w->rq == rq) {
		atomic_fetch_or_explicit(&curr->tif, TIF_NEED_RESCHED, memory_order_relaxed);
		return;
	}
	if (is_idle_task(curr)) {
		fiber__kick_worker(rq_worker(rq));
		return;
	}
	/* A busy remote worker: NEED_RESCHED is enough, it acts at its next preemption point. */
	atomic_fetch_or_explicit(&curr->tif, TIF_NEED_RESCHED, memory_order_relaxed);
}

void fiber__wakeup_preempt(struct rq *rq, struct fiber *p, int flags)
{
	struct fiber *curr = rq->curr;

	if (p->sched_class == curr->sched_class)
		curr->sched_class->wakeup_preempt(rq, p, flags);
	else if (sched_class_above(p->sched_class, curr->sched_class))
		fiber__resched_curr(rq);
}

/* ------------------------------------------------------------------------------------------------------------
 * The tick (monitor.c sets tick_pending at tick_hz) runs only while it has something to decide: two or more
 * runnable fibers, or a deadline fiber whose budget must be enforced. The worker publishes that in tick_wanted, and
 * in tick_precise that the running fiber's class needs every tick (fiber__tick_precise).
 * ---------------------------------------------------------------------------------------------------------- */

static inline bool tick_needed(struct rq *rq, struct fiber *curr)
{
	return atomic_load_explicit(&rq->nr_running, memory_order_relaxed) >= 2 || curr->sched_class->needs_tick;
}

/*
 * Publish whether @w's tick is needed. Only a change costs anything: a store, and on 0 -> 1 an exchange (a full
 * barrier, pairing with the monitor's fence before it goes to sleep) and a look at whether the monitor sleeps.
 */
static inline void set_tick_wanted(struct worker *w, bool wanted)
{
	if (likely(atomic_load_explicit(&w->tick_wanted, memory_order_relaxed) == (int)wanted))
		return;
	if (!wanted) {
		atomic_store_explicit(&w->tick_wanted, 0, memory_order_relaxed);
		return;
	}
	if (!atomic_exchange_explicit(&w->tick_wanted, 1, memory_order_seq_cst))
		fiber__monitor_kick();
}

static inline void tick_update(struct worker *w, struct rq *rq, struct fiber *curr)
{
	set_tick_wanted(w, tick_needed(rq, curr));
}

/*
 * tick_update at a switch: on at once when needed, off only when the worker goes idle. A fiber that wakes a peer
 * and then blocks (a channel ping-pong) would otherwise turn the tick on and off at every message, the "on" with a
 * full barrier. A tick no longer needed goes off where it is consumed (fiber__sched_tick, or fiber__schedule when one
 * is pending), as the kernel's nohz re-evaluates its tick at the tick's interrupt exit and on idle entry, not at
 * every dequeue. The cost of the late "off" is at most one more tick.
 */
static inline void tick_update_switch(struct worker *w, struct rq *rq, struct fiber *next)
{
	if (tick_needed(rq, next))
		set_tick_wanted(w, true);
	else if (is_idle_task(next))
		set_tick_wanted(w, false);
}

/* @rq gained a runnable fiber (no rq lock held): its worker's tick may be needed now. */
void fiber__tick_dep(struct rq *rq)
{
	if (atomic_load_explicit(&rq->nr_running, memory_order_relaxed) >= 2)
		set_tick_wanted(rq_worker(rq), true);
}

/*
 * The fiber now running on @rq has a class that needs every tick, or no longer runs (@on): a deadline fiber, whose
 * budget the tick enforces (the kernel starts its hrtick for the same reason in set_next_task_dl). The monitor
 * never skips that tick however often the worker switches, and a monitor napping in a backed-off period is woken
 * for it (fiber__monitor_kick_precise). Called by the class's set_next_task/put_prev_task, under @rq's lock, on any
 * thread (the change pattern of a remote fiber_setattr).
 */
void fiber__tick_precise(struct rq *rq, bool on)
{
	struct worker *w = rq_worker(rq);

	if (!on) {
		atomic_store_explicit(&w->tick_precise, 0, memory_order_relaxed);
		return;
	}
	if (atomic_load_explicit(&w->tick_precise, memory_order_relaxed))
		return;
	/* seq_cst: pairs with the monitor's store of napping before its look at tick_precise (monitor.c) */
	atomic_store_explicit(&w->tick_precise, 1, memory_order_seq_cst);
	fiber__monitor_kick_precise();
}

/* A preemption point or a switch on @w: progress the monitor sees, and the end of a stuck spell. */
static inline void note_progress(struct worker *w)
{
	atomic_store_explicit(&w->pp_seq, atomic_load_explicit(&w->pp_seq, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	if (unlikely(atomic_load_explicit(&w->stuck, memory_order_relaxed)) &&
	    !atomic_load_explicit(&w->blocking, memory_order_relaxed))
		atomic_store_explicit(&w->stuck, 0, memory_order_relaxed);
}

/* ------------------------------------------------------------------------------------------------------------
 * try_to_wake_up (KERNEL_MAP §6.1)
 * ---------------------------------------------------------------------------------------------------------- */

/* Lock the rq @p belongs to; retry while p moves (on_rq == MIGRATING or p->cpu changed). pi_lock is held. */
static struct rq *__task_rq_lock(struct fiber *p)
{
	struct rq *rq;

	for (;;) {
		rq = task_rq(p);
		spin_lock(&rq->lock);
		if (likely(rq == task_rq(p) &&
			   atomic_load_explicit(&p->on_rq, memory_order_relaxed) != TASK_ON_RQ_MIGRATING))
			return rq;
		spin_unlock(&rq->lock);
		while (atomic_load_explicit(&p->on_rq, memory_order_relaxed) == TASK_ON_RQ_MIGRATING)
			cpu_relax();
	}
}

/*
 * The wake-up came before the sleeper reached __schedule (or p is a preempted fiber): p is still queued. Under its
 * rq lock set it RUNNING; __schedule reads prev_state under the same lock, so it does not dequeue it (D2).
 */
static bool ttwu_runnable(struct fiber *p, int wake_flags)
{
	struct rq *rq = __task_rq_lock(p);
	bool ret = false;

	if (task_on_rq_queued(p)) {
		if (!atomic_load_explicit(&p->on_cpu, memory_order_relaxed)) {
			fiber__update_rq_clock(rq);
			fiber__wakeup_preempt(rq, p, wake_flags);
		}
		atomic_store_explicit(&p->state, TASK_RUNNING, memory_order_relaxed);
		ret = true;
	}
	spin_unlock(&rq->lock);
	return ret;
}

/* @w: the caller's this_worker() (NULL off the workers), read once (see ttwu_queue). */
static void ttwu_do_activate(struct rq *rq, struct fiber *p, int wake_flags, struct worker *w)
{
	int en_flags = ENQUEUE_WAKEUP;

	lockdep_assert_held(&rq->lock);
	if (wake_flags & WF_MIGRATED)
		en_flags |= ENQUEUE_MIGRATED;
	fiber__activate_task(rq, p, en_flags);
	/* A sync wake-up on the waker's own worker: the waker is about to block, the wakee runs next. */
	if ((wake_flags & WF_SYNC) && w == rq_worker(rq) && p->sched_class->yield_to_task)
		p->sched_class->yield_to_task(rq, p);
	fiber__wakeup_preempt(rq, p, wake_flags);
	atomic_store_explicit(&p->state, TASK_RUNNING, memory_order_relaxed);
}

/*
 * @w: this_worker() of the caller (NULL off the workers), read once: nothing here can switch, so it stays this
 * thread's worker throughout (KERNEL_MAP §2.3 forbids caching it only across a switch). Inline: it is the rest of
 * try_to_wake_up (and of fiber__offload_wake), without a frame of its own.
 */
static inline __attribute__((always_inline)) void ttwu_queue(struct worker *w, struct fiber *p, int cpu, int wake_flags)
{
	struct rq *rq = cpu_rq(cpu);

	spin_lock(&rq->lock);
	fiber__update_rq_clock(rq);
	ttwu_do_activate(rq, p, wake_flags, w);
	spin_unlock(&rq->lock);
	/*
	 * A sync wake-up on the waker's own worker: the wakee runs here when the waker blocks, which it said it is
	 * about to do, so an idle worker is not kicked to come and pull it (that turned a channel ping-pong on two
	 * workers into a futex wake and a pull per few messages). If the waker goes on running instead, the tick
	 * kicks one (fiber__sched_tick), as the kernel's tick kicks the nohz idle balancer. A completion reaped from
	 * this worker's ring (WF_CURRENT_CPU) is treated alike: its reap wakes many fibers in a row, and a kick for
	 * each cost a system call per request.
	 */
	if ((wake_flags & (WF_SYNC | WF_CURRENT_CPU)) && w == rq_worker(rq))
		fiber__tick_dep(rq);
	else
		fiber__wakep(rq);
}

/*
 * B3: p is still switching out on its worker (on_cpu). Instead of spinning until that completes, hand the
 * activation to that worker: it drains its wakelist after its switch has completed (end of finish_task_switch),
 * at preemption points and in its idle loop. pi_lock is held and p->state is TASK_WAKING.
 */
static void ttwu_queue_wakelist(struct fiber *p, int cpu)
{
	struct worker *w = &fiber__rt.workers[cpu];
	struct fiber *head = atomic_load_explicit(&w->wake_list, memory_order_relaxed);

	/*
	 * No reference needed: p sleeps, so it cannot exit before this wake-up is done. The cmpxchg releases
	 * p->wake_entry and TASK_WAKING: pairs with the acquire exchange in fiber__sched_ttwu_pending.
	 */
	do {
		atomic_store_explicit(&p->wake_entry, head, memory_order_relaxed);
	} while (!atomic_compare_exchange_weak_explicit(&w->wake_list, &head, p, memory_order_seq_cst,
							memory_order_relaxed));
	if (!head)
		fiber__kick_worker(w);
}

/* Drain this worker's wakelist (the kernel's sched_ttwu_pending). No rq lock held on entry. */
void fiber__sched_ttwu_pending(struct worker *w)
{
	struct fiber *p, *next;
	struct rq *rq = &w->rq;

	p = atomic_exchange_explicit(&w->wake_list, NULL, memory_order_acquire); /* pairs with ttwu_queue_wakelist */
	if (!p)
		return;
	spin_lock(&rq->lock);
	fiber__update_rq_clock(rq);
	for (; p; p = next) {
		next = atomic_load_explicit(&p->wake_entry, memory_order_relaxed);
		/*
		 * Defensive, as the kernel: the switch-out that made the waker use the list is over once we run here
		 * (this worker cleared on_cpu), but wait for it with acquire before touching p's stack state (pairs
		 * with finish_task_switch's release store, B1).
		 */
		while (atomic_load_explicit(&p->on_cpu, memory_order_acquire))
			cpu_relax();
		/*
		 * p was queued here because it belongs here, and nothing moves a WAKING fiber; but it is activated on
		 * this rq whatever it says, so make task_rq(p) say so (sched_ttwu_pending's set_task_cpu).
		 */
		FIBER_DEBUG_BUG_ON(p->cpu != rq->cpu);
		set_task_cpu(p, rq->cpu);
		ttwu_do_activate(rq, p, 0, w);
	}
	spin_unlock(&rq->lock);
}

/* try_to_wake_up; with @b, a wake-up that stays on this worker is queued on the batch (struct ttwu_batch). */
static inline __attribute__((always_inline)) int ttwu(struct fiber *p, unsigned state, int wake_flags,
						      struct ttwu_batch *b)
{
	struct worker *w = this_worker();
	int cpu, success = 0;

	if (w && p == w->current) {
		/* Waking oneself (between set_current_state and schedule): program order is enough. */
		if (!(atomic_load_explicit(&p->state, memory_order_relaxed) & state))
			return 0;
		atomic_store_explicit(&p->state, TASK_RUNNING, memory_order_relaxed);
		return 1;
	}

	spin_lock(&p->pi_lock);
	/* Pairs with the full barrier after the waiter's state store (set_current_state) and in __schedule (D1). */
	smp_mb__after_spinlock();
	if (!(atomic_load_explicit(&p->state, memory_order_relaxed) & state))
		goto unlock;
	success = 1;

	/* Queued (not yet dequeued by its __schedule, or preempted): a runnable wake-up. Pairs with block_task. */
	if (atomic_load_explicit(&p->on_rq, memory_order_acquire) && ttwu_runnable(p, wake_flags))
		goto unlock;

	/*
	 * on_rq == 0: p's __schedule dequeued it and no longer looks at p->state. Order what follows after that
	 * load (smp_acquire__after_ctrl_dep; pairs with block_task's release store of on_rq = 0) and mark p WAKING
	 * so nobody else wakes it meanwhile.
	 */
	atomic_thread_fence(memory_order_acquire);
	atomic_store_explicit(&p->state, TASK_WAKING, memory_order_relaxed);

	/*
	 * B2/B3: still switching out somewhere. Its worker finishes the wake-up after the switch. The on_cpu loads
	 * pair with finish_task_switch's release store (B1).
	 */
	if (atomic_load_explicit(&p->on_cpu, memory_order_acquire)) {
		unsigned spins = 0;

		while (atomic_load_explicit(&p->on_cpu, memory_order_acquire) && ++spins < 64)
			cpu_relax();
		if (atomic_load_explicit(&p->on_cpu, memory_order_acquire)) {
			ttwu_queue_wakelist(p, p->cpu);
			goto unlock;
		}
	}
	/* on_cpu == 0 seen with acquire: p's switch-out is complete, everything it wrote is visible (B2). */

	cpu = fiber__select_task_rq(p, wake_flags | WF_TTWU);
	if (b && cpu == p->cpu && w && cpu == w->rq.cpu) {
		/* Activated at the flush, on this rq; p->cpu already says so (the wakelist's rule). */
		atomic_store_explicit(&p->wake_entry, NULL, memory_order_relaxed);
		if (b->last)
			atomic_store_explicit(&b->last->wake_entry, p, memory_order_relaxed);
		else
			b->head = p;
		b->last = p;
		b->n++;
		b->wake_flags = wake_flags;
		goto unlock;
	}
	if (cpu != p->cpu) {
		wake_flags |= WF_MIGRATED;
		set_task_cpu(p, cpu);
	}
	ttwu_queue(w, p, cpu, wake_flags);
unlock:
	fiber__trace_wake(p, success);
	spin_unlock(&p->pi_lock);
	return success;
}

int fiber__try_to_wake_up(struct fiber *p, unsigned state, int wake_flags)
{
	return ttwu(p, state, wake_flags, NULL);
}

int fiber__try_to_wake_up_batch(struct fiber *p, unsigned state, int wake_flags, struct ttwu_batch *b)
{
	return ttwu(p, state, wake_flags, b);
}

uint64_t fiber__ttwu_batch_flush(struct ttwu_batch *b)
{
	struct worker *w = this_worker();
	struct rq *rq = &w->rq;
	struct fiber *p, *next;
	uint64_t clock, share = 0;

	if (!b->head)
		return 0;
	spin_lock(&rq->lock);
	fiber__update_rq_clock(rq);
	clock = rq->clock;
	if (b->irq_mark) {
		uint64_t d = clock > b->irq_mark ? clock - b->irq_mark : 0;

		/* Before the first activation's update_curr charges curr up to this clock. */
		fiber__rq_exclude(rq, d);
		share = d / b->n < b->irq_cap ? d / b->n : b->irq_cap;
	}
	for (p = b->head; p; p = next) {
		next = atomic_load_explicit(&p->wake_entry, memory_order_relaxed);
		/* The same wait as the wakelist's: on_cpu was seen clear at the claim, this pairs with B1. */
		while (atomic_load_explicit(&p->on_cpu, memory_order_acquire))
			cpu_relax();
		if (share)
			atomic_fetch_add_explicit(&p->irq_debt, share, memory_order_relaxed);
		ttwu_do_activate(rq, p, b->wake_flags, w);
	}
	spin_unlock(&rq->lock);
	fiber__tick_dep(rq); /* WF_CURRENT_CPU's rule: the worker's own wake-ups kick nobody (ttwu_queue) */
	b->head = b->last = NULL;
	b->n = 0;
	return clock;
}

int fiber__wake_up_process(struct fiber *p)
{
	return fiber__try_to_wake_up(p, TASK_NORMAL, 0);
}

/* A new fiber becomes runnable (wake_up_new_task). p is TASK_NEW: nothing else can wake it yet. */
void fiber__wake_up_new_task(struct fiber *p)
{
	struct rq *rq;
	int cpu;

	spin_lock(&p->pi_lock);
	atomic_store_explicit(&p->state, TASK_RUNNING, memory_order_relaxed);
	cpu = fiber__select_task_rq(p, WF_FORK);
	p->cpu = cpu;
	rq = cpu_rq(cpu);
	spin_lock(&rq->lock);
	fiber__update_rq_clock(rq);
	fiber__activate_task(rq, p, ENQUEUE_INITIAL);
	fiber__wakeup_preempt(rq, p, WF_FORK);
	spin_unlock(&rq->lock);
	spin_unlock(&p->pi_lock);
	fiber__wakep(rq);
}

/* ------------------------------------------------------------------------------------------------------------
 * wake_q
 * ---------------------------------------------------------------------------------------------------------- */

static void wake_up_q_flags(struct wake_q_head *head, int wake_flags)
{
	struct wake_q_node *node = head->first;
	/*
	 * A plain thread's wake-ups run after it dropped the lock that kept the wakee waiting, so the wakee may have
	 * exited and the runtime stopped meanwhile: hold it open (with no runtime left there is nobody to wake).
	 */
	bool held = node != WAKE_Q_TAIL && fiber__rt_enter();

	while (node != WAKE_Q_TAIL) {
		struct fiber *p = container_of(node, struct fiber, wake_q);

		/* Atomic: another waker may be trying its cmpxchg on this field (it fails until we clear it). */
		node = __atomic_load_n(&node->next, __ATOMIC_RELAXED);
		/*
		 * Unqueue before waking, so a later wake_q_add after this point queues it again. Release: pairs with
		 * the cmpxchg of fiber__wake_q_add_safe, which may rewrite next only after our read of it above.
		 */
		__atomic_store_n(&p->wake_q.next, NULL, __ATOMIC_RELEASE);
		if (held)
			fiber__try_to_wake_up(p, TASK_NORMAL, wake_flags);
		fiber__put_task_struct(p);
	}
	if (held)
		fiber__rt_exit();
	head->first = WAKE_Q_TAIL;
	head->lastp = &head->first;
}

void fiber__wake_up_q(struct wake_q_head *head)
{
	wake_up_q_flags(head, 0);
}

/* ------------------------------------------------------------------------------------------------------------
 * Preempt notifiers
 * ---------------------------------------------------------------------------------------------------------- */

static void fire_sched_out_preempt_notifiers(struct fiber *curr, struct fiber *next)
{
	fiber_t *nf = is_idle_task(next) ? NULL : next;

	for (struct fiber_preempt_notifier *n = curr->preempt_notifiers; n; n = n->next)
		n->ops->sched_out(n, nf);
}

static void fire_sched_in_preempt_notifiers(struct fiber *curr, int cpu)
{
	for (struct fiber_preempt_notifier *n = curr->preempt_notifiers; n; n = n->next)
		n->ops->sched_in(n, cpu);
}

void fiber_preempt_notifier_init(struct fiber_preempt_notifier *n, const struct fiber_preempt_ops *ops)
{
	if (!n)
		return;
	n->next = NULL;
	n->pprev = NULL;
	n->ops = ops;
}

void fiber_preempt_notifier_register(struct fiber_preempt_notifier *n)
{
	struct fiber *curr;

	if (!n || !n->ops || n->pprev)
		return;
	preempt_disable();
	curr = this_worker() ? this_worker()->current : NULL;
	if (curr && !is_idle_task(curr)) {
		/* N4: a hint, read relaxed; the list itself is current's own (N3), so nothing to pair with. */
		atomic_fetch_add(&fiber__preempt_notifier_key, 1);
		n->next = curr->preempt_notifiers;
		if (n->next)
			n->next->pprev = &n->next;
		curr->preempt_notifiers = n;
		n->pprev = &curr->preempt_notifiers;
	}
	preempt_enable_no_resched();
}

static void notifier_unlink(struct fiber_preempt_notifier *n)
{
	*n->pprev = n->next;
	if (n->next)
		n->next->pprev = n->pprev;
	n->next = NULL;
	n->pprev = NULL;
	atomic_fetch_sub(&fiber__preempt_notifier_key, 1);
}

void fiber_preempt_notifier_unregister(struct fiber_preempt_notifier *n)
{
	if (!n || !n->pprev || !this_worker())
		return;
	preempt_disable();
	notifier_unlink(n);
	preempt_enable_no_resched();
}

/* ------------------------------------------------------------------------------------------------------------
 * The switch path
 * ---------------------------------------------------------------------------------------------------------- */

static inline __attribute__((unused)) void fiber_stack_bounds(struct worker *w, struct fiber *p, const void **bottom,
							      size_t *size)
{
	if (is_idle_task(p)) {
		*bottom = w->native_stack_bottom;
		*size = w->native_stack_size;
	} else {
		size_t guard = fiber__stack_guard_size();

		*bottom = (char *)p->stack_base + guard;
		*size = fiber__stack_top(p) - (uintptr_t)*bottom;
	}
}

static inline void prepare_task_switch(struct worker *w, struct rq *rq, struct fiber *prev, struct fiber *next)
{
	if (atomic_load_explicit(&fiber__preempt_notifier_key, memory_order_relaxed) && prev->preempt_notifiers)
		fire_sched_out_preempt_notifiers(prev, next);
	prev->saved_errno = *w->errno_loc;
	/* B1: next is on a CPU from now on; nobody may move or wake-run it until its next switch-out completes. */
	FIBER_DEBUG_BUG_ON(atomic_load_explicit(&next->on_cpu, memory_order_relaxed));
	atomic_store_explicit(&next->on_cpu, 1, memory_order_relaxed);
	if (is_idle_task(next)) {
		atomic_store_explicit(&w->nr_idle, atomic_load_explicit(&w->nr_idle, memory_order_relaxed) + 1,
				      memory_order_relaxed);
		fiber__idle_mask_set(rq->cpu, true);
	} else if (is_idle_task(prev)) {
		/*
		 * Busy again: the monitor ignores idle workers, so a tick wanted (tick_update above ran while we were
		 * still marked idle) or timers armed while we idled need it to look now. The mask update is a full
		 * barrier (seq_cst RMW) before the monitor's sleeping flag is read.
		 */
		fiber__idle_mask_set(rq->cpu, false);
		if (atomic_load_explicit(&w->tick_wanted, memory_order_relaxed) ||
		    atomic_load_explicit(&w->timers.next_expiry, memory_order_relaxed) != UINT64_MAX)
			fiber__monitor_kick();
	}
}

/*
 * The dead fiber's end (C2), after the switch and after the unlock: its class's task_dead, every class's task_free,
 * the descriptor's last self-reference. Out of line: once per fiber, not once per switch.
 */
static __noinline void finish_task_dead(struct fiber *prev)
{
	if (prev->sched_class->task_dead)
		prev->sched_class->task_dead(prev);
	/* Every class's, as at task_fork: a class it left may still hold something (an armed DL timer). */
	for (unsigned i = 0; i < nr_task_free_hooks; i++)
		task_free_hooks[i](prev);
	bool user = !(prev->flags & PF_KTHREAD);

	fiber__tsan_dead(prev);
	fiber__fiber_unlist(prev);
	fiber__put_task_struct(prev); /* the reference the fiber held on itself while it ran */
	if (user)
		fiber__live_put(this_worker());
}

/* Give @n counts back to nr_fibers; the one that brings it to 0 wakes stop. */
void fiber__live_sub(int n)
{
	/* Pairs with wait_for_fibers (runtime.c): its seq_cst store of stop_waiting, its nr_fibers loads. */
	if (atomic_fetch_sub_explicit(&fiber__rt.nr_fibers, n, memory_order_acq_rel) == n &&
	    atomic_load_explicit(&fiber__rt.stop_waiting, memory_order_acquire))
		fiber__futex(&fiber__rt.nr_fibers, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

/* @w's idle loop, once per idle period: its credit goes back, so that the last exit can bring nr_fibers to 0. */
void fiber__live_flush(struct worker *w)
{
	int n = atomic_load_explicit(&w->live_credit, memory_order_relaxed);

	if (n) {
		atomic_store_explicit(&w->live_credit, 0, memory_order_relaxed);
		fiber__live_sub(n);
	}
}

/*
 * finish_task_switch - the first thing a resumed fiber does, on its own stack, possibly on another worker than the
 * one it left. @prev is "last": the fiber that ran on this worker just before. Inline in context_switch (every
 * switch) and schedule_tail (a new fiber's first run).
 */
static inline __attribute__((always_inline)) struct rq *finish_task_switch(struct fiber *prev)
{
	struct worker *w = this_worker(); /* recomputed: we may be on another pthread than when we left */
	struct rq *rq = &w->rq;
	struct fiber *curr = w->current;
	struct fiber__test_hooks *hooks;
	unsigned prev_state;

	/* P1: one level from schedule(), one from the rq lock. */
	FIBER_DEBUG_BUG_ON(w->preempt_count != 2);
	FIBER_DEBUG_BUG_ON(!spin_is_locked(&rq->lock));

	hooks = atomic_load_explicit(&fiber__hooks, memory_order_relaxed);
	if (unlikely(hooks) && hooks->finish_task_switch)
		hooks->finish_task_switch(curr, prev, w->id);

	/*
	 * C1: read prev->state before on_cpu is cleared. Once on_cpu is 0 a waker may run prev elsewhere; if it then
	 * exits, a later read would see DEAD and free it twice.
	 */
	prev_state = atomic_load_explicit(&prev->state, memory_order_relaxed);
	/* B1: pairs with the acquire loads of on_cpu in try_to_wake_up and the wakelist drain. */
	atomic_store_explicit(&prev->on_cpu, 0, memory_order_release);
	/* finish_lock_switch: the lock __schedule took on (possibly) another fiber's stack. */
	w->preempt_count--;
	spin_unlock(&rq->lock);

	*w->errno_loc = curr->saved_errno;
	if (atomic_load_explicit(&fiber__preempt_notifier_key, memory_order_relaxed) && curr->preempt_notifiers)
		fire_sched_in_preempt_notifiers(curr, w->id);

	if (unlikely(prev_state == TASK_DEAD))
		finish_task_dead(prev); /* C2: after the switch and after the unlock */

	/* The analog of the IPI that waits for interrupts to come back on: wake-ups handed to us while we switched. */
	if (atomic_load_explicit(&w->wake_list, memory_order_relaxed))
		fiber__sched_ttwu_pending(w);
	return rq;
}

static inline struct rq *context_switch(struct worker *w, struct rq *rq, struct fiber *prev, struct fiber *next,
					bool prev_dead)
{
	struct fiber *last;
#ifdef FIBER_HAVE_ASAN
	const void *bottom;
	size_t size;
#endif

	prepare_task_switch(w, rq, prev, next);
	w->current = next; /* after the sched_out notifiers, which still see current == prev */
	FIBER_DEBUG_BUG_ON(w->preempt_count != 2);
#ifdef FIBER_HAVE_ASAN
	fiber_stack_bounds(w, next, &bottom, &size);
	/* A dying fiber passes NULL: ASan destroys its fake stack, it never comes back. */
	__sanitizer_start_switch_fiber(prev_dead ? NULL : &prev->asan_fake_stack, bottom, size);
#else
	(void)prev_dead;
#endif
	fiber__trace_switch(w, prev, next);
	fiber__tsan_switch(prev, next);
	last = fiber__switch(prev, next);
	barrier();
	/* Now on prev's stack again, resumed by "last", maybe on another worker: w and rq are stale here. */
#ifdef FIBER_HAVE_ASAN
	__sanitizer_finish_switch_fiber(prev->asan_fake_stack, NULL, NULL);
#endif
	return finish_task_switch(last);
}

/* sched_info at a switch: prev waits again if it is still runnable; next stops waiting and starts running. */
static inline void sched_info_switch(struct rq *rq, struct fiber *prev, struct fiber *next)
{
	if (is_idle_task(prev))
		rq->idle_ns += rq->clock - prev->exec_start;
	else if (task_on_rq_queued(prev))
		prev->wait_start = rq->clock;
	if (next->wait_start) {
		next->wait_sum += rq->clock - next->wait_start;
		next->wait_start = 0;
	}
	fiber__set_exec_start(rq, next);
}

static struct fiber *pick_next_task(struct rq *rq, struct fiber *prev)
{
	struct fiber *next = NULL;

	/*
	 * Fast path (__pick_next_task): prev is not above fair and every runnable fiber is fair, so no higher class
	 * can have anything; ask fair directly (which also puts prev back and sets next up) and fall back to idle.
	 */
	if (likely(!sched_class_above(prev->sched_class, &fiber__fair_sched_class) &&
		   atomic_load_explicit(&rq->nr_running, memory_order_relaxed) == rq->cfs.nr_running)) {
		next = fiber__pick_next_task_fair(rq, prev);
		if (likely(next)) {
			if (next != prev)
				sched_info_switch(rq, prev, next);
			return next;
		}
		next = rq->idle;
		goto picked;
	}
	for (unsigned i = 0; i < ARRAY_SIZE(fiber__classes); i++) {
		next = fiber__classes[i]->pick_task(rq);
		if (next)
			break;
	}
picked:
	/* The idle class always returns a fiber. Picking prev again changes nothing (put_prev_set_next_task). */
	if (next != prev) {
		prev->sched_class->put_prev_task(rq, prev, next);
		next->sched_class->set_next_task(rq, next, true);
		sched_info_switch(rq, prev, next);
	}
	return next;
}

static void __schedule(int sched_mode)
{
	struct worker *w = this_worker();
	struct rq *rq = &w->rq;
	struct fiber *prev = w->current, *next;
	unsigned prev_state;
	bool preempt = sched_mode != SM_NONE;

	/* schedule_debug: __schedule is entered with exactly the one level schedule() took. */
	FIBER_DEBUG_BUG_ON(w->preempt_count != 1);
	note_progress(w);

	spin_lock(&rq->lock);
	w->preempt_count++;
	/*
	 * smp_mb__after_spinlock: orders the caller's state store (set_current_state) before the reads below and pairs
	 * with the one in try_to_wake_up (D1).
	 */
	smp_mb__after_spinlock();
	fiber__update_rq_clock(rq);
	if (sched_mode == SM_YIELD)
		prev->sched_class->yield_task(rq);

	/* A1: prev_state is read once, under the lock. An involuntary switch never dequeues (D3). */
	prev_state = atomic_load_explicit(&prev->state, memory_order_relaxed);
	if (!preempt && prev_state) {
		if ((prev_state & TASK_INTERRUPTIBLE) && fiber__signal_pending(prev))
			atomic_store_explicit(&prev->state, TASK_RUNNING, memory_order_relaxed);
		else
			block_task(rq, prev);
	}

	next = pick_next_task(rq, prev);
	clear_tsk_need_resched(prev);
	tick_update_switch(w, rq, next);

	if (likely(prev != next)) {
		rq->nr_switches++;
		atomic_store_explicit(&w->switch_clock, rq->clock, memory_order_relaxed);
		WRITE_ONCE(rq->curr, next); /* remote workers peek at it unlocked (worker_idle) */
		if (!preempt && prev_state)
			prev->nvcsw++;
		else
			prev->nivcsw++;
		context_switch(w, rq, prev, next, prev_state == TASK_DEAD);
		/* finish_task_switch released the lock and dropped preempt_count to 1. */
	} else {
		w->preempt_count--;
		spin_unlock(&rq->lock);
	}
}

/*
 * Work to do before taking the rq lock: due timers and wake-ups handed to us (sched_submit_work's place). @sw: a
 * switch follows (schedule, yield), not only a preemption point; the I/O batch counts switches (uring.c).
 */
static inline void sched_submit_work(struct worker *w, bool sw)
{
	uint64_t next = atomic_load_explicit(&w->timers.next_expiry, memory_order_relaxed);

	if (unlikely(next != UINT64_MAX)) {
		uint64_t now = fiber__sched_clock();

		if (now >= next)
			fiber__run_timers(&w->timers, now);
	}
	if (unlikely(atomic_load_explicit(&w->wake_list, memory_order_relaxed)))
		fiber__sched_ttwu_pending(w);
	/* The plug flush: SQEs this worker's fibers prepared go to the kernel once their batch is due (uring.c). */
	fiber__io_sched_work(w, sw);
}

/*
 * A fiber that blocks, yields or exits with preemption disabled ("scheduling while atomic") is a caller bug. The
 * kernel warns and goes on; so do we, once, naming the fiber, and contain it to that fiber: its depth is taken off
 * the worker before the switch (so the next fiber starts at depth 0) and given back when it resumes (an exiting
 * fiber's depth dies with it). A FIBER_DEBUG build stops here instead: it is a bug to find, not to live with.
 */
static __noinline void schedule_atomic_fixup(struct worker *w, struct fiber *prev, const char *what)
{
	static atomic_flag warned = ATOMIC_FLAG_INIT;

#ifdef FIBER_DEBUG
	fprintf(stderr, "libfiber: fiber %llu \"%s\" %s with preemption disabled (depth %d)\n",
		(unsigned long long)prev->id, prev->name, what, w->preempt_count);
	FIBER_BUG_ON(w->preempt_count);
#endif
	if (!atomic_flag_test_and_set(&warned))
		fprintf(stderr,
			"libfiber: fiber %llu \"%s\" %s with preemption disabled (depth %d); "
			"this is a bug in the caller\n",
			(unsigned long long)prev->id, prev->name, what, w->preempt_count);
	prev->saved_preempt = w->preempt_count;
	w->preempt_count = 0;
}

/* The depth a fiber carried across its switch, back on whichever worker it resumed on (@w, read after the switch). */
static inline void schedule_atomic_restore(struct worker *w)
{
	int saved = w->current->saved_preempt;

	if (unlikely(saved)) {
		w->current->saved_preempt = 0;
		w->preempt_count = saved;
	}
}

void fiber__schedule(void)
{
	struct worker *w = this_worker();
	struct fiber *prev = w->current;

	if (unlikely(w->preempt_count))
		schedule_atomic_fixup(w, prev, "blocked");
	if (unlikely(atomic_load_explicit(&w->tick_pending, memory_order_relaxed))) {
		atomic_store_explicit(&w->tick_pending, 0, memory_order_relaxed); /* __schedule charges curr anyway */
		set_tick_wanted(w, false);					  /* __schedule: on again if needed */
	}
	sched_submit_work(w, true);
	do {
		preempt_disable();
		__schedule(SM_NONE);
		preempt_enable_no_resched();
		w = this_worker();
	} while (test_tsk_need_resched(w->current));
	schedule_atomic_restore(w);
}

/* preempt_schedule: an involuntary switch at a preemption point; never dequeues (D3). */
static void preempt_schedule(void)
{
	struct worker *w;

	do {
		preempt_disable();
		__schedule(SM_PREEMPT);
		preempt_enable_no_resched();
		w = this_worker();
	} while (test_tsk_need_resched(w->current));
}

/* The idle loop's way in: count 1 already, no preempt_disable of its own (schedule_idle). */
void fiber__schedule_idle(void)
{
	struct worker *w = this_worker();

	do {
		__schedule(SM_IDLE);
		w = this_worker();
	} while (test_tsk_need_resched(w->current) && atomic_load_explicit(&w->rq.nr_running, memory_order_relaxed));
}

/*
 * The tick's fallback, every TICK_CHECK_EVERY preemption points: the tick is the monitor thread's store, and a
 * monitor the host does not run (its CPU taken, as CI saw for 19 ms) or that is not there (FIBER_MONITOR=0)
 * would leave a fiber that never switches running past its slice or budget for as long. So a worker whose tick
 * is wanted and has neither ticked nor switched for two tick periods ticks itself. With a monitor on time that
 * never happens (it ticks every period, or skips a tick only just after a switch). An extra tick is harmless: the
 * classes account by the clock, the tick only makes them look.
 */
#define TICK_CHECK_EVERY 256 /* a power of two: one clock read per this many preemption points */

static __noinline void tick_fallback(struct worker *w)
{
	uint64_t now, last = atomic_load_explicit(&w->switch_clock, memory_order_relaxed);

	if (!fiber__rt.tick_hz || !atomic_load_explicit(&w->tick_wanted, memory_order_relaxed) ||
	    atomic_load_explicit(&w->tick_pending, memory_order_relaxed))
		return;
	if (w->tick_clock > last)
		last = w->tick_clock;
	now = fiber__sched_clock();
	if ((int64_t)(now - last) >= (int64_t)(2 * fiber__rt.tick_ns))
		atomic_store_explicit(&w->tick_pending, 1, memory_order_relaxed);
}

/*
 * A preemption point: the return from every runtime call, fiber_cond_resched, fiber_preempt_enable. Cheap when
 * nothing is pending: a few loads.
 */
void fiber__preempt_point(void)
{
	struct worker *w = this_worker();

	if (!w || w->preempt_count)
		return;
	note_progress(w);
	if (unlikely(!(atomic_load_explicit(&w->pp_seq, memory_order_relaxed) & (TICK_CHECK_EVERY - 1))))
		tick_fallback(w);
	/* A reschedule already decided goes first, then the tick's accounting. */
	if (test_tsk_need_resched(w->current)) {
		preempt_schedule();
		w = this_worker();
	}
	if (unlikely(atomic_load_explicit(&w->tick_pending, memory_order_relaxed)))
		fiber__sched_tick(w);
	sched_submit_work(w, false);
	w = this_worker();
	if (test_tsk_need_resched(w->current))
		preempt_schedule();
}

/*
 * sched_tick: the accounting a tick asked for, run at a preemption point (the monitor only set tick_pending):
 * charge curr and let its class decide whether its slice, budget or turn is over.
 */
void fiber__sched_tick(struct worker *w)
{
	struct rq *rq = &w->rq;
	struct fiber *curr;

	atomic_store_explicit(&w->tick_pending, 0, memory_order_relaxed);
	preempt_disable();
	spin_lock(&rq->lock);
	fiber__update_rq_clock(rq);
	w->tick_clock = rq->clock;
	curr = rq->curr;
	curr->sched_class->task_tick(rq, curr, 0);
	tick_update(w, rq, curr);
	spin_unlock(&rq->lock);
	preempt_enable_no_resched();
	/* Work waiting here while a worker idles: a sync wake-up did not kick one (ttwu_queue), the tick does. */
	fiber__wakep(rq);
}

/* schedule_tail: the first C code of a new fiber, called by fiber__trampoline with last in rdi. */
void fiber__schedule_tail(struct fiber *prev)
{
#ifdef FIBER_HAVE_ASAN
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
	finish_task_switch(prev);
	preempt_enable_no_resched();
	/* The new fiber's first preemption point. */
	if (test_tsk_need_resched(this_worker()->current))
		preempt_schedule();
}

/*
 * set_current_state: state store, then a full barrier before the caller checks its condition (D1). A seq_cst
 * exchange is the store and the barrier in one instruction (smp_store_mb is an xchg on x86). Pairs with the
 * waker's smp_mb__after_spinlock in try_to_wake_up.
 */
void fiber__set_current_state(unsigned state)
{
	atomic_exchange_explicit(&this_worker()->current->state, state, memory_order_seq_cst);
}

/* do_task_dead: DEAD under pi_lock (set_special_state, D5), then the final switch. */
static _Noreturn void do_task_dead(void)
{
	struct worker *w;
	struct fiber *curr;

	preempt_disable();
	w = this_worker();
	curr = w->current;
	spin_lock(&curr->pi_lock);
	atomic_store_explicit(&curr->state, TASK_DEAD, memory_order_relaxed);
	spin_unlock(&curr->pi_lock);
	__schedule(SM_NONE);
	FIBER_BUG_ON(1); /* a dead fiber was scheduled again */
	__builtin_unreachable();
}

void fiber__exit(void *retval)
{
	struct worker *w = this_worker();
	struct fiber *p = w->current;

	if (unlikely(w->preempt_count)) {
		schedule_atomic_fixup(w, p, "exited");
		p->saved_preempt = 0; /* it never resumes */
	}
	/* Fiber-local destructors run in the fiber, before it is joinable-done (pthread_exit order). */
	if (p->specific)
		fiber__keys_exit(p);
	/* Notifiers are the fiber's own; they do not fire for the final switch-out. */
	while (p->preempt_notifiers)
		fiber_preempt_notifier_unregister(p->preempt_notifiers);
	p->retval = retval;
	/* Release (retval first): pairs with the joiners' acquire loads of exited (fiber.c, syscalls.c). */
	atomic_store_explicit(&p->exited, 1, memory_order_release);
	/*
	 * A joiner that returns may admit a new deadline fiber at once: give the bandwidth back before waking it,
	 * not only in task_dead after the final switch (which stays, for a setattr that raced this exit).
	 */
	spin_lock(&p->pi_lock); /* the policy and the reservation change under it (setattr) */
	if (unlikely(p->sched_class->release))
		p->sched_class->release(p);
	spin_unlock(&p->pi_lock);
	/* Pairs with the fence after a pthread joiner announces itself (D1 pattern on the exited flag). */
	atomic_thread_fence(memory_order_seq_cst);
	fiber__wake_up_sync(&p->join_wq, TASK_NORMAL);
	if (atomic_load_explicit(&p->pthread_joiner, memory_order_relaxed))
		fiber__futex(&p->exited, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
	if (p->migration_disabled)
		p->migration_disabled = 0;
	do_task_dead();
}

/* do_sched_yield: fiber_yield's switch (syscalls.c), for the fiber that runs on @w. */
void fiber__do_sched_yield(struct worker *w)
{
	if (unlikely(w->preempt_count))
		schedule_atomic_fixup(w, w->current, "yielded");
	sched_submit_work(w, true);
	preempt_disable();
	/*
	 * do_sched_yield takes the rq lock for yield_task, drops it and calls schedule(); SM_YIELD runs yield_task
	 * under __schedule's own lock instead, which saves a lock round trip. The fiber stays RUNNING (never dequeued).
	 */
	__schedule(SM_YIELD);
	w = this_worker(); /* read once after the switch: we may have resumed on another worker */
	atomic_signal_fence(memory_order_seq_cst);
	w->preempt_count--; /* preempt_enable_no_resched */
	if (test_tsk_need_resched(w->current)) {
		preempt_schedule();
		w = this_worker();
	}
	schedule_atomic_restore(w);
}

/* ------------------------------------------------------------------------------------------------------------
 * Public scheduling calls that belong to the core
 * ---------------------------------------------------------------------------------------------------------- */

void fiber_preempt_disable(void)
{
	if (this_worker())
		preempt_disable();
}

void fiber_preempt_enable(void)
{
	struct worker *w = this_worker();

	if (!w || w->preempt_count <= 0)
		return;
	preempt_enable_no_resched();
	if (w->preempt_count == 0)
		fiber__preempt_point();
}

void fiber_cond_resched(void)
{
	fiber__preempt_point();
}

void fiber_migrate_disable(void)
{
	struct worker *w = this_worker();

	if (w && !is_idle_task(w->current))
		w->current->migration_disabled++;
}

void fiber_migrate_enable(void)
{
	struct worker *w = this_worker();
	struct fiber *p;

	if (!w || is_idle_task(w->current) || w->current->migration_disabled <= 0)
		return;
	p = w->current;
	if (--p->migration_disabled)
		return;
	/*
	 * A move asked for while migration was disabled was left to us (affine_move_task). Pairs with the fence in
	 * fiber_setaffinity: either it saw migration enabled and moved us, or we see its new mask here.
	 */
	atomic_thread_fence(memory_order_seq_cst);
	if (unlikely(!cpu_allowed(p, p->cpu) || migration_dest(p) >= 0)) {
		fiber__affine_move_task(fiber__task_rq_lock(p), p);
		fiber__preempt_point();
	}
}

/*
 * Wake a TASK_OFFLOAD fiber on @cpu (a spare thread taking it in), or, with @cpu < 0, on the worker
 * select_task_rq picks (the spare handing it back). Runs on the spare's own thread. The fiber announced itself
 * before its schedule(): wait until that has dequeued it and its switch-out is complete (B2), then the usual
 * activation. Nobody else wakes a TASK_OFFLOAD fiber (no wake-up mask matches it), so this is the only one.
 */
void fiber__offload_wake(struct fiber *p, int cpu)
{
	int flags = 0;

	spin_lock(&p->pi_lock);
	smp_mb__after_spinlock(); /* pairs with the fiber's set_current_state(TASK_OFFLOAD) before its announcement */
	/*
	 * A few microseconds at most, unless the host preempted that worker: then give it our CPU, do not spin. The
	 * acquire loads pair with block_task's release of on_rq and finish_task_switch's of on_cpu (B2).
	 */
	for (unsigned spins = 0; atomic_load_explicit(&p->on_rq, memory_order_acquire) ||
				 atomic_load_explicit(&p->on_cpu, memory_order_acquire);
	     spins++) {
		if (spins < 256)
			cpu_relax();
		else
			sched_yield();
	}
	FIBER_DEBUG_BUG_ON(atomic_load_explicit(&p->state, memory_order_relaxed) != TASK_OFFLOAD);
	atomic_store_explicit(&p->state, TASK_WAKING, memory_order_relaxed);
	if (cpu < 0) {
		/* Back to the workers: migrate_disable stays counted until fiber_blocking_end drops it there. */
		int saved = p->migration_disabled;

		p->migration_disabled = 0;
		cpu = fiber__select_task_rq(p, 0);
		p->migration_disabled = saved;
	}
	if (cpu != p->cpu)
		flags |= WF_MIGRATED;
	set_task_cpu(p, cpu);
	ttwu_queue(this_worker(), p, cpu, flags);
	spin_unlock(&p->pi_lock);
}

/*
 * fiber_blocking_begin/end: Go's entersyscall/exitsyscall, turned around. Go hands the P (the runqueue) to a new
 * thread and leaves the goroutine on the blocked one; here the runqueue is the worker and stays with its thread,
 * and the fiber moves instead: it switches out like a sleeper (TASK_OFFLOAD), a spare thread takes it in and runs
 * the region, and at the end the spare wakes it on a worker again. The worker never blocks, so its queued fibers,
 * timers and ring go on at full speed, even when every worker's fibers are in regions at once. Spare threads are
 * not workers: nothing is placed on them or pulled from them, the monitor does not watch them, they have no ring
 * (I/O calls inside a region make the plain system call). The move costs two thread hand-offs.
 * Without a spare (all in use, or the thread cannot be created) or for a deadline fiber (its bandwidth is its
 * worker's), the region runs in place: the worker declares itself stuck at once (wake-up placement avoids it) and
 * kicks the monitor, which moves its queued fibers to other workers and runs its timers until the region ends.
 */
void fiber_blocking_begin(void)
{
	struct worker *w = this_worker(), *s;
	struct fiber *p;

	if (!w || is_idle_task(w->current))
		return;
	p = w->current;
	if (p->blocking_depth++)
		return;
	fiber_migrate_disable(); /* the region stays where it runs; moves asked for meanwhile wait for the end */
	/* Not for a class that reserves bandwidth on its worker (deadline): the region then runs in place. */
	if (!w->spare && !w->preempt_count && !policy_class(p->policy)->admit && (s = fiber__spare_claim())) {
		p->offload_spare = s->id + 1;
		fiber__set_current_state(TASK_OFFLOAD);
		atomic_store_explicit(&s->offload_req, p, memory_order_release); /* pairs with spare_work's exchange */
		fiber__kick_worker(s);
		fiber__schedule(); /* resumes on the spare's thread */
		return;
	}
	atomic_store_explicit(&w->stuck, 1, memory_order_relaxed);
	/*
	 * seq_cst: the monitor either sees blocking here or is awake and will (fiber__monitor_kick). Pairs with the
	 * monitor's seq_cst store of mon.sleeping before its last scan.
	 */
	atomic_store_explicit(&w->blocking, 1, memory_order_seq_cst);
	fiber__monitor_kick();
}

void fiber_blocking_end(void)
{
	struct worker *w = this_worker();
	struct fiber *p;

	if (!w || is_idle_task(w->current) || w->current->blocking_depth <= 0)
		return;
	p = w->current;
	if (--p->blocking_depth)
		return;
	if (p->offload_spare) {
		/* On the spare: hand ourselves back; the spare wakes us on a worker once we are off its CPU. */
		p->offload_spare = 0;
		fiber__set_current_state(TASK_OFFLOAD);
		atomic_store_explicit(&w->offload_ret, p, memory_order_release); /* pairs with spare_work's exchange */
		fiber__schedule();
		fiber_migrate_enable(); /* on a worker again: a move asked for during the region happens now */
		fiber__preempt_point();
		return;
	}
	atomic_store_explicit(&w->blocking, 0, memory_order_relaxed);
	atomic_store_explicit(&w->stuck, 0, memory_order_relaxed);
	fiber_migrate_enable();
	fiber__preempt_point();
}

/* ------------------------------------------------------------------------------------------------------------
 * The change pattern (KERNEL_MAP §5.3, §9.1): take a fiber out, change it, put it back. fiber_setattr
 * (syscalls.c) and fiber__pi_setprio use it; task_rq_lock(p) held, rq clock fresh.
 * ---------------------------------------------------------------------------------------------------------- */

void fiber__sched_change_begin(struct rq *rq, struct fiber *p, struct sched_change *ch)
{
	lockdep_assert_held(&rq->lock);
	ch->queued = task_on_rq_queued(p);
	ch->running = rq->curr == p;
	if (ch->queued)
		dequeue_task(rq, p, DEQUEUE_SAVE | DEQUEUE_MOVE);
	if (ch->running)
		p->sched_class->put_prev_task(rq, p, p);
	ch->prev_class = p->sched_class;
	ch->oldprio = p->prio;
}

/* After the change of p's class, priority or parameters: put it back and tell the classes (check_class_changed). */
void fiber__sched_change_end(struct rq *rq, struct fiber *p, struct sched_change *ch)
{
	const struct sched_class *prev_class = ch->prev_class;
	bool queued = ch->queued, running = ch->running;
	int oldprio = ch->oldprio;

	if (prev_class != p->sched_class && prev_class->switched_from)
		prev_class->switched_from(rq, p);

	if (queued) {
		int flags = ENQUEUE_RESTORE | ENQUEUE_MOVE;

		/* POSIX: a lowered priority goes to the head of its new level, a raised one to the tail. */
		if (prev_class == p->sched_class && oldprio < p->prio)
			flags |= ENQUEUE_HEAD;
		enqueue_task(rq, p, flags);
	}
	if (running) {
		p->sched_class->set_next_task(rq, p, false);
		fiber__set_exec_start(rq, p);
	}
	/* check_class_changed */
	if (prev_class != p->sched_class) {
		if (p->sched_class->switched_to)
			p->sched_class->switched_to(rq, p);
		/* A running fiber that moved to a lower class lets a higher waiting one run. */
		if (running && sched_class_above(prev_class, p->sched_class))
			fiber__resched_curr(rq);
	} else if (p->sched_class->prio_changed) {
		p->sched_class->prio_changed(rq, p, oldprio); /* it tells a new priority or new parameters */
	}
}

/* After a change: whether rq's worker needs the tick now (a fiber that became DEADLINE while it runs does). */
void fiber__tick_update(struct rq *rq)
{
	tick_update(rq_worker(rq), rq, rq->curr);
}

/* ------------------------------------------------------------------------------------------------------------
 * Migration: task_rq_lock, move_queued_task, affine_move_task and the stopper's migration_cpu_stop
 * ---------------------------------------------------------------------------------------------------------- */

/* task_rq_lock: pi_lock, then the rq lock of the rq p is on, retried while p moves. */
struct rq *fiber__task_rq_lock(struct fiber *p)
{
	spin_lock(&p->pi_lock);
	return __task_rq_lock(p);
}

void fiber__task_rq_unlock(struct rq *rq, struct fiber *p)
{
	spin_unlock(&rq->lock);
	spin_unlock(&p->pi_lock);
}

/*
 * move_queued_task: p is queued on rq (locked) and not running there. Take it off (MIGRATING covers the gap between
 * the two locks), give it its new worker, and queue it there. Returns with rq unlocked; p's pi_lock, if the caller
 * holds it, stays held. @balance: a balancing move, counted in the two workers' pushed/pulled statistics.
 */
/*
 * detach_task / attach_task, the two halves of a move: queued @p leaves @rq (locked) for @new_cpu, on_rq MIGRATING
 * until attach_task queues it on that worker's rq (locked, clock updated). Never two rq locks at once.
 */
void fiber__detach_task(struct rq *rq, struct fiber *p, int new_cpu, bool balance)
{
	lockdep_assert_held(&rq->lock);
	FIBER_BUG_ON(rq->curr == p || atomic_load_explicit(&p->on_cpu, memory_order_relaxed));
	fiber__deactivate_task(rq, p, DEQUEUE_MOVE);
	set_task_cpu(p, new_cpu);
	if (balance)
		rq->pushed++;
}

void fiber__attach_task(struct rq *dst, struct fiber *p, bool balance)
{
	lockdep_assert_held(&dst->lock);
	fiber__activate_task(dst, p, ENQUEUE_MOVE | ENQUEUE_MIGRATED);
	if (balance)
		dst->pulled++;
	fiber__wakeup_preempt(dst, p, 0);
}

void fiber__move_queued_task(struct rq *rq, struct fiber *p, int new_cpu, bool balance)
{
	struct rq *dst = cpu_rq(new_cpu);

	fiber__detach_task(rq, p, new_cpu, balance);
	spin_unlock(&rq->lock);

	spin_lock(&dst->lock);
	fiber__update_rq_clock(dst);
	fiber__attach_task(dst, p, balance);
	spin_unlock(&dst->lock);
	fiber__tick_dep(dst);
}

/*
 * Where p has to go: the worker that holds its deadline bandwidth, or an allowed worker when it is on one it may
 * no longer use; -1 when it may stay. pi_lock held.
 */
static int migration_dest(struct fiber *p)
{
	int cpu;

	cpu = class_select_cpu(p, p->cpu, 0);
	if (cpu >= 0)
		return p->cpu == cpu ? -1 : cpu;
	if (cpu_allowed(p, p->cpu))
		return -1;
	for (cpu = 0; cpu < (int)fiber__rt.nr_workers; cpu++)
		if (cpu_allowed(p, cpu))
			return cpu;
	return -1;
}

static void migration_cpu_stop(void *data);

/*
 * affine_move_task: make p live where migration_dest says, the way the kernel applies an affinity change
 * (__set_cpus_allowed_ptr -> affine_move_task). Called with task_rq_lock(p) held; returns with both locks
 * released. A queued fiber that is not running is moved at once (move_queued_task). A sleeping fiber is left
 * alone: select_task_rq places its next wake-up on an allowed worker. A fiber that is running, still switching
 * out (on_cpu), or TASK_WAKING - its wake-up queued on its worker's wakelist, where that worker will activate it
 * on its own rq - must not have p->cpu changed under it: its worker's stopper moves it once it is only queued
 * there. A migration-disabled fiber is moved by its own fiber_migrate_enable.
 */
void fiber__affine_move_task(struct rq *rq, struct fiber *p)
{
	int dest = migration_dest(p), cpu;
	unsigned state = atomic_load_explicit(&p->state, memory_order_relaxed);

	if (dest < 0 || state == TASK_DEAD || p->migration_disabled) {
		fiber__task_rq_unlock(rq, p);
		return;
	}
	/* on_cpu acquire: pairs with finish_task_switch's release store (B1, B4). */
	if (state != TASK_WAKING && !atomic_load_explicit(&p->on_cpu, memory_order_acquire) && rq->curr != p) {
		if (task_on_rq_queued(p)) {
			fiber__update_rq_clock(rq);
			fiber__move_queued_task(rq, p, dest, false);
			spin_unlock(&p->pi_lock);
			return;
		}
		if (!atomic_load_explicit(&p->on_rq, memory_order_relaxed)) {
			/* asleep: select_task_rq places its wake-up on an allowed worker */
			fiber__task_rq_unlock(rq, p);
			return;
		}
	}
	if (p->migration_pending) {
		fiber__task_rq_unlock(rq, p); /* the stopper will look again when it runs */
		return;
	}
	p->migration_pending = true;
	p->migration_work.fn = migration_cpu_stop;
	p->migration_work.arg = p;
	fiber__get_task_struct(p); /* dropped by migration_cpu_stop */
	cpu = p->cpu;
	fiber__task_rq_unlock(rq, p);
	fiber__stop_one_cpu_nowait(cpu, &p->migration_work);
}

/*
 * migration_cpu_stop: runs as the stopper of the worker p was on when the move was asked for, so p is not running
 * here. First the wake-ups handed to this worker (a WAKING p becomes queued here: the kernel's
 * flush_smp_call_function_queue at the same place), then affine_move_task again: p is moved if it is queued, or
 * the request follows p to the worker it runs on now.
 */
static void migration_cpu_stop(void *data)
{
	struct fiber *p = data;
	struct rq *rq;

	fiber__sched_ttwu_pending(this_worker());
	rq = fiber__task_rq_lock(p);
	p->migration_pending = false;
	fiber__affine_move_task(rq, p);
	fiber__put_task_struct(p);
}

/*
 * fiber__pi_setprio (the kernel's rt_mutex_setprio), for fiber_mutex priority inheritance (sync.c): run @p at the
 * effective priority min(@prio, p->normal_prio), kernel numbering; @prio INT_MAX ends a boost. Below MAX_RT_PRIO
 * the fiber runs in the rt class; its policy and parameters stay, so fiber_getattr does not show the boost (and a
 * fiber_setattr of @p ends it). DEADLINE fibers are left alone. The change pattern, as fiber_setattr.
 * Context: any thread, no rq lock or pi_lock held.
 */
void fiber__pi_setprio(struct fiber *p, int prio)
{
	const struct sched_class *cls;
	struct sched_change ch;
	int newprio;
	struct rq *rq;

	if (prio < 0)
		prio = 0; /* a DEADLINE waiter lends the highest realtime priority (rt queues are 0..98) */
	rq = fiber__task_rq_lock(p);
	newprio = prio < p->normal_prio ? prio : p->normal_prio;
	/* A DEADLINE fiber (normal_prio -1, above any lender) is left alone: newprio == p->prio. */
	if (newprio == p->prio || atomic_load_explicit(&p->state, memory_order_relaxed) == TASK_DEAD) {
		fiber__task_rq_unlock(rq, p);
		return;
	}
	/* The first class that takes the boosted priority (rt: below MAX_RT_PRIO), else the policy's own. */
	cls = policy_class(p->policy);
	for (unsigned i = 0; i < ARRAY_SIZE(fiber__classes); i++) {
		if (newprio < fiber__classes[i]->prio_limit) {
			cls = fiber__classes[i];
			break;
		}
	}
	fiber__update_rq_clock(rq);
	fiber__sched_change_begin(rq, p, &ch);
	p->prio = newprio;
	p->sched_class = cls;
	fiber__sched_change_end(rq, p, &ch); /* a lowered one goes to the head of its new level, as fiber_setattr */
	fiber__task_rq_unlock(rq, p);
}
