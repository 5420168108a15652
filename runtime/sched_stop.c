/*
 * runtime/sched_stop.c - the stop class and the per-worker stopper fibers.
 *
 * One stopper per worker, in the highest class: it preempts everything at the next preemption point, nothing
 * preempts it, it never migrates. It sleeps until work is queued for its worker (fiber__stop_one_cpu_nowait), then
 * runs the work items in order. The core uses it to move a fiber that is running on another worker: once the
 * stopper runs there, that fiber is only queued and can be moved like any queued fiber (migration_cpu_stop).
 *
 * The stopper's queue state: rq->stop_queued under the rq lock. Work lists: worker->stop_lock.
 */
#include "internal.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

static void enqueue_task_stop(struct rq *rq, struct fiber *p, int flags)
{
	lockdep_assert_held(&rq->lock);
	(void)p, (void)flags;
	rq->stop_queued = true;
	add_nr_running(rq, 1);
}

static bool dequeue_task_stop(struct rq *rq, struct fiber *p, int flags)
{
	lockdep_assert_held(&rq->lock);
	(void)p, (void)flags;
	rq->stop_queued = false;
	sub_nr_running(rq, 1);
	return true;
}

static void yield_task_stop(struct rq *rq)
{
	(void)rq; /* the stopper never yields */
}

static void wakeup_preempt_stop(struct rq *rq, struct fiber *p, int flags)
{
	(void)rq, (void)p, (void)flags; /* nothing preempts the stopper */
}

static struct fiber *pick_task_stop(struct rq *rq)
{
	lockdep_assert_held(&rq->lock);
	return rq->stop_queued ? rq->stop : NULL;
}

static void put_prev_task_stop(struct rq *rq, struct fiber *prev, struct fiber *next)
{
	lockdep_assert_held(&rq->lock);
	(void)next;
	if (prev == rq->curr)
		fiber__update_curr_common(rq);
}

static void set_next_task_stop(struct rq *rq, struct fiber *p, bool first)
{
	(void)rq, (void)p, (void)first;
}

static void task_tick_stop(struct rq *rq, struct fiber *curr, int queued)
{
	lockdep_assert_held(&rq->lock);
	(void)curr, (void)queued;
	fiber__update_curr_common(rq);
}

const struct sched_class fiber__stop_sched_class = {
	.name = "stop",
	.rank = 0,
	.enqueue_task = enqueue_task_stop,
	.dequeue_task = dequeue_task_stop,
	.yield_task = yield_task_stop,
	.wakeup_preempt = wakeup_preempt_stop,
	.pick_task = pick_task_stop,
	.put_prev_task = put_prev_task_stop,
	.set_next_task = set_next_task_stop,
	.task_tick = task_tick_stop,
};

/* ---- the stopper fibers ---- */

static bool stopper_should_run(struct worker *w)
{
	bool work;

	spin_lock(&w->stop_lock);
	work = !list_empty(&w->stop_work);
	spin_unlock(&w->stop_lock);
	/* Pairs with fiber__stoppers_stop's seq_cst store (made before its wake-ups, D1). */
	return work || atomic_load_explicit(&fiber__rt.stoppers_exit, memory_order_acquire);
}

static void *stopper_fn(void *arg)
{
	struct worker *w = &fiber__rt.workers[(intptr_t)arg];

	for (;;) {
		struct cpu_stop_work *work = NULL;

		for (;;) {
			fiber__set_current_state(TASK_UNINTERRUPTIBLE);
			if (stopper_should_run(w))
				break;
			fiber__schedule();
		}
		atomic_store_explicit(&fiber_self()->state, TASK_RUNNING, memory_order_relaxed);
		spin_lock(&w->stop_lock);
		if (!list_empty(&w->stop_work)) {
			work = list_first_entry(&w->stop_work, struct cpu_stop_work, list);
			list_del_init(&work->list);
		}
		spin_unlock(&w->stop_lock);
		if (work) {
			work->fn(work->arg); /* may free work */
			continue;
		}
		if (atomic_load_explicit(&fiber__rt.stoppers_exit, memory_order_acquire)) /* pairs with stoppers_stop */
			break;
	}
	if (atomic_fetch_sub(&fiber__rt.nr_stoppers, 1) == 1)
		fiber__futex(&fiber__rt.nr_stoppers, FUTEX_WAKE_PRIVATE, 1, NULL);
	return NULL;
}

/* Queue @work on @cpu's stopper and wake it. Context: any thread; no rq lock held. */
void fiber__stop_one_cpu_nowait(int cpu, struct cpu_stop_work *work)
{
	struct worker *w = &fiber__rt.workers[cpu];

	spin_lock(&w->stop_lock);
	list_add_tail(&work->list, &w->stop_work);
	spin_unlock(&w->stop_lock);
	fiber__wake_up_process(w->rq.stop);
}

int fiber__stoppers_start(void)
{
	atomic_store(&fiber__rt.stoppers_exit, 0);
	for (unsigned i = 0; i < fiber__rt.nr_workers; i++) {
		char name[32];

		snprintf(name, sizeof(name), "stopper/%u", i);
		/*
		 * fiber__spawn_kthread sets rq->stop before the wake-up publishes the stopper (under the rq lock); storing
		 * it again here, unlocked, would race with the worker's pick_task_stop.
		 */
		if (!fiber__spawn_kthread((int)i, stopper_fn, (void *)(intptr_t)i, &fiber__stop_sched_class, name))
			return -ENOMEM;
		atomic_fetch_add(&fiber__rt.nr_stoppers, 1);
	}
	return 0;
}

void fiber__stoppers_stop(void)
{
	/* The condition before the wake-ups (D1): pairs with stopper_should_run's acquire load. */
	atomic_store_explicit(&fiber__rt.stoppers_exit, 1, memory_order_seq_cst);
	for (unsigned i = 0; i < fiber__rt.nr_workers; i++)
		if (fiber__rt.workers[i].rq.stop)
			fiber__wake_up_process(fiber__rt.workers[i].rq.stop);
	for (;;) {
		int n = atomic_load(&fiber__rt.nr_stoppers);

		if (!n)
			break;
		fiber__futex(&fiber__rt.nr_stoppers, FUTEX_WAIT_PRIVATE, n, NULL);
	}
}
