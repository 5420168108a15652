/*
 * runtime/timer.c - per-worker timers: sleeps, timeouts and the deadline class's replenishment.
 *
 * Each worker has a timer base: an intrusive tree (treap.h) of struct fiber_timer ordered by expiry (sched_clock
 * ns). The nodes live in what they time - the fiber (fiber_sleep, timeouts), the deadline entity (replenishment),
 * a waiter's stack frame - so arming a timer never allocates and cannot fail: a sleep or a replenishment never
 * waits for memory.
 *
 * The owning worker runs due timers before it takes its rq lock (schedule, preemption points) and in its idle
 * loop, which sleeps until the earliest expiry. Any thread may arm or delete a timer, so each base has a lock, a
 * leaf lock. A timer is on at most one base; t->base names it and changes only under that base's lock, so
 * lock_timer_base() re-checks it after locking (the kernel's lock_hrtimer_base). Due timers are taken off the tree
 * under the lock and run after it is dropped: t->fired is set, then t->fn(t) runs (NULL: wake t->fiber), so
 * try_to_wake_up and the replenishment never run under the timer lock. While a callback runs, base->running names
 * its timer and fiber__timer_del waits for it (hrtimer_cancel), so a timer's memory may go as soon as timer_del
 * returns.
 *
 * The tree: expected O(log n) arm and delete, whichever timer it is, and its first node (the earliest) cached. A
 * pairing heap was cheaper on average but lumpy, and the lump fell on one fiber: with a timeout per I/O call, every
 * arming (a later expiry than the earliest) became a child of the root, and the fiber whose call held the earliest
 * timer merged all of them - hundreds of microseconds with 500 connections - when it deleted it. The fair class
 * charged it for that and held it back behind every other connection (README, "the scheduler clock").
 */
#include "internal.h"

/* ---- the tree (base->lock held) ---- */

static inline struct fiber_timer *node_timer(const struct tnode *n)
{
	return container_of(n, struct fiber_timer, node);
}

/* By expiry; equal expiries go right, so they fire in the order they were armed. */
static inline bool timer_less(const struct tnode *a, const struct tnode *b)
{
	return node_timer(a)->expires < node_timer(b)->expires;
}

static inline struct fiber_timer *first_timer(const struct timer_base *b)
{
	struct tnode *n = treap_first(&b->tree);

	return n ? node_timer(n) : NULL;
}

static void update_next(struct timer_base *b)
{
	struct fiber_timer *first = first_timer(b);

	atomic_store_explicit(&b->next_expiry, first ? first->expires : UINT64_MAX, memory_order_relaxed);
}

static void tree_insert(struct timer_base *b, struct fiber_timer *t)
{
	__treap_insert(&b->tree, &t->node, timer_less, NULL, NULL, NULL);
	t->pending = true;
	b->nr++;
	update_next(b);
}

static void tree_remove(struct timer_base *b, struct fiber_timer *t)
{
	__treap_erase(&b->tree, &t->node, NULL, NULL);
	t->pending = false;
	b->nr--;
	update_next(b);
}

void fiber__timer_base_init(struct timer_base *b)
{
	spin_lock_init(&b->lock);
	treap_init(&b->tree, timer_less, NULL);
	b->nr = 0;
	atomic_store(&b->next_expiry, UINT64_MAX);
	atomic_store(&b->running, NULL);
	atomic_flag_clear(&b->run_lock);
}

/* Nothing to free: the nodes belong to their owners, who all deleted them before the runtime stopped. */
void fiber__timer_base_destroy(struct timer_base *b)
{
	FIBER_DEBUG_BUG_ON(b->tree.root != NULL);
	treap_init(&b->tree, timer_less, NULL);
	b->nr = 0;
}

void fiber__timer_init(struct fiber_timer *t, void (*fn)(struct fiber_timer *t), struct fiber *p)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->fiber = p;
}

/* Lock the base @t is on (NULL if it was never armed), re-checked after locking because t may move. */
static struct timer_base *lock_timer_base(struct fiber_timer *t)
{
	for (;;) {
		struct timer_base *b = __atomic_load_n(&t->base, __ATOMIC_ACQUIRE); /* pairs with timer_add's release */

		if (!b)
			return NULL;
		spin_lock(&b->lock);
		if (likely(t->base == b))
			return b;
		spin_unlock(&b->lock);
	}
}

/*
 * Arm @t on @b to expire at @expires (t->fn and t->fiber set by fiber__timer_init; @p, if not NULL, replaces
 * t->fiber). A timer that is still armed - here or on another worker's base - is re-armed (hrtimer_start's
 * semantics), never queued twice. Cannot fail. Returns true when @t became the earliest timer of @b: a caller on
 * another worker then kicks @b's worker, whose idle sleep was computed for a later expiry.
 */
bool fiber__timer_add(struct timer_base *b, struct fiber_timer *t, uint64_t expires, struct fiber *p)
{
	struct timer_base *old = lock_timer_base(t);
	bool first;

	if (old) {
		if (t->pending)
			tree_remove(old, t);
		if (old != b) {
			spin_unlock(&old->lock);
			old = NULL;
		}
	}
	if (!old)
		spin_lock(&b->lock);
	if (p)
		t->fiber = p;
	t->expires = expires;
	atomic_store_explicit(&t->fired, false, memory_order_relaxed);
	/* If another thread re-armed t meanwhile (it was on no base when we looked), that arming wins. */
	if (t->pending) {
		spin_unlock(&b->lock);
		return false;
	}
	__atomic_store_n(&t->base, b, __ATOMIC_RELEASE); /* pairs with lock_timer_base's acquire load */
	tree_insert(b, t);
	first = first_timer(b) == t;
	spin_unlock(&b->lock);
	/*
	 * A timer on a busy worker is something the monitor must watch (the worker may get stuck before it expires).
	 * The fence orders the tree update before the monitor's sleeping flag is read (fiber__monitor_kick); it pairs
	 * with monitor_main's seq_cst store of sleeping before its last scan.
	 */
	if (fiber__rt.workers &&
	    !(atomic_load_explicit(&fiber__rt.idle_mask[b->cpu / 32], memory_order_relaxed) & (1u << (b->cpu % 32)))) {
		atomic_thread_fence(memory_order_seq_cst);
		fiber__monitor_kick();
	}
	return first;
}

/* Disarm @t if it has not fired. After this returns the timer code no longer touches @t. */
void fiber__timer_del(struct fiber_timer *t)
{
	struct timer_base *b = lock_timer_base(t);

	if (!b)
		return;
	if (t->pending)
		tree_remove(b, t);
	spin_unlock(&b->lock);
	/* Its callback may be running right now on the owning worker: wait for it (pairs with run_timers' release). */
	while (atomic_load_explicit(&b->running, memory_order_acquire) == t)
		cpu_relax();
}

/*
 * Fire every timer due at @now, with no lock held: by the owning worker, or by the monitor for a worker that is
 * stuck (one runner at a time: whoever finds run_lock taken leaves the work to its holder). One timer at a time:
 * it is taken off the tree and named in base->running under the lock, so a concurrent timer_del either removes it
 * first or sees it running and waits until its callback returned.
 */
void fiber__run_timers(struct timer_base *b, uint64_t now)
{
	/* run_lock: acquire here pairs with the release clear of the previous runner. */
	if (atomic_flag_test_and_set_explicit(&b->run_lock, memory_order_acquire))
		return;
	for (;;) {
		struct fiber_timer *t;

		spin_lock(&b->lock);
		t = first_timer(b);
		if (!t || t->expires > now) {
			spin_unlock(&b->lock);
			atomic_flag_clear_explicit(&b->run_lock, memory_order_release);
			return;
		}
		tree_remove(b, t);
		atomic_store_explicit(&b->running, t, memory_order_relaxed);
		spin_unlock(&b->lock);

		/* Pairs with the acquire load of fired by the sleeper (fiber_sleep, timed waits). */
		atomic_store_explicit(&t->fired, true, memory_order_release);
		if (t->fn)
			t->fn(t);
		else
			fiber__wake_up_process(t->fiber);
		atomic_store_explicit(&b->running, NULL, memory_order_release);
	}
}
