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
#include "internal.h"

void fiber__init_waitqueue_head(struct wait_queue_head *wq)
{
	spin_lock_init(&wq->lock);
	INIT_LIST_HEAD(&wq->head);
}

void fiber__prepare_to_wait(struct wait_queue_head *wq, struct wait_queue_entry *e, unsigned state)
{
	struct fiber *curr = current_fiber();

	e->task = curr;
	spin_lock(&wq->lock);
	if (list_empty(&e->entry))
		list_add_tail(&e->entry, &wq->head);
	fiber__set_current_state(state);
	spin_unlock(&wq->lock);
}

void fiber__finish_wait(struct wait_queue_head *wq, struct wait_queue_entry *e)
{
	atomic_store_explicit(&current_fiber()->state, TASK_RUNNING, memory_order_relaxed);
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
	list_for_each_safe(pos, n, &wq->head)
	{
		struct wait_queue_entry *e = list_entry(pos, struct wait_queue_entry, entry);

		/*
		 * autoremove_wake_function: wake first, unqueue after. While the entry is queued the waiter's
		 * finish_wait takes wq->lock, so the waiter (and its descriptor) cannot go away under us.
		 */
		if (!fiber__try_to_wake_up(e->task, mode, wake_flags))
			continue;
		e->entry.prev->next = e->entry.next;
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
