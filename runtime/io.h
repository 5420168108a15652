/*
 * runtime/io.h - the per-worker io_uring (uring.c) and the operations the public I/O calls (io.c) put on it.
 *
 * One ring per worker, created on the worker's own thread and touched only by it (SINGLE_ISSUER, DEFER_TASKRUN:
 * submissions and reaping happen on the owning thread). A fiber puts its SQE on the ring of the worker it runs on
 * (fiber->io_ring, kept by a built-in preempt notifier, KVM's vcpu_load pattern), sleeps, and is woken by that
 * worker when the CQE is reaped; it may resume on another worker. Anything another worker wants done on a ring
 * (a cancellation) goes through the ring's cancel list and a kick.
 */
#ifndef FIBER_IO_H
#define FIBER_IO_H

#include "internal.h"

#include <liburing.h>

/* cqe->user_data: an op pointer (8-aligned) with its low bits saying which CQE of the op it is. */
#define IO_UD_IGNORE 0ull /* a linked timeout: its CQE carries nothing the op needs */
#define IO_UD_KICK 8ull	  /* the kick eventfd's read */
#define IO_UD_CANCEL 1ull /* op | 1: the CQE of the ASYNC_CANCEL aimed at op */

/*
 * One I/O operation in flight: on the issuing fiber's stack, alive until the fiber has seen every CQE it asked for
 * (the op's own and, when it asked for one, its cancel's), so nothing is written to it after the call returns.
 */
struct io_op {
	struct fiber *f;
	struct io_ring *ring;		   /* the ring that took it: its cancellation goes there */
	int res;			   /* cqe->res, written by the owning worker before done */
	atomic_int done;		   /* the op's CQE was reaped (release: res is valid) */
	atomic_int cancels;		   /* ASYNC_CANCELs asked for (by the fiber, or by the timeout timer) */
	atomic_int cancel_done;		   /* ... and their CQEs reaped */
	bool cancel_requested;		   /* fiber_cancel's; only the issuing fiber */
	bool timed;			   /* a timeout rides with it */
	struct io_op *_Atomic cancel_next; /* ring->cancel_list link */
	struct __kernel_timespec ts;	   /* the linked timeout (copied by the kernel at submission) */
	struct fiber_timer timer;	   /* the per-worker timer (IO_TIMEOUT_TIMER) */
};

/*
 * How fiber_io_timeout is carried out: a per-worker fiber timer whose expiry cancels the op (the default), or an
 * IORING_OP_LINK_TIMEOUT behind each op. FIBER_IO_TIMEOUT=timer|linked chooses; bench/bench_io measures both (the
 * linked timeout's extra SQE, kernel hrtimer and CQE cost 40-60% more per op than the timer here).
 */
enum io_timeout_mode { IO_TIMEOUT_LINKED, IO_TIMEOUT_TIMER };
extern __hidden enum io_timeout_mode fiber__io_timeout_mode;

struct io_ring {
	struct io_uring ring;
	unsigned setup_flags; /* what the feature test settled on */
	int efd;	      /* kick eventfd; its read is always armed while the worker runs */
	bool efd_armed;
	uint64_t efd_buf;
	unsigned unsubmitted; /* SQEs prepared and not yet submitted */
	unsigned expected;    /* CQEs still to come (ops, linked timeouts, cancels, the eventfd read) */
	unsigned batch;	      /* switches since the oldest unsubmitted SQE */
	unsigned batch_limit; /* ... at which they are submitted: IO_BATCH + the fibers the last reap woke */
	uint64_t batch_start; /* fiber__sched_clock() of the oldest unsubmitted SQE */
	uint64_t last_events; /* when this worker last entered the kernel for completions while busy */
	uint64_t irq_mark;    /* completion work in a fiber's time: excluded up to here so far; 0: none under way */
	uint64_t irq_share;   /* the io_uring_enter before this reap, per CQE (io_irq_reap) */
	struct io_op *_Atomic cancel_list; /* any thread pushes (llist), the owner drains */
	/* Counters for fiber_worker_stats (only the owner writes; readers accept a torn view). */
	uint64_t nr_submitted, nr_completed, nr_enter;
	uint64_t nr_wake_batches,
	    nr_batched; /* reaps that woke fibers in a batch, and the fibers they woke so (tests) */
};

enum io_mode {
	IO_MODE_URING, /* the default */
	IO_MODE_POLL,  /* io_uring unavailable (or FIBER_IO=poll): the readiness path */
};

extern __hidden enum io_mode fiber__io_mode;

/* uring.c: start and stop of the rings, the hooks the scheduler and the idle loop call. */
__hidden int fiber__io_select(void);		       /* at runtime start: which mode, say it once */
__hidden void fiber__io_release(void);		       /* at runtime stop, after the workers: undo select */
__hidden int fiber__io_worker_init(struct worker *w);  /* on the worker's thread */
__hidden void fiber__io_worker_exit(struct worker *w); /* on the worker's thread */
__hidden void fiber__io_work(struct worker *w, bool idle, bool sw); /* submit due SQEs, drain cancels, reap */
__hidden bool fiber__io_idle_work(struct worker *w); /* the idle loop's: true if its wait in the ring is due */
__hidden void fiber__io_idle_wait(struct worker *w, const struct timespec *ts); /* block in the ring */
__hidden bool fiber__io_idle_needs_ring(struct worker *w); /* something only the ring's wait can deliver */
__hidden void fiber__io_kick(struct worker *w);		   /* from any thread: end w's wait in its ring */
__hidden struct io_uring_sqe *fiber__io_get_sqe(struct io_ring *io, unsigned nr);
__hidden void fiber__io_queued(struct io_ring *io, unsigned nr_sqes);
__hidden void fiber__io_cancel(struct io_op *op);	  /* from the issuing fiber, on any worker */
__hidden struct io_ring *fiber__io_bind(struct fiber *p); /* register the ring notifier; the current ring */

/*
 * The hook of sched_submit_work (@sw: a switch follows, not only a preemption point): nothing to do unless this
 * worker has SQEs or CQEs outstanding.
 */
static inline void fiber__io_sched_work(struct worker *w, bool sw)
{
	struct io_ring *io = w->io;

	if (unlikely(io && (io->unsubmitted | io->expected)))
		fiber__io_work(w, false, sw);
}

#endif
