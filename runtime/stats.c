/*
 * runtime/stats.c - fiber and worker statistics and fiber_dump (a sched_debug-like text dump).
 *
 * The counters are kept by the core and the classes under the rq lock (sum_exec_runtime, wait_sum, nvcsw,
 * nivcsw, nr_migrations, rq->nr_switches, rq->idle_ns); this file reads them under the same locks.
 */
#include "internal.h"

#include <unistd.h>

static uint32_t user_state(unsigned state)
{
	if (state & TASK_DEAD)
		return TASK_DEAD;
	if (state & TASK_UNINTERRUPTIBLE)
		return TASK_UNINTERRUPTIBLE;
	if (state & TASK_INTERRUPTIBLE)
		return TASK_INTERRUPTIBLE;
	return 0;
}

int fiber_stats(fiber_t *f, struct fiber_stats *out)
{
	struct fiber *p = f ? f : fiber_self();
	struct rq *rq;

	if (!out)
		return -EINVAL;
	if (!atomic_load_explicit(&fiber__rt.running, memory_order_acquire))
		return -ESRCH;
	if (!p)
		return -EINVAL;
	if (p->magic != FIBER_MAGIC_LIVE || atomic_load_explicit(&p->join_state, memory_order_relaxed) == JOIN_DONE)
		return -ESRCH;
	rq = fiber__task_rq_lock(p);
	/* A running fiber: charge it up to now first, so the numbers include the current run. */
	if (rq->curr == p) {
		fiber__update_rq_clock(rq);
		if (p->sched_class->update_curr)
			p->sched_class->update_curr(rq);
		else
			fiber__update_curr_common(rq);
	}
	memset(out, 0, sizeof(*out));
	out->id = p->id;
	out->worker = p->cpu;
	out->policy = p->policy;
	out->state = user_state(atomic_load_explicit(&p->state, memory_order_relaxed));
	out->nvcsw = p->nvcsw;
	out->nivcsw = p->nivcsw;
	out->sum_exec_ns = p->sum_exec_runtime;
	out->wait_ns = p->wait_sum + (p->wait_start ? rq->clock - p->wait_start : 0);
	out->nr_migrations = p->nr_migrations;
	fiber__task_rq_unlock(rq, p);
	fiber__preempt_point();
	return 0;
}

int fiber_worker_stats(int worker, struct fiber_worker_stats *out)
{
	struct rq *rq;

	if (!out)
		return -EINVAL;
	if (!atomic_load_explicit(&fiber__rt.running, memory_order_acquire))
		return -ESRCH;
	if (worker < 0 || worker >= (int)fiber__rt.nr_workers)
		return -EINVAL;
	rq = cpu_rq(worker);
	memset(out, 0, sizeof(*out));
	spin_lock(&rq->lock);
	out->nr_switches = rq->nr_switches;
	out->nr_running = atomic_load_explicit(&rq->nr_running, memory_order_relaxed);
	out->idle_ns = rq->idle_ns;
	out->pulled = rq->pulled;
	out->pushed = rq->pushed;
	spin_unlock(&rq->lock);
	return 0;
}

static const char *policy_name(uint32_t policy)
{
	switch (policy) {
	case FIBER_SCHED_NORMAL: return "NORMAL";
	case FIBER_SCHED_FIFO: return "FIFO";
	case FIBER_SCHED_RR: return "RR";
	case FIBER_SCHED_BATCH: return "BATCH";
	case FIBER_SCHED_IDLE: return "IDLE";
	case FIBER_SCHED_DEADLINE: return "DEADLINE";
	}
	return "?";
}

static char state_char(unsigned state)
{
	if (state & TASK_DEAD)
		return 'X';
	if (state & TASK_UNINTERRUPTIBLE)
		return 'D';
	if (state & TASK_INTERRUPTIBLE)
		return 'S';
	return 'R';
}

void fiber_dump(int fd)
{
	unsigned n;

	if (!atomic_load_explicit(&fiber__rt.running, memory_order_acquire)) {
		dprintf(fd, "libfiber: no runtime\n");
		return;
	}
	n = fiber__rt.nr_workers;
	dprintf(fd, "libfiber %s: %u workers, %d fibers, tick %u Hz\n", fiber_version(), n,
		atomic_load(&fiber__rt.nr_fibers), fiber__rt.tick_hz);
	for (unsigned i = 0; i < n; i++) {
		struct rq *rq = cpu_rq(i);

		spin_lock(&rq->lock);
		dprintf(fd, "\nworker %u: curr %llu (%s) nr_running %u nr_switches %llu idle_ms %llu "
			    "fair %u rt %u dl %u (bw %llu/1024)\n",
			i, (unsigned long long)rq->curr->id, rq->curr->name, atomic_load(&rq->nr_running),
			(unsigned long long)rq->nr_switches, (unsigned long long)(rq->idle_ns / 1000000),
			rq->cfs.nr_running, rq->rt.rt_nr_running, rq->dl.dl_nr_running,
			(unsigned long long)(rq->dl.this_bw >> (BW_SHIFT - 10)));
		spin_unlock(&rq->lock);
	}
	dprintf(fd, "\n%8s %-16s %2s %-8s %5s %4s %12s %12s %10s %10s\n", "id", "name", "S", "policy", "prio",
		"cpu", "exec_ms", "wait_ms", "nvcsw", "nivcsw");
	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &fiber__rt.workers[i];
		struct list_head *pos, *tmp;

		spin_lock(&w->all_lock);
		list_for_each_safe(pos, tmp, &w->all_fibers)
		{
			struct fiber *p = list_entry(pos, struct fiber, all);

			dprintf(fd, "%8llu %-16s %2c %-8s %5d %4d %12.3f %12.3f %10llu %10llu\n",
				(unsigned long long)p->id, p->name[0] ? p->name : "-",
				state_char(atomic_load_explicit(&p->state, memory_order_relaxed)),
				(p->flags & PF_KTHREAD) ? "stop" : policy_name(p->policy), p->prio, p->cpu,
				(double)p->sum_exec_runtime / 1e6, (double)p->wait_sum / 1e6,
				(unsigned long long)p->nvcsw, (unsigned long long)p->nivcsw);
		}
		spin_unlock(&w->all_lock);
	}
}
