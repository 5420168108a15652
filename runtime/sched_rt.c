/*
 * runtime/sched_rt.c - the realtime class: SCHED_FIFO and SCHED_RR, priorities 1..99.
 *
 * A 100-bit bitmap with one list per level (index 99 - priority, so the first set bit is the highest priority).
 * As in the kernel, the running fiber stays on its list, so a preempted FIFO fiber is still at the head of its level
 * when the preemptor blocks. FIFO runs until it blocks, yields or a strictly higher priority wakes; RR also gives
 * way when its time slice (fiber__rt.rr_timeslice_ns, charged in ns of CPU time) runs out and another fiber waits at
 * its level: it goes to the tail with a fresh slice. yield moves curr to the tail of its level.
 *
 * Not here yet: RT throttling or a fair server (runaway RT fibers starve the fair class, as with
 * sched_rt_runtime_us = -1), and the kernel's priority-driven push/pull across workers (idle workers and the
 * monitor's balance do move queued rt fibers, through pick_migratable_task_rt: balance.c).
 *
 * All of it under the rq lock.
 */
#include "internal.h"

static inline int rt_idx(struct fiber *p)
{
	return p->prio; /* 0..98: 99 - rt_priority */
}

static inline struct fiber *rt_task_of(struct sched_rt_entity *rt)
{
	return container_of(rt, struct fiber, rt);
}

static void update_curr_rt(struct rq *rq)
{
	struct fiber *curr = rq->curr;
	int64_t delta;

	lockdep_assert_held(&rq->lock);
	if (curr->sched_class != &fiber__rt_sched_class)
		return;
	delta = fiber__update_curr_common(rq);
	if (delta > 0 && curr->policy == FIBER_SCHED_RR)
		curr->rt.time_slice -= delta;
}

static void enqueue_task_rt(struct rq *rq, struct fiber *p, int flags)
{
	struct rt_rq *rt = &rq->rt;
	int idx = rt_idx(p);

	lockdep_assert_held(&rq->lock);
	FIBER_DEBUG_BUG_ON(p->rt.on_rq);
	if (flags & ENQUEUE_HEAD)
		list_add(&p->rt.run_list, &rt->queue[idx]);
	else
		list_add_tail(&p->rt.run_list, &rt->queue[idx]);
	rt->bitmap[idx / 64] |= 1ull << (idx % 64);
	p->rt.on_rq = true;
	rt->rt_nr_running++;
	add_nr_running(rq, 1);
}

static bool dequeue_task_rt(struct rq *rq, struct fiber *p, int flags)
{
	struct rt_rq *rt = &rq->rt;
	int idx = rt_idx(p);

	lockdep_assert_held(&rq->lock);
	(void)flags;
	FIBER_DEBUG_BUG_ON(!p->rt.on_rq);
	update_curr_rt(rq);
	list_del_init(&p->rt.run_list);
	if (list_empty(&rt->queue[idx]))
		rt->bitmap[idx / 64] &= ~(1ull << (idx % 64));
	p->rt.on_rq = false;
	rt->rt_nr_running--;
	sub_nr_running(rq, 1);
	return true;
}

static void requeue_task_rt(struct rq *rq, struct fiber *p)
{
	if (p->rt.on_rq)
		list_move_tail(&p->rt.run_list, &rq->rt.queue[rt_idx(p)]);
}

static void yield_task_rt(struct rq *rq)
{
	requeue_task_rt(rq, rq->curr);
}

/* Strictly higher priority (lower prio number) preempts; equal priority waits its turn. */
static void wakeup_preempt_rt(struct rq *rq, struct fiber *p, int flags)
{
	(void)flags;
	if (p->prio < rq->curr->prio)
		fiber__resched_curr(rq);
}

static struct fiber *pick_task_rt(struct rq *rq)
{
	struct rt_rq *rt = &rq->rt;
	int idx;

	lockdep_assert_held(&rq->lock);
	if (!rt->rt_nr_running)
		return NULL;
	if (rt->bitmap[0])
		idx = __builtin_ctzll(rt->bitmap[0]);
	else
		idx = 64 + __builtin_ctzll(rt->bitmap[1]);
	return rt_task_of(list_first_entry(&rt->queue[idx], struct sched_rt_entity, run_list));
}

static void put_prev_task_rt(struct rq *rq, struct fiber *prev, struct fiber *next)
{
	lockdep_assert_held(&rq->lock);
	(void)prev, (void)next;
	update_curr_rt(rq);
}

static void set_next_task_rt(struct rq *rq, struct fiber *p, bool first)
{
	struct list_head *n = p->rt.run_list.next;
	struct sched_rt_entity *behind;

	(void)first;
	/* The one behind p at its level runs after it if p yields or blocks (fiber__prefetch_next). */
	if (rq->rt.rt_nr_running < FIBER_PREFETCH_MIN || !p->rt.on_rq || n == &rq->rt.queue[rt_idx(p)])
		return;
	behind = list_entry(n, struct sched_rt_entity, run_list);
	fiber__prefetch_next(rt_task_of(behind), offsetof(struct fiber, rt), sizeof(*behind));
}

static void task_tick_rt(struct rq *rq, struct fiber *p, int queued)
{
	lockdep_assert_held(&rq->lock);
	(void)queued;
	update_curr_rt(rq);
	if (p->policy != FIBER_SCHED_RR || p->rt.time_slice > 0)
		return;
	p->rt.time_slice = (int64_t)fiber__rt.rr_timeslice_ns;
	/* Requeue to the tail only if it is not alone at its level. */
	if (p->rt.run_list.prev != p->rt.run_list.next) {
		requeue_task_rt(rq, p);
		fiber__resched_curr(rq);
	}
}

static void switched_to_rt(struct rq *rq, struct fiber *p)
{
	p->rt.time_slice = (int64_t)fiber__rt.rr_timeslice_ns;
	if (task_on_rq_queued(p) && rq->curr != p && p->prio < rq->curr->prio)
		fiber__resched_curr(rq);
}

static void prio_changed_rt(struct rq *rq, struct fiber *p, int oldprio)
{
	if (oldprio == p->prio || !task_on_rq_queued(p))
		return;
	if (rq->curr == p) {
		/* Lowered below the highest waiting: let it run. */
		struct fiber *top = pick_task_rt(rq);

		if (top && top->prio < p->prio)
			fiber__resched_curr(rq);
	} else if (rq->curr->sched_class == &fiber__rt_sched_class && p->prio < rq->curr->prio) {
		fiber__resched_curr(rq);
	}
	(void)oldprio;
}

static void task_fork_rt(struct fiber *p)
{
	INIT_LIST_HEAD(&p->rt.run_list);
	p->rt.on_rq = false;
	p->rt.time_slice = (int64_t)fiber__rt.rr_timeslice_ns;
}

/* The first movable fiber in priority order (balance.c: a queued rt fiber waits behind a running one). */
static struct fiber *pick_migratable_task_rt(struct rq *src, int dst)
{
	for (int idx = 0; idx < RT_PRIO_LEVELS; idx++) {
		struct list_head *h = &src->rt.queue[idx], *pos;

		if (!(src->rt.bitmap[idx / 64] & (1ull << (idx % 64))))
			continue;
		for (pos = h->next; pos != h; pos = pos->next) {
			struct fiber *p = container_of(list_entry(pos, struct sched_rt_entity, run_list), struct fiber,
						       rt);

			if (fiber__can_migrate_task(src, p, dst))
				return p;
		}
	}
	return NULL;
}

/* ---- parameters: priority 1..99 ---- */

static bool check_params_rt(const struct fiber_sched_attr *a)
{
	return a->priority >= 1 && a->priority <= MAX_RT_PRIO - 1;
}

static void set_params_rt(struct fiber *p, const struct fiber_sched_attr *a)
{
	p->rt_priority = a->priority;
	p->normal_prio = MAX_RT_PRIO - 1 - (int)a->priority;
}

static void get_params_rt(const struct fiber *p, struct fiber_sched_attr *a)
{
	a->priority = p->rt_priority;
}

const struct sched_class fiber__rt_sched_class = {
	.name = "rt",
	.rank = 2,
	.policies = 1u << FIBER_SCHED_FIFO | 1u << FIBER_SCHED_RR,
	.prio_limit = MAX_RT_PRIO,
	.enqueue_task = enqueue_task_rt,
	.dequeue_task = dequeue_task_rt,
	.yield_task = yield_task_rt,
	.wakeup_preempt = wakeup_preempt_rt,
	.pick_task = pick_task_rt,
	.put_prev_task = put_prev_task_rt,
	.set_next_task = set_next_task_rt,
	.task_tick = task_tick_rt,
	.task_fork = task_fork_rt,
	.switched_to = switched_to_rt,
	.prio_changed = prio_changed_rt,
	.update_curr = update_curr_rt,
	.pick_migratable_task = pick_migratable_task_rt,
	.check_params = check_params_rt,
	.set_params = set_params_rt,
	.get_params = get_params_rt,
};

__hidden void fiber__init_rt_rq(struct rt_rq *rt)
{
	memset(rt, 0, sizeof(*rt));
	for (int i = 0; i < RT_PRIO_LEVELS; i++)
		INIT_LIST_HEAD(&rt->queue[i]);
}
