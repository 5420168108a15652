/*
 * runtime/uring.c - one io_uring per worker: setup by feature test, batched submission from the scheduler path,
 * reaping on the owning worker, the idle loop's wait in the ring and the kick that ends it.
 *
 * Ownership: a ring is created on its worker's thread and only that thread submits to it or reaps it
 * (IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN where the kernel has them: completions are then run only when the
 * owner asks, which is exactly when it can use them). Other threads reach a ring in two ways only: the kick
 * eventfd (a plain write) and the cancel list (an llist push followed by a kick).
 *
 * Submission (the kernel's plug and sched_submit_work): an I/O call prepares its SQE and sleeps; the ring is
 * entered when the worker runs out of work (the idle loop's submit-and-wait), or while it stays busy once IO_BATCH
 * switches or IO_BATCH_NS have passed since the oldest unsubmitted SQE, whichever comes first. Switches, not
 * preemption points (every I/O call's return is one: counting those cut an echo server's batches to a quarter), and
 * beyond one switch for each fiber the last reap woke: those run before the worker would go idle anyway, so the SQEs
 * they prepare go in one batch, as the raw completion loop's handling of one io_uring_enter's CQEs does. One
 * io_uring_enter then carries every SQE the worker's fibers prepared meanwhile, and runs the deferred completions.
 *
 * Wake-ups: a completion wakes its fiber on the reaping worker (WF_CURRENT_CPU), which is where it submitted and
 * last ran; no other worker is kicked for it. Idle workers pull from a worker whose queue grows (newidle balance,
 * the tick's wakep). Placing each wakee on whichever worker was idle cost an eventfd kick per request with two
 * workers, and moved connection fibers between rings all the time.
 *
 * Kicks: the idle loop keeps TIF_POLLING while it spins and clears it (full fence, re-check) before it blocks in the
 * ring, as before its futex sleep (KERNEL_MAP §6.4). It blocks in the ring only while something can arrive there (an
 * operation in flight, a queued cancel: fiber__io_idle_needs_ring), and says so with TIF_RING_WAIT in the same RMW;
 * otherwise it sleeps on the futex as a worker without a ring does. A waker sets NEED_RESCHED and, only when POLLING
 * and NEED_RESCHED were clear, writes the eventfd (RING_WAIT) or calls futex_wake; the eventfd's read is always
 * armed in the ring, so the write completes it and the wait returns. A busy worker is never kicked with a system
 * call.
 */
#include "io.h"
#include "netpoll.h"

#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define IO_BATCH 32	      /* switches an SQE may wait while the worker stays busy (beyond the reaped fibers') */
#define IO_BATCH_NS 50000ull  /* ... or this long */
#define IO_EVENTS_NS 20000ull /* a busy worker enters for deferred completions at most this often */
#define IO_DEFAULT_ENTRIES 256

#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_SQ_TASKRUN
#define IORING_SQ_TASKRUN (1U << 1)
#endif

/* Counters only the owner writes and fiber_worker_stats reads from any thread. */
#define IO_STAT_ADD(c, n) __atomic_store_n(&(c), (c) + (n), __ATOMIC_RELAXED)

enum io_mode fiber__io_mode __hidden = IO_MODE_URING;
/*
 * Under valgrind (FIBER_IO=uring forced, for callgrind's counts of this path): valgrind does not treat
 * io_uring_enter as a blocking call and keeps its one-thread-at-a-time lock across it, so a worker that waited in its
 * ring for a kick would stop the thread that sends the kick. The idle wait is then cut to IO_VALGRIND_WAIT_NS and
 * followed by a sched_yield, which lets valgrind run the other threads.
 */
static bool io_under_valgrind;
#define IO_VALGRIND_WAIT_NS 1000000ll
/*
 * The time bounds of a batch (IO_BATCH_NS, IO_EVENTS_NS); under valgrind, whose clock runs at the speed of the
 * instrumented code, a hundred times longer, so that callgrind counts batches bounded by switches as they are natively.
 */
static uint64_t io_batch_ns = IO_BATCH_NS, io_events_ns = IO_EVENTS_NS;
enum io_timeout_mode fiber__io_timeout_mode __hidden = IO_TIMEOUT_TIMER;

/* The setups tried, best first: each later one is what an older kernel accepts. */
static const unsigned setup_candidates[] = {
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
	IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
	0,
};

static const char *io_disabled_sysctl(void)
{
	static char buf[16];
	FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "re");

	if (!f)
		return "unknown";
	if (!fgets(buf, sizeof(buf), f))
		strcpy(buf, "unknown");
	fclose(f);
	buf[strcspn(buf, "\n")] = 0;
	return buf;
}

static bool io_netpoll_up; /* this runtime holds a fiber__netpoll_init (start/stop, under runtime.c's rt_lock) */

/* The readiness path's poller (netpoll.c): up before the workers, down after them (fiber__io_release). */
static int io_poll_start(void)
{
	int ret = fiber__netpoll_init();

	if (ret) {
		fiber__start_error("cannot set up the poll readiness path (%s); raise RLIMIT_NOFILE or RLIMIT_NPROC, "
				   "or the memory limit",
				   strerror(-ret));
		return ret;
	}
	io_netpoll_up = true;
	return 0;
}

void fiber__io_release(void)
{
	if (io_netpoll_up)
		fiber__netpoll_fini();
	io_netpoll_up = false;
}

/*
 * Which I/O path this runtime uses: FIBER_IO=uring (the default) or poll. A kernel that refuses io_uring
 * (kernel.io_uring_disabled, a seccomp filter, an old kernel) selects the readiness path, said once on stderr.
 */
int fiber__io_select(void)
{
	const char *env = getenv("FIBER_IO");
	struct io_uring probe;
	int ret;

	if (env && *env && strcmp(env, "uring") && strcmp(env, "poll")) {
		fiber__start_error("FIBER_IO=\"%s\": expected \"uring\" or \"poll\"", env);
		return -EINVAL;
	}
	const char *tm = getenv("FIBER_IO_TIMEOUT");

	if (tm && *tm && strcmp(tm, "linked") && strcmp(tm, "timer")) {
		fiber__start_error("FIBER_IO_TIMEOUT=\"%s\": expected \"linked\" or \"timer\"", tm);
		return -EINVAL;
	}
	/* Timers by default: bench_io measured them cheaper than a linked timeout per op (README, "I/O"). */
	fiber__io_timeout_mode = tm && !strcmp(tm, "linked") ? IO_TIMEOUT_LINKED : IO_TIMEOUT_TIMER;
	if (env && !strcmp(env, "poll")) {
		fiber__io_mode = IO_MODE_POLL;
		return io_poll_start();
	}
	const char *pre = getenv("LD_PRELOAD");

	io_under_valgrind = pre && strstr(pre, "vgpreload");
	io_batch_ns = io_under_valgrind ? 100 * IO_BATCH_NS : IO_BATCH_NS;
	io_events_ns = io_under_valgrind ? 100 * IO_EVENTS_NS : IO_EVENTS_NS;
	if (!env || !*env) {
		/* Valgrind holds its thread lock across io_uring_enter (see io_under_valgrind): poll by default. */
		if (io_under_valgrind) {
			fiber__io_mode = IO_MODE_POLL;
			fprintf(stderr,
				"libfiber: running under valgrind, which blocks every thread while one waits in "
				"io_uring: I/O uses the poll readiness path (FIBER_IO=uring forces io_uring)\n");
			return io_poll_start();
		}
	}
	ret = io_uring_queue_init(2, &probe, 0);
	if (ret < 0) {
		fiber__io_mode = IO_MODE_POLL;
		fprintf(stderr,
			"libfiber: io_uring is unavailable (%s; kernel.io_uring_disabled = %s): I/O uses the "
			"poll readiness path\n",
			strerror(-ret), io_disabled_sysctl());
		return io_poll_start();
	}
	io_uring_queue_exit(&probe);
	fiber__io_mode = IO_MODE_URING;
	return 0;
}

static void io_expected_add(struct io_ring *io, int d)
{
	/* Only the owner writes; the deadlock report reads it from its own thread. */
	__atomic_store_n(&io->expected, io->expected + (unsigned)d, __ATOMIC_RELAXED);
}

static void io_arm_kick(struct io_ring *io)
{
	struct io_uring_sqe *sqe;

	if (io->efd_armed)
		return;
	sqe = io_uring_get_sqe(&io->ring);
	if (!sqe)
		return; /* the next pass, once the SQ has room; the idle wait re-checks the tif word first */
	io_uring_prep_read(sqe, io->efd, &io->efd_buf, sizeof(io->efd_buf), 0);
	io_uring_sqe_set_data64(sqe, IO_UD_KICK);
	io->efd_armed = true;
	if (!io->unsubmitted++)
		io->batch_start = fiber__sched_clock();
}

int fiber__io_worker_init(struct worker *w)
{
	struct io_uring_params p;
	struct io_ring *io;
	unsigned entries = fiber__rt.io_entries ? fiber__rt.io_entries : IO_DEFAULT_ENTRIES;
	int ret = -EINVAL;

	w->io = NULL;
	if (fiber__io_mode != IO_MODE_URING || w->spare) /* a spare runs blocking regions: plain system calls */
		return 0;
	io = fiber__zalloc(sizeof(*io));
	if (!io)
		return -ENOMEM;
	for (unsigned i = 0; i < ARRAY_SIZE(setup_candidates); i++) {
		memset(&p, 0, sizeof(p));
		/* Completions are bounded by the fibers waiting, not by the SQ: a large CQ keeps overflow rare. */
		p.flags = setup_candidates[i] | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
		p.cq_entries = entries * 16 < 65536 ? (entries * 16 > 4096 ? entries * 16 : 4096) : 65536;
		ret = io_uring_queue_init_params(entries, &io->ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0) {
		fiber__free(io, sizeof(*io));
		return ret;
	}
	io->setup_flags = p.flags;
	io->efd = eventfd(0, EFD_CLOEXEC); /* blocking: the ring polls it, a nonblocking one would fail with EAGAIN */
	if (io->efd < 0) {
		ret = -errno;
		io_uring_queue_exit(&io->ring);
		fiber__free(io, sizeof(*io));
		return ret;
	}
	io->batch_limit = IO_BATCH;
	io_arm_kick(io);
	w->io = io;
	return 0;
}

/* After the worker's thread has been joined: nothing submits any more, nobody kicks. */
void fiber__io_worker_exit(struct worker *w)
{
	struct io_ring *io = w->io;

	if (!io)
		return;
	w->io = NULL;
	io_uring_queue_exit(&io->ring); /* cancels the eventfd read */
	close(io->efd);
	fiber__free(io, sizeof(*io));
}

/* From any thread: make the owner's wait in its ring return. The caller saw TIF_POLLING clear. */
void fiber__io_kick(struct worker *w)
{
	uint64_t one = 1;
	ssize_t r;

	do
		r = write(w->io->efd, &one, sizeof(one));
	while (r < 0 && errno == EINTR);
}

/*
 * Completion work done in a running fiber's time (a busy worker's io_uring_enter, reaping, the wake-ups) is not that
 * fiber's: it is excluded from its charge (fiber__update_curr_common leaves the excluded time out) and charged to the
 * fibers it was done for. Both halves matter with many connections:
 *   - excluded before the wake-ups charge anyone: a wake-up charges the running fiber up to its rq clock
 *     (enqueue's update_curr), so time excluded only after the reap came too late for all of it but the last
 *     wake-up's share, and the fiber that reaped a few hundred completions was charged for them and then waited out
 *     that lag behind every other connection;
 *   - charged to the woken: with the work merely excluded, the fibers were charged only their own few
 *     microseconds per request while the worker spent most of its time on their I/O. V then moved at a fraction
 *     of the wall clock's pace, so any lag was paid off that many times more slowly: a fiber that came back owing
 *     a few hundred microseconds (a host interrupt in its run) waited a second with 500 connections.
 * io_irq_begin marks the start. io_irq_reap, as a reap begins, excludes the io_uring_enter before it and splits it
 * evenly over the CQEs there; io_irq_charge adds that share to each woken fiber's irq_debt; the reap's wake-ups are
 * one batch (struct ttwu_batch), whose flush, before its activations charge anyone, excludes the reap's own time
 * and splits it evenly over the fibers it activates; io_irq_end excludes the rest. A share or a CQE's time beyond a
 * bound is not completion work but the thread losing its CPU inside the system call (steal): that part stays
 * excluded and is charged to nobody. A wake-up the batch does not take (a fiber still queued, or woken onto another
 * worker: rare) is done at once and charges the running fiber for the reap so far, which the flush then excludes
 * again from its later charge; and the fibers that take no part in the batch get no share of the reap's own time.
 * In the idle loop nobody is charged. Owner only.
 */
#define IO_IRQ_SHARE_MAX 20000ull /* ns of an io_uring_enter charged per CQE at most */
#define IO_IRQ_CQE_MAX 10000ull	  /* ns of a CQE's own reap and wake-up charged at most */

static inline void io_irq_begin(struct io_ring *io)
{
	io->irq_mark = fiber__sched_clock();
}

/* Exclude the time since the mark; returns it. */
static inline uint64_t io_irq_account(struct io_ring *io)
{
	uint64_t now, d;

	if (!io->irq_mark)
		return 0;
	now = fiber__sched_clock();
	d = now - io->irq_mark;
	fiber__rq_exclude(&this_worker()->rq, d);
	io->irq_mark = now;
	return d;
}

/* A reap of @n CQEs begins: the io_uring_enter since the mark submitted their SQEs and ran their completions. */
static inline void io_irq_reap(struct io_ring *io, unsigned n)
{
	uint64_t d = io_irq_account(io);

	d = n ? d / n : 0;
	io->irq_share = d < IO_IRQ_SHARE_MAX ? d : IO_IRQ_SHARE_MAX;
}

/*
 * Before @f's wake-up: its share of the enter goes to its next charge. Its CQE's own work (the reap and the wake-up)
 * is measured once for the whole reap, at the batch's flush (fiber__ttwu_batch_flush splits it evenly, at most
 * IO_IRQ_CQE_MAX each): a clock read per CQE was a tenth of the runtime's time in an echo server.
 */
static inline void io_irq_charge(struct io_ring *io, struct fiber *f)
{
	if (io->irq_mark && io->irq_share)
		atomic_fetch_add_explicit(&f->irq_debt, io->irq_share, memory_order_relaxed);
}

static inline void io_irq_end(struct io_ring *io)
{
	io_irq_account(io);
	io->irq_mark = 0;
	io->irq_share = 0;
}

static void io_complete(struct io_ring *io, const struct io_uring_cqe *cqe, struct ttwu_batch *b)
{
	uint64_t ud = cqe->user_data;
	struct io_op *op = (struct io_op *)(uintptr_t)(ud & ~7ull);
	struct fiber *f;

	if (ud == IO_UD_KICK) {
		io->efd_armed = false;
		return;
	}
	if (ud == LIBURING_UDATA_TIMEOUT)
		return; /* the wait's own timeout SQE, on kernels without IORING_FEAT_EXT_ARG */
	io_expected_add(io, -1);
	if (ud == IO_UD_IGNORE)
		return;
	/*
	 * Read what we need before the release store: once the fiber sees it, it may return and its stack frame (op)
	 * is gone. The reference keeps the descriptor for the wake-up (a stale wake-up is harmless: waits loop, D4).
	 */
	f = op->f;
	fiber__get_task_struct(f);
	/* The release stores pair with io_op_finished's acquire loads (io.c). */
	if ((ud & 7ull) == IO_UD_CANCEL) {
		atomic_fetch_add_explicit(&op->cancel_done, 1, memory_order_release);
	} else {
		op->res = cqe->res;
		IO_STAT_ADD(io->nr_completed, 1);
		atomic_store_explicit(&op->done, 1, memory_order_release);
	}
	io_irq_charge(io, f);
	/* Batched: activated with the reap's other wake-ups under one rq lock and one clock read (io_reap). */
	fiber__try_to_wake_up_batch(f, TASK_NORMAL, WF_CURRENT_CPU, b);
	fiber__put_task_struct(f); /* a batched fiber is WAKING: it cannot run, so not exit, before the flush */
}

static unsigned io_reap(struct io_ring *io)
{
	struct ttwu_batch b = { .irq_cap = IO_IRQ_CQE_MAX };
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	uint64_t clock;

	io_irq_reap(io, io_uring_cq_ready(&io->ring));
	b.irq_mark = io->irq_mark; /* 0 in the idle loop: nobody is charged */
	io_uring_for_each_cqe(&io->ring, head, cqe)
	{
		io_complete(io, cqe, &b);
		n++;
	}
	if (b.n) {
		IO_STAT_ADD(io->nr_wake_batches, 1);
		IO_STAT_ADD(io->nr_batched, b.n);
	}
	clock = fiber__ttwu_batch_flush(&b);
	if (io->irq_mark && clock)
		io->irq_mark = clock; /* the flush excluded the reap up to its clock */
	if (n) {
		io_uring_cq_advance(&io->ring, n);
		/*
		 * Each fiber woken here runs once before this worker would go idle and submit anyway: the SQEs they
		 * prepare are one batch, as the raw completion loop's handling of one io_uring_enter's CQEs is.
		 */
		io->batch_limit = IO_BATCH + n;
	}
	return n;
}

/* Enter the kernel: submit what is prepared and run the deferred completions, without waiting. */
static void io_enter(struct io_ring *io)
{
	unsigned ready = io->unsubmitted;
	int r = io_uring_submit_and_get_events(&io->ring);

	IO_STAT_ADD(io->nr_enter, 1);
	if (r > 0)
		IO_STAT_ADD(io->nr_submitted, (unsigned)r);
	io->unsubmitted = io_uring_sq_ready(&io->ring);
	if (!io->unsubmitted)
		io->batch = 0;
	else if (io->unsubmitted != ready)
		io->batch_start = fiber__sched_clock();
	io->last_events = fiber__sched_clock();
}

/*
 * Room for @nr consecutive SQEs on @io: while the SQ is full, submit (io_enter) and reap, then look again; at most
 * @tries rounds, 0 for as many as it takes. False when the kernel still would not take more (a CQ overflow it
 * cannot flush: -EBUSY until completions are reaped).
 */
static bool io_sq_room(struct io_ring *io, unsigned nr, int tries)
{
	for (int i = 0; io_uring_sq_space_left(&io->ring) < nr; i++) {
		if (tries && i == tries)
			return false;
		io_enter(io);
		io_reap(io);
	}
	return true;
}

/* Cancellations other workers (or this one) asked for: one ASYNC_CANCEL per op, its CQE tagged op | 1. */
static bool io_drain_cancels(struct io_ring *io)
{
	/* Pairs with fiber__io_cancel's release cmpxchg: each op's cancel_next is visible. */
	struct io_op *op = atomic_exchange_explicit(&io->cancel_list, NULL, memory_order_acquire);
	bool any = op != NULL;

	while (op) {
		struct io_op *next = atomic_load_explicit(&op->cancel_next, memory_order_relaxed);
		struct io_uring_sqe *sqe;

		io_sq_room(io, 1, 0); /* a cancel is never dropped: its fiber waits for the CQE */
		sqe = io_uring_get_sqe(&io->ring);
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
		io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | IO_UD_CANCEL);
		fiber__io_queued(io, 1);
		op = next;
	}
	return any;
}

static inline bool io_events_pending(struct io_ring *io)
{
	/* With TASKRUN_FLAG the kernel says when completions wait for us; without it we have to ask. */
	if (io->setup_flags & IORING_SETUP_TASKRUN_FLAG)
		return IO_URING_READ_ONCE(*io->ring.sq.kflags) & IORING_SQ_TASKRUN;
	return io->setup_flags & IORING_SETUP_DEFER_TASKRUN;
}

/*
 * The scheduler's hook (sched_submit_work) and the idle loop's: submit SQEs whose batch is due, queue the cancels
 * other fibers asked for, and reap completions. @idle: the worker has nothing else to run, so everything is due.
 */
void fiber__io_work(struct worker *w, bool idle, bool sw)
{
	struct io_ring *io = w->io;
	bool enter = false;
	uint64_t now = 0;

	if (atomic_load_explicit(&io->cancel_list, memory_order_relaxed) && io_drain_cancels(io))
		enter = true; /* a cancel waits for nobody's batch */
	if (io->unsubmitted && !enter) {
		if (idle || (sw && ++io->batch >= io->batch_limit))
			enter = true;
		else if ((now = fiber__sched_clock()) - io->batch_start >= io_batch_ns)
			enter = true;
	}
	if (!enter && io->expected && !io_uring_cq_ready(&io->ring) && io_events_pending(io)) {
		if (!now)
			now = fiber__sched_clock();
		if (idle || now - io->last_events >= io_events_ns)
			enter = true;
	}
	if (!enter && !io_uring_cq_ready(&io->ring) && !io_uring_cq_has_overflow(&io->ring))
		return;
	/*
	 * The system call (which also runs the kernel's deferred completion work) and the wake-ups are done for every
	 * fiber with I/O here, in the time of whichever fiber reached this preemption point: irq time, which its
	 * charge leaves out and the fibers it was for are charged (io_irq_begin). In the idle loop nobody is charged.
	 */
	if (!idle)
		io_irq_begin(io);
	if (enter)
		io_enter(io);
	if (io_uring_cq_ready(&io->ring))
		io_reap(io);
	if (io_uring_cq_has_overflow(&io->ring)) {
		io_uring_get_events(&io->ring); /* flushes the overflow list into the CQ */
		IO_STAT_ADD(io->nr_enter, 1);
		io_reap(io);
	}
	if (!idle)
		io_irq_end(io);
}

/*
 * The idle loop's look at the ring. With nothing in flight, as at a switch, with everything due (submit now, reap).
 * With I/O in flight (SQEs prepared or submitted, CQEs to come) only the CQEs already there are reaped, and true
 * says that the wait in the ring is due: fiber__io_idle_wait submits, runs the deferred completions and returns at
 * once if one is there, all in one io_uring_enter, as the raw completion loop's submit-and-wait. Entering once to
 * submit and again to wait cost two system calls each time a worker ran out of work.
 */
bool fiber__io_idle_work(struct worker *w)
{
	struct io_ring *io = w->io;

	if (!io->expected || atomic_load_explicit(&io->cancel_list, memory_order_relaxed) ||
	    io_uring_cq_has_overflow(&io->ring)) {
		fiber__io_work(w, true, false);
		return false;
	}
	if (io_uring_cq_ready(&io->ring))
		io_reap(io);
	return true;
}

/*
 * Whether the idle loop must sleep in the ring: an operation is in flight (its completion ends the wait), a cancel
 * is queued, or the CQ overflowed. Otherwise nothing can arrive on the ring but the kick's own read, and the worker
 * sleeps on its tif word instead: a futex_wake reaches it sooner than an eventfd write through the ring
 * (bench_wake wake_latency_cross, a wake of an otherwise idle worker: 16-17 us on the futex against 18-22 us in the
 * ring, measured side by side with FIBER_IO=poll). Owner only.
 */
bool fiber__io_idle_needs_ring(struct worker *w)
{
	struct io_ring *io = w->io;

	return io->expected || atomic_load_explicit(&io->cancel_list, memory_order_relaxed) ||
	       io_uring_cq_has_overflow(&io->ring);
}

/*
 * The idle loop's sleep: submit everything, then block until a completion (the kick's included) or @ts passes.
 * The caller cleared TIF_POLLING and re-checked for work after a full fence.
 */
void fiber__io_idle_wait(struct worker *w, const struct timespec *ts)
{
	struct io_ring *io = w->io;
	struct io_uring_cqe *cqe;
	struct __kernel_timespec kts;
	bool timed = ts != NULL;
	uint64_t t0;
	unsigned ready;
	int r;

	if (atomic_load_explicit(&io->cancel_list, memory_order_relaxed))
		io_drain_cancels(io);
	io_arm_kick(io);
	if (!io->efd_armed) {
		/* No room for the kick's read: do not sleep on a ring nobody can wake. */
		io_enter(io);
		io_reap(io);
		return;
	}
	if (ts) {
		kts.tv_sec = ts->tv_sec;
		kts.tv_nsec = ts->tv_nsec;
	}
	if (unlikely(io_under_valgrind) && (!timed || kts.tv_sec || kts.tv_nsec > IO_VALGRIND_WAIT_NS)) {
		kts.tv_sec = 0;
		kts.tv_nsec = IO_VALGRIND_WAIT_NS;
		timed = true;
	}
	ready = io_uring_sq_ready(&io->ring);
	t0 = fiber__sched_clock();
	r = io_uring_submit_and_wait_timeout(&io->ring, &cqe, 1, timed ? &kts : NULL, NULL);
	fiber__steal_slept(w, t0);
	IO_STAT_ADD(io->nr_enter, 1);
	if (unlikely(io_under_valgrind))
		sched_yield(); /* valgrind switches threads at a blocking call or after a long slice: give one */
	(void)r;	       /* -ETIME, -EINTR: the loop re-checks everything */
	io->unsubmitted = io_uring_sq_ready(&io->ring);
	if (ready > io->unsubmitted)
		IO_STAT_ADD(io->nr_submitted, ready - io->unsubmitted);
	if (!io->unsubmitted)
		io->batch = 0;
	io->last_events = fiber__sched_clock();
	io_reap(io);
}

/*
 * An SQE (@nr consecutive ones, for a linked pair) on @io, flushing a full SQ first: never dropped. NULL only when
 * the kernel refuses to take more (a CQ overflow it cannot flush): the caller yields and retries.
 */
struct io_uring_sqe *fiber__io_get_sqe(struct io_ring *io, unsigned nr)
{
	bool room;

	if (likely(io_uring_sq_space_left(&io->ring) >= nr))
		return io_uring_get_sqe(&io->ring);
	/* A full SQ: the flush and its reap are completion work done in this fiber's time, like fiber__io_work's. */
	io_irq_begin(io);
	room = io_sq_room(io, nr, 3);
	io_irq_end(io);
	return room ? io_uring_get_sqe(&io->ring) : NULL;
}

/* @nr SQEs were prepared on @io, each expecting a CQE. */
void fiber__io_queued(struct io_ring *io, unsigned nr)
{
	io_expected_add(io, (int)nr);
	if (!io->unsubmitted)
		io->batch_start = fiber__sched_clock();
	io->unsubmitted += nr;
}

/*
 * From the issuing fiber wherever it runs now, or from its timeout timer (the owning worker, or the monitor for a
 * stuck one): ask the ring that took @op to cancel it. The fiber waits for the cancel's CQE before it returns, so
 * @op outlives the list entry.
 */
void fiber__io_cancel(struct io_op *op)
{
	struct io_ring *io = op->ring;
	struct io_op *head = atomic_load_explicit(&io->cancel_list, memory_order_relaxed);
	struct worker *owner = NULL;

	atomic_fetch_add_explicit(&op->cancels, 1, memory_order_relaxed);

	/* The release cmpxchg pairs with io_drain_cancels' acquire exchange. */
	do
		atomic_store_explicit(&op->cancel_next, head, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(&io->cancel_list, &head, op, memory_order_release,
						      memory_order_relaxed));
	for (unsigned i = 0; i < fiber__rt.nr_workers; i++)
		if (fiber__rt.workers[i].io == io)
			owner = &fiber__rt.workers[i];
	/* The owner drains its list at its next scheduling decision; asleep in its ring, it needs the kick. */
	if (owner && owner != this_worker())
		fiber__kick_worker(owner);
}

/* KVM's kvm_sched_in: the fiber now runs on @cpu, so its I/O goes to that worker's ring. */
static void io_sched_in(struct fiber_preempt_notifier *n, int cpu)
{
	struct fiber *p = container_of(n, struct fiber, io_pn);

	p->io_ring = fiber__rt.workers[cpu].io;
}

/* kvm_sched_out: the ring is the worker's, not the fiber's; away from it the fiber has none. */
static void io_sched_out(struct fiber_preempt_notifier *n, fiber_t *next)
{
	struct fiber *p = container_of(n, struct fiber, io_pn);

	p->io_ring = NULL;
}

static const struct fiber_preempt_ops io_pn_ops = {
	.sched_in = io_sched_in,
	.sched_out = io_sched_out,
};

/*
 * vcpu_load: the first I/O call of a fiber registers its ring notifier; from then on the notifier keeps
 * p->io_ring equal to the ring of the worker it runs on. Called with preemption disabled.
 */
struct io_ring *fiber__io_bind(struct fiber *p)
{
	if (unlikely(!p->io_pn.pprev)) {
		fiber_preempt_notifier_init(&p->io_pn, &io_pn_ops);
		fiber_preempt_notifier_register(&p->io_pn);
		p->io_ring = this_worker()->io;
	}
	FIBER_DEBUG_BUG_ON(p->io_ring != this_worker()->io);
	return p->io_ring;
}
