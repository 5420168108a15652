/*
 * libfiber: a user-space M:N green-thread runtime for Linux x86_64.
 *
 * The Linux scheduler core moved into a process: worker pthreads play CPUs, fibers play tasks, and every
 * switch runs schedule() -> __schedule() -> context_switch() -> fiber__switch() -> finish_task_switch().
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
#include <sys/socket.h> /* socklen_t, struct sockaddr, struct msghdr (the I/O calls) */
#include <sys/types.h>	/* ssize_t, off_t, mode_t */
#include <sys/uio.h>	/* struct iovec */

#if !defined(__GLIBC__) && !defined(_GNU_SOURCE)
#error "fiber.h needs cpu_set_t: define _GNU_SOURCE before the first #include (or compile with -D_GNU_SOURCE)"
#endif

/*
 * Without _GNU_SOURCE, <sched.h> declares no CPU_* macros. Rather than "implicit declaration of CPU_SET", code that
 * uses one then fails with a message saying what to do. Only names that are not defined get these stand-ins, and
 * they can only fail to compile: no code that compiles changes its meaning.
 */
#if !defined(__cplusplus) && !defined(CPU_SET)
#define FIBER__NEED_GNU_SOURCE(what)                                                                                   \
	((void)sizeof(struct {                                                                                         \
		_Static_assert(0, what " needs _GNU_SOURCE defined before the first #include "                         \
				       "(or -D_GNU_SOURCE)");                                                          \
		int fiber__x;                                                                                          \
	}))
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
	unsigned workers; /* worker pthreads; 0 = the CPUs the process may use, sched_getaffinity (env FIBER_WORKERS) */
	size_t stack_size;   /* default fiber stack; 0 = 256 KiB (env FIBER_STACK_SIZE) */
	unsigned tick_hz;    /* scheduler tick per worker; 0 = 1000 (env FIBER_TICK_HZ), at most 100000. No signal:
				the runtime's monitor thread marks the tick pending (see fiber_runtime_start) */
	unsigned io_entries; /* io_uring SQ entries per worker; 0 = 256 */
	unsigned flags;	     /* FIBER_CFG_* */
	/*
	 * The host scheduling policy of the worker threads (added at the end: the layout above is unchanged):
	 * SCHED_OTHER (0) with priority 0 = the workers inherit the starting thread's policy; SCHED_FIFO or SCHED_RR
	 * (from <sched.h>) with priority 1..99 keeps the workers off the host's ordinary run queue, for realtime
	 * fibers. Env FIBER_WORKER_SCHED ("other", "fifo:PRIO", "rr:PRIO") applies when host_policy is SCHED_OTHER.
	 */
	int host_policy;
	int host_priority;
	/* Debugging (README "Debugging") */
	int dump_signal;	/* on this signal fiber_dump() goes to stderr and the program continues; 0 = none
				 * (env FIBER_DUMP_SIGNAL=SIGQUIT, a name or a number) */
	const char *trace_file; /* timeline trace (Chrome trace-event JSON) written there at stop; NULL = none
				 * (env FIBER_TRACE=FILE) */
	int deadlock_ms;	/* report (fiber_dump to stderr, once) when every fiber has been blocked on fiber
				 * primitives with nothing runnable and no timer armed for this long; the program goes
				 * on. 0 = off unless env FIBER_DEADLOCK_MS=N; -1 = off; at most 3600000. Off by
				 * default: the check wakes a thread 4 times per deadlock_ms, even in an idle runtime */
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
#define FIBER_MAX_WORKERS 1024		  /* CPU_SETSIZE: affinity masks are cpu_set_t */
#define FIBER_STACK_MIN (16u * 1024u)	  /* smallest stack fiber_spawn accepts */
#define FIBER_STACK_MAX ((size_t)1 << 30) /* largest stack fiber_spawn accepts (1 GiB) */

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
 * without preemption points, and balances busy workers. A worker whose tick is needed and has not come for two
 * tick periods (the host not running the monitor) ticks itself at a preemption point. The runtime sends no signal
 * and installs no signal handler for scheduling (only the stack-overflow report's SIGSEGV handler, see
 * FIBER_CFG_NO_OVERFLOW_REPORT), so system calls made from fibers never fail with EINTR because of libfiber.
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
	int32_t nice;	      /* NORMAL, BATCH, IDLE */
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
	const char *name;	       /* copied (up to 31 bytes); shown in dumps, traces and the debugger */
	size_t stack_size;	       /* 0 = runtime default; else FIBER_STACK_MIN..FIBER_STACK_MAX */
	struct fiber_sched_attr sched; /* policy and parameters, see Scheduling */
	cpu_set_t affinity;	       /* bit i = may run on worker i; empty = any worker */
	unsigned flags;		       /* FIBER_ATTR_DETACHED */
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
 * fiber_blocking_begin - the calling fiber is about to block its thread (a call with no io_uring form:
 * getaddrinfo, a library's own blocking read) until fiber_blocking_end(). The fiber moves to a spare thread for
 * the region (one per worker, created on first use; FIBER_SPARE_THREADS=N sets how many) and back to a worker at
 * its end, so its worker goes on running its other fibers and timers, even when every worker's fibers are in
 * regions at once (Go's entersyscall/handoffp). The move costs two thread hand-offs; inside the region the fiber
 * I/O calls are the plain system calls and fiber_worker_id() names no worker. With no spare free (or
 * FIBER_SPARE_THREADS=0, or a DEADLINE fiber) the region runs in place: the worker counts as stuck, the monitor
 * moves its queued fibers to other workers and runs its timers. Nestable; the region should not yield or block
 * on fiber primitives.
 * Context: fiber (a no-op elsewhere).
 */
void fiber_blocking_begin(void);

/* fiber_blocking_end - end the region of fiber_blocking_begin(); a preemption point. Context: fiber. */
void fiber_blocking_end(void);

/* ------------------------------------------------------------------------------------------------------------
 * I/O (io_uring, one ring per worker)
 *
 * In a fiber, each call puts its operation on the io_uring of the worker the fiber runs on and sleeps until it
 * completes; the worker's other fibers run meanwhile, and the fiber may resume on another worker. Submissions are
 * batched: the ring is entered once per scheduling decision that needs it (when the worker runs out of work, or
 * at least every 32 switches or 50 us while it stays busy), not once per call. Outside a fiber each call makes the
 * plain blocking system call. The results are those of the system call named, as -errno (errno is left alone):
 * short reads and writes happen as with read(2) and write(2). A file descriptor the caller made O_NONBLOCK
 * behaves like a blocking one inside a fiber (the call waits for readiness instead of failing with -EAGAIN).
 *
 * Cancellation: every call except fiber_close is a cancellation point. A fiber cancelled (fiber_cancel) before
 * or while a call waits gets -ECANCELED, unless the operation completed first (then its result: no byte read or
 * written is lost). The kernel is done with the caller's buffers when any call returns.
 * Timeouts: fiber_io_timeout(ns) makes every later call of the fiber (fiber_close excepted) fail with
 * -ETIMEDOUT once it has waited ns; fiber_poll's own timeout, when >= 0, takes its place for that call.
 * fiber_send and fiber_sendmsg add MSG_NOSIGNAL: a closed peer is -EPIPE, not SIGPIPE (as Go's net package does);
 * fiber_write to a closed pipe or socket raises SIGPIPE as write(2) does unless the application ignores it.
 *
 * Without io_uring (the kernel refuses it: kernel.io_uring_disabled, a seccomp filter; or FIBER_IO=poll in the
 * environment) the runtime says so once on stderr at fiber_runtime_start and the same calls work through a
 * readiness path: the nonblocking system call, and a wait for readiness when it would block. Regular files, open,
 * close and fsync have no readiness: on that path the call runs inside fiber_blocking_begin/end.
 * A worker's ring is served by its own thread: while a fiber holds that thread in a blocking system call, the
 * completions of I/O submitted on that worker wait for it.
 * Context: any thread; in a fiber they sleep, elsewhere they block.
 * ---------------------------------------------------------------------------------------------------------- */

/* fiber_read - read(2): bytes read, 0 at end of file, -EBADF, -EINVAL, -EFAULT, -ECANCELED, -ETIMEDOUT, ... */
ssize_t fiber_read(int fd, void *buf, size_t len);
/* fiber_write - write(2): bytes written (may be short), -EPIPE, -EBADF, -ECANCELED, -ETIMEDOUT, ... */
ssize_t fiber_write(int fd, const void *buf, size_t len);
/* fiber_pread - pread(2) at @off; -EINVAL for a negative @off, -ESPIPE on a pipe or socket. */
ssize_t fiber_pread(int fd, void *buf, size_t len, off_t off);
/* fiber_pwrite - pwrite(2) at @off; -EINVAL for a negative @off, -ESPIPE on a pipe or socket. */
ssize_t fiber_pwrite(int fd, const void *buf, size_t len, off_t off);
/* fiber_readv - readv(2); -EINVAL for a negative @iovcnt or a NULL @iov with entries. */
ssize_t fiber_readv(int fd, const struct iovec *iov, int iovcnt);
/* fiber_writev - writev(2); -EINVAL for a negative @iovcnt or a NULL @iov with entries. */
ssize_t fiber_writev(int fd, const struct iovec *iov, int iovcnt);
/* fiber_recv - recv(2) with MSG_* @flags: bytes, 0 when the peer shut down, -ENOTSOCK, -ECONNRESET, ... */
ssize_t fiber_recv(int fd, void *buf, size_t len, int flags);
/* fiber_send - send(2) with MSG_NOSIGNAL added: bytes (may be short), -EPIPE, -ECONNRESET, -ENOTSOCK, ... */
ssize_t fiber_send(int fd, const void *buf, size_t len, int flags);
/* fiber_recvmsg - recvmsg(2); -EINVAL for a NULL @msg. */
ssize_t fiber_recvmsg(int fd, struct msghdr *msg, int flags);
/* fiber_sendmsg - sendmsg(2) with MSG_NOSIGNAL added; -EINVAL for a NULL @msg. */
ssize_t fiber_sendmsg(int fd, const struct msghdr *msg, int flags);
/*
 * fiber_accept - accept4(2): the new fd, -EINVAL (@addr and @addrlen not both NULL or both set, @flags other than
 * SOCK_NONBLOCK | SOCK_CLOEXEC, or @fd not listening), -EBADF, -ENOTSOCK, -EMFILE, -ECANCELED, -ETIMEDOUT, ...
 */
int fiber_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags);
/* fiber_connect - connect(2) to completion: 0, -ECONNREFUSED, -ETIMEDOUT, -EINVAL (NULL @addr), ... */
int fiber_connect(int fd, const struct sockaddr *addr, socklen_t addrlen);
/* fiber_openat - openat(2): the fd, -ENOENT, -EACCES, -EINVAL (NULL @path), ... */
int fiber_openat(int dfd, const char *path, int flags, mode_t mode);
/* fiber_close - close(2): 0 or -EBADF, -EIO. Not a cancellation point: the fd is closed either way. */
int fiber_close(int fd);
/* fiber_fsync - fsync(2): 0, -EBADF, -EIO, -EINVAL (an fd that cannot be synced). */
int fiber_fsync(int fd);
/*
 * fiber_poll - wait until @fd is ready for @events (POLLIN, POLLOUT, ...): the revents (> 0), -ETIMEDOUT once
 * @timeout_ns has passed (0: only look; < 0: no timeout of its own, fiber_io_timeout applies), -EBADF, -ECANCELED.
 */
int fiber_poll(int fd, short events, int64_t timeout_ns);
/*
 * fiber_io_timeout - every later I/O call of the calling fiber (fiber_close excepted) fails with -ETIMEDOUT
 * after waiting @ns; 0 = no timeout (the default). Returns 0, or -EPERM outside a fiber.
 * Context: fiber.
 */
int fiber_io_timeout(uint64_t ns);

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
 * Waiting and synchronisation
 *
 * One protocol under every blocking call (the kernel's wait queues and wake_q): a wake-up that comes between a
 * waiter's check and its sleep is never lost, and every wait loops, so a spurious wake-up costs a re-check.
 * Timeouts are relative, in nanoseconds, measured on CLOCK_MONOTONIC; a timed wait never returns -ETIMEDOUT
 * before its deadline; 0 means "do not wait", UINT64_MAX means "no timeout".
 *
 * Cancellation points (they return -ECANCELED to a fiber that fiber_cancel() marked, before or while it waits):
 * fiber_wait_event_interruptible, the cond, semaphore, wait-group and channel waits, fiber_chan_select. Mutex and
 * rwlock acquisition and barrier waits are not interruptible. A waiter that was already granted what it waited for
 * when the cancellation came takes it (returns success); the cancellation then stays pending for the next point,
 * so no signal, post or message is ever lost to a cancelled waiter.
 *
 * Plain pthreads: release-side calls (unlock, signal, broadcast, post, wg_done, wake_up, trysend, tryrecv, close)
 * work from any thread; the blocking calls work from a plain pthread too (it sleeps in the kernel on a futex).
 *
 * fiber_mutex has priority inheritance (as a PTHREAD_PRIO_INHERIT mutex, the kernel's rt_mutex): while a FIFO, RR
 * or DEADLINE fiber waits for it, the holder runs in the realtime class at the waiter's priority (a DEADLINE waiter
 * lends the highest realtime priority), and realtime waiters get the mutex before fair ones. Limits: one level (a
 * holder that itself waits on another mutex does not pass the boost on), the boost does not show in
 * fiber_getattr, a fiber_setattr of the holder ends it, and a contended unlock ends the unlocker's boost even
 * if it still holds another mutex that realtime fibers wait for. The other primitives have no inheritance.
 * ---------------------------------------------------------------------------------------------------------- */

/* A wait queue (the kernel's wait_queue_head). Define with FIBER_WAITQ_INIT(name) or fiber_waitq_init(). */
struct fiber_waitq_link {
	struct fiber_waitq_link *next, *prev; /* private */
};
struct fiber_waitq {
	int __lock;			/* private */
	struct fiber_waitq_link __head; /* private */
};
#define FIBER_WAITQ_INIT(name)                                                                                         \
	{                                                                                                              \
		0,                                                                                                     \
		{                                                                                                      \
			&(name).__head, &(name).__head                                                                 \
		}                                                                                                      \
	}

/* fiber_waitq_init - an empty wait queue. Context: any thread. */
void fiber_waitq_init(struct fiber_waitq *wq);

/*
 * fiber_wake_up - wake one waiter of @wq; fiber_wake_up_all - wake every waiter. Store the condition first: a
 * waiter re-checks it after every wake-up. NULL is ignored. Context: any thread.
 */
void fiber_wake_up(struct fiber_waitq *wq);
void fiber_wake_up_all(struct fiber_waitq *wq);

/* The building blocks of the fiber_wait_event macros (prepare_to_wait / schedule / finish_wait). */
#define FIBER_WAIT_INTERRUPTIBLE 0x1u /* the wait is a cancellation point */
struct fiber_wait_entry {
	void *__priv[32]; /* private: the queue entry and the timeout */
};
/* fiber_wait_entry_init - an entry of the calling fiber or pthread; @timeout_ns UINT64_MAX = none. Context: any. */
void fiber_wait_entry_init(struct fiber_wait_entry *e, unsigned flags, uint64_t timeout_ns);
/*
 * fiber_prepare_to_wait - queue @e on @wq (if not queued) and mark the caller asleep; then check the condition.
 * Returns 0, or -ECANCELED / -ETIMEDOUT with @e unqueued (check the condition once more before giving up).
 * Context: any thread.
 */
int fiber_prepare_to_wait(struct fiber_waitq *wq, struct fiber_wait_entry *e);
/* fiber_wait_schedule - sleep until woken (or the entry's timeout). Context: any thread. */
void fiber_wait_schedule(struct fiber_wait_entry *e);
/* fiber_finish_wait - leave @wq and disarm the timeout. Context: any thread. */
void fiber_finish_wait(struct fiber_waitq *wq, struct fiber_wait_entry *e);

#define __fiber_wait_event(wq, cond, flags, ns)                                                                        \
	__extension__({                                                                                                \
		int __fw_ret = 0;                                                                                      \
		if (!(cond)) {                                                                                         \
			struct fiber_wait_entry __fw_e;                                                                \
			fiber_wait_entry_init(&__fw_e, (flags), (ns));                                                 \
			for (;;) {                                                                                     \
				int __fw_r = fiber_prepare_to_wait((wq), &__fw_e);                                     \
				if (cond)                                                                              \
					break;                                                                         \
				if (__fw_r) {                                                                          \
					__fw_ret = __fw_r;                                                             \
					break;                                                                         \
				}                                                                                      \
				fiber_wait_schedule(&__fw_e);                                                          \
			}                                                                                              \
			fiber_finish_wait((wq), &__fw_e);                                                              \
		}                                                                                                      \
		__fw_ret;                                                                                              \
	})

/*
 * fiber_wait_event(wq, cond) - sleep (uninterruptibly) until @cond is true; a statement.
 * fiber_wait_event_interruptible(wq, cond) - the same, a cancellation point: 0 or -ECANCELED.
 * fiber_wait_event_timeout(wq, cond, ns) - at most @ns nanoseconds: 0 (cond true) or -ETIMEDOUT.
 * @cond is evaluated again after every wake-up; it must be safe to evaluate any number of times.
 * Context: any thread (a plain pthread sleeps in the kernel).
 */
#define fiber_wait_event(wq, cond)                                                                                     \
	do {                                                                                                           \
		(void)__fiber_wait_event(wq, cond, 0u, UINT64_MAX);                                                    \
	} while (0)
#define fiber_wait_event_interruptible(wq, cond) __fiber_wait_event(wq, cond, FIBER_WAIT_INTERRUPTIBLE, UINT64_MAX)
#define fiber_wait_event_timeout(wq, cond, ns) __fiber_wait_event(wq, cond, 0u, (uint64_t)(ns))

/*
 * Mutex: an uncontended lock/unlock is one atomic compare-and-swap each, no system call. Under contention a
 * woken waiter competes with newcomers; once the first waiter has waited over 1 ms, the next unlock hands the
 * mutex to it directly, so a waiter cannot starve. Error-checking: relocking returns -EDEADLK, unlocking a mutex
 * the caller does not hold -EPERM. Owned by a fiber (or a plain pthread), not by a worker.
 */
typedef struct fiber_mutex {
	uintptr_t __owner;	/* private */
	int __lock;		/* private */
	void *__first, *__last; /* private */
} fiber_mutex_t;
#define FIBER_MUTEX_INITIALIZER                                                                                        \
	{                                                                                                              \
		0, 0, 0, 0                                                                                             \
	}

/* fiber_mutex_init - an unlocked mutex. 0, -EINVAL (@m NULL). Context: any thread. */
int fiber_mutex_init(fiber_mutex_t *m);
/* fiber_mutex_destroy - 0, -EINVAL, -EBUSY (locked or waited for). Context: any thread. */
int fiber_mutex_destroy(fiber_mutex_t *m);
/* fiber_mutex_lock - 0, -EINVAL, -EDEADLK (the caller holds it). Not interruptible. Context: any thread. */
int fiber_mutex_lock(fiber_mutex_t *m);
/* fiber_mutex_trylock - 0, -EBUSY (held, also by the caller), -EINVAL. Context: any thread. */
int fiber_mutex_trylock(fiber_mutex_t *m);
/* fiber_mutex_timedlock - lock within @ns: 0, -ETIMEDOUT, -EDEADLK, -EINVAL. Context: any thread. */
int fiber_mutex_timedlock(fiber_mutex_t *m, uint64_t ns);
/* fiber_mutex_unlock - 0, -EINVAL, -EPERM (the caller does not hold it). Context: any thread. */
int fiber_mutex_unlock(fiber_mutex_t *m);

/* Condition variable: waiters are woken in FIFO order; signal wakes one, broadcast all. */
typedef struct fiber_cond {
	int __lock;		/* private */
	void *__first, *__last; /* private */
} fiber_cond_t;
#define FIBER_COND_INITIALIZER                                                                                         \
	{                                                                                                              \
		0, 0, 0                                                                                                \
	}

/* fiber_cond_init - 0, -EINVAL. Context: any thread. */
int fiber_cond_init(fiber_cond_t *c);
/* fiber_cond_destroy - 0, -EINVAL, -EBUSY (waiters). Context: any thread. */
int fiber_cond_destroy(fiber_cond_t *c);
/*
 * fiber_cond_wait - unlock @m, wait for a signal, lock @m again (always, also on error). A cancellation point.
 * Returns 0, -EINVAL, -EPERM (the caller does not hold @m), -ECANCELED.
 * Context: any thread.
 */
int fiber_cond_wait(fiber_cond_t *c, fiber_mutex_t *m);
/* fiber_cond_timedwait - as fiber_cond_wait, at most @ns: also -ETIMEDOUT. Context: any thread. */
int fiber_cond_timedwait(fiber_cond_t *c, fiber_mutex_t *m, uint64_t ns);
/* fiber_cond_signal - wake the longest waiter. 0, -EINVAL. Context: any thread. */
int fiber_cond_signal(fiber_cond_t *c);
/* fiber_cond_broadcast - wake every waiter. 0, -EINVAL. Context: any thread. */
int fiber_cond_broadcast(fiber_cond_t *c);

/*
 * Reader-writer lock, FIFO and writer-preferring: a reader that arrives while a writer waits queues behind it,
 * so writers are not starved; when a writer leaves, the readers queued before the next writer all enter.
 */
typedef struct fiber_rwlock {
	int __lock;		/* private */
	unsigned __readers;	/* private */
	uintptr_t __writer;	/* private */
	void *__first, *__last; /* private */
} fiber_rwlock_t;
#define FIBER_RWLOCK_INITIALIZER                                                                                       \
	{                                                                                                              \
		0, 0, 0, 0, 0                                                                                          \
	}

/* fiber_rwlock_init - 0, -EINVAL. Context: any thread. */
int fiber_rwlock_init(fiber_rwlock_t *l);
/* fiber_rwlock_destroy - 0, -EINVAL, -EBUSY (held or waited for). Context: any thread. */
int fiber_rwlock_destroy(fiber_rwlock_t *l);
/* fiber_rwlock_rdlock - 0, -EINVAL, -EDEADLK (the caller holds it for writing), -EAGAIN (too many readers).
 * Not interruptible. Context: any thread. */
int fiber_rwlock_rdlock(fiber_rwlock_t *l);
/* fiber_rwlock_wrlock - 0, -EINVAL, -EDEADLK. Not interruptible. Context: any thread. */
int fiber_rwlock_wrlock(fiber_rwlock_t *l);
/* fiber_rwlock_tryrdlock - 0, -EBUSY, -EINVAL, -EAGAIN. Context: any thread. */
int fiber_rwlock_tryrdlock(fiber_rwlock_t *l);
/* fiber_rwlock_trywrlock - 0, -EBUSY, -EINVAL. Context: any thread. */
int fiber_rwlock_trywrlock(fiber_rwlock_t *l);
/* fiber_rwlock_unlock - release a read or the write lock: 0, -EINVAL, -EPERM (not held / write-held by
 * another). Context: any thread. */
int fiber_rwlock_unlock(fiber_rwlock_t *l);

/* Counting semaphore; a post goes to the longest waiter directly. Zero-filled memory is a semaphore of value 0. */
typedef struct fiber_sem {
	int __lock;		/* private */
	unsigned __value;	/* private */
	void *__first, *__last; /* private */
} fiber_sem_t;
#define FIBER_SEM_VALUE_MAX 0x7fffffffu

/* fiber_sem_init - 0, -EINVAL (@s NULL, @value > FIBER_SEM_VALUE_MAX). Context: any thread. */
int fiber_sem_init(fiber_sem_t *s, unsigned value);
/* fiber_sem_destroy - 0, -EINVAL, -EBUSY (waiters). Context: any thread. */
int fiber_sem_destroy(fiber_sem_t *s);
/* fiber_sem_wait - 0, -EINVAL, -ECANCELED. A cancellation point. Context: any thread (a pthread sleeps). */
int fiber_sem_wait(fiber_sem_t *s);
/* fiber_sem_trywait - 0, -EAGAIN (value 0), -EINVAL. Context: any thread. */
int fiber_sem_trywait(fiber_sem_t *s);
/* fiber_sem_timedwait - 0, -ETIMEDOUT, -ECANCELED, -EINVAL. Context: any thread. */
int fiber_sem_timedwait(fiber_sem_t *s, uint64_t ns);
/* fiber_sem_post - 0, -EINVAL, -EOVERFLOW (value would exceed FIBER_SEM_VALUE_MAX). Context: any thread. */
int fiber_sem_post(fiber_sem_t *s);

/* Barrier: @count waiters per round; the last one to arrive releases the round. */
typedef struct fiber_barrier {
	int __lock;		     /* private */
	unsigned __count, __arrived; /* private */
	void *__first, *__last;	     /* private */
} fiber_barrier_t;
#define FIBER_BARRIER_SERIAL 1 /* fiber_barrier_wait's result in exactly one waiter per round */

/* fiber_barrier_init - 0, -EINVAL (@b NULL, @count 0). Context: any thread. */
int fiber_barrier_init(fiber_barrier_t *b, unsigned count);
/* fiber_barrier_destroy - 0, -EINVAL, -EBUSY (a round is in progress). Context: any thread. */
int fiber_barrier_destroy(fiber_barrier_t *b);
/* fiber_barrier_wait - FIBER_BARRIER_SERIAL in the last arriver, 0 in the others, -EINVAL. Not interruptible.
 * Context: any thread. */
int fiber_barrier_wait(fiber_barrier_t *b);

/* Wait group (Go's sync.WaitGroup). Zero-filled memory is a wait group with counter 0. */
typedef struct fiber_wg {
	int __lock;		/* private */
	int __count;		/* private */
	void *__first, *__last; /* private */
} fiber_wg_t;
#define FIBER_WG_INITIALIZER                                                                                           \
	{                                                                                                              \
		0, 0, 0, 0                                                                                             \
	}

/* fiber_wg_init - counter 0. 0, -EINVAL. Context: any thread. */
int fiber_wg_init(fiber_wg_t *wg);
/* fiber_wg_add - add @n (may be negative); at 0 every waiter is released. 0, -EINVAL (NULL, the counter would
 * go negative or overflow; it is left unchanged). Context: any thread. */
int fiber_wg_add(fiber_wg_t *wg, int n);
/* fiber_wg_done - fiber_wg_add(@wg, -1). Context: any thread. */
int fiber_wg_done(fiber_wg_t *wg);
/* fiber_wg_wait - wait until the counter is 0. 0, -EINVAL, -ECANCELED. Context: any thread. */
int fiber_wg_wait(fiber_wg_t *wg);

/*
 * Channels (Go's): elements of a fixed size are copied in and out; capacity 0 is a rendezvous (a send completes
 * when a receiver takes the element). Blocked senders and receivers are served in FIFO order. After close, sends
 * fail with -EPIPE and receives drain what is buffered, then fail with -EPIPE.
 */
typedef struct fiber_chan fiber_chan_t;

/* fiber_chan_create - 0, -EINVAL (@ch NULL, elem_size * capacity overflows), -ENOMEM. Context: any thread. */
int fiber_chan_create(fiber_chan_t **ch, size_t elem_size, size_t capacity);
/* fiber_chan_send - copy *@elem in: 0, -EPIPE (closed), -ECANCELED, -EINVAL (NULL, unless elem_size is 0).
 * A cancellation point. Context: any thread (a pthread sleeps). */
int fiber_chan_send(fiber_chan_t *ch, const void *elem);
/* fiber_chan_recv - copy an element out to @elem: 0, -EPIPE (closed and empty), -ECANCELED, -EINVAL.
 * A cancellation point. Context: any thread (a pthread sleeps). */
int fiber_chan_recv(fiber_chan_t *ch, void *elem);
/* fiber_chan_trysend - as fiber_chan_send, or -EAGAIN where it would block. Context: any thread. */
int fiber_chan_trysend(fiber_chan_t *ch, const void *elem);
/* fiber_chan_tryrecv - as fiber_chan_recv, or -EAGAIN where it would block. Context: any thread. */
int fiber_chan_tryrecv(fiber_chan_t *ch, void *elem);
/* fiber_chan_close - wake every blocked sender and receiver (they get -EPIPE). 0, -EINVAL, -EPIPE (closed
 * already). Context: any thread. */
int fiber_chan_close(fiber_chan_t *ch);
/* fiber_chan_destroy - free @ch: 0, -EINVAL, -EBUSY (senders or receivers wait on it). Context: any thread. */
int fiber_chan_destroy(fiber_chan_t *ch);

#define FIBER_CHAN_SEND 1
#define FIBER_CHAN_RECV 2
struct fiber_chan_op {	  /* one case of a select */
	fiber_chan_t *ch; /* NULL: a case that is never ready (Go's nil channel) */
	int op;		  /* FIBER_CHAN_SEND or FIBER_CHAN_RECV */
	void *elem;	  /* element to send, or where to store the received one */
	int result;	  /* out: 0, -EPIPE (closed) */
};

/*
 * fiber_chan_select - complete exactly one of @ops (Go's select). Among the ops ready at the call one is chosen
 * uniformly at random; otherwise the caller waits for the first that becomes ready. A send on a closed channel and
 * a receive on a closed, empty one are ready and complete with result -EPIPE.
 * @timeout_ns: 0 polls, < 0 waits for ever.
 * Returns the index of the op that completed (its result set), -ETIMEDOUT, -ECANCELED (a cancellation point),
 * -EINVAL (@ops NULL with @n > 0, an unknown op, a NULL elem where the element size is not 0), -ENOMEM (@n large).
 * Context: any thread (a pthread sleeps).
 */
int fiber_chan_select(struct fiber_chan_op *ops, size_t n, int64_t timeout_ns);

/*
 * Fiber-local storage (pthread keys, Boost.Fiber's fiber_specific_ptr). At most FIBER_KEYS_MAX keys at a time.
 * When a fiber exits, the destructor of each key with a non-NULL value runs once with that value (the value is
 * cleared first); values set by destructors are destroyed again, up to FIBER_DESTRUCTOR_ITERATIONS rounds.
 */
typedef unsigned fiber_key_t;
#define FIBER_KEYS_MAX 1024
#define FIBER_DESTRUCTOR_ITERATIONS 4

/* fiber_key_create - 0, -EINVAL (@key NULL), -EAGAIN (no key left). Context: any thread. */
int fiber_key_create(fiber_key_t *key, void (*destructor)(void *));
/* fiber_key_delete - 0, -EINVAL (not a live key). Destructors no longer run for it. Context: any thread. */
int fiber_key_delete(fiber_key_t key);
/* fiber_setspecific - the calling fiber's value for @key: 0, -EINVAL (not a live key), -ENOMEM, -EPERM (not in
 * a fiber). Context: fiber. */
int fiber_setspecific(fiber_key_t key, const void *value);
/* fiber_getspecific - the calling fiber's value for @key, NULL if none, not a live key, or not in a fiber.
 * Context: fiber. */
void *fiber_getspecific(fiber_key_t key);

/* ------------------------------------------------------------------------------------------------------------
 * Introspection
 * ---------------------------------------------------------------------------------------------------------- */

struct fiber_stats {
	uint64_t id;
	int worker; /* the worker it runs or last ran on */
	uint32_t policy;
	uint32_t state;		       /* 0 running or runnable, 1 interruptible sleep, 2 uninterruptible, 0x80 dead */
	uint64_t nvcsw, nivcsw;	       /* voluntary (blocked) / involuntary (preempted, yielded) switches */
	uint64_t sum_exec_ns, wait_ns; /* time run, time runnable but waiting */
	uint64_t nr_migrations;
};

/*
 * fiber_stats - statistics of @f (NULL = self). sum_exec_ns of a running fiber includes its current run up to the
 * last scheduler event (switch, tick or wake-up) on its worker. It is the time the scheduler charged: wall time on
 * the worker less host steal (time the worker's thread did not run) and the I/O completion work the worker did
 * for all fibers in the fiber's time, plus the fiber's own share of that work: the reap of its completions and a
 * part of the io_uring_enter that ran them, added at its next charge (see README, "the scheduler clock").
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

/*
 * fiber_dump - a sched_debug-like text dump to @fd: runtime totals, each worker's runqueue by class, and every fiber
 * with its state, wait reason and, for a parked fiber, a symbolised backtrace (scanned from its saved stack: the
 * first frame is exact, the ones marked '?' are return addresses found on the stack and may include stale ones;
 * names come from each object's symbol table, else dladdr, else module+offset for `addr2line -f -e MODULE OFFSET`;
 * gdb's `fiber bt` gives the exact unwind). It reads other fibers' stacks through process_vm_readv, so a fiber that
 * exits meanwhile cannot make it fault. Context: any thread (not a signal handler: see fiber_config.dump_signal).
 */
void fiber_dump(int fd);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* FIBER_H */
