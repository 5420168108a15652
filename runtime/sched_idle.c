/*
 * runtime/sched_idle.c - the idle class: the worker's idle loop as the class that always has something to return.
 *
 * rq->idle is never queued: pick_task_idle returns it whenever no higher class has a runnable fiber, so the pick
 * loop in core.c always ends here. The idle fiber runs on the worker pthread's own stack (worker.c).
 */
#include "internal.h"

static void enqueue_task_idle(struct rq *rq, struct fiber *p, int flags)
{
	(void)rq, (void)p, (void)flags;
	FIBER_BUG_ON(1); /* the idle fiber is never queued */
}

static bool dequeue_task_idle(struct rq *rq, struct fiber *p, int flags)
{
	(void)rq, (void)p, (void)flags;
	FIBER_BUG_ON(1); /* nor dequeued: it is always runnable */
	return true;
}

static void yield_task_idle(struct rq *rq)
{
	(void)rq;
}

/* Anything woken on an idle worker preempts the idle fiber. */
static void wakeup_preempt_idle(struct rq *rq, struct fiber *p, int flags)
{
	(void)p, (void)flags;
	fiber__resched_curr(rq);
}

static struct fiber *pick_task_idle(struct rq *rq)
{
	return rq->idle;
}

static void put_prev_task_idle(struct rq *rq, struct fiber *prev, struct fiber *next)
{
	(void)rq, (void)prev, (void)next;
}

static void set_next_task_idle(struct rq *rq, struct fiber *p, bool first)
{
	(void)rq, (void)p, (void)first;
}

static void task_tick_idle(struct rq *rq, struct fiber *curr, int queued)
{
	(void)rq, (void)curr, (void)queued;
}

const struct sched_class fiber__idle_sched_class = {
	.name = "idle",
	.rank = 4,
	.enqueue_task = enqueue_task_idle,
	.dequeue_task = dequeue_task_idle,
	.yield_task = yield_task_idle,
	.wakeup_preempt = wakeup_preempt_idle,
	.pick_task = pick_task_idle,
	.put_prev_task = put_prev_task_idle,
	.set_next_task = set_next_task_idle,
	.task_tick = task_tick_idle,
};
