/*
 * runtime/wait.c - wait queues: the park/unpark protocol every blocking primitive uses (KERNEL_MAP §6.3).
 *
 * Waiter:  prepare_to_wait (queue the entry under wq->lock, state store, full fence), check the condition,
 *          schedule(), loop; finish_wait (state = RUNNING, unqueue if still queued).
 * Waker:   store the condition, then fiber__wake_up: under wq->lock, try_to_wake_up each entry (it removes the
 *          entry: autoremove), which takes pi_lock and fences before it reads the state.
 * Either the waiter sees the condition or the waker sees a non-RUNNING state (D1); a wake-up that comes between
 * the check and schedule() finds the fiber still queued and sets it RUNNING under the rq lock, which __schedule
 * reads (D2). Waits always loop: a wake-up may be spurious (D4).
 */
#include "sync.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

void fiber__init_waitqueue_head(struct wait_queue_head *wq)
{
	spin_lock_init(&wq->lock);
	INIT_LIST_HEAD(&wq->head);
}

void fiber__prepare_to_wait(struct wait_queue_head *wq, struct wait_queue_entry *e, unsigned state)
{
	struct fiber *curr = current_fiber();

	e->task = curr;
	if (!atomic_load_explicit(&curr->wait_reason, memory_order_relaxed))
		fiber__set_wait(curr, "wait queue", wq);
	spin_lock(&wq->lock);
	if (list_empty(&e->entry))
		list_add_tail(&e->entry, &wq->head);
	fiber__set_current_state(state);
	spin_unlock(&wq->lock);
}

void fiber__finish_wait(struct wait_queue_head *wq, struct wait_queue_entry *e)
{
	if (!e->task) {
		/* A pthread waiter: its futex was set under the lock; unqueue under it too, if still queued. */
		spin_lock(&wq->lock);
		if (!list_empty(&e->entry))
			list_del_init(&e->entry);
		spin_unlock(&wq->lock);
		return;
	}
	atomic_store_explicit(&current_fiber()->state, TASK_RUNNING, memory_order_relaxed);
	fiber__set_wait(current_fiber(), NULL, NULL);
	/* Unlocked peek (list_empty_careful): pairs with the waker's release store when it unqueues us. */
	if (__atomic_load_n(&e->entry.next, __ATOMIC_ACQUIRE) != &e->entry) {
		spin_lock(&wq->lock);
		list_del_init(&e->entry);
		spin_unlock(&wq->lock);
	}
}

static void __wake_up(struct wait_queue_head *wq, unsigned mode, int nr, int wake_flags);

/* Wake @nr waiters (0 = all) in @mode. Context: any thread; never with an rq lock held. */
void fiber__wake_up(struct wait_queue_head *wq, unsigned mode, int nr)
{
	__wake_up(wq, mode, nr, 0);
}

/* Wake all waiters, telling the scheduler the caller is about to block or exit (WF_SYNC): hand them the CPU. */
void fiber__wake_up_sync(struct wait_queue_head *wq, unsigned mode)
{
	__wake_up(wq, mode, 0, WF_SYNC);
}

static void __wake_up(struct wait_queue_head *wq, unsigned mode, int nr, int wake_flags)
{
	struct list_head *pos, *n;

	spin_lock(&wq->lock);
	list_for_each_safe (pos, n, &wq->head) {
		struct wait_queue_entry *e = list_entry(pos, struct wait_queue_entry, entry);

		if (!e->task) {
			/*
			 * A plain pthread (public wait queues only). Its finish_wait always takes wq->lock, so it
			 * cannot return (and e vanish) before we drop the lock.
			 */
			list_del_init(&e->entry);
			/* Pairs with fiber__park's acquire load. */
			atomic_store_explicit(&e->futex, 1, memory_order_release);
			fiber__futex_wake(&e->futex, 1);
			if (nr && --nr == 0)
				break;
			continue;
		}

		/*
		 * autoremove_wake_function: wake first, unqueue after. While the entry is queued the waiter's
		 * finish_wait takes wq->lock, so the waiter (and its descriptor) cannot go away under us.
		 */
		if (!fiber__try_to_wake_up(e->task, mode, wake_flags))
			continue;
		__atomic_store_n(&e->entry.prev->next, e->entry.next, __ATOMIC_RELAXED);
		e->entry.next->prev = e->entry.prev;
		e->entry.prev = &e->entry;
		/* Release: pairs with the acquire peek in finish_wait; after it e may vanish. */
		__atomic_store_n(&e->entry.next, &e->entry, __ATOMIC_RELEASE);
		if (nr && --nr == 0)
			break;
	}
	spin_unlock(&wq->lock);
}

/* signal_pending_state's analog: a cancelled fiber does not stay in an interruptible sleep. */
bool fiber__signal_pending(struct fiber *p)
{
	return atomic_load_explicit(&p->cancel_pending, memory_order_relaxed);
}

/* ------------------------------------------------------------------------------------------------------------
 * What sync.c and chan.c share (sync.h): identities, timeouts, parking on a word, granting waiters.
 * ---------------------------------------------------------------------------------------------------------- */

static __thread uint64_t pthread_token; /* its address identifies a plain pthread as a lock owner */

uintptr_t fiber__sync_token(void)
{
	struct fiber *p = sync_self();

	return p ? (uintptr_t)p : ((uintptr_t)&pthread_token | SYNC_TOKEN_PTHREAD);
}

uint64_t fiber__mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void fiber__futex_wake(atomic_int *word, int nr)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, nr, NULL, NULL, 0);
}

void fiber__timeout_init(struct fiber__timeout *to, uint64_t ns)
{
	uint64_t now;

	to->armed = false;
	/* Zero is an unarmed timer whose expiry wakes t->fiber (fn NULL); fiber__timer_add sets the rest. */
	memset(&to->timer, 0, sizeof(to->timer));
	if (ns == UINT64_MAX) {
		to->deadline = UINT64_MAX;
		return;
	}
	now = fiber__mono_ns();
	to->deadline = ns >= UINT64_MAX - now ? UINT64_MAX : now + ns;
}

bool fiber__timeout_expired(struct fiber__timeout *to, struct fiber *p)
{
	uint64_t now;

	if (to->deadline == UINT64_MAX)
		return false;
	now = fiber__mono_ns();
	if (now >= to->deadline)
		return true;
	/*
	 * Not yet by CLOCK_MONOTONIC. A fiber needs a timer that wakes it by then: the first time, or again when the
	 * one armed before fired early by this clock (sched_clock is the TSC scaled, which may drift a little).
	 */
	/* fired: pairs with run_timers' release store (timer.c). */
	if (p && (!to->armed || atomic_load_explicit(&to->timer.fired, memory_order_acquire))) {
		uint64_t d = to->deadline - now;
		uint64_t expires = fiber__sched_clock() + d + 1;

		if (to->armed)
			fiber__timer_del(&to->timer);
		preempt_disable();
		fiber__timer_add(&this_worker()->timers, &to->timer, expires, p);
		preempt_enable_no_resched();
		to->armed = true;
	}
	return false;
}

void fiber__timeout_done(struct fiber__timeout *to)
{
	if (to->armed)
		fiber__timer_del(&to->timer);
	to->armed = false;
}

int fiber__park(atomic_int *word, int expect, unsigned state, struct fiber__timeout *to)
{
	struct fiber *curr = sync_self();
	int ret = 0;

	if (curr) {
		/* Shown by fiber_dump, gdb and the deadlock report, unless the caller said something more precise. */
		bool said = !atomic_load_explicit(&curr->wait_reason, memory_order_relaxed);

		if (said)
			fiber__set_wait(curr, "sync", word);
		/* D1: state store and full fence, then the condition; the waker stores it, then ttwu reads state. */
		fiber__set_current_state(state);
		if (atomic_load_explicit(word, memory_order_acquire) != expect) /* pairs with the waker's release */
			goto running;
		if ((state & TASK_INTERRUPTIBLE) && fiber__signal_pending(curr)) {
			ret = -ECANCELED;
			goto running;
		}
		if (to && fiber__timeout_expired(to, curr)) {
			ret = -ETIMEDOUT;
			goto running;
		}
		fiber__schedule();
		if (said)
			fiber__set_wait(curr, NULL, NULL);
		return 0;
	running:
		atomic_store_explicit(&curr->state, TASK_RUNNING, memory_order_relaxed);
		if (said)
			fiber__set_wait(curr, NULL, NULL);
		return ret;
	}

	/* A plain pthread: the kernel's futex compares *word with expect under its own lock. */
	if (to && to->deadline != UINT64_MAX) {
		struct timespec ts;

		if (fiber__mono_ns() >= to->deadline)
			return -ETIMEDOUT;
		ts.tv_sec = (time_t)(to->deadline / 1000000000ull);
		ts.tv_nsec = (long)(to->deadline % 1000000000ull);
		syscall(SYS_futex, word, FUTEX_WAIT_BITSET_PRIVATE, expect, &ts, NULL, FUTEX_BITSET_MATCH_ANY);
	} else {
		syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expect, NULL, NULL, 0);
	}
	return 0;
}

/*
 * wake_q_add_safe: the caller already holds a reference on @p (taken before it published the condition) and
 * gives it to the queue; if @p is queued elsewhere already, that queue's wake-up comes after our condition store
 * (the cmpxchg is a full barrier, and the other waker unqueues @p only after it), so we drop our reference.
 */
void fiber__wake_q_add_safe(struct wake_q_head *head, struct fiber *p)
{
	struct wake_q_node *node = &p->wake_q, *expected = NULL;

	/* Pairs with fiber__wake_up_q's release store of next = NULL (core.c). */
	if (!__atomic_compare_exchange_n(&node->next, &expected, WAKE_Q_TAIL, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST)) {
		fiber__put_task_struct(p);
		return;
	}
	__atomic_store_n(head->lastp, node, __ATOMIC_RELAXED);
	head->lastp = &node->next;
}

void fiber__sync_grant(struct sync_waiter *w, int v, struct wake_q_head *q)
{
	struct fiber *task = w->task;

	if (task) {
		/*
		 * The condition (the grant) before the wake_q add (KERNEL_MAP §6.5): if the waiter is on another
		 * waker's wake_q already, that wake-up must find the grant. The reference pins the descriptor, since
		 * after the release store the waiter may return and exit.
		 */
		fiber__get_task_struct(task);
		atomic_store_explicit(&w->granted, v, memory_order_release); /* pairs with fiber__park's acquire */
		fiber__wake_q_add_safe(q, task);
	} else {
		atomic_store_explicit(&w->granted, v, memory_order_release);
		fiber__futex_wake(&w->granted, 1);
	}
}

int fiber__sync_wait(spinlock_t *lock, struct sync_wlist *l, struct sync_waiter *w, unsigned state,
		     struct fiber__timeout *to)
{
	int g, r;

	spin_unlock(lock);
	for (;;) {
		r = fiber__park(&w->granted, 0, state, to);
		/* Both acquire loads pair with fiber__sync_grant's release store. */
		g = atomic_load_explicit(&w->granted, memory_order_acquire);
		if (g)
			return g;
		if (r) {
			spin_lock(lock);
			/* Granted meanwhile: it is ours, take it (the cancellation stays pending for the next one). */
			g = atomic_load_explicit(&w->granted, memory_order_acquire);
			if (g) {
				spin_unlock(lock);
				return g;
			}
			wlist_del(l, w);
			return r;
		}
	}
}

/* ------------------------------------------------------------------------------------------------------------
 * Public wait queues (fiber.h): struct fiber_waitq is a wait_queue_head, struct fiber_wait_entry holds a
 * wait_queue_entry and a timeout.
 * ---------------------------------------------------------------------------------------------------------- */

struct pub_wait_entry {
	struct wait_queue_entry e;
	unsigned flags; /* FIBER_WAIT_* */
	struct fiber__timeout to;
};

_Static_assert(sizeof(struct fiber_waitq) == sizeof(struct wait_queue_head), "fiber_waitq layout");
_Static_assert(offsetof(struct fiber_waitq, __head) == offsetof(struct wait_queue_head, head), "fiber_waitq layout");
_Static_assert(sizeof(struct pub_wait_entry) <= sizeof(struct fiber_wait_entry), "fiber_wait_entry too small");
_Static_assert(_Alignof(struct pub_wait_entry) <= _Alignof(struct fiber_wait_entry), "fiber_wait_entry alignment");

static inline struct wait_queue_head *wq_of(struct fiber_waitq *wq)
{
	return (struct wait_queue_head *)(void *)wq;
}

static inline struct pub_wait_entry *entry_of(struct fiber_wait_entry *e)
{
	return (struct pub_wait_entry *)(void *)e;
}

void fiber_waitq_init(struct fiber_waitq *wq)
{
	if (wq)
		fiber__init_waitqueue_head(wq_of(wq));
}

void fiber_wait_entry_init(struct fiber_wait_entry *e, unsigned flags, uint64_t timeout_ns)
{
	struct pub_wait_entry *pe = entry_of(e);

	memset(pe, 0, sizeof(*pe));
	pe->e.task = sync_self();
	INIT_LIST_HEAD(&pe->e.entry);
	pe->flags = flags;
	fiber__timeout_init(&pe->to, timeout_ns);
}

int fiber_prepare_to_wait(struct fiber_waitq *wq, struct fiber_wait_entry *e)
{
	struct wait_queue_head *h = wq_of(wq);
	struct pub_wait_entry *pe = entry_of(e);
	struct fiber *curr = pe->e.task;
	unsigned state = (pe->flags & FIBER_WAIT_INTERRUPTIBLE) ? TASK_INTERRUPTIBLE : TASK_UNINTERRUPTIBLE;
	int ret = 0;

	if (curr && !atomic_load_explicit(&curr->wait_reason, memory_order_relaxed))
		fiber__set_wait(curr, "wait queue", h); /* fiber_finish_wait clears it */
	spin_lock(&h->lock);
	if (list_empty(&pe->e.entry))
		list_add_tail(&pe->e.entry, &h->head);
	if (curr)
		fiber__set_current_state(state); /* full fence before the caller's condition check (D1) */
	else
		atomic_store_explicit(&pe->e.futex, 0, memory_order_relaxed);
	/*
	 * As prepare_to_wait_event: a waiter that gives up leaves the queue under the lock, so a later wake-up goes
	 * to another waiter; the caller re-checks its condition first, so a wake-up already aimed at us is taken.
	 */
	if (curr && (pe->flags & FIBER_WAIT_INTERRUPTIBLE) && fiber__signal_pending(curr))
		ret = -ECANCELED;
	else if (fiber__timeout_expired(&pe->to, curr))
		ret = -ETIMEDOUT;
	if (ret) {
		list_del_init(&pe->e.entry);
		if (curr)
			atomic_store_explicit(&curr->state, TASK_RUNNING, memory_order_relaxed);
	}
	spin_unlock(&h->lock);
	return ret;
}

void fiber_wait_schedule(struct fiber_wait_entry *e)
{
	struct pub_wait_entry *pe = entry_of(e);

	if (pe->e.task) {
		fiber__schedule();
		return;
	}
	fiber__park(&pe->e.futex, 0, TASK_UNINTERRUPTIBLE, &pe->to);
}

void fiber_finish_wait(struct fiber_waitq *wq, struct fiber_wait_entry *e)
{
	struct pub_wait_entry *pe = entry_of(e);

	fiber__finish_wait(wq_of(wq), &pe->e);
	fiber__timeout_done(&pe->to);
}

void fiber_wake_up(struct fiber_waitq *wq)
{
	if (!wq)
		return;
	fiber__wake_up(wq_of(wq), TASK_NORMAL, 1);
	fiber__preempt_point();
}

void fiber_wake_up_all(struct fiber_waitq *wq)
{
	if (!wq)
		return;
	fiber__wake_up(wq_of(wq), TASK_NORMAL, 0);
	fiber__preempt_point();
}
