/*
 * runtime/sync.c - the pthread-shaped primitives: mutex, cond, rwlock, semaphore, barrier, wait group, and
 * fiber-local storage (keys).
 *
 * Each primitive is a spinlock, its state and a FIFO list of struct sync_waiter (sync.h). Whoever changes the
 * state under the lock also decides there which waiter gets what, grants it (fiber__sync_grant, which queues the
 * wake-up on a wake_q) and issues the wake-ups after dropping the lock. So a waiter never has to compete for what
 * it was woken for, except in the mutex's first round (see below), and one that gives up (cancel, timeout) takes
 * itself off the list under the lock: nothing meant for it can be lost.
 *
 * The public types in fiber.h are these structs' layouts with private member names; the static asserts keep the
 * two in step (glibc does the same for its pthread types).
 */
#include "sync.h"

/* ------------------------------------------------------------------------------------------------------------
 * Mutex
 *
 * owner: 0 unlocked; else the owner's token | MUTEX_WAITERS | MUTEX_HANDOFF (tokens leave the low two bits clear).
 *  - lock fast path: cmpxchg 0 -> token. unlock fast path: cmpxchg token -> 0 (fails while a flag is set).
 *  - WAITERS: the list is not empty (set and cleared under m->lock); it forces unlockers into the slow path.
 *  - Slow unlock without HANDOFF releases the mutex (owner = WAITERS) and wakes the first waiter, which competes
 *    with newcomers (no convoy: a running fiber that wants the mutex again takes it). A first waiter that was woken
 *    and lost after waiting more than MUTEX_STARVE_NS sets HANDOFF; the next unlock then gives the mutex to it
 *    directly (granted = MUTEX_GRANT_OWNER), and nobody else can take it meanwhile (try_acquire refuses while
 *    HANDOFF is set), so no waiter waits much longer than that while others keep taking the mutex.
 *  - Priority inheritance (the kernel's rt_mutex, one level): realtime and deadline waiters queue ahead of fair
 *    ones (by priority, FIFO within one), set HANDOFF at once (no barging past them), and the owner runs at the top
 *    waiter's priority (fiber__pi_setprio, the change pattern) until it unlocks; the new owner of a hand-off
 *    inherits from the waiters still queued. Not transitive: an owner blocked on a second mutex does not pass the
 *    boost on. A contended unlock ends the unlocker's boost even if it still holds another contended mutex.
 * ---------------------------------------------------------------------------------------------------------- */

#define MUTEX_WAITERS 0x1ul
#define MUTEX_HANDOFF 0x2ul
#define MUTEX_FLAGS 0x3ul
_Static_assert((SYNC_TOKEN_PTHREAD & MUTEX_FLAGS) == 0, "tokens and mutex flags overlap");
_Static_assert(_Alignof(struct fiber) >= 8, "fiber tokens need the low three bits");

#define MUTEX_STARVE_NS 1000000ull /* a first waiter waiting longer than this gets the next hand-off */

#define MUTEX_GRANT_RETRY 1 /* woken: try again */
#define MUTEX_GRANT_OWNER 2 /* handed off: the caller owns it */

struct mutex_impl {
	_Atomic uintptr_t owner;
	spinlock_t lock;
	struct sync_wlist wl; /* lock */
};
_Static_assert(sizeof(struct mutex_impl) == sizeof(fiber_mutex_t), "fiber_mutex_t layout");
_Static_assert(offsetof(struct mutex_impl, lock) == offsetof(fiber_mutex_t, __lock), "fiber_mutex_t layout");
_Static_assert(offsetof(struct mutex_impl, wl) == offsetof(fiber_mutex_t, __first), "fiber_mutex_t layout");

static inline struct mutex_impl *M(fiber_mutex_t *m)
{
	return (struct mutex_impl *)(void *)m;
}

int fiber_mutex_init(fiber_mutex_t *m)
{
	if (!m)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	return 0;
}

int fiber_mutex_destroy(fiber_mutex_t *m)
{
	if (!m)
		return -EINVAL;
	/* acquire: pairs with the unlock's release store, like a lock */
	if (atomic_load_explicit(&M(m)->owner, memory_order_acquire) || spin_is_locked(&M(m)->lock))
		return -EBUSY;
	return 0;
}

/* Take the mutex if it is free (m->lock held). A newcomer (@first false) does not take it from a handed-off waiter. */
static bool mutex_try_acquire(struct mutex_impl *m, uintptr_t tok, bool first)
{
	uintptr_t cur = atomic_load_explicit(&m->owner, memory_order_relaxed);

	for (;;) {
		if (cur & ~MUTEX_FLAGS)
			return false;
		if ((cur & MUTEX_HANDOFF) && !first)
			return false;
		/* acq_rel: a spinner's acquire load of owner then sees the owner's descriptor as published (mutex_spin). */
		if (atomic_compare_exchange_weak_explicit(&m->owner, &cur, tok | (cur & MUTEX_WAITERS),
							  memory_order_acq_rel, memory_order_relaxed))
			return true;
	}
}

/* PI applies to realtime and deadline waiters (kernel prio < MAX_RT_PRIO; deadline is -1). */
static inline bool pi_prio(int prio)
{
	return prio < MAX_RT_PRIO;
}

/* Queue @w: behind every waiter of a higher or equal PI priority; all fair waiters share one level (FIFO). */
static void mutex_queue(struct sync_wlist *l, struct sync_waiter *w)
{
	struct sync_waiter *pos;
	int key = pi_prio(w->prio) ? w->prio : MAX_RT_PRIO;

	for (pos = l->last; pos && (pi_prio(pos->prio) ? pos->prio : MAX_RT_PRIO) > key; pos = pos->prev)
		;
	if (!pos) {
		w->prev = NULL;
		w->next = l->first;
		if (l->first)
			l->first->prev = w;
		else
			l->last = w;
		l->first = w;
		return;
	}
	w->prev = pos;
	w->next = pos->next;
	if (pos->next)
		pos->next->prev = w;
	else
		l->last = w;
	pos->next = w;
}

/* The boost the owner of @m is owed by its waiters (m->lock held): the top waiter's priority, or INT_MAX. */
static int mutex_top_prio(struct mutex_impl *m)
{
	struct sync_waiter *top = m->wl.first;

	return top && pi_prio(top->prio) ? top->prio : INT_MAX;
}

/* Run the owner @tok (a fiber) at @prio (INT_MAX: its own). m->lock held: the owner cannot change meanwhile. */
static void mutex_pi_adjust(uintptr_t tok, int prio)
{
	struct fiber *p;

	if (!tok || (tok & SYNC_TOKEN_PTHREAD))
		return;
	p = (struct fiber *)tok;
	if (prio != INT_MAX ? prio < p->prio : p->prio != p->normal_prio)
		fiber__pi_setprio(p, prio);
}

/* m->lock held: the list changed; WAITERS mirrors "not empty", HANDOFF goes with an empty list. */
static void mutex_update_flags(struct mutex_impl *m)
{
	if (!m->wl.first)
		atomic_fetch_and_explicit(&m->owner, ~(MUTEX_WAITERS | MUTEX_HANDOFF), memory_order_relaxed);
}

/*
 * Optimistic spinning (the kernel's mutex_optimistic_spin, bounded): while the owner is a fiber running on a
 * worker it will probably unlock soon, and sleeping and waking cost more than a short spin. Only a fiber spins
 * (then the runtime runs and fiber descriptors, type-stable, may be peeked at), only with two workers or more,
 * and only while it has nothing better to do (no reschedule pending).
 */
static bool mutex_spin(struct mutex_impl *m, uintptr_t tok)
{
	struct fiber *self = sync_self();

	if (!self || fiber__rt.nr_workers < 2)
		return false;
	for (int i = 0; i < 256; i++) {
		/* Acquire: pairs with the owner's acq_rel CAS before we peek at its descriptor. */
		uintptr_t cur = atomic_load_explicit(&m->owner, memory_order_acquire);
		uintptr_t owner = cur & ~MUTEX_FLAGS;

		if (!owner) {
			if (mutex_try_acquire(m, tok, false))
				return true;
			if (cur & MUTEX_HANDOFF)
				return false;
			continue;
		}
		if ((owner & SYNC_TOKEN_PTHREAD) ||
		    !atomic_load_explicit(&((struct fiber *)owner)->on_cpu, memory_order_relaxed) ||
		    test_tsk_need_resched(self))
			return false;
		cpu_relax();
	}
	return false;
}

static int mutex_lock_slow(struct mutex_impl *m, uintptr_t tok, struct fiber__timeout *to)
{
	struct sync_waiter w;
	uint64_t since;
	int g;

	if ((atomic_load_explicit(&m->owner, memory_order_relaxed) & ~MUTEX_FLAGS) == tok)
		return -EDEADLK;
	if (mutex_spin(m, tok))
		return 0;
	sync_waiter_init(&w);
	w.token = tok;
	since = fiber__sched_clock();
	spin_lock(&m->lock);
	if (mutex_try_acquire(m, tok, false)) {
		spin_unlock(&m->lock);
		return 0;
	}
	mutex_queue(&m->wl, &w);
	/* After this an unlocker cannot take the fast path: it comes to m->lock and sees us queued. */
	atomic_fetch_or_explicit(&m->owner, MUTEX_WAITERS, memory_order_relaxed);
	if (pi_prio(w.prio) && m->wl.first == &w) {
		/* A realtime waiter: no barging past it, and the owner runs at its priority meanwhile. */
		atomic_fetch_or_explicit(&m->owner, MUTEX_HANDOFF, memory_order_relaxed);
		mutex_pi_adjust(atomic_load_explicit(&m->owner, memory_order_relaxed) & ~MUTEX_FLAGS, w.prio);
	}
	for (;;) {
		bool first = m->wl.first == &w;

		if (mutex_try_acquire(m, tok, first)) {
			wlist_del(&m->wl, &w);
			mutex_update_flags(m);
			if (mutex_top_prio(m) != INT_MAX)
				mutex_pi_adjust(tok, mutex_top_prio(m));
			break;
		}
		g = fiber__sync_wait(&m->lock, &m->wl, &w, TASK_UNINTERRUPTIBLE, to);
		if (g == MUTEX_GRANT_OWNER)
			return 0; /* the unlocker made us the owner and took us off the list */
		if (g < 0) {
			/* Timed out (uninterruptible: never -ECANCELED); lock held, off the list. */
			DEFINE_WAKE_Q(q);
			struct sync_waiter *n = m->wl.first;

			/* A HANDOFF was ours (only the first waiter sets it); the new first sets it again if needed. */
			atomic_fetch_and_explicit(&m->owner, ~MUTEX_HANDOFF, memory_order_relaxed);
			if (n && pi_prio(n->prio))
				atomic_fetch_or_explicit(&m->owner, MUTEX_HANDOFF, memory_order_relaxed);
			/*
			 * The owner's boost follows the waiters that are left (before WAITERS may clear: until then
			 * the owner cannot unlock).
			 */
			if (pi_prio(w.prio))
				mutex_pi_adjust(atomic_load_explicit(&m->owner, memory_order_relaxed) & ~MUTEX_FLAGS,
						mutex_top_prio(m));
			mutex_update_flags(m);
			/* Free now, and a wake-up may have gone to us: let the next waiter try. */
			if (n && !(atomic_load_explicit(&m->owner, memory_order_relaxed) & ~MUTEX_FLAGS) &&
			    !atomic_load_explicit(&n->granted, memory_order_relaxed))
				fiber__sync_grant(n, MUTEX_GRANT_RETRY, &q);
			spin_unlock(&m->lock);
			sync_wake_up_q(&q);
			return g;
		}
		/* Woken to retry: lock again; a first waiter that loses once gets the next hand-off. */
		spin_lock(&m->lock);
		/* An unlock may have handed it to us meanwhile (grants are made under m->lock). */
		if (atomic_load_explicit(&w.granted, memory_order_relaxed) == MUTEX_GRANT_OWNER) {
			spin_unlock(&m->lock);
			return 0;
		}
		atomic_store_explicit(&w.granted, 0, memory_order_relaxed);
		if (mutex_try_acquire(m, tok, m->wl.first == &w)) {
			wlist_del(&m->wl, &w);
			mutex_update_flags(m);
			if (mutex_top_prio(m) != INT_MAX)
				mutex_pi_adjust(tok, mutex_top_prio(m));
			break;
		}
		/*
		 * Starving (Go's starvation mode, the kernel's MUTEX_FLAG_HANDOFF): a first waiter that has waited
		 * longer than MUTEX_STARVE_NS gets the next unlock's hand-off. Below that, newcomers may take the
		 * mutex first, which keeps a contended mutex from turning into a convoy of sleeps and wake-ups.
		 */
		if (m->wl.first == &w && fiber__sched_clock() - since > MUTEX_STARVE_NS)
			atomic_fetch_or_explicit(&m->owner, MUTEX_HANDOFF, memory_order_relaxed);
	}
	spin_unlock(&m->lock);
	return 0;
}

int fiber_mutex_lock(fiber_mutex_t *mm)
{
	struct mutex_impl *m = M(mm);
	uintptr_t tok, zero = 0;

	if (!mm)
		return -EINVAL;
	tok = fiber__sync_token();
	/* The lock's acquire (here, trylock, timedlock, mutex_try_acquire) pairs with the unlocks' release. */
	if (likely(atomic_compare_exchange_strong_explicit(&m->owner, &zero, tok, memory_order_acquire,
							   memory_order_relaxed)))
		return 0;
	return mutex_lock_slow(m, tok, NULL);
}

int fiber_mutex_trylock(fiber_mutex_t *mm)
{
	struct mutex_impl *m = M(mm);
	uintptr_t zero = 0;

	if (!mm)
		return -EINVAL;
	if (atomic_compare_exchange_strong_explicit(&m->owner, &zero, fiber__sync_token(), memory_order_acquire,
						    memory_order_relaxed))
		return 0;
	return -EBUSY;
}

int fiber_mutex_timedlock(fiber_mutex_t *mm, uint64_t ns)
{
	struct mutex_impl *m = M(mm);
	struct fiber__timeout to;
	uintptr_t tok, zero = 0;
	int ret;

	if (!mm)
		return -EINVAL;
	tok = fiber__sync_token();
	if (atomic_compare_exchange_strong_explicit(&m->owner, &zero, tok, memory_order_acquire, memory_order_relaxed))
		return 0;
	fiber__timeout_init(&to, ns);
	ret = mutex_lock_slow(m, tok, &to);
	fiber__timeout_done(&to);
	return ret;
}

static void mutex_unlock_slow(struct mutex_impl *m)
{
	DEFINE_WAKE_Q(q);
	struct sync_waiter *first;
	uintptr_t cur;

	spin_lock(&m->lock);
	cur = atomic_load_explicit(&m->owner, memory_order_relaxed);
	first = m->wl.first;
	if (first && (cur & MUTEX_HANDOFF)) {
		/* Hand-off: the first waiter becomes the owner without ever seeing the mutex free. */
		uintptr_t ntok = first->token;

		wlist_del(&m->wl, first);
		atomic_store_explicit(&m->owner,
				      ntok | (m->wl.first ? MUTEX_WAITERS : 0) |
					  (m->wl.first && pi_prio(m->wl.first->prio) ? MUTEX_HANDOFF : 0),
				      memory_order_release);
		fiber__sync_grant(first, MUTEX_GRANT_OWNER, &q);
		/*
		 * The new owner inherits from the waiters still queued (first may be gone: use its token; with
		 * waiters left it cannot unlock before we drop m->lock).
		 */
		if (mutex_top_prio(m) != INT_MAX)
			mutex_pi_adjust(ntok, mutex_top_prio(m));
	} else {
		/* Flags change only under m->lock, so a plain release store keeps them exact. */
		atomic_store_explicit(&m->owner, first ? MUTEX_WAITERS : 0, memory_order_release);
		if (first && !atomic_load_explicit(&first->granted, memory_order_relaxed))
			fiber__sync_grant(first, MUTEX_GRANT_RETRY, &q);
	}
	/* The unlocker's boost ends (it ran at a waiter's priority while it held the mutex). */
	mutex_pi_adjust(fiber__sync_token(), INT_MAX);
	spin_unlock(&m->lock);
	sync_wake_up_q(&q);
}

int fiber_mutex_unlock(fiber_mutex_t *mm)
{
	struct mutex_impl *m = M(mm);
	uintptr_t tok, cur;

	if (!mm)
		return -EINVAL;
	tok = fiber__sync_token();
	cur = atomic_load_explicit(&m->owner, memory_order_relaxed);
	if ((cur & ~MUTEX_FLAGS) != tok)
		return -EPERM;
	/* The unlock's release (here and in mutex_unlock_slow) pairs with the next owner's acquire. */
	if (likely(cur == tok) &&
	    atomic_compare_exchange_strong_explicit(&m->owner, &cur, 0, memory_order_release, memory_order_relaxed))
		return 0;
	mutex_unlock_slow(m);
	return 0;
}

static bool mutex_held_by_caller(struct mutex_impl *m)
{
	return (atomic_load_explicit(&m->owner, memory_order_relaxed) & ~MUTEX_FLAGS) == fiber__sync_token();
}

/* ------------------------------------------------------------------------------------------------------------
 * Condition variable
 * ---------------------------------------------------------------------------------------------------------- */

struct cond_impl {
	spinlock_t lock;
	struct sync_wlist wl;
};
_Static_assert(sizeof(struct cond_impl) == sizeof(fiber_cond_t), "fiber_cond_t layout");
_Static_assert(offsetof(struct cond_impl, wl) == offsetof(fiber_cond_t, __first), "fiber_cond_t layout");

static inline struct cond_impl *C(fiber_cond_t *c)
{
	return (struct cond_impl *)(void *)c;
}

int fiber_cond_init(fiber_cond_t *c)
{
	if (!c)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	return 0;
}

int fiber_cond_destroy(fiber_cond_t *cc)
{
	struct cond_impl *c = C(cc);
	int ret = 0;

	if (!cc)
		return -EINVAL;
	spin_lock(&c->lock);
	if (c->wl.first)
		ret = -EBUSY;
	spin_unlock(&c->lock);
	return ret;
}

static int cond_wait(fiber_cond_t *cc, fiber_mutex_t *m, uint64_t ns)
{
	struct cond_impl *c = C(cc);
	struct fiber *self = sync_self();
	struct fiber__timeout to;
	struct sync_waiter w;
	int g, ret = 0;

	if (!cc || !m)
		return -EINVAL;
	if (!mutex_held_by_caller(M(m)))
		return -EPERM;
	if (self && fiber__signal_pending(self))
		return -ECANCELED;
	if (ns == 0)
		return -ETIMEDOUT;
	fiber__timeout_init(&to, ns);
	sync_waiter_init(&w);
	w.intr = true;
	/* Queue before the unlock: a signal after our unlock finds us. */
	spin_lock(&c->lock);
	wlist_add_tail(&c->wl, &w);
	spin_unlock(&c->lock);
	fiber_mutex_unlock(m);
	spin_lock(&c->lock);
	g = fiber__sync_wait(&c->lock, &c->wl, &w, TASK_INTERRUPTIBLE, &to);
	if (g < 0) {
		spin_unlock(&c->lock);
		ret = g;
	}
	fiber__timeout_done(&to);
	/* Always with the mutex again, uninterruptibly (as pthread_cond_wait, also when cancelled). */
	fiber_mutex_lock(m);
	return ret;
}

int fiber_cond_wait(fiber_cond_t *c, fiber_mutex_t *m)
{
	return cond_wait(c, m, UINT64_MAX);
}

int fiber_cond_timedwait(fiber_cond_t *c, fiber_mutex_t *m, uint64_t ns)
{
	return cond_wait(c, m, ns);
}

static int cond_wake(fiber_cond_t *cc, bool all)
{
	struct cond_impl *c = C(cc);
	DEFINE_WAKE_Q(q);
	struct sync_waiter *w;

	if (!cc)
		return -EINVAL;
	spin_lock(&c->lock);
	while ((w = wlist_first_live(&c->wl))) {
		wlist_del(&c->wl, w);
		fiber__sync_grant(w, 1, &q);
		if (!all)
			break;
	}
	spin_unlock(&c->lock);
	sync_wake_up_q(&q);
	return 0;
}

int fiber_cond_signal(fiber_cond_t *c)
{
	return cond_wake(c, false);
}

int fiber_cond_broadcast(fiber_cond_t *c)
{
	return cond_wake(c, true);
}

/* ------------------------------------------------------------------------------------------------------------
 * Reader-writer lock (everything under the spinlock; the fast path is its two atomics)
 * ---------------------------------------------------------------------------------------------------------- */

#define RW_READER 0x1u
#define RW_WRITER 0x2u
#define RW_MAX_READERS 0x7fffffffu

struct rwlock_impl {
	spinlock_t lock;
	unsigned readers; /* lock */
	uintptr_t writer; /* lock: the write owner's token, 0 none */
	struct sync_wlist wl;
};
_Static_assert(sizeof(struct rwlock_impl) == sizeof(fiber_rwlock_t), "fiber_rwlock_t layout");
_Static_assert(offsetof(struct rwlock_impl, writer) == offsetof(fiber_rwlock_t, __writer), "fiber_rwlock_t layout");
_Static_assert(offsetof(struct rwlock_impl, wl) == offsetof(fiber_rwlock_t, __first), "fiber_rwlock_t layout");

static inline struct rwlock_impl *RW(fiber_rwlock_t *l)
{
	return (struct rwlock_impl *)(void *)l;
}

int fiber_rwlock_init(fiber_rwlock_t *l)
{
	if (!l)
		return -EINVAL;
	memset(l, 0, sizeof(*l));
	return 0;
}

int fiber_rwlock_destroy(fiber_rwlock_t *ll)
{
	struct rwlock_impl *l = RW(ll);
	int ret = 0;

	if (!ll)
		return -EINVAL;
	spin_lock(&l->lock);
	if (l->readers || l->writer || l->wl.first)
		ret = -EBUSY;
	spin_unlock(&l->lock);
	return ret;
}

static int rwlock_acquire(fiber_rwlock_t *ll, unsigned kind, bool try)
{
	struct rwlock_impl *l = RW(ll);
	struct sync_waiter w;
	uintptr_t tok;

	if (!ll)
		return -EINVAL;
	tok = fiber__sync_token();
	spin_lock(&l->lock);
	if (l->writer == tok) {
		spin_unlock(&l->lock);
		return try ? -EBUSY : -EDEADLK;
	}
	/* Anyone queued goes first (FIFO): a reader does not overtake a waiting writer. */
	if (!l->writer && !l->wl.first) {
		if (kind == RW_READER && l->readers < RW_MAX_READERS) {
			l->readers++;
			spin_unlock(&l->lock);
			return 0;
		}
		if (kind == RW_READER) {
			spin_unlock(&l->lock);
			return -EAGAIN;
		}
		if (!l->readers) {
			l->writer = tok;
			spin_unlock(&l->lock);
			return 0;
		}
	}
	if (try) {
		spin_unlock(&l->lock);
		return -EBUSY;
	}
	sync_waiter_init(&w);
	w.flags = kind;
	w.token = tok;
	wlist_add_tail(&l->wl, &w);
	/* Uninterruptible and untimed: it returns only once granted (the grant made us the holder). */
	fiber__sync_wait(&l->lock, &l->wl, &w, TASK_UNINTERRUPTIBLE, NULL);
	return 0;
}

int fiber_rwlock_rdlock(fiber_rwlock_t *l)
{
	return rwlock_acquire(l, RW_READER, false);
}

int fiber_rwlock_wrlock(fiber_rwlock_t *l)
{
	return rwlock_acquire(l, RW_WRITER, false);
}

int fiber_rwlock_tryrdlock(fiber_rwlock_t *l)
{
	return rwlock_acquire(l, RW_READER, true);
}

int fiber_rwlock_trywrlock(fiber_rwlock_t *l)
{
	return rwlock_acquire(l, RW_WRITER, true);
}

int fiber_rwlock_unlock(fiber_rwlock_t *ll)
{
	struct rwlock_impl *l = RW(ll);
	DEFINE_WAKE_Q(q);
	struct sync_waiter *w;
	uintptr_t tok;

	if (!ll)
		return -EINVAL;
	tok = fiber__sync_token();
	spin_lock(&l->lock);
	if (l->writer) {
		if (l->writer != tok) {
			spin_unlock(&l->lock);
			return -EPERM;
		}
		l->writer = 0;
	} else if (l->readers) {
		l->readers--;
	} else {
		spin_unlock(&l->lock);
		return -EPERM;
	}
	/* Hand the lock to the head of the queue: one writer, or every reader up to the next writer. */
	if (!l->readers && (w = l->wl.first) && w->flags == RW_WRITER) {
		wlist_del(&l->wl, w);
		l->writer = w->token;
		fiber__sync_grant(w, 1, &q);
	} else if (!l->writer) {
		while ((w = l->wl.first) && w->flags == RW_READER && l->readers < RW_MAX_READERS) {
			wlist_del(&l->wl, w);
			l->readers++;
			fiber__sync_grant(w, 1, &q);
		}
	}
	spin_unlock(&l->lock);
	sync_wake_up_q(&q);
	return 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * Semaphore: a post with waiters goes to the first of them (the value stays 0).
 * ---------------------------------------------------------------------------------------------------------- */

struct sem_impl {
	spinlock_t lock;
	unsigned value; /* lock */
	struct sync_wlist wl;
};
_Static_assert(sizeof(struct sem_impl) == sizeof(fiber_sem_t), "fiber_sem_t layout");
_Static_assert(offsetof(struct sem_impl, wl) == offsetof(fiber_sem_t, __first), "fiber_sem_t layout");

static inline struct sem_impl *S(fiber_sem_t *s)
{
	return (struct sem_impl *)(void *)s;
}

int fiber_sem_init(fiber_sem_t *s, unsigned value)
{
	if (!s || value > FIBER_SEM_VALUE_MAX)
		return -EINVAL;
	memset(s, 0, sizeof(*s));
	S(s)->value = value;
	return 0;
}

int fiber_sem_destroy(fiber_sem_t *ss)
{
	struct sem_impl *s = S(ss);
	int ret = 0;

	if (!ss)
		return -EINVAL;
	spin_lock(&s->lock);
	if (s->wl.first)
		ret = -EBUSY;
	spin_unlock(&s->lock);
	return ret;
}

static int sem_wait(fiber_sem_t *ss, uint64_t ns)
{
	struct sem_impl *s = S(ss);
	struct fiber *self = sync_self();
	struct fiber__timeout to;
	struct sync_waiter w;
	int g;

	if (!ss)
		return -EINVAL;
	if (self && fiber__signal_pending(self))
		return -ECANCELED;
	spin_lock(&s->lock);
	if (s->value) {
		s->value--;
		spin_unlock(&s->lock);
		return 0;
	}
	if (ns == 0) {
		spin_unlock(&s->lock);
		return -ETIMEDOUT;
	}
	fiber__timeout_init(&to, ns);
	sync_waiter_init(&w);
	w.intr = true;
	wlist_add_tail(&s->wl, &w);
	g = fiber__sync_wait(&s->lock, &s->wl, &w, TASK_INTERRUPTIBLE, &to);
	if (g < 0)
		spin_unlock(&s->lock);
	fiber__timeout_done(&to);
	return g < 0 ? g : 0;
}

int fiber_sem_wait(fiber_sem_t *s)
{
	return sem_wait(s, UINT64_MAX);
}

int fiber_sem_timedwait(fiber_sem_t *s, uint64_t ns)
{
	return sem_wait(s, ns);
}

int fiber_sem_trywait(fiber_sem_t *ss)
{
	struct sem_impl *s = S(ss);
	int ret = -EAGAIN;

	if (!ss)
		return -EINVAL;
	spin_lock(&s->lock);
	if (s->value) {
		s->value--;
		ret = 0;
	}
	spin_unlock(&s->lock);
	return ret;
}

int fiber_sem_post(fiber_sem_t *ss)
{
	struct sem_impl *s = S(ss);
	DEFINE_WAKE_Q(q);
	struct sync_waiter *w;
	int ret = 0;

	if (!ss)
		return -EINVAL;
	spin_lock(&s->lock);
	if ((w = wlist_first_live(&s->wl))) {
		wlist_del(&s->wl, w);
		fiber__sync_grant(w, 1, &q);
	} else if (s->value >= FIBER_SEM_VALUE_MAX) {
		ret = -EOVERFLOW;
	} else {
		s->value++;
	}
	spin_unlock(&s->lock);
	sync_wake_up_q(&q);
	return ret;
}

/* ------------------------------------------------------------------------------------------------------------
 * Barrier
 * ---------------------------------------------------------------------------------------------------------- */

struct barrier_impl {
	spinlock_t lock;
	unsigned count, arrived; /* lock */
	struct sync_wlist wl;
};
_Static_assert(sizeof(struct barrier_impl) == sizeof(fiber_barrier_t), "fiber_barrier_t layout");
_Static_assert(offsetof(struct barrier_impl, wl) == offsetof(fiber_barrier_t, __first), "fiber_barrier_t layout");

static inline struct barrier_impl *B(fiber_barrier_t *b)
{
	return (struct barrier_impl *)(void *)b;
}

int fiber_barrier_init(fiber_barrier_t *b, unsigned count)
{
	if (!b || !count)
		return -EINVAL;
	memset(b, 0, sizeof(*b));
	B(b)->count = count;
	return 0;
}

int fiber_barrier_destroy(fiber_barrier_t *bb)
{
	struct barrier_impl *b = B(bb);
	int ret = 0;

	if (!bb)
		return -EINVAL;
	spin_lock(&b->lock);
	if (b->arrived || b->wl.first)
		ret = -EBUSY;
	spin_unlock(&b->lock);
	return ret;
}

int fiber_barrier_wait(fiber_barrier_t *bb)
{
	struct barrier_impl *b = B(bb);
	struct sync_waiter w, *x;
	DEFINE_WAKE_Q(q);

	if (!bb || !b->count)
		return -EINVAL;
	spin_lock(&b->lock);
	if (++b->arrived < b->count) {
		sync_waiter_init(&w);
		wlist_add_tail(&b->wl, &w);
		fiber__sync_wait(&b->lock, &b->wl, &w, TASK_UNINTERRUPTIBLE, NULL);
		return 0;
	}
	/* The last arriver releases the round; the barrier is ready for the next one at once. */
	b->arrived = 0;
	while ((x = b->wl.first)) {
		wlist_del(&b->wl, x);
		fiber__sync_grant(x, 1, &q);
	}
	spin_unlock(&b->lock);
	sync_wake_up_q(&q);
	return FIBER_BARRIER_SERIAL;
}

/* ------------------------------------------------------------------------------------------------------------
 * Wait group
 * ---------------------------------------------------------------------------------------------------------- */

struct wg_impl {
	spinlock_t lock;
	int count; /* lock */
	struct sync_wlist wl;
};
_Static_assert(sizeof(struct wg_impl) == sizeof(fiber_wg_t), "fiber_wg_t layout");
_Static_assert(offsetof(struct wg_impl, wl) == offsetof(fiber_wg_t, __first), "fiber_wg_t layout");

static inline struct wg_impl *WG(fiber_wg_t *wg)
{
	return (struct wg_impl *)(void *)wg;
}

int fiber_wg_init(fiber_wg_t *wg)
{
	if (!wg)
		return -EINVAL;
	memset(wg, 0, sizeof(*wg));
	return 0;
}

int fiber_wg_add(fiber_wg_t *ww, int n)
{
	struct wg_impl *wg = WG(ww);
	struct sync_waiter *w;
	DEFINE_WAKE_Q(q);
	long v;

	if (!ww)
		return -EINVAL;
	spin_lock(&wg->lock);
	v = (long)wg->count + n;
	if (v < 0 || v > INT_MAX) {
		spin_unlock(&wg->lock);
		return -EINVAL;
	}
	wg->count = (int)v;
	if (v == 0) {
		while ((w = wg->wl.first)) {
			wlist_del(&wg->wl, w);
			fiber__sync_grant(w, 1, &q);
		}
	}
	spin_unlock(&wg->lock);
	sync_wake_up_q(&q);
	return 0;
}

int fiber_wg_done(fiber_wg_t *wg)
{
	return fiber_wg_add(wg, -1);
}

int fiber_wg_wait(fiber_wg_t *ww)
{
	struct wg_impl *wg = WG(ww);
	struct fiber *self = sync_self();
	struct sync_waiter w;
	int g;

	if (!ww)
		return -EINVAL;
	if (self && fiber__signal_pending(self))
		return -ECANCELED;
	spin_lock(&wg->lock);
	if (!wg->count) {
		spin_unlock(&wg->lock);
		return 0;
	}
	sync_waiter_init(&w);
	w.intr = true;
	wlist_add_tail(&wg->wl, &w);
	g = fiber__sync_wait(&wg->lock, &wg->wl, &w, TASK_INTERRUPTIBLE, NULL);
	if (g < 0) {
		spin_unlock(&wg->lock);
		return g;
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------------------------
 * Fiber-local storage
 *
 * keys[k].seq is odd while key k is live; create and delete bump it, so a value stored under an older life of k
 * (its seq differs) reads as NULL and gets no destructor call. A fiber's values live in fiber->specific: a table of
 * KEY_BLOCKS pointers to blocks of KEY_BLOCK slots, allocated on first use; only the fiber itself touches it.
 * ---------------------------------------------------------------------------------------------------------- */

#define KEY_BLOCK 32
#define KEY_BLOCKS (FIBER_KEYS_MAX / KEY_BLOCK)

struct key_slot {
	uint64_t seq;
	void *value;
};

struct key_table {
	struct key_slot *block[KEY_BLOCKS];
};

static struct {
	_Atomic uint64_t seq;
	void (*_Atomic destructor)(void *);
} keys[FIBER_KEYS_MAX];

int fiber_key_create(fiber_key_t *key, void (*destructor)(void *))
{
	if (!key)
		return -EINVAL;
	for (unsigned k = 0; k < FIBER_KEYS_MAX; k++) {
		uint64_t s = atomic_load_explicit(&keys[k].seq, memory_order_relaxed);

		if (s & 1)
			continue;
		/*
		 * Win the slot first, then set the destructor: a creator that loses the race must not touch it.
		 * Nobody holds a value under the new seq before the key is returned, so no exit can use the
		 * destructor before it is set (the application's hand-over of the key orders the two). The
		 * releases here and in fiber_key_delete pair with the acquire loads of seq and destructor in
		 * fiber_setspecific, fiber_getspecific and fiber__keys_exit.
		 */
		if (atomic_compare_exchange_strong_explicit(&keys[k].seq, &s, s + 1, memory_order_acq_rel,
							    memory_order_relaxed)) {
			atomic_store_explicit(&keys[k].destructor, destructor, memory_order_release);
			*key = k;
			return 0;
		}
	}
	return -EAGAIN;
}

int fiber_key_delete(fiber_key_t key)
{
	uint64_t s;

	if (key >= FIBER_KEYS_MAX)
		return -EINVAL;
	s = atomic_load_explicit(&keys[key].seq, memory_order_relaxed);
	if (!(s & 1))
		return -EINVAL;
	if (!atomic_compare_exchange_strong_explicit(&keys[key].seq, &s, s + 1, memory_order_release,
						     memory_order_relaxed))
		return -EINVAL;
	return 0;
}

static struct key_slot *key_slot(struct fiber *self, fiber_key_t key, bool alloc)
{
	struct key_table *t = self->specific;
	struct key_slot **b;

	if (!t) {
		if (!alloc)
			return NULL;
		t = fiber__zalloc(sizeof(*t));
		if (!t)
			return NULL;
		self->specific = t;
	}
	b = &t->block[key / KEY_BLOCK];
	if (!*b) {
		if (!alloc)
			return NULL;
		*b = fiber__zalloc(KEY_BLOCK * sizeof(**b));
		if (!*b)
			return NULL;
	}
	return &(*b)[key % KEY_BLOCK];
}

int fiber_setspecific(fiber_key_t key, const void *value)
{
	struct fiber *self = sync_self();
	struct key_slot *slot;
	uint64_t s;

	if (!self)
		return -EPERM;
	if (key >= FIBER_KEYS_MAX)
		return -EINVAL;
	s = atomic_load_explicit(&keys[key].seq, memory_order_acquire);
	if (!(s & 1))
		return -EINVAL;
	slot = key_slot(self, key, value != NULL);
	if (!slot)
		return value ? -ENOMEM : 0;
	slot->seq = s;
	slot->value = (void *)value;
	return 0;
}

void *fiber_getspecific(fiber_key_t key)
{
	struct fiber *self = sync_self();
	struct key_slot *slot;

	if (!self || key >= FIBER_KEYS_MAX)
		return NULL;
	slot = key_slot(self, key, false);
	if (!slot || !slot->value)
		return NULL;
	if (slot->seq != atomic_load_explicit(&keys[key].seq, memory_order_acquire))
		return NULL;
	return slot->value;
}

/* At fiber exit, in the fiber (fiber__exit): run the destructors, then free the table. */
void fiber__keys_exit(struct fiber *self)
{
	struct key_table *t = self->specific;

	if (!t)
		return;
	for (int round = 0; round < FIBER_DESTRUCTOR_ITERATIONS; round++) {
		bool again = false;

		for (unsigned bi = 0; bi < KEY_BLOCKS; bi++) {
			for (unsigned i = 0; t->block[bi] && i < KEY_BLOCK; i++) {
				struct key_slot *slot = &t->block[bi][i];
				unsigned k = bi * KEY_BLOCK + i;
				void (*dtor)(void *);
				void *v = slot->value;

				if (!v)
					continue;
				slot->value = NULL;
				if (slot->seq != atomic_load_explicit(&keys[k].seq, memory_order_acquire))
					continue;
				dtor = atomic_load_explicit(&keys[k].destructor, memory_order_acquire);
				if (dtor) {
					dtor(v);
					again = true;
				}
			}
		}
		if (!again)
			break;
	}
	for (unsigned bi = 0; bi < KEY_BLOCKS; bi++)
		fiber__free(t->block[bi], KEY_BLOCK * sizeof(struct key_slot));
	fiber__free(t, sizeof(*t));
	self->specific = NULL;
}
