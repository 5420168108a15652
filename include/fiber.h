/*
 * libfiber: a user-space M:N green-thread runtime for Linux x86_64.
 *
 * The Linux scheduler core moved into a process: worker pthreads play CPUs, fibers play tasks, and every
 * switch runs schedule() -> __schedule() -> context_switch() -> fiber_switch() -> finish_task_switch().
 *
 * Conventions (the whole header):
 *  - Every function that can fail returns int (or ssize_t): >= 0 on success, -errno on failure. The library
 *    never sets errno for its own results; it does keep each fiber's errno across switches.
 *  - "Context:" says where a call is allowed: fiber (inside a fiber), any thread (a fiber or a plain pthread),
 *    not in a notifier.
 *  - Calls that need a running runtime return -ESRCH before fiber_runtime_start() and after fiber_runtime_stop().
 */
#ifndef FIBER_H
#define FIBER_H

/*
 * Feature-test macros: this header defines none, so it never changes what the system headers declare to the code
 * around it, whatever the include order. It needs only the cpu_set_t type, which glibc's <sched.h> always declares.
 * Filling fiber_attr.affinity with CPU_ZERO/CPU_SET needs _GNU_SOURCE, as sched_setaffinity(2) does: define it
 * before the first #include (or pass -D_GNU_SOURCE). C libraries that declare cpu_set_t only under _GNU_SOURCE
 * (musl) get the #error below instead of a confusing one.
 */
#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#if !defined(__GLIBC__) && !defined(_GNU_SOURCE)
#error "fiber.h needs cpu_set_t: define _GNU_SOURCE before the first #include (or compile with -D_GNU_SOURCE)"
#endif

/*
 * Without _GNU_SOURCE, <sched.h> declares no CPU_* macros. Rather than "implicit declaration of CPU_SET", code that
 * uses one then fails with a message saying what to do. Only names that are not defined get these stand-ins, and
 * they can only fail to compile: no code that compiles changes its meaning.
 */
#if !defined(__cplusplus) && !defined(CPU_SET)
#define FIBER__NEED_GNU_SOURCE(what)                                                                                \
	((void)sizeof(struct { _Static_assert(0, what " needs _GNU_SOURCE defined before the first #include "   \
						  "(or -D_GNU_SOURCE)"); int fiber__x; }))
#define CPU_ZERO(set) FIBER__NEED_GNU_SOURCE("CPU_ZERO")
#define CPU_SET(cpu, set) FIBER__NEED_GNU_SOURCE("CPU_SET")
#define CPU_CLR(cpu, set) FIBER__NEED_GNU_SOURCE("CPU_CLR")
#define CPU_ISSET(cpu, set) FIBER__NEED_GNU_SOURCE("CPU_ISSET")
#define CPU_COUNT(set) FIBER__NEED_GNU_SOURCE("CPU_COUNT")
#endif

/* fiber_exit() does not return; spelled so that C11, C23 and C++ compilers all accept it. */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define FIBER_NORETURN [[noreturn]]
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && __STDC_VERSION__ < 202311L
#define FIBER_NORETURN _Noreturn
#else
#define FIBER_NORETURN __attribute__((__noreturn__))
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden; what this header declares is its exported ABI. */
#pragma GCC visibility push(default)

#define FIBER_VERSION_MAJOR 0
#define FIBER_VERSION_MINOR 1
#define FIBER_VERSION_PATCH 0

/* ------------------------------------------------------------------------------------------------------------
 * Runtime
 * ---------------------------------------------------------------------------------------------------------- */

struct fiber_config {
	unsigned workers;    /* worker pthreads; 0 = the CPUs the process may use, sched_getaffinity (env FIBER_WORKERS) */
	size_t stack_size;   /* default fiber stack; 0 = 256 KiB (env FIBER_STACK_SIZE) */
	unsigned tick_hz;    /* scheduler tick per worker; 0 = 1000 (env FIBER_TICK_HZ), at most 100000. No signal:
				the runtime's monitor thread marks the tick pending (see fiber_runtime_start) */
	unsigned io_entries; /* io_uring SQ entries per worker; 0 = 256 */
	unsigned flags;      /* FIBER_CFG_* */
	/*
	 * The host scheduling policy of the worker threads (added at the end: the layout above is unchanged):
	 * SCHED_OTHER (0) with priority 0 = the workers inherit the starting thread's policy; SCHED_FIFO or SCHED_RR
	 * (from <sched.h>) with priority 1..99 keeps the workers off the host's ordinary run queue, for realtime
	 * fibers. Env FIBER_WORKER_SCHED ("other", "fifo:PRIO", "rr:PRIO") applies when host_policy is SCHED_OTHER.
	 */
	int host_policy;
	int host_priority;
};

/*
 * Worker pinning. By default the worker threads are not pinned: the host scheduler places them, as it places Go's
 * threads. FIBER_CFG_PIN (or FIBER_PIN=1 in the environment, when neither flag is given) pins worker i to the i-th
 * CPU the process may use (round robin when there are more workers than CPUs), as a worker plays a CPU.
 * FIBER_CFG_NO_PIN is the default and is still accepted (it overrides FIBER_PIN); both flags together are -EINVAL.
 */
#define FIBER_CFG_NO_PIN 0x1u
#define FIBER_CFG_PIN 0x2u

/*
 * Stack overflow reports. By default the runtime installs a SIGSEGV handler (SA_ONSTACK, on a per-worker alternate
 * signal stack) that recognises a fault in the running fiber's stack guard, prints the fiber's id, name, stack
 * bounds, the faulting address and a backtrace on stderr, then lets SIGSEGV take its default action (the core dump
 * shows the faulting context). Any other SIGSEGV goes to the handler installed before fiber_runtime_start(), or to
 * the default action. FIBER_CFG_NO_OVERFLOW_REPORT leaves SIGSEGV alone (an overflow then dies of a plain SIGSEGV,
 * and no alternate signal stacks are made).
 */
#define FIBER_CFG_NO_OVERFLOW_REPORT 0x4u

/* Upper bounds accepted by fiber_runtime_start() and fiber_spawn(). */
#define FIBER_MAX_WORKERS 1024                   /* CPU_SETSIZE: affinity masks are cpu_set_t */
#define FIBER_STACK_MIN (16u * 1024u)            /* smallest stack fiber_spawn accepts */
#define FIBER_STACK_MAX ((size_t)1 << 30)        /* largest stack fiber_spawn accepts (1 GiB) */

/*
 * fiber_config_init - fill @cfg with the defaults (every field 0, which means "the default").
 * Context: any thread.
 */
void fiber_config_init(struct fiber_config *cfg);

/*
 * fiber_runtime_start - create the workers and start scheduling.
 * @cfg: NULL for the defaults. FIBER_WORKERS, FIBER_STACK_SIZE and FIBER_TICK_HZ in the environment override
 *       workers, stack_size and tick_hz when those are 0; FIBER_RR_TIMESLICE_MS sets the SCHED_RR time slice
 *       (default 100 ms); FIBER_PIN and FIBER_WORKER_SCHED: see FIBER_CFG_PIN and host_policy. Environment numbers
 *       are decimal digits only (no sign, blanks or base prefix, nothing that overflows); FIBER_STACK_SIZE alone
 *       takes a K, M or G suffix. An empty variable counts as unset.
 * Every failure prints one line on stderr ("libfiber: ...") saying what failed and what to do.
 * Besides the workers it starts one monitor thread: it marks each worker's tick pending at tick_hz while the tick
 * is needed, runs the timers and moves the queued fibers of a worker stuck in a blocking system call or in a loop
 * without preemption points, and balances busy workers. The runtime sends no signal and installs no signal
 * handler for scheduling (only the stack-overflow report's SIGSEGV handler, see FIBER_CFG_NO_OVERFLOW_REPORT),
 * so system calls made from fibers never fail with EINTR because of libfiber.
 * Returns 0, -EBUSY if a runtime is already running (or the caller is a fiber), -EINVAL for a bad field or
 * environment value, -EPERM when the process may not give its workers host_policy (it needs CAP_SYS_NICE or an
 * RLIMIT_RTPRIO of at least host_priority), -ENOMEM, or the -errno of a failed pthread_create (-EAGAIN).
 * Context: any thread that is not a fiber.
 */
int fiber_runtime_start(const struct fiber_config *cfg);

/*
 * fiber_runtime_stop - wait until every fiber has exited, then stop and join the workers and free everything.
 * Fibers may spawn fibers until the last one has exited. A fiber_spawn() from a plain thread racing the stop either
 * spawns a fiber that runs (stop waits for it) or returns -ESRCH, which it does from the moment stop is called;
 * plain threads' other calls (wake-ups, cancel) keep working until the workers are gone. Handles stay safe: see
 * fiber_join().
 * Returns 0, -ESRCH if no runtime is running, -EDEADLK when called from a fiber (it would wait for itself).
 * Context: any thread that is not a fiber.
 */
int fiber_runtime_stop(void);

/*
 * fiber_run - start the runtime with @cfg, run @fn(@arg) as a fiber, wait until every fiber has exited, stop.
 * Returns 0 or the -errno of fiber_runtime_start() / fiber_spawn() (then @fn never ran).
 * Context: any thread that is not a fiber.
 */
int fiber_run(const struct fiber_config *cfg, void (*fn)(void *), void *arg);

/* fiber_worker_count - number of workers of the running runtime, 0 when none. Context: any thread. */
unsigned fiber_worker_count(void);

/* fiber_worker_id - the worker the calling fiber runs on now, -1 outside a fiber. Context: any thread. */
int fiber_worker_id(void);

/* fiber_version - "major.minor.patch". Context: any thread. */
const char *fiber_version(void);

/* ------------------------------------------------------------------------------------------------------------
 * Scheduling attributes (used by fiber_attr below; the calls are in "Scheduling")
 * ---------------------------------------------------------------------------------------------------------- */

#define FIBER_SCHED_NORMAL 0   /* fair class (CFS/EEVDF), nice -20..19 */
#define FIBER_SCHED_FIFO 1     /* rt class, priority 1..99, runs until it blocks or yields */
#define FIBER_SCHED_RR 2       /* rt class, priority 1..99, round-robin time slice */
#define FIBER_SCHED_BATCH 3    /* fair class, never wakeup-preempts */
#define FIBER_SCHED_IDLE 5     /* fair class with the minimum weight */
#define FIBER_SCHED_DEADLINE 6 /* dl class, EDF + CBS with runtime <= deadline <= period */

struct fiber_sched_attr {
	uint32_t policy;
	int32_t nice;         /* NORMAL, BATCH, IDLE */
	uint32_t priority;    /* FIFO, RR: 1..99, higher runs first */
	uint64_t runtime_ns;  /* DEADLINE: budget per period */
	uint64_t deadline_ns; /* DEADLINE: relative deadline */
	uint64_t period_ns;   /* DEADLINE: period, 0 = deadline */
};

/* ------------------------------------------------------------------------------------------------------------
 * Fibers
 * ---------------------------------------------------------------------------------------------------------- */

typedef struct fiber fiber_t;

#define FIBER_ATTR_DETACHED 0x1u /* the fiber cannot be joined; its resources go when it exits */

struct fiber_attr {
	const char *name;              /* copied (up to 31 bytes); shown in dumps, traces and the debugger */
	size_t stack_size;             /* 0 = runtime default; else FIBER_STACK_MIN..FIBER_STACK_MAX */
	struct fiber_sched_attr sched; /* policy and parameters, see Scheduling */
	cpu_set_t affinity;            /* bit i = may run on worker i; empty = any worker */
	unsigned flags;                /* FIBER_ATTR_DETACHED */
};

/* fiber_attr_init - NORMAL, nice 0, default stack, any worker, joinable, no name. Context: any thread. */
void fiber_attr_init(struct fiber_attr *attr);

/*
 * fiber_spawn - create a fiber that runs @fn(@arg) and make it runnable.
 * @out: receives the handle; NULL makes the fiber detached.
 * @attr: NULL for the defaults.
 * The new fiber is queued on the calling worker (any allowed one from a plain pthread) and does not preempt its
 * parent; idle workers pull queued fibers.
 * Returns 0, -EINVAL (@fn NULL, a stack size outside FIBER_STACK_MIN..FIBER_STACK_MAX, unknown flags, an
 * affinity that names no existing worker, or scheduling attributes that fiber_setattr() would refuse), -EBUSY
 * (a DEADLINE policy that admission refuses, as fiber_setattr() would: no allowed worker has the bandwidth left),
 * -ENOMEM, -ESRCH (no runtime). A DEADLINE fiber is admitted before it is queued and then runs on the worker that
 * holds its bandwidth. If it fails, @fn is never called.
 * Context: any thread.
 */
int fiber_spawn(fiber_t **out, const struct fiber_attr *attr, void *(*fn)(void *), void *arg);

/*
 * fiber_join - wait for @f to exit, store its return value in @retval (if not NULL) and release it.
 * Returns 0, -EINVAL (@f NULL, detached, already joined or being joined by someone else), -EDEADLK (@f is the
 * caller), -ECANCELED (the calling fiber was cancelled; @f stays joinable), -ESRCH (@f is a released handle of an
 * earlier runtime).
 * Handle lifetime: a joinable fiber's handle stays valid until fiber_join() returns 0 or fiber_detach() is called,
 * also after the fiber exited and after fiber_runtime_stop() (joining it then returns at once). Descriptor memory
 * is never freed while the process lives (only its pages are given back), so a call on a released handle never
 * touches freed memory: it returns -EINVAL in the runtime that released it and -ESRCH afterwards - unless a new
 * fiber has since been given the same descriptor (as with pthread ids, a released handle must not be used again).
 * Context: any thread (a plain pthread blocks in the kernel).
 */
int fiber_join(fiber_t *f, void **retval);

/*
 * fiber_detach - make @f release its resources when it exits (at once if it has exited); it can no longer be
 * joined. Works also after the runtime stopped (see fiber_join() for handle lifetime).
 * Returns 0, -EINVAL (@f NULL, already detached, or being joined), -ESRCH (a released handle of an earlier runtime).
 * Context: any thread.
 */
int fiber_detach(fiber_t *f);

/*
 * fiber_exit - end the calling fiber with @retval; returning @retval from the fiber's function is the same.
 * Outside a fiber it prints a warning and ends the calling pthread with pthread_exit(@retval).
 * Context: fiber.
 */
FIBER_NORETURN void fiber_exit(void *retval);

/* fiber_self - the calling fiber, NULL outside a fiber (plain pthreads, the idle loop). Context: any thread. */
fiber_t *fiber_self(void);

/*
 * fiber_id - a number unique for the life of the process, never reused; 0 for NULL or a released handle. A
 * joinable fiber keeps its id until it is joined or detached. Context: any thread.
 */
uint64_t fiber_id(const fiber_t *f);

/*
 * fiber_yield - give the worker to another runnable fiber through the class's yield (sched_yield semantics:
 * a fair fiber goes behind its peers, a FIFO/RR fiber to the tail of its priority, a DEADLINE fiber gives up the
 * rest of its budget). Outside a fiber it calls sched_yield().
 * Context: any thread.
 */
void fiber_yield(void);

/*
 * fiber_sleep - sleep at least @ns nanoseconds on the worker's timer (0 is a yield).
 * Returns 0, or -ECANCELED if the fiber was cancelled (before or while sleeping). Outside a fiber it calls
 * nanosleep() and returns 0 or -EINTR.
 * Context: any thread.
 */
int fiber_sleep(uint64_t ns);

/*
 * fiber_cancel - set @f's cancel flag and wake it from an interruptible wait. From then on every cancellation
 * point (fiber_sleep, fiber_join, and the interruptible waits of later APIs) returns -ECANCELED to it: the analog
 * of a pending fatal signal and TASK_INTERRUPTIBLE. The fiber is not unwound.
 * Returns 0, -EINVAL (@f NULL), -ESRCH (@f has exited or no runtime).
 * Context: any thread.
 */
int fiber_cancel(fiber_t *f);

/* ------------------------------------------------------------------------------------------------------------
 * Scheduling (the kernel's policies and classes)
 * ---------------------------------------------------------------------------------------------------------- */

/*
 * fiber_setattr - change @f's (NULL = self) policy and parameters, validated as sched_setattr(2) validates them.
 * Returns 0, -EINVAL, -EBUSY (DEADLINE admission failed; nothing changed), -ESRCH (@f has exited or no runtime).
 * It allocates nothing, so it cannot fail for memory. The change takes effect at once, also on a fiber queued or
 * running on another worker; concurrent changes of one fiber are applied one after the other.
 * DEADLINE is partitioned EDF: admission gives the fiber to one worker (its current one if it fits, else the allowed
 * worker with the least admitted bandwidth) whose admitted runtime/period stays <= 95%; the fiber then runs only
 * there (a running fiber is moved by that worker's stopper at its next preemption point).
 * Context: any thread (@f NULL only in a fiber).
 */
int fiber_setattr(fiber_t *f, const struct fiber_sched_attr *a);

/* fiber_getattr - read @f's (NULL = self) policy and parameters. 0, -EINVAL, -ESRCH. Context: any thread. */
int fiber_getattr(fiber_t *f, struct fiber_sched_attr *a);

/*
 * fiber_setaffinity - the workers @f (NULL = self) may run on (sched_setaffinity(2) for fibers). @set is
 * intersected with the worker set. A fiber on a worker it may no longer use moves at once if it is queued, at its
 * next preemption point if it runs (or when it calls fiber_migrate_enable(), if it disabled migration), and at its
 * next wake-up if it sleeps. A DEADLINE fiber whose worker is not in @set is admitted again on one that is.
 * Returns 0, -EINVAL (@set NULL or naming no existing worker; @f NULL outside a fiber), -EBUSY (a DEADLINE fiber
 * fits on no worker of @set; nothing changed), -ESRCH (@f has exited or no runtime).
 * Context: any thread.
 */
int fiber_setaffinity(fiber_t *f, const cpu_set_t *set);

/* fiber_getaffinity - the workers @f (NULL = self) may run on. 0, -EINVAL, -ESRCH. Context: any thread. */
int fiber_getaffinity(fiber_t *f, cpu_set_t *set);

/* fiber_preempt_disable - nestable; the fiber is not switched out until the matching enable. Context: fiber. */
void fiber_preempt_disable(void);

/* fiber_preempt_enable - at depth 0, switches if a reschedule is pending. Context: fiber. */
void fiber_preempt_enable(void);

/* fiber_cond_resched - cheap preemption point for CPU-bound loops. Context: any thread (no-op outside a fiber). */
void fiber_cond_resched(void);

/* fiber_migrate_disable - the fiber may still switch, but stays on this worker (nestable). Context: fiber. */
void fiber_migrate_disable(void);

/* fiber_migrate_enable - undo one fiber_migrate_disable(). Context: fiber. */
void fiber_migrate_enable(void);

/*
 * fiber_blocking_begin - the calling fiber is about to block its worker's thread (a call with no io_uring form:
 * getaddrinfo, a library's own blocking read) until fiber_blocking_end(). Meanwhile the worker counts as stuck:
 * the runtime's monitor moves the fibers queued on it to other workers and runs its timers, and wake-ups go
 * elsewhere (Go's entersyscall). The fiber stays on this worker for the region. Nestable; the region must not
 * yield or block on fiber primitives. Not yet done: when every worker is inside a region, no spare thread takes
 * over, so nothing else runs until one ends.
 * Context: fiber (a no-op elsewhere).
 */
void fiber_blocking_begin(void);

/* fiber_blocking_end - end the region of fiber_blocking_begin(); a preemption point. Context: fiber. */
void fiber_blocking_end(void);

/* ------------------------------------------------------------------------------------------------------------
 * Preempt notifiers (the kernel's preempt_notifier)
 *
 * They fire around every real switch of the fiber that registered them, never when the scheduler picks the same
 * fiber again. sched_out runs on the outgoing fiber's stack with its runqueue locked: it must not block, yield,
 * take a lock a waker takes, or wake a fiber. sched_in runs after the switch has finished, on the worker the fiber
 * now runs on, with preemption still disabled: it may take ordinary locks and wake fibers, but must not sleep.
 * ---------------------------------------------------------------------------------------------------------- */

struct fiber_preempt_notifier;
struct fiber_preempt_ops {
	void (*sched_in)(struct fiber_preempt_notifier *n, int worker); /* after the switch, on the new worker */
	void (*sched_out)(struct fiber_preempt_notifier *n, fiber_t *next);
};
struct fiber_preempt_notifier {
	struct fiber_preempt_notifier *next, **pprev; /* private */
	const struct fiber_preempt_ops *ops;
};

/* fiber_preempt_notifier_init - set @n's ops; @n is not registered. Context: any thread. */
void fiber_preempt_notifier_init(struct fiber_preempt_notifier *n, const struct fiber_preempt_ops *ops);

/* fiber_preempt_notifier_register - attach @n to the calling fiber (ignored outside a fiber). Context: fiber,
 * not in a notifier. */
void fiber_preempt_notifier_register(struct fiber_preempt_notifier *n);

/* fiber_preempt_notifier_unregister - detach @n from the calling fiber. Context: fiber, not in a notifier. */
void fiber_preempt_notifier_unregister(struct fiber_preempt_notifier *n);

/* ------------------------------------------------------------------------------------------------------------
 * Introspection
 * ---------------------------------------------------------------------------------------------------------- */

struct fiber_stats {
	uint64_t id;
	int worker;                    /* the worker it runs or last ran on */
	uint32_t policy;
	uint32_t state;                /* 0 running or runnable, 1 interruptible sleep, 2 uninterruptible, 0x80 dead */
	uint64_t nvcsw, nivcsw;        /* voluntary (blocked) / involuntary (preempted, yielded) switches */
	uint64_t sum_exec_ns, wait_ns; /* time run, time runnable but waiting */
	uint64_t nr_migrations;
};

/*
 * fiber_stats - statistics of @f (NULL = self). sum_exec_ns of a running fiber includes its current run up to the
 * last scheduler event (switch, tick or wake-up) on its worker.
 * Returns 0, -EINVAL (@f NULL outside a fiber), -ESRCH (no runtime, or @f has been joined).
 * Context: any thread.
 */
int fiber_stats(fiber_t *f, struct fiber_stats *out);

struct fiber_worker_stats {
	uint64_t nr_switches, nr_running, idle_ns;
	uint64_t io_submitted, io_completed, io_enter_calls;
	uint64_t pulled, pushed; /* fibers moved by load balancing */
};

/* fiber_worker_stats - statistics of @worker. 0, -EINVAL (no such worker), -ESRCH (no runtime). Context: any
 * thread. */
int fiber_worker_stats(int worker, struct fiber_worker_stats *out);

/* fiber_dump - a sched_debug-like text dump of every worker and its queued fibers to @fd. Context: any thread. */
void fiber_dump(int fd);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* FIBER_H */
