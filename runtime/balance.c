/*
 * runtime/balance.c - moving queued fibers to idle workers (the kernel's newidle balance, Go's work stealing).
 *
 * A worker about to idle (and while it polls in its idle loop) looks for the busiest other worker - the largest
 * nr_running of two or more, read lock-free - and pulls queued fibers that may run here, half of what that worker
 * runs and at most 32 (an rt fiber alone): ones that a class's pick_migratable_task finds (rt, then fair), not
 * running (on_cpu), allowed on this worker, not migration-disabled.
 * Deadline fibers are partitioned and never pulled (their class has no such hook); the stoppers never move. The
 * pull never holds two rq locks: detach under the busiest rq's lock (on_rq = MIGRATING covers the gap), attach
 * under our own (sched_balance_rq's detach_tasks/attach_tasks).
 *
 * To get a sleeping worker to do this, an enqueue that leaves a worker with queued work while another worker is
 * idle and none is polling kicks one idle worker (Go's wakep): at most one wake-up in flight, because the woken
 * worker polls for a while before it sleeps again.
 */
#include "internal.h"

static atomic_int nr_polling; /* idle workers in their poll phase */

void fiber__idle_polling(bool on)
{
	atomic_fetch_add_explicit(&nr_polling, on ? 1 : -1, memory_order_relaxed);
}

/* The class-independent half of the kernel's can_migrate_task; the class's pick_migratable_task walks its queue. */
bool fiber__can_migrate_task(struct rq *src, struct fiber *p, int dst)
{
	return p != src->curr && !atomic_load_explicit(&p->on_cpu, memory_order_relaxed) && !p->migration_disabled &&
	       CPU_ISSET(dst, &p->cpus_mask) && !(p->flags & PF_KTHREAD);
}

/* A queued fiber of @src (locked) that may move to @dst; the higher class first, NULL if none. */
static struct fiber *pick_migratable(struct rq *src, int dst)
{
	struct fiber *p = NULL;

	for (unsigned i = 0; i < NR_SCHED_CLASSES && !p; i++)
		if (fiber__classes[i]->pick_migratable_task)
			p = fiber__classes[i]->pick_migratable_task(src, dst);
	return p;
}

/*
 * How many fibers one newidle pull takes at most: the kernel's sched_nr_migrate, the bound on the tasks one
 * balance pass detaches under the busiest rq's lock.
 */
#define NEWIDLE_PULL_MAX 32

/*
 * Move up to @max queued fair fibers from @src (locked) to @dst, as the kernel's detach_tasks/attach_tasks: all
 * detached under @src's lock, then all attached under @dst's, never both at once. A queued rt fiber goes alone
 * (the rt class pulls one at a time). Returns with @src unlocked; the number moved.
 */
static unsigned move_some_locked(struct rq *src, int dst, unsigned max)
{
	struct fiber *moved[NEWIDLE_PULL_MAX];
	struct rq *drq = cpu_rq(dst);
	unsigned k = 0;

	if (max > NEWIDLE_PULL_MAX)
		max = NEWIDLE_PULL_MAX;
	fiber__update_rq_clock(src);
	while (k < max) {
		struct fiber *p = pick_migratable(src, dst);

		if (!p)
			break;
		fiber__detach_task(src, p, dst, true);
		moved[k++] = p;
		if (p->sched_class != &fiber__fair_sched_class)
			break;
	}
	spin_unlock(&src->lock);
	if (!k)
		return 0;
	spin_lock(&drq->lock);
	fiber__update_rq_clock(drq);
	for (unsigned i = 0; i < k; i++)
		fiber__attach_task(drq, moved[i], true);
	spin_unlock(&drq->lock);
	fiber__tick_dep(drq);
	return k;
}

/* Pull fibers to @w from the busiest worker. Called from @w's idle loop, no lock held; true if it moved any. */
bool fiber__newidle_balance(struct worker *w)
{
	unsigned n = fiber__rt.nr_workers, best_load = 1;
	int busiest = -1;
	struct rq *src;

	for (unsigned i = 0; i < n; i++) {
		unsigned load;

		if ((int)i == w->id)
			continue;
		load = atomic_load_explicit(&cpu_rq((int)i)->nr_running, memory_order_relaxed);
		if (load > best_load) {
			best_load = load;
			busiest = (int)i;
		}
	}
	if (busiest < 0)
		return false;
	src = cpu_rq(busiest);
	if (!spin_trylock(&src->lock))
		return false; /* busy: try again on the next poll rather than queue behind its owner */
	best_load = atomic_load_explicit(&src->nr_running, memory_order_relaxed);
	if (best_load < 2) {
		spin_unlock(&src->lock);
		return false;
	}
	/*
	 * Half of what it runs (its curr included), so that both end up with as much: one fiber per pull made a
	 * burst of 1,000 spawns cost a pull, with both rq locks, per fiber.
	 */
	return move_some_locked(src, w->id, best_load / 2) > 0;
}

/*
 * wakep: @rq just got work it cannot run at once. If another worker is idle and nobody is already polling for work,
 * kick one idle worker so that it comes and pulls. Called with no rq lock held.
 */
void fiber__wakep(struct rq *rq)
{
	unsigned n = fiber__rt.nr_workers;

	fiber__tick_dep(rq);
	if (n < 2 || atomic_load_explicit(&rq->nr_running, memory_order_relaxed) < 2 ||
	    atomic_load_explicit(&nr_polling, memory_order_relaxed) > 0)
		return;
	for (unsigned i = 0; i < (n + 31) / 32; i++) {
		unsigned bits = atomic_load_explicit(&fiber__rt.idle_mask[i], memory_order_relaxed);

		if (rq->cpu / 32 == (int)i)
			bits &= ~(1u << (rq->cpu % 32));
		if (bits) {
			unsigned cpu = i * 32 + (unsigned)__builtin_ctz(bits);

			if (cpu < n)
				fiber__kick_worker(&fiber__rt.workers[cpu]);
			return;
		}
	}
}

/*
 * Move one queued fiber that may run on @dst from @src to @dst (periodic balance and the rescue of a stuck worker,
 * both from the monitor thread). Never the running fiber or a runtime fiber (can_migrate_task), never a deadline
 * one (its class has no pick_migratable_task).
 * Called with no lock held; true if it moved one.
 */
bool fiber__balance_move_one(struct rq *src, struct rq *dst)
{
	spin_lock(&src->lock);
	return move_some_locked(src, dst->cpu, 1) > 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * Placement (select_task_rq): the worker a waking or new fiber is queued on. pi_lock held (try_to_wake_up,
 * wake_up_new_task).
 * ---------------------------------------------------------------------------------------------------------- */

/* A worker with nothing to do: its idle fiber runs and nothing is queued (lock-free peek, may be stale). */
static inline bool worker_idle(int cpu)
{
	struct rq *rq = cpu_rq(cpu);

	return READ_ONCE(rq->curr) == rq->idle && !atomic_load_explicit(&rq->nr_running, memory_order_relaxed);
}

/*
 * The choice among several allowed workers (the kernel's class select_task_rq), for what the inline
 * fiber__select_task_rq (internal.h) does not settle: a fiber allowed on more than one worker, or not on its own.
 */
int fiber__select_task_rq_many(struct fiber *p, int wake_flags)
{
	int prev = p->cpu, cpu, best = -1;
	struct worker *w = this_worker();
	unsigned best_load = UINT_MAX;

	/* The class's own placement (partitioned EDF: the worker that holds the bandwidth) goes first. */
	cpu = class_select_cpu(p, prev, wake_flags);
	if (cpu >= 0)
		return cpu;
	/*
	 * A completion reaped from this worker's ring (uring.c): the fiber submitted here, so this is also where it
	 * last ran, and waking it here costs no kick. Idle workers take work from here by pulling (newidle balance)
	 * and the tick's wakep, as Go's netpoll puts the goroutines it readies on the local run queue.
	 */
	if ((wake_flags & WF_CURRENT_CPU) && w && cpu_allowed(p, w->id) && !worker_stuck(w->id))
		return w->id;
	/* A worker the monitor found stuck (a fiber blocking it, or a CPU loop) is the last choice. */
	if (worker_stuck(prev))
		prev = -1;
	/*
	 * Fork: stay on the spawning worker (its caches are warm and the spawner often blocks next, in a join);
	 * idle workers pull queued fibers (balance.c), and wakep kicks one when work piles up here.
	 */
	if ((wake_flags & WF_FORK) && w && cpu_allowed(p, w->id))
		return w->id;
	/* Sync wake-up (the waker exits or blocks right after): the waker's worker, unless it has other work. */
	if ((wake_flags & WF_SYNC) && w && cpu_allowed(p, w->id) &&
	    atomic_load_explicit(&w->rq.nr_running, memory_order_relaxed) <= 1)
		return w->id;
	/* Wake-up: the previous worker if it is idle (cache affinity), then the waker's if it is idle. */
	if (!(wake_flags & WF_FORK) && prev >= 0 && cpu_allowed(p, prev) && worker_idle(prev))
		return prev;
	if (w && cpu_allowed(p, w->id) && worker_idle(w->id))
		return w->id;
	/* Any idle worker (the idle mask), re-checked. */
	cpu = fiber__first_idle_worker(&p->cpus_mask);
	if (cpu >= 0 && worker_idle(cpu))
		return cpu;
	if (!(wake_flags & WF_FORK) && prev >= 0 && cpu_allowed(p, prev))
		return prev;
	/* Fork from outside a worker, prev not allowed or stuck: the least loaded allowed worker, stuck ones last. */
	for (cpu = 0; cpu < (int)fiber__rt.nr_workers; cpu++) {
		unsigned load;

		if (!cpu_allowed(p, cpu))
			continue;
		load = atomic_load_explicit(&cpu_rq(cpu)->nr_running, memory_order_relaxed);
		if (worker_stuck(cpu))
			load += 1u << 20;
		if (load < best_load) {
			best_load = load;
			best = cpu;
		}
	}
	return best;
}
