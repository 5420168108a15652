/*
 * runtime/timer.c - per-worker timers: sleeps, timeouts and the deadline class's replenishment.
 *
 * Each worker has a timer base: an intrusive pairing heap of struct fiber_timer ordered by expiry (sched_clock
 * ns). The nodes live in what they time - the fiber (fiber_sleep, timeouts), the deadline entity (replenishment),
 * a waiter's stack frame - so arming a timer never allocates and cannot fail: a sleep or a replenishment never
 * waits for memory.
 *
 * The owning worker runs due timers before it takes its rq lock (schedule, preemption points) and in its idle
 * loop, which sleeps until the earliest expiry. Any thread may arm or delete a timer, so each base has a lock, a
 * leaf lock. A timer is on at most one base; t->base names it and changes only under that base's lock, so
 * lock_timer_base() re-checks it after locking (the kernel's lock_hrtimer_base). Due timers are taken off the heap
 * under the lock and run after it is dropped: t->fired is set, then t->fn(t) runs (NULL: wake t->fiber), so
 * try_to_wake_up and the replenishment never run under the timer lock. While a callback runs, base->running names
 * its timer and fiber__timer_del waits for it (hrtimer_cancel), so a timer's memory may go as soon as timer_del
 * returns.
 *
 * Pairing heap: the root is the earliest timer; every node keeps a list of child heaps (child, then sibling). A
 * node's prev is its parent when it is a first child, else its left sibling, and NULL for the root, so any node
 * can be cut out in O(1) and its children merged back in O(log n) amortized.
 */
#include "internal.h"

void fiber__timer_base_init(struct timer_base *b)
{
	spin_lock_init(&b->lock);
	b->root = NULL;
	b->nr = 0;
	atomic_store(&b->next_expiry, UINT64_MAX);
	atomic_store(&b->running, NULL);
	atomic_flag_clear(&b->run_lock);
}

/* Nothing to free: the nodes belong to their owners, who all deleted them before the runtime stopped. */
void fiber__timer_base_destroy(struct timer_base *b)
{
	FIBER_DEBUG_BUG_ON(b->root != NULL);
	b->root = NULL;
	b->nr = 0;
}

void fiber__timer_init(struct fiber_timer *t, void (*fn)(struct fiber_timer *t), struct fiber *p)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->fiber = p;
}

/* ---- the pairing heap (base->lock held) ---- */

/* Meld two heaps whose roots have no siblings and no prev; returns the new root. */
static struct fiber_timer *meld(struct fiber_timer *a, struct fiber_timer *b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	if (b->expires < a->expires) {
		struct fiber_timer *t = a;

		a = b;
		b = t;
	}
	/* b becomes a's first child. */
	b->prev = a;
	b->sibling = a->child;
	if (a->child)
		a->child->prev = b;
	a->child = b;
	return a;
}

/* Merge a list of sibling heaps into one (the standard two passes: pair left to right, meld right to left). */
static struct fiber_timer *merge_pairs(struct fiber_timer *first)
{
	struct fiber_timer *pairs = NULL, *root = NULL;

	while (first) {
		struct fiber_timer *a = first, *b = a->sibling, *next = b ? b->sibling : NULL;

		a->sibling = a->prev = NULL;
		if (b)
			b->sibling = b->prev = NULL;
		a = meld(a, b);
		a->sibling = pairs; /* the pass-one results, last pair first */
		pairs = a;
		first = next;
	}
	while (pairs) {
		struct fiber_timer *next = pairs->sibling;

		pairs->sibling = NULL;
		root = meld(pairs, root);
		pairs = next;
	}
	return root;
}

static void update_next(struct timer_base *b)
{
	atomic_store_explicit(&b->next_expiry, b->root ? b->root->expires : UINT64_MAX, memory_order_relaxed);
}

static void heap_insert(struct timer_base *b, struct fiber_timer *t)
{
	t->child = t->sibling = t->prev = NULL;
	b->root = meld(b->root, t);
	b->root->prev = NULL;
	t->pending = true;
	b->nr++;
	update_next(b);
}

static void heap_remove(struct timer_base *b, struct fiber_timer *t)
{
	struct fiber_timer *sub;

	if (t == b->root) {
		b->root = merge_pairs(t->child);
	} else {
		/* Cut t (and its subtree) out: prev is its parent if t is the first child, else its left sibling. */
		if (t->prev->child == t)
			t->prev->child = t->sibling;
		else
			t->prev->sibling = t->sibling;
		if (t->sibling)
			t->sibling->prev = t->prev;
		sub = merge_pairs(t->child);
		b->root = meld(b->root, sub);
	}
	if (b->root)
		b->root->prev = NULL;
	t->child = t->sibling = t->prev = NULL;
	t->pending = false;
	b->nr--;
	update_next(b);
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
			heap_remove(old, t);
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
	heap_insert(b, t);
	first = b->root == t;
	spin_unlock(&b->lock);
	/*
	 * A timer on a busy worker is something the monitor must watch (the worker may get stuck before it expires).
	 * The fence orders the heap update before the monitor's sleeping flag is read (fiber__monitor_kick); it pairs
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
		heap_remove(b, t);
	spin_unlock(&b->lock);
	/* Its callback may be running right now on the owning worker: wait for it (pairs with run_timers' release). */
	while (atomic_load_explicit(&b->running, memory_order_acquire) == t)
		cpu_relax();
}

/*
 * Fire every timer due at @now, with no lock held: by the owning worker, or by the monitor for a worker that is
 * stuck (one runner at a time: whoever finds run_lock taken leaves the work to its holder). One timer at a time:
 * it is taken off the heap and named in base->running under the lock, so a concurrent timer_del either removes it
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
		t = b->root;
		if (!t || t->expires > now) {
			spin_unlock(&b->lock);
			atomic_flag_clear_explicit(&b->run_lock, memory_order_release);
			return;
		}
		heap_remove(b, t);
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
