/*
 * runtime/sched_dl.c - the deadline class: EDF with the Constant Bandwidth Server, partitioned per worker.
 *
 * Parameters runtime <= deadline <= period (ns). A DL fiber has a budget (runtime) and an absolute deadline; the
 * queue is ordered by absolute deadline and the earliest runs (EDF). The budget is charged as the fiber runs; when it
 * runs out (or the fiber yields) the fiber is throttled: taken off the queue until its next period starts, when a
 * per-worker timer replenishes it (deadline += period, runtime += budget, until the runtime is positive; restart
 * from now if it lagged too much). A wake-up applies the CBS rule: if the current deadline has passed or the
 * remaining budget would exceed the reserved bandwidth before it (runtime / (deadline - now) > runtime0 /
 * deadline0), start a fresh period from now.
 *
 * Partitioned EDF: fiber_setattr assigns each DL fiber to one worker, and admission keeps the admitted bandwidth
 * (runtime / period) of every worker at or under 95% (-EBUSY otherwise). The fiber then only runs on that worker.
 * Global EDF (push/pull across workers) and GRUB reclaiming are not done; the revised wake-up rule for constrained
 * deadlines (deadline < period) is not applied either.
 *
 * Queue and budget under the rq lock; admission under fiber__rt.dl_lock.
 */
#include "internal.h"

#define DL_SCALE 10
#define DL_ADMIT_MAX ((BW_UNIT * 95) / 100)

static inline struct fiber *dl_task_of(struct sched_dl_entity *dl)
{
	return container_of(dl, struct fiber, dl);
}

static bool dl_less(const struct tnode *a, const struct tnode *b)
{
	return container_of(a, struct sched_dl_entity, node)->deadline <
	       container_of(b, struct sched_dl_entity, node)->deadline;
}

static inline uint64_t to_ratio(uint64_t period, uint64_t runtime)
{
	return period ? (uint64_t)(((unsigned __int128)runtime << BW_SHIFT) / period) : 0;
}

static void __enqueue_dl(struct rq *rq, struct sched_dl_entity *dl)
{
	lockdep_assert_held(&rq->lock);
	treap_insert(&rq->dl.tree, &dl->node);
	dl->on_tree = true;
	rq->dl.dl_nr_running++;
	add_nr_running(rq, 1);
}

static void __dequeue_dl(struct rq *rq, struct sched_dl_entity *dl)
{
	lockdep_assert_held(&rq->lock);
	treap_erase(&rq->dl.tree, &dl->node);
	dl->on_tree = false;
	rq->dl.dl_nr_running--;
	sub_nr_running(rq, 1);
}

/* A new period from now. */
static void setup_new_dl_entity(struct sched_dl_entity *dl, uint64_t now)
{
	dl->deadline = now + dl->dl_deadline;
	dl->runtime = (int64_t)dl->dl_runtime;
}

static void replenish_dl_entity(struct sched_dl_entity *dl, uint64_t now)
{
	if (dl->deadline == 0) {
		setup_new_dl_entity(dl, now);
	} else {
		if (dl->dl_yielded && dl->runtime > 0)
			dl->runtime = 0; /* a yield forfeits the rest of the budget */
		while (dl->runtime <= 0) {
			dl->deadline += dl->dl_period;
			dl->runtime += (int64_t)dl->dl_runtime;
		}
		/* Lagged too much (it overran for several periods): restart from now. */
		if (dl->deadline < now)
			setup_new_dl_entity(dl, now);
	}
	dl->dl_yielded = false;
	dl->dl_throttled = false;
}

/* runtime / (deadline - now) > dl_runtime / dl_deadline, by cross-multiplication after scaling down. */
static bool dl_entity_overflow(struct sched_dl_entity *dl, uint64_t now)
{
	uint64_t left = (dl->dl_deadline >> DL_SCALE) * ((uint64_t)(dl->runtime > 0 ? dl->runtime : 0) >> DL_SCALE);
	uint64_t right = ((dl->deadline - now) >> DL_SCALE) * (dl->dl_runtime >> DL_SCALE);

	return right < left;
}

/* The CBS wake-up rule. */
static void update_dl_entity(struct sched_dl_entity *dl, uint64_t now)
{
	if (dl->deadline == 0 || dl->deadline <= now || dl_entity_overflow(dl, now))
		setup_new_dl_entity(dl, now);
}

/* The replenishment timer: the fiber's next period has started. */
static void dl_task_timer(struct fiber_timer *t)
{
	struct fiber *p = t->fiber;
	struct sched_dl_entity *dl = &p->dl;
	struct rq *rq = fiber__task_rq_lock(p);

	/* The fiber may have left the class (or died: task_free_dl deletes the timer before its memory goes). */
	if (p->sched_class == &fiber__dl_sched_class && dl->dl_throttled) {
		fiber__update_rq_clock(rq);
		replenish_dl_entity(dl, rq->clock);
		if (task_on_rq_queued(p) && !dl->on_tree) {
			__enqueue_dl(rq, dl);
			if (rq->curr != p)
				fiber__wakeup_preempt(rq, p, 0);
		}
	}
	fiber__task_rq_unlock(rq, p);
}

/* Arm the replenishment at the start of the next period; false if that time has already come. */
static bool start_dl_timer(struct rq *rq, struct fiber *p)
{
	struct sched_dl_entity *dl = &p->dl;
	uint64_t act = dl->deadline - dl->dl_deadline + dl->dl_period;
	struct worker *w = rq_worker(rq);

	lockdep_assert_held(&rq->lock);
	if (act <= rq->clock)
		return false;
	/* Re-arming an armed timer moves it (fiber__timer_add never queues a timer twice). */
	/* t->fiber was set once, at task_fork_dl: the callback reads it without a lock. */
	if (fiber__timer_add(&w->timers, &dl->timer, act, NULL) && this_worker() != w)
		fiber__kick_worker(w);
	return true;
}

static void throttle_dl(struct rq *rq, struct fiber *p)
{
	struct sched_dl_entity *dl = &p->dl;

	dl->dl_throttled = true;
	if (dl->on_tree)
		__dequeue_dl(rq, dl);
	if (!start_dl_timer(rq, p)) {
		/* The next period has already begun: replenish at once. */
		replenish_dl_entity(dl, rq->clock);
		if (task_on_rq_queued(p))
			__enqueue_dl(rq, dl);
	}
	if (rq->curr == p)
		fiber__resched_curr(rq);
}

static void update_curr_dl(struct rq *rq)
{
	struct fiber *curr = rq->curr;
	struct sched_dl_entity *dl = &curr->dl;
	int64_t delta;

	lockdep_assert_held(&rq->lock);
	if (curr->sched_class != &fiber__dl_sched_class)
		return;
	delta = fiber__update_curr_common(rq);
	if (delta > 0)
		dl->runtime -= delta;
	if ((dl->runtime <= 0 || dl->dl_yielded) && !dl->dl_throttled)
		throttle_dl(rq, curr);
}

static void enqueue_task_dl(struct rq *rq, struct fiber *p, int flags)
{
	struct sched_dl_entity *dl = &p->dl;

	lockdep_assert_held(&rq->lock);
	if (flags & ENQUEUE_REPLENISH)
		replenish_dl_entity(dl, rq->clock);
	else if (flags & ENQUEUE_WAKEUP) {
		if (!dl->dl_throttled)
			update_dl_entity(dl, rq->clock);
	} else if (dl->deadline == 0)
		replenish_dl_entity(dl, rq->clock);
	/* A throttled fiber waits for its replenishment timer, off the queue. */
	if (dl->dl_throttled)
		return;
	__enqueue_dl(rq, dl);
}

static bool dequeue_task_dl(struct rq *rq, struct fiber *p, int flags)
{
	lockdep_assert_held(&rq->lock);
	(void)flags;
	if (rq->curr == p)
		update_curr_dl(rq);
	if (p->dl.on_tree)
		__dequeue_dl(rq, &p->dl);
	return true;
}

static void yield_task_dl(struct rq *rq)
{
	struct fiber *curr = rq->curr;

	/* The rest of the budget is forfeited; the fiber sleeps until its next period. */
	curr->dl.dl_yielded = true;
	update_curr_dl(rq);
}

static void wakeup_preempt_dl(struct rq *rq, struct fiber *p, int flags)
{
	(void)flags;
	if (p->dl.deadline < rq->curr->dl.deadline)
		fiber__resched_curr(rq);
}

static struct fiber *pick_task_dl(struct rq *rq)
{
	struct tnode *n = treap_first(&rq->dl.tree);

	lockdep_assert_held(&rq->lock);
	return n ? dl_task_of(container_of(n, struct sched_dl_entity, node)) : NULL;
}

static void put_prev_task_dl(struct rq *rq, struct fiber *prev, struct fiber *next)
{
	lockdep_assert_held(&rq->lock);
	(void)prev, (void)next;
	update_curr_dl(rq);
	fiber__tick_precise(rq, false);
}

/* The budget is enforced by the tick: every one of them while this fiber runs (the kernel's start_hrtick_dl). */
static void set_next_task_dl(struct rq *rq, struct fiber *p, bool first)
{
	(void)p, (void)first;
	fiber__tick_precise(rq, true);
}

static void task_tick_dl(struct rq *rq, struct fiber *p, int queued)
{
	lockdep_assert_held(&rq->lock);
	(void)p, (void)queued;
	update_curr_dl(rq);
	/* Someone with an earlier deadline got queued meanwhile (a replenishment): EDF says it runs. */
	if (rq->curr == p && p->dl.on_tree && pick_task_dl(rq) != p)
		fiber__resched_curr(rq);
}

static void dl_release(struct fiber *p);

/* After the final switch-out of a dead DL fiber, without the rq lock (task_free_dl deletes the timer). */
static void task_dead_dl(struct fiber *p)
{
	dl_release(p);
}

/*
 * Every dead fiber, whatever its class now: one that was ever DEADLINE may still have its replenishment timer
 * armed (leaving the class does not delete it, switched_from_dl). fiber__timer_del waits for a running callback.
 */
static void task_free_dl(struct fiber *p)
{
	fiber__timer_del(&p->dl.timer);
}

/* The replenishment timer lives in the entity: nothing to allocate, so entering the class cannot fail. */
static void task_fork_dl(struct fiber *p)
{
	fiber__timer_init(&p->dl.timer, dl_task_timer, p);
	p->dl.dl_cpu = -1;
}

static void switched_from_dl(struct rq *rq, struct fiber *p)
{
	(void)rq;
	/* The replenishment timer, if armed, sees the class change and does nothing. */
	p->dl.dl_throttled = false;
	p->dl.dl_yielded = false;
}

static void switched_to_dl(struct rq *rq, struct fiber *p)
{
	if (task_on_rq_queued(p) && rq->curr != p)
		fiber__wakeup_preempt(rq, p, 0);
}

/* Called for a new priority or new parameters alike (the parameters set the deadline). */
static void prio_changed_dl(struct rq *rq, struct fiber *p, int oldprio)
{
	(void)oldprio;
	if (task_on_rq_queued(p) && rq->curr != p && rq->curr->sched_class == &fiber__dl_sched_class)
		wakeup_preempt_dl(rq, p, 0);
}

/* Partitioned EDF: a deadline fiber runs on the worker that holds its bandwidth (-1 before admission). */
static int select_task_rq_dl(struct fiber *p, int cpu, int wake_flags)
{
	(void)cpu, (void)wake_flags;
	return p->dl.dl_cpu;
}

/* ---- parameters (sched_attr's DEADLINE fields: __checkparam_dl, __setparam_dl, __getparam_dl) ---- */

#define DL_PERIOD_MIN_NS 100000ull     /* sysctl_sched_dl_period_min: 100 us */
#define DL_PERIOD_MAX_NS 4194304000ull /* sysctl_sched_dl_period_max: 2^22 us */

/* __checkparam_dl */
static bool checkparam_dl(const struct fiber_sched_attr *a)
{
	uint64_t period;

	if (a->deadline_ns == 0)
		return false;
	if (a->runtime_ns < (1ull << 10)) /* DL_SCALE: at least 1024 ns */
		return false;
	if ((a->deadline_ns | a->period_ns) & (1ull << 63))
		return false;
	period = a->period_ns ? a->period_ns : a->deadline_ns;
	if (period < a->deadline_ns || a->deadline_ns < a->runtime_ns)
		return false;
	if (period < DL_PERIOD_MIN_NS || period > DL_PERIOD_MAX_NS)
		return false;
	return true;
}

/* The priority field is 0 for DEADLINE. */
static bool check_params_dl(const struct fiber_sched_attr *a)
{
	return a->priority == 0 && checkparam_dl(a);
}

/* Under the change pattern: new parameters start a new period at the next enqueue. */
static void set_params_dl(struct fiber *p, const struct fiber_sched_attr *a)
{
	struct sched_dl_entity *dl = &p->dl;

	p->normal_prio = -1;
	dl->dl_runtime = a->runtime_ns;
	dl->dl_deadline = a->deadline_ns;
	dl->dl_period = a->period_ns ? a->period_ns : a->deadline_ns;
	dl->deadline = 0;
	dl->runtime = 0;
	dl->dl_throttled = false;
	dl->dl_yielded = false;
}

static void get_params_dl(const struct fiber *p, struct fiber_sched_attr *a)
{
	a->runtime_ns = p->dl.dl_runtime;
	a->deadline_ns = p->dl.dl_deadline;
	a->period_ns = p->dl.dl_period;
}

static int admit_dl(struct fiber *p, const struct fiber_sched_attr *a, const cpu_set_t *mask);

const struct sched_class fiber__dl_sched_class = {
	.name = "dl",
	.rank = 1,
	.policies = 1u << FIBER_SCHED_DEADLINE,
	.needs_tick = true,
	.enqueue_task = enqueue_task_dl,
	.dequeue_task = dequeue_task_dl,
	.yield_task = yield_task_dl,
	.wakeup_preempt = wakeup_preempt_dl,
	.pick_task = pick_task_dl,
	.put_prev_task = put_prev_task_dl,
	.set_next_task = set_next_task_dl,
	.task_tick = task_tick_dl,
	.task_fork = task_fork_dl,
	.task_dead = task_dead_dl,
	.task_free = task_free_dl,
	.switched_from = switched_from_dl,
	.switched_to = switched_to_dl,
	.prio_changed = prio_changed_dl,
	.update_curr = update_curr_dl,
	.select_task_rq = select_task_rq_dl,
	.check_params = check_params_dl,
	.set_params = set_params_dl,
	.get_params = get_params_dl,
	.admit = admit_dl,
	.release = dl_release,
};

__hidden void fiber__init_dl_rq(struct dl_rq *dl)
{
	memset(dl, 0, sizeof(*dl));
	treap_init(&dl->tree, dl_less, NULL);
}

/* ---- admission (partitioned: each worker's admitted bandwidth stays <= 95%) ---- */

static bool dl_fits(int cpu, uint64_t add, uint64_t sub)
{
	return cpu_rq(cpu)->dl.this_bw - sub + add <= DL_ADMIT_MAX;
}

/*
 * Reserve bandwidth runtime/period for @p on one worker of @mask: the one it already holds bandwidth on, else the
 * one it is on, else the worker of @mask with the least admitted bandwidth. Returns 0 and the worker in *cpu, or
 * -EBUSY (nothing changed). Called under p's pi_lock and rq lock (sched_dl_overflow's place in
 * __sched_setscheduler), so two attribute changes of one fiber cannot interleave their reservations.
 */
static int dl_admit(struct fiber *p, uint64_t runtime, uint64_t period, const cpu_set_t *mask, int *cpu)
{
	uint64_t bw = to_ratio(period, runtime);
	int old = p->dl.dl_cpu, best = -1;
	uint64_t old_bw = old >= 0 ? p->dl.dl_bw : 0;

	lockdep_assert_held(&p->pi_lock);
	spin_lock(&fiber__rt.dl_lock);
	if (old >= 0 && CPU_ISSET(old, mask) && dl_fits(old, bw, old_bw))
		best = old;
	else if (old < 0 && CPU_ISSET(p->cpu, mask) && dl_fits(p->cpu, bw, 0))
		best = p->cpu;
	else {
		for (int i = 0; i < (int)fiber__rt.nr_workers; i++) {
			if (!CPU_ISSET(i, mask) || !dl_fits(i, bw, i == old ? old_bw : 0))
				continue;
			if (best < 0 || cpu_rq(i)->dl.this_bw < cpu_rq(best)->dl.this_bw)
				best = i;
		}
	}
	if (best < 0) {
		spin_unlock(&fiber__rt.dl_lock);
		return -EBUSY;
	}
	if (old >= 0)
		cpu_rq(old)->dl.this_bw -= old_bw;
	cpu_rq(best)->dl.this_bw += bw;
	p->dl.dl_cpu = best;
	p->dl.dl_bw = bw;
	spin_unlock(&fiber__rt.dl_lock);
	*cpu = best;
	return 0;
}

static void dl_release(struct fiber *p)
{
	spin_lock(&fiber__rt.dl_lock);
	if (p->dl.dl_cpu >= 0) {
		cpu_rq(p->dl.dl_cpu)->dl.this_bw -= p->dl.dl_bw;
		p->dl.dl_cpu = -1;
		p->dl.dl_bw = 0;
	}
	spin_unlock(&fiber__rt.dl_lock);
}

/*
 * The class's admit hook: the parameters of @a (fiber_setattr, fiber_spawn), or with @a NULL p's own on a new
 * affinity mask, re-admitted only when the worker holding its bandwidth is not in @mask (fiber_setaffinity).
 */
static int admit_dl(struct fiber *p, const struct fiber_sched_attr *a, const cpu_set_t *mask)
{
	int cpu;

	if (!a) {
		if (p->dl.dl_cpu < 0 || CPU_ISSET(p->dl.dl_cpu, mask))
			return 0;
		return dl_admit(p, p->dl.dl_runtime, p->dl.dl_period, mask, &cpu);
	}
	return dl_admit(p, a->runtime_ns, a->period_ns ? a->period_ns : a->deadline_ns, mask, &cpu);
}
