/*
 * runtime/internal.h - the internal header: the structs, the lock order and the switch invariants.
 *
 * Every runtime file includes it (and through it list.h, spinlock.h and treap.h, which are not included alone).
 * Names follow kernel/sched so that a reader who knows the kernel finds their way: struct rq is a worker's
 * runqueue, struct fiber is a task, this_worker() is smp_processor_id()'s per-CPU data.
 *
 * Serialization rules (the kernel's, KERNEL_MAP.md §2.4, §4, §6):
 *
 *   p->pi_lock  ->  rq->lock  ->  fiber__rt.dl_lock      (DEADLINE admission, under the fiber's locks)
 *   wq->lock    ->  p->pi_lock ->  rq->lock              (wait queues may wake under their lock)
 *   a sync.c primitive's lock -> p->pi_lock -> rq->lock  (the mutex's PI boost, fiber__pi_setprio)
 *   two rq locks: never held together (migration drops the source's before it takes the destination's, and
 *   on_rq == MIGRATING covers the gap)
 *   channel locks (chan.c): several at once only in address order (select's sel_lock); wake-ups go on a wake_q
 *   leaf locks, never held while taking another lock: timer_base.lock (taken under rq->lock too: the DL timer),
 *   worker->stop_lock, worker->all_lock, fiber__rt.stack_lock, netpoll's descriptor locks
 *   and grow_lock, trace.c's ext_lock, and fiber__rt.dl_lock (under pi_lock, pi_lock + rq->lock, or alone: a
 *   dead fiber's task_dead)
 *
 *   - try_to_wake_up() is never called with an rq lock held; use wake_q (sched_out notifiers, class hooks).
 *   - rq->lock is taken in __schedule() before prev->state is read, held across fiber__switch() and released by
 *     the fiber that runs next, in finish_task_switch(), after re-reading which worker it is on.
 *   - p->on_rq is written under p's rq lock; p->on_cpu is set under the rq lock before the switch and cleared
 *     with release semantics by the next fiber, after it read prev->state and before it unlocked the rq.
 *   - p->state: written by p itself (set_current_state, plain or with a full fence), by wakers under p->pi_lock
 *     (and the rq lock when p is queued), and DEAD under p->pi_lock (set_special_state).
 *   - p->cpu changes only under p->pi_lock with p RUNNING or WAKING and not queued (a wake-up), or under the
 *     source rq lock with on_rq == MIGRATING (migration); never for a sleeping fiber or one whose wake-up sits on
 *     a wakelist (TASK_WAKING seen under pi_lock): its worker activates it on its own rq.
 *   - p->cpus_mask and p->migration_pending: pi_lock (and the rq lock for cpus_mask).
 *   - worker->preempt_count and worker->current are only touched by the worker's own pthread.
 *
 * The invariants, by the labels the code cites (KERNEL_MAP.md §12 is the checklist their tests cover):
 *   P1  preempt_count == 2 across every fiber__switch (schedule's level and the rq lock's); 0 in fiber code
 *       outside critical sections, 1 in the idle loop; __schedule is entered with exactly 1.
 *   A1  rq->lock is taken in __schedule before prev->state is read and released exactly once, by the fiber that
 *       runs next, in finish_task_switch, through a freshly read this_worker().
 *   A2  every resume path (the return of fiber__switch, the trampoline's schedule_tail) calls
 *       finish_task_switch(last) exactly once, with the "last" that fiber__switch returned.
 *   B1  next->on_cpu = 1 before the switch; prev->on_cpu = 0 (release) after the switch, after prev->state was
 *       read and before the rq unlock.
 *   B2  try_to_wake_up never enqueues or moves a fiber with on_rq == 0 until it has seen on_cpu == 0 (acquire),
 *       or it hands the wake-up to the owning worker's wakelist.
 *   B3  the wakelist is drained only outside a switch window: end of finish_task_switch, preemption points, the
 *       top of schedule, the idle loop, the stopper before it moves a fiber, and the monitor for a stuck worker
 *       (it runs a fiber: its switches are over).
 *   B4  no migration of an on_cpu fiber or of rq->curr; on_rq == MIGRATING while between rqs; task_rq_lock
 *       retries while it sees MIGRATING.
 *   C1  a dead fiber's state is read before its on_cpu is cleared; C2 its stack is freed by the next fiber,
 *       after the switch and after the unlock; C3 no other worker dereferences a remote rq->curr without that
 *       rq's lock (published scalars instead: nr_running, the idle mask, tick_wanted).
 *   D1  waiter: state store, full fence, condition load; waker: condition store, pi_lock + full fence, state
 *       load. D2 a wake-up before schedule() finds the fiber queued and sets it RUNNING under the rq lock, which
 *       __schedule reads once. D3 preemption never dequeues. D4 waits always loop. D5 DEAD and other special
 *       states are set under pi_lock.
 *   N1  sched_out runs under the rq lock (no blocking, no wake-ups); N2 sched_in runs after the unlock with
 *       preemption off; N3 notifiers are registered and unregistered only for current; N4 a global counter
 *       (fiber__preempt_notifier_key) skips the list walk while nobody registered one.
 */
#ifndef FIBER_INTERNAL_H
#define FIBER_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "fiber.h"
#include "switch_offsets.h"
#include "treap.h"

/* ------------------------------------------------------------------------------------------------------------
 * Compiler and CPU helpers
 * ---------------------------------------------------------------------------------------------------------- */

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define barrier() __asm__ __volatile__("" ::: "memory")
#define __hidden __attribute__((visibility("hidden")))
#define __noinline __attribute__((noinline))
#define __cacheline_aligned __attribute__((aligned(64)))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * READ_ONCE / WRITE_ONCE: a plain-sized access the compiler may not tear, fuse or re-read, for fields that are
 * written under a lock and peeked at without it (rq->curr, p->cpu). Relaxed atomics: plain movs on x86, and
 * ThreadSanitizer sees them as the atomic accesses they are meant to be.
 */
#define READ_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE_ONCE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

static inline void cpu_relax(void)
{
	__builtin_ia32_pause();
}

#if defined(__SANITIZE_ADDRESS__)
#define FIBER_HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FIBER_HAVE_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define FIBER_HAVE_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FIBER_HAVE_TSAN 1
#endif
#endif

/*
 * Runtime objects come from the C library's malloc under ASan and TSan (so that they check them) and in the installed
 * libfiber.a (FIBER_NO_JEMALLOC: linking jemalloc statically would replace the application's malloc with jemalloc's);
 * from jemalloc's explicit API (mallocx/sdallocx) otherwise.
 */
#if defined(FIBER_HAVE_ASAN) || defined(FIBER_HAVE_TSAN) || defined(FIBER_NO_JEMALLOC)
#define FIBER_LIBC_MALLOC 1
#endif

/*
 * FIBER_BUG_ON: a broken invariant; always checked, prints where and aborts (never used for bad input).
 * SCHED_WARN_ON-style checks that cost something on the hot path go through FIBER_DEBUG_BUG_ON, compiled in only
 * with -DFIBER_DEBUG (the FIBER_DEBUG CMake option).
 */
__hidden _Noreturn void fiber__bug(const char *file, int line, const char *cond);
#define FIBER_BUG_ON(cond)                                                                                             \
	do {                                                                                                           \
		if (unlikely(cond))                                                                                    \
			fiber__bug(__FILE__, __LINE__, #cond);                                                         \
	} while (0)
#ifdef FIBER_DEBUG
#define FIBER_DEBUG_BUG_ON(cond) FIBER_BUG_ON(cond)
#else
#define FIBER_DEBUG_BUG_ON(cond) ((void)0)
#endif

/*
 * futex(2). Like every system call the library makes on a caller's thread, it leaves the caller's errno as it was
 * (the library reports its own errors as return values and never changes errno).
 */
static inline long fiber__futex(void *uaddr, int op, int val, const struct timespec *timeout)
{
	int saved = errno;
	long ret = syscall(SYS_futex, uaddr, op, val, timeout, NULL, 0);

	errno = saved;
	return ret;
}

#include "list.h"
#include "spinlock.h"

/* ------------------------------------------------------------------------------------------------------------
 * Task state, on_rq, flags (the kernel's values)
 * ---------------------------------------------------------------------------------------------------------- */

#define TASK_RUNNING 0x0000u
#define TASK_INTERRUPTIBLE 0x0001u
#define TASK_UNINTERRUPTIBLE 0x0002u
#define TASK_DEAD 0x0080u
#define TASK_WAKING 0x0200u
#define TASK_NEW 0x0800u
#define TASK_OFFLOAD 0x1000u /* switching to or from a spare thread (blocking regions); only the spare wakes it */
#define TASK_NORMAL (TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE)

#define TASK_ON_RQ_QUEUED 1
#define TASK_ON_RQ_MIGRATING 2

/* fiber->tif bits */
#define TIF_NEED_RESCHED 0x1u
#define TIF_POLLING 0x2u   /* idle fibers only: the worker is not asleep in the kernel, so no kick is needed */
#define TIF_RING_WAIT 0x4u /* idle fibers only: the worker sleeps in its ring (kick: eventfd), else on this word */

/* __schedule modes */
#define SM_NONE 0
#define SM_PREEMPT 1
#define SM_IDLE 2
#define SM_YIELD 3 /* fiber_yield: yield_task under __schedule's lock, prev stays queued */

/* wake flags */
#define WF_TTWU 0x08
#define WF_SYNC 0x10
#define WF_MIGRATED 0x20
#define WF_FORK 0x04
#define WF_CURRENT_CPU 0x40 /* queue the wakee on the waker's worker; the waker kicks nobody (a ring's completion) */

/* enqueue / dequeue flags */
#define DEQUEUE_SLEEP 0x01
#define DEQUEUE_SAVE 0x02
#define DEQUEUE_MOVE 0x04
#define ENQUEUE_WAKEUP 0x01
#define ENQUEUE_RESTORE 0x02
#define ENQUEUE_MOVE 0x04
#define ENQUEUE_HEAD 0x10
#define ENQUEUE_REPLENISH 0x20
#define ENQUEUE_MIGRATED 0x40
#define ENQUEUE_INITIAL 0x80

/* ------------------------------------------------------------------------------------------------------------
 * Timers (per worker; see timer.c)
 * ---------------------------------------------------------------------------------------------------------- */

struct fiber_timer {
	uint64_t expires;		   /* sched_clock() ns */
	void (*fn)(struct fiber_timer *t); /* called with no lock held; NULL: wake t->fiber */
	struct fiber *fiber;		   /* the sleeper (fn NULL) or the timer's owner */
	atomic_bool fired;		   /* set before fn runs / the wake-up (the condition the sleeper checks) */
	bool pending;			   /* in base->tree; base->lock */
	struct timer_base *base;	   /* the base it was last armed on; changes under that base's lock */
	struct tnode node;		   /* in base->tree while pending; base->lock */
};

struct timer_base {
	spinlock_t lock;		     /* a leaf lock */
	struct treap tree;		     /* pending timers by expiry; its first node is the earliest */
	unsigned nr;			     /* armed timers */
	_Atomic uint64_t next_expiry;	     /* UINT64_MAX when empty; lock-free peek */
	struct fiber_timer *_Atomic running; /* the timer whose callback runs now (timer_del waits for it) */
	atomic_flag run_lock; /* held by whoever runs due timers: the owner, or the monitor for a stuck one */
	int cpu;	      /* the worker that runs these timers */
};

/* ------------------------------------------------------------------------------------------------------------
 * Class-specific entities and runqueues
 * ---------------------------------------------------------------------------------------------------------- */

struct sched_entity { /* fair (EEVDF); cfs_rq: the rq lock */
	/* What a walk of the tree reads, together (56 bytes): the links, the key and the augmented value. */
	struct tnode node;     /* in cfs_rq->tree while queued and not curr; ordered by deadline */
	int64_t deadline;      /* virtual deadline: vruntime + slice / weight at the last update */
	int64_t vruntime;      /* virtual runtime (ns scaled by 1024 / weight) */
	int64_t min_vruntime;  /* augmented: the minimum vruntime in this node's subtree */
	uint64_t load_weight;  /* from the nice-to-weight table */
	uint64_t inv_weight;   /* 2^32 / load_weight */
	int64_t vlag;	       /* lag V - v saved at dequeue, used at the next placement */
	int64_t pick_deadline; /* deadline when picked: RUN_TO_PARITY keeps curr while it is unchanged */
	uint64_t slice;	       /* ns */
	bool on_rq;
	bool rel_deadline; /* deadline holds deadline - vruntime across a non-sleep dequeue */
};

struct cfs_rq {
	struct treap tree;	       /* queued entities but curr */
	unsigned nr_running;	       /* queued fair fibers including curr */
	struct sched_entity *curr;     /* the running fair entity (not in the tree) */
	struct sched_entity *next;     /* next buddy (joins, sync wake-ups): first while eligible or chain < 8 slices */
	struct sched_entity *replaced; /* put_prev_task put prev in this one's tree node; set_next_task takes it */
	uint64_t chain_start;	       /* rq clock of the last pick that was not a buddy */
	int64_t min_vruntime;	       /* v0: monotonic base of the weighted sums below */
	int64_t avg_vruntime;	       /* sum over the tree of (v_i - v0) * w_i */
	int64_t avg_load;	       /* sum over the tree of w_i */
};

struct sched_rt_entity {	   /* rt */
	struct list_head run_list; /* rt_rq->queue[prio] while queued (curr stays on it, as in the kernel) */
	int64_t time_slice;	   /* RR: ns left in the slice */
	bool on_rq;
};

#define RT_PRIO_LEVELS 100
struct rt_rq {
	uint64_t bitmap[2]; /* bit i: queue[i] not empty; i = 99 - rt_priority */
	struct list_head queue[RT_PRIO_LEVELS];
	unsigned rt_nr_running;
};

struct sched_dl_entity {			     /* dl: the rq lock, and pi_lock for the parameters */
	struct tnode node;			     /* in dl_rq->tree while queued and not throttled (curr included) */
	uint64_t dl_runtime, dl_deadline, dl_period; /* parameters, ns */
	uint64_t dl_bw;				     /* runtime / period << BW_SHIFT */
	int64_t runtime;			     /* remaining budget in this period */
	uint64_t deadline;			     /* absolute deadline, sched_clock ns */
	bool dl_throttled, dl_yielded, on_tree;
	int dl_cpu;		  /* partitioned EDF: the worker whose bandwidth it holds, -1 none */
	struct fiber_timer timer; /* replenishment timer (intrusive: arming it cannot fail) */
};

struct dl_rq {
	struct treap tree; /* by absolute deadline */
	unsigned dl_nr_running;
	uint64_t this_bw; /* admitted bandwidth on this worker (fiber__rt.dl_lock) */
};

#define BW_SHIFT 20
#define BW_UNIT (1ull << BW_SHIFT)

/* ------------------------------------------------------------------------------------------------------------
 * struct fiber (task_struct)
 * ---------------------------------------------------------------------------------------------------------- */

struct rq;
struct sched_class;

/* Wait queues (wait.c): the park/unpark protocol every blocking primitive uses. */
struct wait_queue_entry {
	struct fiber *task; /* NULL: a plain pthread, which sleeps on futex (wait.c) */
	struct list_head entry;
	unsigned flags;
	atomic_int futex; /* pthread waiters: 0 asleep, 1 woken (written under the queue's lock) */
};
struct wait_queue_head {
	spinlock_t lock;
	struct list_head head;
};

struct wake_q_node {
	struct wake_q_node *next;
};

/* A work item for a worker's stopper (sched_stop.c); queued under worker->stop_lock. */
struct cpu_stop_work {
	struct list_head list;
	void (*fn)(void *arg);
	void *arg;
};

enum join_state {
	JOIN_JOINABLE = 0,
	JOIN_DETACHED,
	JOIN_JOINING, /* somebody waits in fiber_join */
	JOIN_DONE,    /* joined: the handle is released */
};

#define PF_KTHREAD 0x1 /* a runtime fiber (the stoppers): not counted in nr_fibers, not shown as a user fiber */
#define PF_IDLE 0x2    /* a worker's idle fiber (id 0) */

#define FIBER_MAGIC_LIVE 0x46494245u /* "FIBE" */
#define FIBER_MAGIC_FREE 0xdeadf1beu
#define FIBER_NAME_LEN 32

struct fiber {
	void *sp; /* saved stack pointer; valid only while !on_cpu. Offset FIBER_SP_OFFSET, used by the asm */

	_Atomic unsigned state; /* TASK_*; see the serialization rules */
	atomic_int on_rq;	/* 0, TASK_ON_RQ_QUEUED, TASK_ON_RQ_MIGRATING; rq->lock */
	atomic_int on_cpu;	/* 1 from prepare_task_switch(next) until finish_task_switch clears it (release) */
	int cpu;		/* task_cpu(): the rq this fiber belongs to */
	atomic_uint tif;	/* TIF_NEED_RESCHED, TIF_POLLING (idle); futex word of an idle fiber */
	spinlock_t pi_lock;	/* wake-ups and attribute changes; before rq->lock */

	const struct sched_class *sched_class; /* rq->lock + pi_lock */
	uint32_t policy;
	int static_prio, normal_prio, prio; /* kernel numbering: rt 0..98 (99 - priority), fair 100..139 */
	unsigned rt_priority;
	unsigned flags; /* PF_*: is_idle_task() on every switch, so on the first cache line */
	struct sched_entity se;
	/*
	 * What every switch and charge touches besides the above, kept right after se so that a fiber's share of a
	 * switch is four adjacent cache lines (with 1,000 runnable fibers each switch brings in another fiber's, and
	 * these fields were spread over seven). Statistics are written under the rq lock of the worker the fiber is on.
	 */
	uint64_t exec_start;	   /* rq clock when it last started running or was last charged */
	uint64_t sum_exec_runtime; /* ns */
	/*
	 * I/O completion work done for this fiber in another fiber's time (its share of an io_uring_enter and the
	 * reap of its CQE: uring.c io_irq_charge and the wake batch's flush, fiber__ttwu_batch_flush): charged to it at
	 * its next update_curr. Added by its ring's owner while it waits for the op or is being woken, taken by
	 * whichever worker charges it next.
	 */
	atomic_ullong irq_debt;
	uint64_t wait_start; /* rq clock when it became runnable and not running, 0 if not waiting */
	uint64_t wait_sum;   /* ns */
	uint64_t nvcsw, nivcsw;
	struct fiber_preempt_notifier *preempt_notifiers; /* hlist; only the fiber itself touches it */
	int saved_errno;				  /* the fiber's errno while it is switched out */
	int saved_preempt; /* preempt depth carried across a switch when a fiber slept while atomic */
	struct sched_rt_entity rt;
	struct sched_dl_entity dl;

	struct wake_q_node wake_q;	  /* wake_q membership; next == NULL when not queued */
	struct fiber *_Atomic wake_entry; /* remote wakelist link (worker->wake_list) */
	atomic_int usage;		  /* refcount of the descriptor (not of the stack) */

	void *asan_fake_stack;

	int migration_disabled;	    /* fiber_migrate_disable() depth; only the fiber itself */
	int blocking_depth;	    /* fiber_blocking_begin() depth; only the fiber itself */
	int offload_spare;	    /* 1 + the spare thread's worker id while a blocking region runs there; 0 */
	atomic_bool cancel_pending; /* fiber_cancel(): the analog of a pending fatal signal */
	void *specific;		    /* sync.c: fiber-local values (fiber_setspecific); only the fiber itself */
	cpu_set_t cpus_mask;	    /* allowed workers, already intersected with the worker set; pi_lock + rq->lock */
	int nr_cpus_allowed;
	struct fiber_timer timer; /* fiber_sleep and timeouts: intrusive, so a sleep cannot fail for memory */
	/*
	 * Moving a fiber that runs, switches out or has its wake-up on a wakelist goes through the stopper of its
	 * worker (affine_move_task): one work item per fiber, queued while migration_pending (pi_lock), so the move
	 * needs no allocation and repeated requests coalesce.
	 */
	struct cpu_stop_work migration_work;
	bool migration_pending;

	/* life cycle */
	uint32_t magic;	 /* FIBER_MAGIC_LIVE / FIBER_MAGIC_FREE (0 once its slab was given back) */
	unsigned rt_gen; /* fiber__rt.gen of the runtime that spawned it; kept when freed */
	uint64_t id;
	void *(*fn)(void *);
	void *arg;
	void *retval;
	atomic_int exited;		/* 1 once fiber_exit published retval (release; joiners' acquire); futex */
	atomic_int pthread_joiner;	/* a plain pthread sleeps on exited */
	_Atomic int join_state;		/* enum join_state */
	struct wait_queue_head join_wq; /* fibers waiting in fiber_join */
	char name[FIBER_NAME_LEN];

	uint64_t nr_migrations; /* written under the rq lock of the worker the fiber is on; see set_task_cpu */
	struct list_head all;	/* workers[home].all_fibers (fiber_dump) */
	int home;		/* the worker whose all_fibers list holds it */

	/*
	 * Debugging (fiber_dump, the trace, gdb/libfiber-gdb.py). wait_reason and wait_on are written by the fiber
	 * itself just before it blocks and cleared when it runs again; readers on other threads only print them
	 * (relaxed atomics: a stale value is fine, a torn one is not possible).
	 */
	const char *_Atomic wait_reason; /* static string ("sleep", "join", "wait queue", ...), NULL when not waiting */
	const void *_Atomic wait_on;	 /* the object waited on: the wait queue, the joined fiber, the timer */
	void *tsan_fiber;		 /* ThreadSanitizer's fiber context (FIBER_TSAN builds) */

	/* I/O (io.c, uring.c): only the fiber itself, and its ring notifier on its behalf. */
	struct fiber_preempt_notifier io_pn; /* binds the fiber to its worker's ring (KVM's vcpu_load pattern) */
	struct io_ring *io_ring;	     /* the ring of the worker it runs on; NULL while switched out */
	uint64_t io_timeout_ns;		     /* fiber_io_timeout */

	/*
	 * The unit (stack.c): the descriptor lives at the top of its own stack's mapping. Set when the unit is
	 * allocated; fiber_init clears everything above these two and keeps them.
	 */
	void *stack_base;  /* lowest address of the mapping, guard region included */
	size_t stack_size; /* mapping size, guard region and descriptor included */
};

/* The top of @p's stack: the descriptor sits right above it, in the same mapping (stack.c). */
static inline uintptr_t fiber__stack_top(const struct fiber *p)
{
	return (uintptr_t)p;
}

/*
 * fiber__set_wait - say why @p (the caller's own fiber) is about to block and on what; NULL, NULL when it runs
 * again. Shown by fiber_dump, `info fibers` in gdb and the trace. Blocking primitives call it before their
 * prepare_to_wait (which records "wait queue" when nothing more precise was said).
 */
static inline void fiber__set_wait(struct fiber *p, const char *reason, const void *on)
{
	atomic_store_explicit(&p->wait_reason, reason, memory_order_relaxed);
	atomic_store_explicit(&p->wait_on, on, memory_order_relaxed);
}

/*
 * ThreadSanitizer (FIBER_TSAN): each fiber is a TSan fiber, so that TSan keeps a shadow stack and a vector clock
 * per fiber rather than per worker thread. The switch synchronizes prev -> next (flags 0), which is the
 * happens-before the rq lock hand-off implies (taken by prev in __schedule, released by next in
 * finish_task_switch). A fiber's context is made at its first switch-in; the worker's own context becomes its idle
 * fiber's at the first switch-out; a dead fiber's is destroyed by the next fiber, after the switch.
 */
#ifdef FIBER_HAVE_TSAN
#include <sanitizer/tsan_interface.h>
static inline void fiber__tsan_switch(struct fiber *prev, struct fiber *next)
{
	if (!prev->tsan_fiber)
		prev->tsan_fiber = __tsan_get_current_fiber();
	if (!next->tsan_fiber)
		next->tsan_fiber = __tsan_create_fiber(0);
	__tsan_switch_to_fiber(next->tsan_fiber, 0);
}
static inline void fiber__tsan_dead(struct fiber *p)
{
	if (p->tsan_fiber)
		__tsan_destroy_fiber(p->tsan_fiber);
	p->tsan_fiber = NULL;
}
#else
static inline void fiber__tsan_switch(struct fiber *prev, struct fiber *next)
{
	(void)prev, (void)next;
}
static inline void fiber__tsan_dead(struct fiber *p)
{
	(void)p;
}
#endif

_Static_assert(offsetof(struct fiber, sp) == FIBER_SP_OFFSET, "asm/ and struct fiber disagree on sp");
_Static_assert(FRAME_SIZE == 8 * 8, "switch frame is 8 slots");

/*
 * With many runnable fibers, each switch brings in the next one's descriptor from beyond the L1. A class that knows
 * which fiber its following pick will most likely take (fair: the tree's first node; rt: the one behind next at its
 * level) starts loading that descriptor now, one switch ahead, so that the misses overlap with this switch and the
 * fiber's run instead of stalling the next pick. What a switch reads of it: the first line (sp, state, on_cpu,
 * sched_class, flags), the statistics after se, and the class's entity (@class_off, @class_size: adjacent to the
 * statistics for both classes that call it). Below FIBER_PREFETCH_MIN runnable fibers of the class the descriptors
 * stay in the L1 and the prefetches would only cost. The descriptors are cache-line aligned (stack.c DESC_BYTES).
 */
#define FIBER_PREFETCH_MIN 64

static inline void fiber__prefetch_next(const struct fiber *p, size_t class_off, size_t class_size)
{
	size_t lo = offsetof(struct fiber, exec_start), hi = offsetof(struct fiber, saved_preempt) + sizeof(int);

	if (class_off < lo)
		lo = class_off;
	if (class_off + class_size > hi)
		hi = class_off + class_size;
	__builtin_prefetch(p, 1);
	for (size_t off = lo & ~(size_t)63; off < hi; off += 64) /* constants: unrolled */
		if (off)
			__builtin_prefetch((const char *)p + off, 1);
}

/* ------------------------------------------------------------------------------------------------------------
 * struct rq and struct worker
 * ---------------------------------------------------------------------------------------------------------- */

struct rq {
	spinlock_t lock;
	atomic_uint nr_running; /* queued fibers incl. curr, idle excluded; atomic for lock-free peeking */
	struct fiber *curr;	/* rq->lock */
	struct fiber *idle;
	struct fiber *stop; /* the stopper fiber (stop class) */
	bool stop_queued;   /* rq->lock */
	struct cfs_rq cfs;
	struct rt_rq rt;
	struct dl_rq dl;
	uint64_t idle_ns;	 /* rq->lock */
	uint64_t pulled, pushed; /* fibers moved here / away by balancing; rq->lock */
	uint64_t clock;		 /* update_rq_clock(), rq->lock */
	/*
	 * Steal: time the worker's thread was not running on the host outside its idle sleeps, which the rq clock
	 * cannot tell from running; irq time: the ring's completion work (io_uring_enter, reaping, the wake-ups) that
	 * a busy worker does at a preemption point of whichever fiber runs. update_curr charges a fiber its wall time
	 * less the steal and irq time that fell into it, as the kernel's rq_clock_task leaves out paravirt steal and
	 * irq time. steal is sampled by the owner under rq->lock.
	 */
	uint64_t steal;	       /* steal excluded since the worker started (ns), as of the last sample */
	uint64_t steal_next;   /* rq->clock of the next sample; UINT64_MAX: no steal accounting */
	atomic_ullong excl_ns; /* steal + irq time so far; only the owner adds (relaxed), readers hold rq->lock */
	uint64_t excl_seen;    /* the part of excl_ns already taken off a charge, or before curr started */
	uint64_t nr_switches;  /* rq->lock */
	int cpu;
} __cacheline_aligned;

struct stack_cache {
	void **stacks; /* units (stack + descriptor), see stack.c */
	size_t *size;  /* mapping size of stacks[i], guard region included */
	unsigned nr, cap;
	unsigned low; /* the fewest stacks cached since the last fiber__stack_cache_trim(): those were not needed */
};
#define STACK_CACHE_WORKER 64	    /* per worker */
#define STACK_CACHE_GLOBAL 8192	    /* shared; page faults cost far more than the address space they keep */
#define STACK_TRIM_NS 1000000000ull /* the monitor gives back global-cache stacks no spawn needed for this long */

struct worker {
	struct rq rq;
	/*
	 * The fields below are grouped by who writes them, each group on cache lines of its own, so that what this
	 * worker writes all the time (current, pp_seq, its stack cache) is never on a line that other workers read at
	 * every wake-up (stuck, tick_wanted) or write (wake_list, the fiber list of a fiber that dies elsewhere).
	 */
	/* Only this worker's pthread touches these, unless marked otherwise. */
	struct fiber *current; /* equal to rq->curr except inside the switch window */
	int preempt_count;     /* 0 in fiber code, 1 in the idle loop and schedule(), 2 across fiber__switch */
	int id;
	int *errno_loc; /* this pthread's errno */
	struct stack_cache stacks;
	atomic_uint pp_seq;	       /* preemption points and switches passed; the monitor's progress probe */
	_Atomic uint64_t switch_clock; /* rq->clock at the last switch; the monitor's tick asks how long curr ran */
	uint64_t tick_clock;	       /* rq->clock at the last tick run here (fiber__sched_tick) */
	atomic_uint nr_sleeps;	       /* idle_sleep entries (the worker's own count), for tests */
	atomic_uint nr_idle;	       /* switches to the idle fiber; the monitor's periodic balance reads it */
	atomic_int live_credit;	  /* fiber__rt.nr_fibers counts held here (fiber__live_get/put); the dump reads it */
	uint64_t id_next, id_end; /* fiber ids taken from fiber__rt.next_id in blocks (fiber.c fiber_new_id) */
	atomic_int stat_fd;	  /* /proc/thread-self/stat of the worker's thread, for the monitor (-1: none) */
	/* Steal sampling (clock.c), the owner's only: at the last sample, the rq clock, the thread's CPU time, and the
	 * idle sleeps' time since and the end of the last one. */
	uint64_t steal_wall, steal_cpu, steal_slept, steal_slept_end;
	void *native_stack_bottom;
	size_t native_stack_size;
	struct fiber idle_fiber; /* runs on the pthread's own stack */
	/* Read by other threads (wake-ups, kickers), written rarely. */
	atomic_int stuck
	    __cacheline_aligned; /* set by the monitor, cleared by the worker at its next preemption point */
	atomic_int blocking;	 /* a fiber here is inside fiber_blocking_begin/end: stuck until it ends */
	atomic_int tick_pending; /* set by the monitor at tick_hz, consumed at preemption points */
	atomic_int tick_wanted;	 /* the tick is needed (tick_needed); the worker keeps it, enqueuers may set it */
	atomic_int tick_precise; /* the running fiber's class needs every tick (fiber__tick_precise) */
	struct io_ring *io;	 /* this worker's io_uring (io.h); NULL on the poll path. Kickers read it */
	atomic_int io_state;	 /* 0 while the worker sets its ring up, then 1 or -errno; futex word */
	pid_t tid;
	pthread_t thr;
	/* Spare threads (ids nr_workers ..): they run blocking regions, never placed on, balanced or monitored. */
	bool spare;
	bool spare_started; /* its thread exists (created on first use; spare_lock) */
	/* Written by other threads. */
	struct fiber *_Atomic wake_list
	    __cacheline_aligned; /* remote wakelist (llist); any thread pushes, the worker drains */
	atomic_uint nr_kicks;	 /* wake-ups of this worker's sleep actually sent (fiber__kick_worker), for tests */
	struct timer_base timers __cacheline_aligned; /* any thread may arm or delete a timer here (timers.lock) */
	spinlock_t all_lock __cacheline_aligned;      /* fibers spawned on this worker, for fiber_dump */
	struct list_head all_fibers;
	spinlock_t stop_lock; /* the stopper's work list */
	struct list_head stop_work;
	atomic_int spare_busy;		   /* claimed by a fiber entering a blocking region */
	struct fiber *_Atomic offload_req; /* a fiber to take in (set by the fiber before it switches out) */
	struct fiber *_Atomic offload_ret; /* a fiber to hand back to the workers (set on this thread) */
	/* The monitor's own notes on this worker (only the monitor thread touches them). */
	unsigned mon_seq __cacheline_aligned;
	unsigned mon_idle; /* nr_idle at the last periodic balance */
	uint64_t mon_stamp, next_tick;
	uint64_t mon_cpu, mon_cpu_at; /* the thread's CPU time at the monitor's last look, and when (0: none) */
} __cacheline_aligned;

/* The runtime (one per process). */
struct runtime {
	atomic_int running;  /* 1 between start and stop: release once set up, every check's acquire pairs with it */
	atomic_int stopping; /* workers leave their idle loop */
	unsigned nr_workers;
	struct worker *workers;
	size_t stack_size; /* default stack size */
	unsigned tick_hz;
	unsigned cfg_flags; /* fiber_config.flags */
	/* stop waits for the last fibers: seq_cst, pairs with spawn_allowed's load */
	atomic_int stop_waiting;
	unsigned gen;		  /* runtime generation (1, 2, ... per start): tells stale handles from this run's */
	uint64_t rr_timeslice_ns; /* SCHED_RR slice (FIBER_RR_TIMESLICE_MS) */
	uint64_t base_slice_ns;	  /* fair base slice, scaled like the kernel's by 1 + ilog2(min(workers, 8)) */
	uint64_t tick_ns;
	/* Set at start, read by the workers (env.c, worker.c). */
	bool pin_workers; /* FIBER_CFG_PIN / FIBER_PIN=1 */
	int host_policy;  /* the workers' host policy (SCHED_OTHER: inherited) */
	int host_priority;
	unsigned io_entries;	/* fiber_config.io_entries */
	unsigned nr_spares;	/* spare-thread slots after the workers in workers[] (threads made on demand) */
	unsigned spare_threads; /* how many slots the next start makes (env.c) */
	/*
	 * What the hot paths write, each group on cache lines of its own: on the line of the read-mostly part above,
	 * every spawn's and exit's update made each worker's next cpu_rq() (fiber__rt.workers) and base_slice_ns
	 * read a miss, with two workers spawning (skynet_2w).
	 */
	/* every spawn and every reap */
	atomic_int nr_fibers __cacheline_aligned; /* live fibers (spawned, not yet reaped); futex word for stop */
	atomic_ullong next_id;
	/* a worker that goes idle or busy; wake-ups read it */
	atomic_uint idle_mask[FIBER_MAX_WORKERS / 32] __cacheline_aligned; /* bit set: the worker runs its idle fiber */
	/* The global unit cache, and stack.c's chunk and cold lists; never re-initialized (late joins free units). */
	spinlock_t stack_lock __cacheline_aligned;
	struct stack_cache gstacks;
	/* plain threads inside a runtime call, | GATE_CLOSED once stop tears down; futex */
	atomic_int gate __cacheline_aligned;
	spinlock_t dl_lock;	/* deadline admission (per-worker dl_rq.this_bw) */
	atomic_int nr_stoppers; /* live stopper fibers; futex word at stop */
	atomic_int stoppers_exit;
	pthread_mutex_t spare_lock;
};

extern __hidden struct runtime fiber__rt;

/* ------------------------------------------------------------------------------------------------------------
 * this_worker(): never cached across a call that can switch (KERNEL_MAP §2.3). The TLS slot is read with an
 * asm volatile load, so the compiler cannot reuse a value read before a switch: after a switch the fiber may run
 * on another pthread.
 * ---------------------------------------------------------------------------------------------------------- */

extern __thread struct worker *fiber__tls_worker __attribute__((tls_model("initial-exec")));

static inline struct worker *this_worker(void)
{
	struct worker *w;
	__asm__ __volatile__("movq fiber__tls_worker@gottpoff(%%rip), %0\n\t"
			     "movq %%fs:(%0), %0"
			     : "=r"(w)
			     :
			     : "memory");
	return w;
}

static inline struct fiber *current_fiber(void)
{
	struct worker *w = this_worker();
	return w ? w->current : NULL;
}

static inline struct rq *cpu_rq(int cpu)
{
	return &fiber__rt.workers[cpu].rq;
}
static inline struct worker *rq_worker(struct rq *rq)
{
	return container_of(rq, struct worker, rq);
}
static inline struct rq *task_rq(struct fiber *p)
{
	return cpu_rq(READ_ONCE(p->cpu));
}
/* The kernel's test: a flag on the first cache line, which every switch touches anyway (not p->id, on another). */
static inline bool is_idle_task(struct fiber *p)
{
	return p->flags & PF_IDLE;
}
static inline bool task_on_rq_queued(struct fiber *p)
{
	return atomic_load_explicit(&p->on_rq, memory_order_relaxed) == TASK_ON_RQ_QUEUED;
}

/*
 * preempt_count (per worker, like x86's per-CPU count). The signal fences are compiler barriers only (the kernel's
 * barrier()): what the section does stays inside it. Only the worker's own thread touches the count, so nothing
 * on another thread pairs with them.
 */
static inline void preempt_disable(void)
{
	this_worker()->preempt_count++;
	atomic_signal_fence(memory_order_seq_cst);
}
static inline void preempt_enable_no_resched(void)
{
	atomic_signal_fence(memory_order_seq_cst);
	this_worker()->preempt_count--;
}

static inline bool test_tsk_need_resched(struct fiber *p)
{
	return atomic_load_explicit(&p->tif, memory_order_relaxed) & TIF_NEED_RESCHED;
}
static inline void clear_tsk_need_resched(struct fiber *p)
{
	/* Test first: the locked RMW is only paid when the flag is set. */
	if (atomic_load_explicit(&p->tif, memory_order_relaxed) & TIF_NEED_RESCHED)
		atomic_fetch_and_explicit(&p->tif, ~TIF_NEED_RESCHED, memory_order_relaxed);
}

/* ------------------------------------------------------------------------------------------------------------
 * Scheduling classes (KERNEL_MAP §5.4). core.c knows only the ordered table fiber__classes[] (and, as the kernel's
 * __pick_next_task, the fair class for the pick's fast path).
 * ---------------------------------------------------------------------------------------------------------- */

/*
 * The hooks. Every class has enqueue_task, dequeue_task, yield_task, wakeup_preempt, pick_task, put_prev_task,
 * set_next_task and task_tick; every other hook may be NULL (the core then does nothing for that class, or the
 * generic thing where a hook says so). The params hooks (check_params .. release) are asked through the class
 * that owns a policy (@policies): a fiber's policy class, which is not its sched_class while a PI boost lends it
 * the rt class; the others through p->sched_class. Two params calls use p->sched_class, where it is the policy
 * class: a new fiber's admit (fiber__sched_admit_new: no boost yet) and fiber__exit's release (only deadline has
 * one, and a boost never moves a deadline fiber).
 */
struct sched_class {
	const char *name;
	unsigned rank;	   /* position in fiber__classes[]: stop 0, dl 1, rt 2, fair 3, idle 4 */
	unsigned policies; /* bit 1u << FIBER_SCHED_*: the policies this class runs; 0 for the runtime's own classes */
	int prio_limit;	   /* a PI boost to a kernel priority below this runs the fiber in this class; 0: none */
	bool needs_tick;   /* a running fiber of this class needs the tick (a budget to enforce) */
	void (*enqueue_task)(struct rq *rq, struct fiber *p, int flags);	      /* rq->lock */
	bool (*dequeue_task)(struct rq *rq, struct fiber *p, int flags);	      /* rq->lock; false = delayed */
	void (*yield_task)(struct rq *rq);					      /* rq->lock */
	void (*wakeup_preempt)(struct rq *rq, struct fiber *p, int flags);	      /* same class as curr; rq->lock */
	struct fiber *(*pick_task)(struct rq *rq);				      /* pure; rq->lock */
	void (*put_prev_task)(struct rq *rq, struct fiber *prev, struct fiber *next); /* rq->lock */
	void (*set_next_task)(struct rq *rq, struct fiber *p, bool first);	      /* rq->lock */
	void (*task_tick)(struct rq *rq, struct fiber *curr, int queued);	      /* rq->lock */
	/* Called for every class on every new fiber (p not yet visible): its entity, so that it can enter later. */
	void (*task_fork)(struct fiber *p);
	void (*task_dead)(struct fiber *p); /* after the switch, no rq lock */
	/*
	 * Called for every class on every dead fiber, after task_dead and before its memory goes (no lock held): undo
	 * what task_fork set up that outlives a stay in the class (the deadline class's replenishment timer).
	 */
	void (*task_free)(struct fiber *p);
	void (*switched_from)(struct rq *rq, struct fiber *p);
	void (*switched_to)(struct rq *rq, struct fiber *p);
	/* Same class after a change: the priority or (a class with parameters) the parameters may be new. */
	void (*prio_changed)(struct rq *rq, struct fiber *p, int oldprio);
	void (*update_curr)(struct rq *rq);
	/* Called for every class on every attribute change, p dequeued: recompute what the class derives (weight). */
	void (*reweight_task)(struct rq *rq, struct fiber *p);
	/*
	 * Placement: the worker the class wants p on (partitioned deadline), or -1 for the generic placement
	 * (balance.c). @cpu is p's current worker. pi_lock held (or only p itself looking, fiber_migrate_enable).
	 */
	int (*select_task_rq)(struct fiber *p, int cpu, int wake_flags);
	/* Balancing: a queued fiber of this class on @src (locked) that may move to @dst (fiber__can_migrate_task). */
	struct fiber *(*pick_migratable_task)(struct rq *src, int dst);
	/* yield_to's buddy half: p (queued on rq, not running) runs next while its class allows it. rq->lock */
	void (*yield_to_task)(struct rq *rq, struct fiber *p);
	/* params (policy class): the attribute checks that depend on the policy; true if @a is valid */
	bool (*check_params)(const struct fiber_sched_attr *a);
	/* params: apply @a (validated) to p: normal_prio and the class's own parameters. Under the change pattern. */
	void (*set_params)(struct fiber *p, const struct fiber_sched_attr *a);
	/* params: p's policy-specific fields of fiber_getattr. pi_lock */
	void (*get_params)(const struct fiber *p, struct fiber_sched_attr *a);
	/*
	 * params: reserve what p needs for parameters @a on a worker of @mask; @a NULL: p's current parameters, on a
	 * new affinity mask (nothing to do while what it holds stays allowed). 0, or -EBUSY with nothing changed.
	 * pi_lock held (and the rq lock for a change of a visible fiber).
	 */
	int (*admit)(struct fiber *p, const struct fiber_sched_attr *a, const cpu_set_t *mask);
	/* params: give back what admit reserved (p leaves the policy or exits). pi_lock */
	void (*release)(struct fiber *p);
};

extern __hidden const struct sched_class fiber__stop_sched_class;
extern __hidden const struct sched_class fiber__dl_sched_class;
extern __hidden const struct sched_class fiber__rt_sched_class;
extern __hidden const struct sched_class fiber__fair_sched_class;
extern __hidden const struct sched_class fiber__idle_sched_class;
#define NR_SCHED_CLASSES 5
extern __hidden const struct sched_class *const fiber__classes[NR_SCHED_CLASSES];

/* sched_class_above(a, b): a has a higher priority than b (the kernel compares section addresses). */
static inline bool sched_class_above(const struct sched_class *a, const struct sched_class *b)
{
	return a->rank < b->rank;
}

/* The class that runs each policy (from the classes' @policies, filled in when the library is loaded); NULL: none. */
#define NR_POLICIES 32
extern __hidden const struct sched_class *fiber__policy_classes[NR_POLICIES];
static inline const struct sched_class *policy_class(uint32_t policy)
{
	return policy < NR_POLICIES ? fiber__policy_classes[policy] : NULL;
}

/* The worker p's class places it on (its select_task_rq hook), or -1: the generic placement decides. */
static inline int class_select_cpu(struct fiber *p, int cpu, int wake_flags)
{
	return p->sched_class->select_task_rq ? p->sched_class->select_task_rq(p, cpu, wake_flags) : -1;
}

static inline bool cpu_allowed(struct fiber *p, int cpu)
{
	return CPU_ISSET(cpu, &p->cpus_mask);
}

/* ------------------------------------------------------------------------------------------------------------
 * Cross-file internals (fiber__*)
 * ---------------------------------------------------------------------------------------------------------- */

/* asm/switch_x86_64_sysv_elf.S */
__hidden struct fiber *fiber__switch(struct fiber *prev, struct fiber *next);
__hidden void fiber__trampoline(void);

/* core.c */
__hidden void fiber__schedule_tail(struct fiber *prev);
__hidden _Noreturn void fiber__exit(void *retval);
__hidden void fiber__schedule(void);
__hidden void fiber__schedule_idle(void);
__hidden int fiber__try_to_wake_up(struct fiber *p, unsigned state, int wake_flags);

/*
 * A batch of wake-ups onto the caller's own worker (a reap of its ring's completions): fiber__try_to_wake_up_batch
 * claims each fiber as try_to_wake_up does (TASK_WAKING, under its pi_lock) and, when it is to run on this worker
 * where it already belongs, queues it here instead of taking the rq lock for it; fiber__ttwu_batch_flush then
 * activates them all under one rq lock and one clock read, as the kernel's sched_ttwu_pending does its wakelist.
 * A queued fiber is WAKING and on no runqueue until the flush: nothing else can wake, run or move it meanwhile
 * (as on a wakelist), so the caller must flush before it can switch. The owner thread only, on the stack.
 *
 * irq_mark (non-zero): the completion work since then is excluded from the running fiber's charge at the flush
 * and split evenly over the woken fibers' irq_debt, at most irq_cap each (uring.c's irq accounting).
 */
struct ttwu_batch {
	struct fiber *head, *last;
	unsigned n;
	int wake_flags;
	uint64_t irq_mark, irq_cap;
};

__hidden int fiber__try_to_wake_up_batch(struct fiber *p, unsigned state, int wake_flags, struct ttwu_batch *b);
__hidden uint64_t fiber__ttwu_batch_flush(struct ttwu_batch *b); /* the rq clock it used; 0 if empty */
__hidden int fiber__wake_up_process(struct fiber *p);
__hidden void fiber__wake_up_new_task(struct fiber *p);
__hidden void fiber__resched_curr(struct rq *rq);
__hidden void fiber__sched_ttwu_pending(struct worker *w);
__hidden void fiber__activate_task(struct rq *rq, struct fiber *p, int flags);
__hidden void fiber__deactivate_task(struct rq *rq, struct fiber *p, int flags);
__hidden void fiber__wakeup_preempt(struct rq *rq, struct fiber *p, int flags);
__hidden void fiber__update_rq_clock(struct rq *rq);
__hidden void fiber__get_task_struct(struct fiber *p);
__hidden void fiber__put_task_struct(struct fiber *p);
__hidden void fiber__preempt_point(void);
__hidden void fiber__set_current_state(unsigned state);
__hidden void fiber__kick_worker(struct worker *w);
__hidden struct rq *fiber__task_rq_lock(struct fiber *p);
__hidden void fiber__task_rq_unlock(struct rq *rq, struct fiber *p);
__hidden void fiber__sched_tick(struct worker *w);
__hidden void fiber__tick_dep(struct rq *rq);
__hidden void fiber__move_queued_task(struct rq *rq, struct fiber *p, int new_cpu, bool balance);
__hidden void fiber__detach_task(struct rq *rq, struct fiber *p, int new_cpu, bool balance);
__hidden void fiber__attach_task(struct rq *dst, struct fiber *p, bool balance);
__hidden void fiber__affine_move_task(struct rq *rq, struct fiber *p);
__hidden void fiber__do_sched_yield(struct worker *w);
__hidden void fiber__tick_update(struct rq *rq);

/* core.c: the change pattern (fiber_setattr, fiber__pi_setprio): begin, change class/prio/params, end */
struct sched_change {
	const struct sched_class *prev_class;
	int oldprio;
	bool queued, running;
};
__hidden void fiber__sched_change_begin(struct rq *rq, struct fiber *p, struct sched_change *ch);
__hidden void fiber__sched_change_end(struct rq *rq, struct fiber *p, struct sched_change *ch);

static inline void add_nr_running(struct rq *rq, unsigned n)
{
	atomic_store_explicit(&rq->nr_running, atomic_load_explicit(&rq->nr_running, memory_order_relaxed) + n,
			      memory_order_relaxed);
}
static inline void sub_nr_running(struct rq *rq, unsigned n)
{
	atomic_store_explicit(&rq->nr_running, atomic_load_explicit(&rq->nr_running, memory_order_relaxed) - n,
			      memory_order_relaxed);
}

/* clock.c: host steal of the worker threads (see there) */
#define STEAL_SAMPLE_NS 1000000ull /* the owner samples its steal once a millisecond (a ~0.4 us system call) */
#define STEAL_LONG_NS 50000ull	   /* and before charging a run this long */
__hidden void fiber__steal_init(struct worker *w);
__hidden void fiber__steal_exit(struct worker *w);
__hidden void fiber__steal_sample(struct rq *rq);
__hidden void fiber__steal_slept(struct worker *w, uint64_t t0);

/* The time no fiber may be charged for: host steal, and I/O completion work done in a fiber's time slot. */
static inline uint64_t fiber__rq_excluded(struct rq *rq)
{
	return atomic_load_explicit(&rq->excl_ns, memory_order_relaxed);
}

/* Add @ns to @rq's excluded time. Context: @rq's own worker (the only writer). */
static inline void fiber__rq_exclude(struct rq *rq, uint64_t ns)
{
	atomic_store_explicit(&rq->excl_ns, atomic_load_explicit(&rq->excl_ns, memory_order_relaxed) + ns,
			      memory_order_relaxed);
}

/*
 * Charge the running fiber the time since it was last charged, less the steal and irq time in it (the kernel's
 * rq_clock_task delta), plus the completion work done for it meanwhile (irq_debt); returns the delta (ns).
 * rq->lock held.
 */
static inline int64_t fiber__update_curr_common(struct rq *rq)
{
	struct fiber *curr = rq->curr;
	int64_t delta = (int64_t)(rq->clock - curr->exec_start);
	uint64_t excl, gone;

	if (delta <= 0)
		return 0;
	curr->exec_start = rq->clock;
	excl = fiber__rq_excluded(rq);
	gone = excl - rq->excl_seen;
	/*
	 * A long run may hold a host preemption the periodic sample has not seen yet: look now. Long in the fiber's
	 * own time: a run made long by the I/O completion work excluded from it (a busy worker's io_uring_enter) is
	 * not, or every such enter would cost a steal sample (a system call).
	 */
	/* delta - min(gone, delta) >= STEAL_LONG_NS, with the common short run decided by its first test */
	if (unlikely(delta >= (int64_t)STEAL_LONG_NS && (uint64_t)delta - STEAL_LONG_NS >= gone) &&
	    rq->steal_next != UINT64_MAX) {
		fiber__steal_sample(rq);
		excl = fiber__rq_excluded(rq);
		gone = excl - rq->excl_seen;
	}
	if (unlikely(gone)) {
		rq->excl_seen = excl;
		delta -= gone < (uint64_t)delta ? (int64_t)gone : delta;
	}
	if (unlikely(atomic_load_explicit(&curr->irq_debt, memory_order_relaxed)))
		delta += (int64_t)atomic_exchange_explicit(&curr->irq_debt, 0, memory_order_relaxed);
	if (!delta)
		return 0;
	curr->sum_exec_runtime += (uint64_t)delta;
	return delta;
}

/* @p starts running on @rq at rq->clock: steal sampled before now was not its. rq->lock held. */
static inline void fiber__set_exec_start(struct rq *rq, struct fiber *p)
{
	p->exec_start = rq->clock;
	rq->excl_seen = fiber__rq_excluded(rq);
}

/* Kernel priority numbering (lower is more important): dl -1, rt 0..98, fair 100..139. */
#define MAX_RT_PRIO 100
#define DEFAULT_PRIO 120
#define NICE_TO_PRIO(nice) ((nice) + DEFAULT_PRIO)
#define PRIO_TO_NICE(prio) ((prio)-DEFAULT_PRIO)

/* sched_stop.c: per-worker stopper fibers and their work */
__hidden int fiber__stoppers_start(void);
__hidden void fiber__stoppers_stop(void);
__hidden void fiber__stop_one_cpu_nowait(int cpu, struct cpu_stop_work *work);
/* fiber.c: a runtime fiber (the stoppers) */
__hidden struct fiber *fiber__spawn_kthread(int cpu, void *(*fn)(void *), void *arg, const struct sched_class *cls,
					    const char *name);
/* sched_fair.c, sched_rt.c, sched_dl.c: a worker's class runqueues */
__hidden void fiber__init_cfs_rq(struct cfs_rq *cfs);
/* sched_fair.c: the pick's fast path (core.c pick_next_task), put_prev_task and set_next_task included */
__hidden struct fiber *fiber__pick_next_task_fair(struct rq *rq, struct fiber *prev);
__hidden void fiber__init_rt_rq(struct rt_rq *rt);
__hidden void fiber__init_dl_rq(struct dl_rq *dl);

/* syscalls.c: a spawn's side of the attributes */
__hidden int fiber__sched_attr_check_spawn(const struct fiber_sched_attr *a);
__hidden int fiber__sched_admit_new(struct fiber *p, const struct fiber_sched_attr *a);
__hidden void fiber__sched_fork(struct fiber *p, const struct fiber_sched_attr *a);

/* wake_q (collect wake-ups under a lock, issue them after it) */
struct wake_q_head {
	struct wake_q_node *first;
	struct wake_q_node **lastp;
};
#define WAKE_Q_TAIL ((struct wake_q_node *)0x01)
#define DEFINE_WAKE_Q(name) struct wake_q_head name = { WAKE_Q_TAIL, &name.first }
__hidden void fiber__wake_up_q(struct wake_q_head *head);

/* worker.c */
__hidden int fiber__workers_start(unsigned n);
__hidden void fiber__workers_stop(void);
__hidden struct worker *fiber__spare_claim(void);	     /* worker.c: a free spare thread, started if need be */
__hidden void fiber__offload_wake(struct fiber *p, int cpu); /* core.c: wake a TASK_OFFLOAD fiber on @cpu */

/* monitor.c: the tick, stuck workers, periodic balance */
__hidden int fiber__monitor_start(void);
__hidden void fiber__monitor_stop(void);
__hidden void fiber__monitor_kick(void);
__hidden void fiber__monitor_kick_precise(void);
__hidden void fiber__tick_precise(struct rq *rq, bool on); /* core.c: a deadline fiber's set_next/put_prev */
__hidden void fiber__monitor_counts(unsigned *scans, unsigned *woken); /* for tests */

/*
 * fiber__rt.nr_fibers without a shared cache line per spawn and per exit. A worker takes LIVE_BATCH counts at a
 * time into its live_credit and spends one per spawn; an exit (reaped on whichever worker) gives one back to that
 * worker's credit, and more than 2 * LIVE_BATCH go back to nr_fibers. So nr_fibers = live fibers + the credits,
 * never below the live count: it can only reach 0 with no fiber left. A worker hands its whole credit back once
 * per idle period (fiber__live_flush, before it polls or sleeps), which is when the last exits bring nr_fibers to
 * 0 and wake stop (spare threads too: they run the same idle loop). Plain threads count on nr_fibers itself.
 */
#define LIVE_BATCH 32

static inline void fiber__live_get(struct worker *w) /* the spawner's worker, NULL on a plain thread */
{
	if (likely(w)) {
		int c = atomic_load_explicit(&w->live_credit, memory_order_relaxed);

		if (unlikely(c <= 0)) {
			atomic_fetch_add_explicit(&fiber__rt.nr_fibers, LIVE_BATCH, memory_order_relaxed);
			c += LIVE_BATCH;
		}
		atomic_store_explicit(&w->live_credit, c - 1, memory_order_relaxed); /* only @w writes it */
		return;
	}
	atomic_fetch_add_explicit(&fiber__rt.nr_fibers, 1, memory_order_relaxed);
}

__hidden void fiber__live_sub(int n);
__hidden void fiber__live_flush(struct worker *w);

/* An exit, reaped on @w (finish_task_dead). */
static inline void fiber__live_put(struct worker *w)
{
	int c = atomic_load_explicit(&w->live_credit, memory_order_relaxed) + 1;

	if (unlikely(c > 2 * LIVE_BATCH)) {
		c -= LIVE_BATCH;
		fiber__live_sub(LIVE_BATCH); /* never the last: the credit left is counted too */
	}
	atomic_store_explicit(&w->live_credit, c, memory_order_relaxed);
}

static inline bool worker_stuck(int cpu)
{
	return atomic_load_explicit(&fiber__rt.workers[cpu].stuck, memory_order_relaxed);
}
__hidden void fiber__idle_mask_set(int cpu, bool idle);
__hidden int fiber__first_idle_worker(const cpu_set_t *allowed);

/* balance.c: placement and balancing */
__hidden int fiber__select_task_rq_many(struct fiber *p, int wake_flags);

/*
 * select_task_rq (pi_lock held): a fiber that is migration-disabled, or may run on one worker only and is there,
 * stays where it is (a one-worker runtime: every wake-up), inline in try_to_wake_up; the rest is the full choice
 * (balance.c).
 */
static inline int fiber__select_task_rq(struct fiber *p, int wake_flags)
{
	/* migrate_disable wins over everything: the fiber stays where it is until migrate_enable. */
	if (p->migration_disabled)
		return p->cpu;
	if (p->nr_cpus_allowed == 1 && cpu_allowed(p, p->cpu))
		return p->cpu;
	return fiber__select_task_rq_many(p, wake_flags);
}
__hidden bool fiber__can_migrate_task(struct rq *src, struct fiber *p, int dst);
__hidden bool fiber__newidle_balance(struct worker *w);
__hidden bool fiber__balance_move_one(struct rq *src, struct rq *dst);
__hidden void fiber__wakep(struct rq *rq);
__hidden void fiber__idle_polling(bool on);

/* clock.c: sched_clock(), nanoseconds, monotonic, cheap (TSC scaled when it is invariant) */
__hidden uint64_t fiber__sched_clock(void);
__hidden void fiber__clock_init(void);

/* env.c: what fiber_runtime_start runs with, after the config and the environment */
struct fiber__start_cfg {
	unsigned workers;
	size_t stack_size;
	unsigned tick_hz;
	unsigned io_entries;
	unsigned flags;
	unsigned long long rr_timeslice_ms;
	unsigned spare_threads; /* FIBER_SPARE_THREADS (default: one per worker) */
	bool pin;
	int host_policy, host_priority;
};
__hidden int fiber__config_resolve(const struct fiber_config *cfg, struct fiber__start_cfg *out);
__hidden int fiber__parse_number(const char *s, bool suffix, unsigned long long *out);
__hidden void fiber__start_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
__hidden void fiber__worker_create_error(unsigned id, unsigned n, int err);

/* stack.c */
__hidden struct fiber *fiber__fiber_alloc(size_t size);
__hidden void fiber__fiber_free(struct fiber *p);
__hidden void fiber__stack_cache_drain(struct stack_cache *c);
__hidden void fiber__stack_cache_init(struct stack_cache *c, unsigned cap);
__hidden unsigned fiber__stack_cache_trim(void);
__hidden unsigned fiber__stack_cached(void);
__hidden void fiber__stack_prefault(void);
__hidden void fiber__stack_chunk_peek(char **next, char **end, char **prefaulted, size_t *unit);
__hidden void *fiber__frame_init(void *stack_top, void (*entry)(void));
__hidden void *fiber__fiber_frame_init(struct fiber *p);
__hidden size_t fiber__page_size(void);
static inline size_t page_round(size_t size)
{
	size_t pg = fiber__page_size();

	return (size + pg - 1) & ~(pg - 1);
}
__hidden size_t fiber__stack_guard_size(void);
__hidden void fiber__stack_guard_markers(bool on);
__hidden void fiber__overflow_setup(void);
__hidden void fiber__overflow_teardown(void);

/* runtime.c: plain threads inside a runtime call hold the runtime open (see runtime.c) */
__hidden bool fiber__rt_enter(void);
__hidden void fiber__rt_exit_thread(void);
/* Inline: every runtime call of a fiber passes here (fiber_spawn's fast path), and a fiber has nothing to do. */
static inline void fiber__rt_exit(void)
{
	if (!this_worker())
		fiber__rt_exit_thread();
}

/* fiber.c */
__hidden void fiber__fiber_unlist(struct fiber *p);

/* timer.c */
__hidden void fiber__timer_base_init(struct timer_base *b);
__hidden void fiber__timer_base_destroy(struct timer_base *b);
__hidden void fiber__timer_init(struct fiber_timer *t, void (*fn)(struct fiber_timer *t), struct fiber *p);
__hidden bool fiber__timer_add(struct timer_base *b, struct fiber_timer *t, uint64_t expires, struct fiber *p);
__hidden void fiber__timer_del(struct fiber_timer *t);
__hidden void fiber__run_timers(struct timer_base *b, uint64_t now);

/* wait.c */
__hidden void fiber__init_waitqueue_head(struct wait_queue_head *wq);
__hidden void fiber__prepare_to_wait(struct wait_queue_head *wq, struct wait_queue_entry *e, unsigned state);
__hidden void fiber__finish_wait(struct wait_queue_head *wq, struct wait_queue_entry *e);
__hidden void fiber__wake_up(struct wait_queue_head *wq, unsigned mode, int nr);
__hidden void fiber__wake_up_sync(struct wait_queue_head *wq, unsigned mode);
__hidden bool fiber__signal_pending(struct fiber *p);

/* sync.c: fiber-local storage destructors, run by the exiting fiber itself */
__hidden void fiber__keys_exit(struct fiber *p);
/* core.c: the priority-inheritance boost of fiber_mutex (rt_mutex_setprio); INT_MAX ends it */
__hidden void fiber__pi_setprio(struct fiber *p, int prio);

/* stats.c: debugging configuration (env FIBER_DUMP_SIGNAL, FIBER_DEADLOCK_MS, FIBER_TRACE), the debug thread */
__hidden int fiber__debug_config(struct fiber_config *c);
__hidden void fiber__debug_start(const struct fiber_config *c);
__hidden void fiber__debug_stop(void);

/* trace.c: the timeline trace. The hooks cost one load and a predicted branch while tracing is off. */
extern __hidden atomic_int fiber__trace_on;
__hidden int fiber__trace_start(const char *path, unsigned nr_workers);
__hidden void fiber__trace_stop(void);
__hidden void fiber__trace_switch_slow(struct worker *w, struct fiber *prev, struct fiber *next);
__hidden void fiber__trace_wake_slow(struct fiber *p);
__hidden void fiber__trace_migrate_slow(struct fiber *p, int from, int to);
__hidden void fiber__trace_name_slow(struct fiber *p);
static inline bool fiber__tracing(void)
{
	return unlikely(atomic_load_explicit(&fiber__trace_on, memory_order_relaxed));
}
/* context_switch, rq->lock held, rq clock fresh */
static inline void fiber__trace_switch(struct worker *w, struct fiber *prev, struct fiber *next)
{
	if (fiber__tracing())
		fiber__trace_switch_slow(w, prev, next);
}
/* try_to_wake_up, once it has made p runnable (@success) */
static inline void fiber__trace_wake(struct fiber *p, int success)
{
	if (fiber__tracing() && success)
		fiber__trace_wake_slow(p);
}
static inline void fiber__trace_migrate(struct fiber *p, int from, int to)
{
	if (fiber__tracing())
		fiber__trace_migrate_slow(p, from, to);
}
/* a new fiber, once named and listed */
static inline void fiber__trace_name(struct fiber *p)
{
	if (fiber__tracing())
		fiber__trace_name_slow(p);
}

/*
 * Allocation of runtime objects (jemalloc's explicit API, or malloc: FIBER_LIBC_MALLOC).
 * fiber__fail_alloc is a test hook for the allocation-failure paths, checked by every allocation the runtime
 * makes (fiber__malloc/zalloc and its own mmaps: stacks, descriptor slabs, alternate signal stacks): 0 off, -1
 * every allocation fails, N > 0 the N-th allocation from now fails (once). fiber__alloc_failures counts the
 * failures it caused, fiber__alloc_calls the allocations it saw while armed.
 */
extern __hidden atomic_long fiber__fail_alloc;
extern __hidden atomic_ulong fiber__alloc_failures, fiber__alloc_calls;
__hidden bool fiber__alloc_fail_slow(void);
static inline bool fiber__alloc_should_fail(void)
{
	if (likely(!atomic_load_explicit(&fiber__fail_alloc, memory_order_relaxed)))
		return false;
	return fiber__alloc_fail_slow();
}
__hidden void *fiber__malloc(size_t size);
__hidden void *fiber__zalloc(size_t size);
__hidden void fiber__free(void *ptr, size_t size);
__hidden void *fiber__zalloc_lines(size_t size);
__hidden void fiber__free_lines(void *ptr, size_t size);

/* White-box test hooks (NULL in production; one predictable branch per switch). */
struct fiber__test_hooks {
	/* In finish_task_switch, on the resumed fiber's stack, before last->on_cpu is cleared. */
	void (*finish_task_switch)(struct fiber *curr, struct fiber *last, int worker);
};
extern __hidden struct fiber__test_hooks *_Atomic fiber__hooks;

/* notifier static key (KERNEL_MAP §8 N4) */
extern __hidden atomic_int fiber__preempt_notifier_key;

#endif /* FIBER_INTERNAL_H */
