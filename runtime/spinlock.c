/*
 * runtime/spinlock.c - the contended path of spin_lock (spinlock.h).
 */
#include "internal.h"

void fiber__spin_lock_slow(spinlock_t *l)
{
	unsigned spins = 0;

	for (;;) {
		while (atomic_load_explicit(&l->locked, memory_order_relaxed)) {
			if (++spins < 128) {
				cpu_relax();
			} else {
				/* The holder may be a preempted pthread (more workers than cores): let it run. */
				sched_yield();
				spins = 0;
			}
		}
		/*
		 * Pairs with spin_unlock's release. Acquire is enough for smp_mb__after_spinlock here: spin_lock's
		 * call to this function is opaque to the compiler, and the xchg is a full barrier on x86.
		 */
		if (!atomic_exchange_explicit(&l->locked, 1, memory_order_acquire))
			return;
	}
}
