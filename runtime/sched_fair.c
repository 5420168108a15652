/*
 * runtime/sched_fair.c - the fair class (SCHED_NORMAL, SCHED_BATCH, SCHED_IDLE policies).
 *
 * For now a FIFO: queued fibers wait in arrival order, the running fiber is not on the list (as CFS keeps curr out
 * of its tree) and goes to the tail when it is put back. The scheduling-classes work replaces this with EEVDF.
 */
#include "internal.h"

static void enqueue_task_fair(struct rq *rq, struct fiber *p, int flags)
{
	struct cfs_rq *cfs = &rq->cfs;

	(void)flags;
	FIBER_DEBUG_BUG_ON(p->se.on_rq);
	p->se.on_rq = true;
	cfs->nr_running++;
	if (cfs->curr != &p->se)
		list_add_tail(&p->se.run_node, &cfs->tasks);
}

static bool dequeue_task_fair(struct rq *rq, struct fiber *p, int flags)
{
	struct cfs_rq *cfs = &rq->cfs;

	(void)flags;
	FIBER_DEBUG_BUG_ON(!p->se.on_rq);
	if (cfs->curr != &p->se)
		list_del_init(&p->se.run_node);
	p->se.on_rq = false;
	cfs->nr_running--;
	return true;
}

/* sched_yield: curr goes behind every queued peer when it is put back (put_prev_task_fair). */
static void yield_task_fair(struct rq *rq)
{
	(void)rq;
}

static void wakeup_preempt_fair(struct rq *rq, struct fiber *p, int flags)
{
	(void)rq, (void)p, (void)flags;
}

static struct fiber *pick_task_fair(struct rq *rq)
{
	struct cfs_rq *cfs = &rq->cfs;

	if (!list_empty(&cfs->tasks))
		return container_of(list_first_entry(&cfs->tasks, struct sched_entity, run_node), struct fiber, se);
	if (cfs->curr && cfs->curr->on_rq)
		return container_of(cfs->curr, struct fiber, se);
	return NULL;
}

static void put_prev_task_fair(struct rq *rq, struct fiber *prev, struct fiber *next)
{
	struct cfs_rq *cfs = &rq->cfs;

	(void)next;
	if (prev->se.on_rq)
		list_add_tail(&prev->se.run_node, &cfs->tasks);
	cfs->curr = NULL;
}

static void set_next_task_fair(struct rq *rq, struct fiber *p, bool first)
{
	struct cfs_rq *cfs = &rq->cfs;

	(void)first;
	if (p->se.on_rq)
		list_del_init(&p->se.run_node);
	cfs->curr = &p->se;
}

static void task_tick_fair(struct rq *rq, struct fiber *curr, int queued)
{
	(void)rq, (void)curr, (void)queued;
}

const struct sched_class fiber__fair_sched_class = {
	.name = "fair",
	.enqueue_task = enqueue_task_fair,
	.dequeue_task = dequeue_task_fair,
	.yield_task = yield_task_fair,
	.wakeup_preempt = wakeup_preempt_fair,
	.pick_task = pick_task_fair,
	.put_prev_task = put_prev_task_fair,
	.set_next_task = set_next_task_fair,
	.task_tick = task_tick_fair,
};

/* The ordered class table: the only thing core.c knows about policy. */
const struct sched_class *const fiber__classes[] = {
	&fiber__fair_sched_class,
	&fiber__idle_sched_class,
};
const unsigned fiber__nr_classes = ARRAY_SIZE(fiber__classes);
