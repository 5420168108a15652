/*
 * runtime/balance.c - moving queued fibers to idle workers (the kernel's newidle balance, Go's work stealing).
 *
 * A worker about to idle (and while it polls in its idle loop) looks for the busiest other worker - the largest
 * nr_running of two or more, read lock-free - and pulls one queued fiber that may run here: fair or rt, not running
 * (on_cpu), allowed on this worker, not migration-disabled. Deadline fibers are partitioned and never pulled; the
 * stoppers never move. The pull never holds two rq locks: detach under the busiest rq's lock (on_rq = MIGRATING
 * covers the gap), attach under our own (sched_balance_rq's detach_tasks/attach_tasks).
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

static bool can_migrate_task(struct rq *src, struct fiber *p, int dst)
{
	return p != src->curr && !atomic_load_explicit(&p->on_cpu, memory_order_relaxed) &&
	       !p->migration_disabled && CPU_ISSET(dst, &p->cpus_mask) && !(p->flags & PF_KTHREAD) &&
	       (p->sched_class == &fiber__fair_sched_class || p->sched_class == &fiber__rt_sched_class);
}

/* In-order walk of the fair tree for the first movable fiber, looking at no more than a few. */
static struct fiber *detach_fair(struct rq *src, int dst)
{
	struct tnode *n = treap_first(&src->cfs.tree);
	int budget = 16;

	while (n && budget--) {
		struct fiber *p = container_of(container_of(n, struct sched_entity, node), struct fiber, se);

		if (can_migrate_task(src, p, dst))
			return p;
		/* in-order successor */
		if (n->r) {
			n = n->r;
			while (n->l)
				n = n->l;
		} else {
			while (n->parent && n->parent->r == n)
				n = n->parent;
			n = n->parent;
		}
	}
	return NULL;
}

static struct fiber *detach_rt(struct rq *src, int dst)
{
	for (int idx = 0; idx < RT_PRIO_LEVELS; idx++) {
		struct list_head *h = &src->rt.queue[idx], *pos;

		if (!(src->rt.bitmap[idx / 64] & (1ull << (idx % 64))))
			continue;
		for (pos = h->next; pos != h; pos = pos->next) {
			struct fiber *p = container_of(list_entry(pos, struct sched_rt_entity, run_list), struct fiber, rt);

			if (can_migrate_task(src, p, dst))
				return p;
		}
	}
	return NULL;
}

/*
 * Move one queued fiber that may run on @dst from @src (locked) to @dst; the higher class first (a queued rt
 * fiber waits behind a running one of equal or higher priority). Returns with @src unlocked; true if it moved one.
 */
static bool move_one_locked(struct rq *src, int dst)
{
	struct fiber *p = detach_rt(src, dst);

	if (!p)
		p = detach_fair(src, dst);
	if (!p) {
		spin_unlock(&src->lock);
		return false;
	}
	fiber__update_rq_clock(src);
	fiber__move_queued_task(src, p, dst, true);
	return true;
}

/* Pull one fiber to @w from the busiest worker. Called from @w's idle loop, no lock held. */
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
	if (atomic_load_explicit(&src->nr_running, memory_order_relaxed) < 2) {
		spin_unlock(&src->lock);
		return false;
	}
	return move_one_locked(src, w->id);
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
 * both from the monitor thread). Never the running fiber, never a deadline or runtime fiber (can_migrate_task).
 * Called with no lock held; true if it moved one.
 */
bool fiber__balance_move_one(struct rq *src, struct rq *dst)
{
	spin_lock(&src->lock);
	return move_one_locked(src, dst->cpu);
}
