/*
 * runtime/timer.c - the per-worker timer heap (sleep now; timeouts and DL replenishment build on it).
 *
 * A binary min-heap of struct fiber_timer ordered by expiry (sched_clock ns). The owning worker runs due timers
 * before it takes its rq lock (schedule, preemption points) and in its idle loop, which sleeps until the earliest
 * expiry. Any thread may delete a timer (a fiber woken early removes its own timer, maybe from another worker), so
 * the heap has a lock; it is a leaf lock. Due timers are taken off the heap under the lock and run after it is
 * dropped: t->fired is set, then t->fn(t) runs (NULL: wake t->fiber), so try_to_wake_up and the deadline class's
 * replenishment never run under the timer lock. While a callback runs, base->running names its timer and
 * fiber__timer_del waits for it (hrtimer_cancel), so a timer's memory may go as soon as timer_del returns.
 */
#include "internal.h"

void fiber__timer_base_init(struct timer_base *b)
{
	spin_lock_init(&b->lock);
	b->heap = NULL;
	b->nr = b->cap = 0;
	atomic_store(&b->next_expiry, UINT64_MAX);
}

void fiber__timer_base_destroy(struct timer_base *b)
{
	if (b->heap)
		fiber__free(b->heap, b->cap * sizeof(*b->heap));
	b->heap = NULL;
	b->nr = b->cap = 0;
}

static inline void heap_set(struct timer_base *b, unsigned i, struct fiber_timer *t)
{
	b->heap[i] = t;
	t->idx = (int)i;
}

static void sift_up(struct timer_base *b, unsigned i)
{
	struct fiber_timer *t = b->heap[i];

	while (i > 0) {
		unsigned parent = (i - 1) / 2;

		if (b->heap[parent]->expires <= t->expires)
			break;
		heap_set(b, i, b->heap[parent]);
		i = parent;
	}
	heap_set(b, i, t);
}

static void sift_down(struct timer_base *b, unsigned i)
{
	struct fiber_timer *t = b->heap[i];

	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i;
		uint64_t me = t->expires;

		if (l < b->nr && b->heap[l]->expires < me) {
			m = l;
			me = b->heap[l]->expires;
		}
		if (r < b->nr && b->heap[r]->expires < me)
			m = r;
		if (m == i)
			break;
		heap_set(b, i, b->heap[m]);
		i = m;
	}
	heap_set(b, i, t);
}

static void update_next(struct timer_base *b)
{
	atomic_store_explicit(&b->next_expiry, b->nr ? b->heap[0]->expires : UINT64_MAX, memory_order_relaxed);
}

static void heap_remove(struct timer_base *b, struct fiber_timer *t)
{
	unsigned i = (unsigned)t->idx;
	struct fiber_timer *last = b->heap[--b->nr];

	t->idx = -1;
	if (last != t) {
		heap_set(b, i, last);
		if (i > 0 && b->heap[(i - 1) / 2]->expires > last->expires)
			sift_up(b, i);
		else
			sift_down(b, i);
	}
	update_next(b);
}

/*
 * Arm @t on @b (t->fn must be set or NULL beforehand). The heap grows as needed (a failed growth waits and retries).
 * Returns true when @t became the earliest timer: a caller on another worker then kicks @b's worker, whose idle
 * sleep was computed for a later expiry.
 */
bool fiber__timer_add(struct timer_base *b, struct fiber_timer *t, uint64_t expires, struct fiber *p)
{
	t->expires = expires;
	t->fiber = p;
	t->base = b;
	atomic_store_explicit(&t->fired, false, memory_order_relaxed);
	spin_lock(&b->lock);
	while (b->nr == b->cap) {
		unsigned ncap = b->cap ? b->cap * 2 : 64;
		struct fiber_timer **nh;

		/* Allocation is not done under a spinlock: drop it, allocate, retake and re-check. */
		spin_unlock(&b->lock);
		nh = fiber__malloc(ncap * sizeof(*nh));
		spin_lock(&b->lock);
		if (!nh) {
			spin_unlock(&b->lock);
			sched_yield();
			spin_lock(&b->lock);
			continue;
		}
		if (b->cap >= ncap) {
			spin_unlock(&b->lock);
			fiber__free(nh, ncap * sizeof(*nh));
			spin_lock(&b->lock);
			continue;
		}
		if (b->nr)
			memcpy(nh, b->heap, b->nr * sizeof(*nh));
		struct fiber_timer **old = b->heap;
		unsigned ocap = b->cap;

		b->heap = nh;
		b->cap = ncap;
		if (old) {
			spin_unlock(&b->lock);
			fiber__free(old, ocap * sizeof(*old));
			spin_lock(&b->lock);
		}
	}
	b->heap[b->nr] = t;
	t->idx = (int)b->nr++;
	sift_up(b, (unsigned)t->idx);
	update_next(b);
	bool first = b->heap[0] == t;

	spin_unlock(&b->lock);
	return first;
}

/* Disarm @t if it has not fired. After this returns the timer code no longer touches @t. */
void fiber__timer_del(struct fiber_timer *t)
{
	struct timer_base *b = t->base;

	if (!b)
		return;
	spin_lock(&b->lock);
	if (t->idx >= 0)
		heap_remove(b, t);
	spin_unlock(&b->lock);
	/* Its callback may be running right now on the owning worker: wait for it. */
	while (atomic_load_explicit(&b->running, memory_order_acquire) == t)
		cpu_relax();
}

/*
 * Fire every timer due at @now. Called by the owning worker only, with no lock held. One timer at a time: it is
 * taken off the heap and named in base->running under the lock, so a concurrent timer_del either removes it first
 * or sees it running and waits until its callback returned.
 */
void fiber__run_timers(struct timer_base *b, uint64_t now)
{
	for (;;) {
		struct fiber_timer *t;

		spin_lock(&b->lock);
		if (!b->nr || b->heap[0]->expires > now) {
			spin_unlock(&b->lock);
			return;
		}
		t = b->heap[0];
		heap_remove(b, t);
		atomic_store_explicit(&b->running, t, memory_order_relaxed);
		spin_unlock(&b->lock);

		atomic_store_explicit(&t->fired, true, memory_order_release);
		if (t->fn)
			t->fn(t);
		else
			fiber__wake_up_process(t->fiber);
		atomic_store_explicit(&b->running, NULL, memory_order_release);
	}
}
