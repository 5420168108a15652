/*
 * runtime/sync.h - what wait.c, sync.c and chan.c share: timeouts, parking on a word, and the waiter lists of the
 * lock-based primitives.
 *
 * Every blocking primitive follows one protocol (KERNEL_MAP §6.3): the waker decides under the primitive's lock
 * which waiter gets what (a grant), records that in the waiter and queues the wake-up on a wake_q; it issues the
 * wake-ups after it dropped the lock (§6.5). The waiter parks on its grant word with the set_current_state / check
 * / schedule order (fiber__park), so either it sees the grant or the waker sees it asleep. Because the verdict is
 * made under the lock for one named waiter, a waiter that gives up (cancel, timeout) removes itself under the same
 * lock and can never swallow a wake-up meant for another: either it was granted (and takes it) or it was not (and
 * nobody will grant it any more).
 *
 * Plain pthreads wait the same way, on a futex on the same word (task == NULL).
 *
 * Channels (chan.c) follow the same order with their own wake-up list instead of a wake_q: the verdict (a claim)
 * is made under the channel lock for one named waiter, the wake-up is issued after the unlock, and the claim
 * itself keeps the waiter from leaving until the claimer released it, so no reference is taken.
 */
#ifndef FIBER_SYNC_H
#define FIBER_SYNC_H

#include "internal.h"

/* The calling fiber, NULL on a plain pthread (and in the idle loop, which never blocks here). */
static inline struct fiber *sync_self(void)
{
	struct fiber *p = current_fiber();

	return p && !is_idle_task(p) ? p : NULL;
}

/* An identity for owner fields: the fiber, or a per-pthread address | SYNC_TOKEN_PTHREAD. Never 0; bits 0-1 clear. */
#define SYNC_TOKEN_PTHREAD 0x4ul
__hidden uintptr_t fiber__sync_token(void);

/* CLOCK_MONOTONIC, ns (what the tests and users measure timeouts with). */
__hidden uint64_t fiber__mono_ns(void);

/*
 * A relative timeout that never ends early: the deadline is on CLOCK_MONOTONIC; a fiber arms a worker timer
 * (fiber__timer_add) the first time it sleeps and re-arms it if it fired before the deadline by that clock.
 */
struct fiber__timeout {
	uint64_t deadline; /* CLOCK_MONOTONIC ns; UINT64_MAX: none */
	bool armed;
	struct fiber_timer timer;
};
__hidden void fiber__timeout_init(struct fiber__timeout *to, uint64_t ns);
/* true once the deadline has passed; else (fiber @p) make sure a timer will wake @p by then. */
__hidden bool fiber__timeout_expired(struct fiber__timeout *to, struct fiber *p);
/* Disarm; after it the timer no longer wakes anyone. */
__hidden void fiber__timeout_done(struct fiber__timeout *to);

/*
 * Sleep once while *@word == @expect, in @state (TASK_INTERRUPTIBLE: a cancellation point). Returns 0 after a
 * wake-up (maybe spurious: the caller re-checks @word), -ECANCELED or -ETIMEDOUT (@to may be NULL). Fibers
 * schedule(); plain pthreads futex-wait on @word. No lock may be held.
 * Waker: store @word (release), then wake the waiter: the wake_q for a fiber, fiber__futex_wake for a pthread.
 */
__hidden int fiber__park(atomic_int *word, int expect, unsigned state, struct fiber__timeout *to);
__hidden void fiber__futex_wake(atomic_int *word, int nr);

/* ---- waiter lists of the lock-based primitives (mutex, cond, rwlock, sem, barrier, wait group) ---- */

struct sync_waiter {
	struct sync_waiter *next, *prev; /* the primitive's lock */
	struct fiber *task;		 /* NULL: plain pthread */
	atomic_int granted;		 /* 0 waiting; else the waker's verdict (release store after the wake_q add) */
	unsigned flags;			 /* per primitive (rwlock: reader or writer) */
	bool intr;			 /* an interruptible wait (a cancellation point) */
	int prio;			 /* the waiter's effective priority when it queued (INT_MAX: pthread) */
	uintptr_t token;		 /* fiber__sync_token() of the waiter */
};

struct sync_wlist {
	struct sync_waiter *first, *last;
};

static inline void sync_waiter_init(struct sync_waiter *w)
{
	w->next = w->prev = NULL;
	w->task = sync_self();
	atomic_init(&w->granted, 0);
	w->flags = 0;
	w->intr = false;
	w->prio = w->task ? w->task->prio : INT_MAX;
	w->token = fiber__sync_token();
}

/*
 * May @w be granted? Not a fiber cancelled in an interruptible wait: it is on its way out (the cancel woke it)
 * and would otherwise swallow what the waker hands out; it is skipped, left queued, and removes itself.
 */
static inline bool sync_waiter_live(const struct sync_waiter *w)
{
	return !(w->intr && w->task && atomic_load_explicit(&w->task->cancel_pending, memory_order_relaxed));
}

/* The first waiter that may be granted, NULL if none (the primitive's lock held). */
static inline struct sync_waiter *wlist_first_live(const struct sync_wlist *l)
{
	struct sync_waiter *w;

	for (w = l->first; w && !sync_waiter_live(w); w = w->next)
		;
	return w;
}

static inline void wlist_add_tail(struct sync_wlist *l, struct sync_waiter *w)
{
	w->next = NULL;
	w->prev = l->last;
	if (l->last)
		l->last->next = w;
	else
		l->first = w;
	l->last = w;
}

static inline void wlist_del(struct sync_wlist *l, struct sync_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		l->first = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		l->last = w->prev;
	w->next = w->prev = NULL;
}

/*
 * Grant @w (already removed from its list) the verdict @v, under the primitive's lock. For a fiber: take a
 * reference, publish the grant, then queue the wake-up on @q (wake_q_add_safe: the condition first). After the
 * grant store the waiter may return and its stack entry vanish, so nothing of @w is read afterwards. A pthread is
 * woken by futex right away (the syscall reads no memory of the entry, so a waiter already gone costs at most a
 * spurious wake-up elsewhere).
 */
__hidden void fiber__wake_q_add_safe(struct wake_q_head *head, struct fiber *p);
__hidden void fiber__sync_grant(struct sync_waiter *w, int v, struct wake_q_head *q);

/*
 * Called with @lock held and @w queued on @l; drops @lock and sleeps until @w is granted. Returns the grant (> 0)
 * with @lock not held, or -ECANCELED / -ETIMEDOUT with @lock held again and @w off the list (never granted).
 */
__hidden int fiber__sync_wait(spinlock_t *lock, struct sync_wlist *l, struct sync_waiter *w, unsigned state,
			      struct fiber__timeout *to);

/* Issue the collected wake-ups, then honour a reschedule they asked for (a preemption point). */
static inline void sync_wake_up_q(struct wake_q_head *q)
{
	if (q->first != WAKE_Q_TAIL) {
		fiber__wake_up_q(q);
		fiber__preempt_point();
	}
}

#endif /* FIBER_SYNC_H */
