/*
 * runtime/chan.c - channels (buffered and rendezvous) and select, with Go's semantics.
 *
 * A channel is a spinlock, a ring buffer and two FIFO queues of blocked operations (sendq, recvq). A blocked
 * send, receive or select is one struct chan_sel (the waiting fiber or pthread and its state word) with one
 * struct chan_waiter per case, each queued on its channel. Whoever finds a waiter in a queue claims its chan_sel
 * with a compare-and-swap WAITING -> CLAIMED, so that of all the cases of a select exactly one completes; waiters
 * whose claim fails (their select completed elsewhere, timed out or was cancelled) are dropped from the queue.
 * The claimer then moves the element directly between the two parties (or through the buffer) and records the
 * result under that channel's lock; after dropping it, it wakes the waiter and only then publishes DONE. A waiter
 * never leaves while its state is CLAIMED (it waits for DONE), so CLAIMED pins it, its chan_sel and, for a fiber,
 * its descriptor: the wake-up needs no reference, no wake_q and no runtime gate, and it cannot reach a later wait
 * of the same fiber. After the DONE store the claimer touches nothing of the waiter.
 *
 * A waiter gives up (timeout, cancellation) only by winning WAITING -> ABORTED; if it loses, the operation was
 * done for it and it returns success: a message is never lost to a cancelled or timed-out receiver. A blocking
 * send or receive (one case, on one channel: sel->single) gives up under that channel's lock instead, where
 * every claim of it happens too, so its claim is a plain store.
 *
 * select locks all its channels in address order (Go's sellock), polls the cases in a random order (a fair choice
 * among ready cases), and otherwise queues one waiter per case before it unlocks and parks.
 */
#include "sync.h"

enum { SEL_WAITING = 0, SEL_CLAIMED = 1, SEL_DONE = 2, SEL_ABORTED = 3 };

struct chan_sel {
	atomic_int state;      /* SEL_*; the futex word of a pthread waiter */
	struct fiber *task;    /* NULL: plain pthread */
	int index;	       /* the case that completed; written by the claimer before DONE */
	bool single;	       /* one case (chan_one): claimed and aborted only under its channel's lock */
	struct chan_sel *next; /* the claimer's list of claimed waiters to finish (struct chan_claims) */
};

/*
 * The waiters fiber_chan_close claimed, to be woken and released (DONE) after the channel lock is dropped
 * (chan_finish). Each is CLAIMED, hence pinned, until then. A send, receive or select claims at most one waiter
 * (send_locked and recv_locked each claim one at most, and select stops at the first case that completes): it
 * keeps that one in a plain pointer and releases it with chan_wake_one.
 */
struct chan_claims {
	struct chan_sel *first;
};
#define DEFINE_CHAN_CLAIMS(name) struct chan_claims name = { NULL }

struct chan_waiter {
	struct chan_waiter *next, *prev; /* ch->lock */
	struct chan_sel *sel;
	void *elem;  /* send: the element; recv: where it goes (NULL: dropped) */
	int idx;     /* the case index */
	int result;  /* written by the claimer before DONE: 0 or -EPIPE */
	bool queued; /* ch->lock */
};

struct chan_q {
	struct chan_waiter *first, *last;
};

struct fiber_chan {
	spinlock_t lock;
	bool closed; /* lock */
	size_t elem_size, cap;
	size_t head, count; /* lock: ring buffer of cap elements */
	struct chan_q sendq, recvq;
	char *buf;
};

static void q_add(struct chan_q *q, struct chan_waiter *w)
{
	w->next = NULL;
	w->prev = q->last;
	if (q->last)
		q->last->next = w;
	else
		q->first = w;
	q->last = w;
	w->queued = true;
}

static void q_del(struct chan_q *q, struct chan_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		q->first = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		q->last = w->prev;
	w->next = w->prev = NULL;
	w->queued = false;
}

/*
 * A fiber cancelled while it waits is on its way out (the cancel woke it): it is not handed a message it would
 * then have to return with, so it never swallows one meant for another waiter. It stays queued and aborts itself.
 */
static inline bool sel_cancelled(const struct chan_sel *sel)
{
	return sel->task && atomic_load_explicit(&sel->task->cancel_pending, memory_order_relaxed);
}

/* The first waiter of @q whose select we win (ch->lock held); dead ones are dropped on the way. */
static inline __attribute__((always_inline)) struct chan_waiter *q_claim(struct chan_q *q)
{
	struct chan_waiter *w, *next;

	for (w = q->first; w; w = next) {
		int expected = SEL_WAITING;

		next = w->next;
		if (atomic_load_explicit(&w->sel->state, memory_order_relaxed) == SEL_WAITING && sel_cancelled(w->sel))
			continue;
		q_del(q, w);
		if (w->sel->single) {
			/*
			 * Queued, so still WAITING: it gives up only under ch->lock, dequeuing itself (chan_wait_one).
			 * Ordered before the wake-up's read of the waiter's state by try_to_wake_up's locked pi_lock
			 * (a full barrier, chan_wake_one), as the cmpxchg below would be.
			 */
			atomic_store_explicit(&w->sel->state, SEL_CLAIMED, memory_order_relaxed);
			return w;
		}
		/* Pairs with the select loop's SEL_ABORTED cmpxchg: one of them wins. */
		if (atomic_compare_exchange_strong_explicit(&w->sel->state, &expected, SEL_CLAIMED,
							    memory_order_acq_rel, memory_order_relaxed))
			return w;
	}
	return NULL;
}

/* Record the outcome for a claimed waiter (ch->lock held); returns its chan_sel, to be released after the unlock. */
static inline struct chan_sel *sel_complete(struct chan_waiter *w, int result)
{
	struct chan_sel *sel = w->sel;

	w->result = result;
	sel->index = w->idx;
	return sel;
}

/*
 * Wake a claimed waiter, then release it (DONE); no channel lock held. The waiter waits for DONE (a fiber woken
 * early, or never asleep, spins on CLAIMED in chan_wait_one or the select loop), so it and its descriptor stay
 * while we wake it; after the DONE store nothing of @sel is touched. A send or receive wakes with WF_SYNC, as the
 * kernel's pipe wake-ups: the waker is about to block or go on briefly, so the wakee comes to the waker's worker if
 * that has nothing else queued, and is picked next there (next buddy), as Go's direct send puts the receiver in
 * runnext. No preemption point follows (also as Go): a sender that wakes a receiver and then waits for the reply
 * switches once, when it blocks.
 */
static inline __attribute__((always_inline)) void chan_wake_one(struct chan_sel *sel, int wake_flags)
{
	struct fiber *task = sel->task;

	if (task) {
		/*
		 * D1: our CLAIMED cmpxchg (a full barrier) comes before try_to_wake_up reads the state; the waiter
		 * stored its state before it read CLAIMED (fiber__park) or under ch->lock before we claimed it
		 * (chan_one). It is woken either way, or sees the claim and does not sleep.
		 */
		fiber__try_to_wake_up(task, TASK_NORMAL, wake_flags);
		/* Pairs with the waiters' acquire loads of state (chan_wait_one, the select loop). */
		atomic_store_explicit(&sel->state, SEL_DONE, memory_order_release);
	} else {
		atomic_store_explicit(&sel->state, SEL_DONE, memory_order_release);
		/* Reads nothing of sel: a waiter already gone costs at most a spurious futex wake-up. */
		fiber__futex_wake(&sel->state, 1);
	}
}

/* fiber_chan_close's list: put a claimed waiter on @cl. */
static inline void claims_add(struct chan_claims *cl, struct chan_sel *sel)
{
	sel->next = cl->first;
	cl->first = sel;
}

/* Wake and release each claimed waiter of @cl (chan_wake_one); no channel lock held. */
static void chan_finish(struct chan_claims *cl, int wake_flags)
{
	struct chan_sel *sel = cl->first, *next;

	for (; sel; sel = next) {
		next = sel->next; /* before DONE: after it sel may vanish */
		chan_wake_one(sel, wake_flags);
	}
}

/*
 * A peer claimed us and is moving the element, waking us, releasing us: wait for its DONE. It takes as long as
 * that; if its thread lost its CPU meanwhile (more workers than cores), give the CPU up now and then.
 */
static __noinline void sel_wait_claimed(struct chan_sel *sel)
{
	for (unsigned spins = 0; atomic_load_explicit(&sel->state, memory_order_acquire) == SEL_CLAIMED;) {
		if (++spins % 1024 == 0)
			sched_yield();
		else
			cpu_relax();
	}
}

static inline void *slot(struct fiber_chan *ch, size_t i)
{
	return ch->buf + ((ch->head + i) % ch->cap) * ch->elem_size;
}

/*
 * Move one element of @n bytes. Neither pointer is NULL unless @n is 0: chan_one and op_valid refuse a NULL element
 * for a channel with elements, and a zero-size channel moves nothing.
 */
static inline void copy(void *dst, const void *src, size_t n)
{
	FIBER_DEBUG_BUG_ON(n && (!dst || !src));
	/* The common element sizes (a pointer or a 64-bit value, an int) as one move each, without a call. */
	if (n == 8)
		memcpy(dst, src, 8);
	else if (n == 4)
		memcpy(dst, src, 4);
	else if (n)
		memcpy(dst, src, n);
}

/*
 * Try a send now (ch->lock held): 1 and *res when it completed (0 or -EPIPE), 0 when it would block; *@claimed is
 * the waiter it completed, if any (left alone otherwise), for chan_wake_one after the unlock. Inline, as
 * recv_locked: chan_one's send and receive are these two, with nothing around them.
 */
static inline __attribute__((always_inline)) int send_locked(struct fiber_chan *ch, const void *elem, int *res,
							     struct chan_sel **claimed)
{
	struct chan_waiter *w;

	if (ch->closed) {
		*res = -EPIPE;
		return 1;
	}
	/* A waiting receiver means the buffer is empty: hand the element over directly. */
	if ((w = q_claim(&ch->recvq))) {
		copy(w->elem, elem, ch->elem_size);
		*claimed = sel_complete(w, 0);
		*res = 0;
		return 1;
	}
	if (ch->count < ch->cap) {
		copy(slot(ch, ch->count), elem, ch->elem_size);
		ch->count++;
		*res = 0;
		return 1;
	}
	return 0;
}

static inline __attribute__((always_inline)) int recv_locked(struct fiber_chan *ch, void *elem, int *res,
							     struct chan_sel **claimed)
{
	struct chan_waiter *w;

	if (ch->count) {
		copy(elem, slot(ch, 0), ch->elem_size);
		ch->head = (ch->head + 1) % ch->cap;
		ch->count--;
		/* A blocked sender's element takes the freed slot (FIFO order is kept). */
		if ((w = q_claim(&ch->sendq))) {
			copy(slot(ch, ch->count), w->elem, ch->elem_size);
			ch->count++;
			*claimed = sel_complete(w, 0);
		}
		*res = 0;
		return 1;
	}
	if ((w = q_claim(&ch->sendq))) {
		copy(elem, w->elem, ch->elem_size);
		*claimed = sel_complete(w, 0);
		*res = 0;
		return 1;
	}
	if (ch->closed) {
		*res = -EPIPE;
		return 1;
	}
	return 0;
}

int fiber_chan_create(fiber_chan_t **out, size_t elem_size, size_t capacity)
{
	struct fiber_chan *ch;
	size_t bytes;

	if (!out)
		return -EINVAL;
	if (capacity && elem_size && capacity > SIZE_MAX / elem_size)
		return -EINVAL;
	bytes = capacity * elem_size;
	ch = fiber__zalloc(sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	if (bytes) {
		ch->buf = fiber__malloc(bytes);
		if (!ch->buf) {
			fiber__free(ch, sizeof(*ch));
			return -ENOMEM;
		}
	}
	spin_lock_init(&ch->lock);
	ch->elem_size = elem_size;
	ch->cap = capacity;
	*out = ch;
	return 0;
}

int fiber_chan_close(fiber_chan_t *ch)
{
	DEFINE_CHAN_CLAIMS(cl);
	struct chan_waiter *w;

	if (!ch)
		return -EINVAL;
	spin_lock(&ch->lock);
	if (ch->closed) {
		spin_unlock(&ch->lock);
		return -EPIPE;
	}
	ch->closed = true;
	/* Receivers queued means the buffer is empty: they all get -EPIPE, as do all blocked senders. */
	while ((w = q_claim(&ch->recvq)))
		claims_add(&cl, sel_complete(w, -EPIPE));
	while ((w = q_claim(&ch->sendq)))
		claims_add(&cl, sel_complete(w, -EPIPE));
	spin_unlock(&ch->lock);
	/* Many wake-ups, and the closer goes on: plain ones (idle workers are kicked), then a preemption point. */
	if (cl.first) {
		chan_finish(&cl, 0);
		fiber__preempt_point();
	}
	return 0;
}

int fiber_chan_destroy(fiber_chan_t *ch)
{
	if (!ch)
		return -EINVAL;
	spin_lock(&ch->lock);
	/* Any entry, also of a select on its way out: it still dequeues itself from here. */
	if (ch->sendq.first || ch->recvq.first) {
		spin_unlock(&ch->lock);
		return -EBUSY;
	}
	spin_unlock(&ch->lock);
	if (ch->buf)
		fiber__free(ch->buf, ch->cap * ch->elem_size);
	fiber__free(ch, sizeof(*ch));
	return 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * select (and the blocking single-case send / recv, which are a select of one case)
 * ---------------------------------------------------------------------------------------------------------- */

#define SEL_STACK 8 /* cases handled without allocation */

static __thread uint64_t sel_rng; /* xorshift64*, per thread */

static uint32_t sel_rand(void)
{
	uint64_t x = sel_rng;

	if (!x)
		x = (uint64_t)(uintptr_t)&sel_rng ^ fiber__mono_ns() ^ 0x9e3779b97f4a7c15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	sel_rng = x;
	return (uint32_t)((x * 0x2545f4914f6cdd1dull) >> 32);
}

static void sel_lock(struct fiber_chan_op *ops, const unsigned *lockorder, size_t n)
{
	fiber_chan_t *last = NULL;

	for (size_t i = 0; i < n; i++) {
		fiber_chan_t *ch = ops[lockorder[i]].ch;

		if (ch != last)
			spin_lock(&ch->lock);
		last = ch;
	}
}

static void sel_unlock(struct fiber_chan_op *ops, const unsigned *lockorder, size_t n)
{
	fiber_chan_t *last = NULL;

	for (size_t i = 0; i < n; i++) {
		fiber_chan_t *ch = ops[lockorder[i]].ch;

		if (ch != last)
			spin_unlock(&ch->lock);
		last = ch;
	}
}

static int op_try(struct fiber_chan_op *op, struct chan_sel **claimed)
{
	int res, done;

	if (op->op == FIBER_CHAN_SEND)
		done = send_locked(op->ch, op->elem, &res, claimed);
	else
		done = recv_locked(op->ch, op->elem, &res, claimed);
	if (done) {
		op->result = res;
		return 1;
	}
	return 0;
}

/*
 * The select engine. @cancel_point: a cancelled fiber gets -ECANCELED (not for try*). Returns the index of the
 * case that completed, -ETIMEDOUT (timeout 0: would block), -ECANCELED, -ENOMEM.
 */
static int chan_select(struct fiber_chan_op *ops, size_t n, int64_t timeout_ns, bool cancel_point)
{
	struct chan_waiter wstack[SEL_STACK], *ws = wstack;
	unsigned ostack[2 * SEL_STACK], *order = ostack, *lockorder;
	struct fiber *self = sync_self();
	struct fiber__timeout to, *top = NULL;
	struct chan_sel sel, *claimed = NULL; /* the peer our completed case claimed, if any */
	size_t nlive = 0;
	int ret = -ETIMEDOUT, r = 0;

	if (cancel_point && self && fiber__signal_pending(self))
		return -ECANCELED;
	if (n > SEL_STACK) {
		if (n > UINT32_MAX)
			return -EINVAL;
		ws = fiber__malloc(n * sizeof(*ws));
		order = fiber__malloc(2 * n * sizeof(*order));
		if (!ws || !order) {
			fiber__free(ws, n * sizeof(*ws));
			fiber__free(order, 2 * n * sizeof(*order));
			return -ENOMEM;
		}
	}
	lockorder = order + n;

	/* pollorder: a random permutation of the live cases; lockorder: the same cases by channel address. */
	for (size_t i = 0; i < n; i++) {
		if (!ops[i].ch)
			continue;
		size_t j = nlive > 0 ? sel_rand() % (nlive + 1) : 0;

		order[nlive] = order[j];
		order[j] = (unsigned)i;
		/* insertion sort by address: n is small */
		size_t k = nlive;

		while (k > 0 && (uintptr_t)ops[lockorder[k - 1]].ch > (uintptr_t)ops[i].ch) {
			lockorder[k] = lockorder[k - 1];
			k--;
		}
		lockorder[k] = (unsigned)i;
		nlive++;
	}

	sel_lock(ops, lockorder, nlive);
	for (size_t i = 0; i < nlive; i++) {
		if (op_try(&ops[order[i]], &claimed)) {
			sel_unlock(ops, lockorder, nlive);
			ret = (int)order[i];
			goto out;
		}
	}
	if (timeout_ns == 0) {
		sel_unlock(ops, lockorder, nlive);
		goto out;
	}

	/* Queue one waiter per case; from here on a peer can complete us. */
	atomic_init(&sel.state, SEL_WAITING);
	sel.task = self;
	sel.index = -1;
	sel.single = false;
	for (size_t i = 0; i < nlive; i++) {
		unsigned c = lockorder[i];
		struct chan_waiter *w = &ws[i];

		w->sel = &sel;
		w->elem = ops[c].elem;
		w->idx = (int)c;
		w->result = 0;
		q_add(ops[c].op == FIBER_CHAN_SEND ? &ops[c].ch->sendq : &ops[c].ch->recvq, w);
	}
	sel_unlock(ops, lockorder, nlive);

	if (timeout_ns > 0) {
		fiber__timeout_init(&to, (uint64_t)timeout_ns);
		top = &to;
	}
	for (;;) {
		int s = atomic_load_explicit(&sel.state, memory_order_acquire);

		if (s == SEL_DONE)
			break;
		if (s == SEL_CLAIMED) {
			sel_wait_claimed(&sel);
			continue;
		}
		r = fiber__park(&sel.state, SEL_WAITING, cancel_point ? TASK_INTERRUPTIBLE : TASK_UNINTERRUPTIBLE, top);
		if (r) {
			int expected = SEL_WAITING;

			if (atomic_compare_exchange_strong_explicit(&sel.state, &expected, SEL_ABORTED,
								    memory_order_acq_rel, memory_order_acquire))
				break;
			r = 0; /* completed meanwhile: that wins */
		}
	}
	if (top)
		fiber__timeout_done(top);

	/* Dequeue what is left (a completed single case was dequeued by its claimer). */
	if (nlive > 1 || r) {
		sel_lock(ops, lockorder, nlive);
		for (size_t i = 0; i < nlive; i++) {
			struct chan_waiter *w = &ws[i];
			unsigned c = (unsigned)w->idx;

			if (w->queued)
				q_del(ops[c].op == FIBER_CHAN_SEND ? &ops[c].ch->sendq : &ops[c].ch->recvq, w);
		}
		sel_unlock(ops, lockorder, nlive);
	}
	if (r) {
		ret = r;
	} else {
		ret = sel.index;
		for (size_t i = 0; i < nlive; i++)
			if (ws[i].idx == ret)
				ops[ret].result = ws[i].result;
	}
out:
	if (ws != wstack) {
		fiber__free(ws, n * sizeof(*ws));
		fiber__free(order, 2 * n * sizeof(*order));
	}
	if (claimed)
		chan_wake_one(claimed, WF_SYNC);
	return ret;
}

static bool op_valid(const struct fiber_chan_op *op)
{
	if (op->op != FIBER_CHAN_SEND && op->op != FIBER_CHAN_RECV)
		return false;
	return !op->ch || op->elem || !op->ch->elem_size;
}

int fiber_chan_select(struct fiber_chan_op *ops, size_t n, int64_t timeout_ns)
{
	if (!ops && n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (!op_valid(&ops[i]))
			return -EINVAL;
	return chan_select(ops, n, timeout_ns, true);
}

/*
 * chan_wait_one's loop: the state was not DONE after the first sleep (a spurious wake-up, a peer still finishing
 * its claim, a cancel), or a plain pthread waits.
 */
static __noinline int chan_wait_one_slow(struct chan_sel *sel, struct chan_waiter *w, struct chan_q *q,
					 fiber_chan_t *ch)
{
	int r;

	for (;;) {
		int s = atomic_load_explicit(&sel->state, memory_order_acquire);

		if (s == SEL_DONE)
			return w->result; /* the claimer dequeued us */
		if (s == SEL_CLAIMED) {
			sel_wait_claimed(sel);
			continue;
		}
		r = fiber__park(&sel->state, SEL_WAITING, TASK_INTERRUPTIBLE, NULL);
		if (r) {
			/* Give up under ch->lock, where claims happen (sel->single): claimed meanwhile wins. */
			spin_lock(&ch->lock);
			if (atomic_load_explicit(&sel->state, memory_order_relaxed) == SEL_WAITING) {
				atomic_store_explicit(&sel->state, SEL_ABORTED, memory_order_relaxed);
				q_del(q, w);
				spin_unlock(&ch->lock);
				return r;
			}
			spin_unlock(&ch->lock);
		}
	}
}

/*
 * Wait for a single queued case (chan_one): park until a peer completed it, or give up. A fiber comes here in
 * TASK_INTERRUPTIBLE already, stored under ch->lock when it queued @w (see chan_one), so the first sleep needs no
 * set_current_state of its own; later ones (after a spurious wake-up) park as usual, in chan_wait_one_slow. The
 * common case, one sleep and DONE, is inline in chan_one's blocking path, without a call frame of its own.
 */
static inline __attribute__((always_inline)) int chan_wait_one(struct chan_sel *sel, struct chan_waiter *w,
							       struct chan_q *q, fiber_chan_t *ch, struct fiber *self)
{
	if (self) {
		if (atomic_load_explicit(&sel->state, memory_order_acquire) == SEL_WAITING) {
			/* As fiber__park: shown by fiber_dump, gdb and the deadlock report. */
			bool said = !atomic_load_explicit(&self->wait_reason, memory_order_relaxed);

			if (said)
				fiber__set_wait(self, "channel", ch);
			/* A cancel is seen by __schedule (it reads cancel_pending after its fence) or by the loop. */
			fiber__schedule();
			if (said)
				fiber__set_wait(self, NULL, NULL);
		} else {
			atomic_store_explicit(&self->state, TASK_RUNNING, memory_order_relaxed);
		}
		/* Pairs with chan_wake_one's release store of DONE. */
		if (likely(atomic_load_explicit(&sel->state, memory_order_acquire) == SEL_DONE))
			return w->result; /* the claimer dequeued us */
	}
	return chan_wait_one_slow(sel, w, q, ch);
}

/*
 * One case, with one lock round trip: complete it at once, or (blocking) queue it under the same lock and wait.
 * Inlined into each of the four calls below, so that @kind and @block are constants there: a send or receive is
 * send_locked or recv_locked directly, without op_try's dispatch and frame.
 */
static inline __attribute__((always_inline)) int chan_one(fiber_chan_t *ch, int kind, void *elem, bool block)
{
	struct chan_waiter w;
	struct chan_sel sel;
	struct chan_q *q;
	struct fiber *self;
	struct chan_sel *claimed = NULL; /* the peer that completed us, if any */
	int r, res = 0;

	if (!ch || (!elem && ch->elem_size))
		return -EINVAL;
	self = sync_self();
	/* fiber__signal_pending, inline */
	if (block && self && atomic_load_explicit(&self->cancel_pending, memory_order_relaxed))
		return -ECANCELED;
	spin_lock(&ch->lock);
	if (kind == FIBER_CHAN_SEND)
		r = send_locked(ch, elem, &res, &claimed);
	else
		r = recv_locked(ch, elem, &res, &claimed);
	if (r || !block) {
		spin_unlock(&ch->lock);
		if (claimed)
			chan_wake_one(claimed, WF_SYNC);
		return r ? res : -EAGAIN;
	}
	atomic_init(&sel.state, SEL_WAITING);
	sel.task = self;
	sel.index = -1;
	sel.single = true;
	w.sel = &sel;
	w.elem = elem;
	w.idx = 0;
	w.result = 0;
	q = kind == FIBER_CHAN_SEND ? &ch->sendq : &ch->recvq;
	q_add(q, &w);
	/*
	 * set_current_state without its fence (D1): a peer claims @w only under ch->lock, after our unlock, so its
	 * try_to_wake_up (after the claim) reads this state or a later one. A cancel, which does not take ch->lock, is
	 * caught by __schedule's check of cancel_pending after its own fence, or by chan_wait_one's loop.
	 */
	if (self)
		atomic_store_explicit(&self->state, TASK_INTERRUPTIBLE, memory_order_relaxed);
	spin_unlock(&ch->lock);
	return chan_wait_one(&sel, &w, q, ch, self);
}

int fiber_chan_send(fiber_chan_t *ch, const void *elem)
{
	return chan_one(ch, FIBER_CHAN_SEND, (void *)elem, true);
}

int fiber_chan_recv(fiber_chan_t *ch, void *elem)
{
	return chan_one(ch, FIBER_CHAN_RECV, elem, true);
}

int fiber_chan_trysend(fiber_chan_t *ch, const void *elem)
{
	return chan_one(ch, FIBER_CHAN_SEND, (void *)elem, false);
}

int fiber_chan_tryrecv(fiber_chan_t *ch, void *elem)
{
	return chan_one(ch, FIBER_CHAN_RECV, elem, false);
}
