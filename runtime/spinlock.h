/*
 * runtime/spinlock.h - the runtime's spinlock, lockdep_assert_held and smp_mb__after_spinlock.
 *
 * Included by internal.h (after its compiler helpers and FIBER_DEBUG_BUG_ON); not a header to include alone.
 * The slow path is in spinlock.c.
 */
#ifndef FIBER_SPINLOCK_H
#define FIBER_SPINLOCK_H

#include <stdatomic.h>
#include <stdbool.h>

/* ------------------------------------------------------------------------------------------------------------
 * Spinlock: test-and-test-and-set; after a short spin it yields the CPU, because with more workers than cores the
 * holder may be a pthread the kernel has preempted. Acquired and released by the same pthread, possibly by
 * different fibers (the rq lock across a switch), so it records no owner fiber.
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct {
	atomic_int locked;
} spinlock_t;

#define SPINLOCK_INIT                                                                                                  \
	{                                                                                                              \
		0                                                                                                      \
	}

__hidden void fiber__spin_lock_slow(spinlock_t *l);

static inline void spin_lock_init(spinlock_t *l)
{
	atomic_init(&l->locked, 0);
}
/*
 * acq_rel: nothing before the lock sinks below it (smp_mb__after_spinlock relies on that). The acquire half pairs
 * with spin_unlock's release store.
 */
static inline void spin_lock(spinlock_t *l)
{
	if (likely(!atomic_exchange_explicit(&l->locked, 1, memory_order_acq_rel)))
		return;
	fiber__spin_lock_slow(l);
}
static inline bool spin_trylock(spinlock_t *l)
{
	return !atomic_load_explicit(&l->locked, memory_order_relaxed) &&
	       !atomic_exchange_explicit(&l->locked, 1, memory_order_acquire);
}
static inline void spin_unlock(spinlock_t *l)
{
	atomic_store_explicit(&l->locked, 0, memory_order_release);
}
static inline bool spin_is_locked(spinlock_t *l)
{
	return atomic_load_explicit(&l->locked, memory_order_relaxed) != 0;
}
/* lockdep_assert_held: a FIBER_DEBUG check at the entry of helpers that need @l (it cannot tell who holds it). */
#define lockdep_assert_held(l) FIBER_DEBUG_BUG_ON(!spin_is_locked(l))

/*
 * smp_mb__after_spinlock: a full barrier right after spin_lock(). The lock is taken with an xchg, and on x86 an
 * xchg (like every LOCK-prefixed instruction) is a full barrier; the acq_rel exchange keeps the compiler from moving
 * earlier accesses below it or later ones above it. So, as in the kernel's x86 definition, only the compiler needs
 * stopping here. (C11 alone would not promise a full fence; the ISA does.)
 */
#if defined(__x86_64__)
#define smp_mb__after_spinlock() atomic_signal_fence(memory_order_seq_cst)
#else
#define smp_mb__after_spinlock() atomic_thread_fence(memory_order_seq_cst)
#endif

#endif /* FIBER_SPINLOCK_H */
