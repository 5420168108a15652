/*
 * runtime/clock.c - sched_clock(): a monotonic nanosecond clock cheap enough for every switch.
 *
 * Where the TSC is invariant (constant_tsc and nonstop_tsc in /proc/cpuinfo), the clock is the TSC scaled to
 * nanoseconds with a multiply and a shift, calibrated once per process against CLOCK_MONOTONIC (rdtsc costs about a
 * third of a vDSO clock_gettime here). Otherwise it is clock_gettime(CLOCK_MONOTONIC). Either way the values are on
 * CLOCK_MONOTONIC's time line, so they can be compared with it.
 *
 * Steal: the worker threads are host threads, and the host may leave one runnable but not running for
 * milliseconds (another process on its CPU, a VM's vCPU descheduled by the hypervisor). The clock runs on meanwhile,
 * so that time would be charged to whichever fiber was current, as if it had run: a fair fiber then waits out a lag
 * it never used (with hundreds of runnable fibers, hundreds of milliseconds), a deadline fiber is throttled early.
 * The kernel leaves paravirt steal out of rq_clock_task for the same reason. Our steal is the time the worker's
 * thread did not run while it was not asleep in its idle loop: the rq clock's advance less the thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID, a ~0.4 us system call that brings the kernel's figure up to date) and less the idle
 * sleeps (timed around the wait: fiber__steal_slept). It sees both a host run queue's wait (the
 * thread's run_delay) and a hypervisor's steal of the vCPU, which no per-thread counter shows (run_delay does not:
 * CI saw a fiber charged 201 ms in a window its worker ran 162 ms). A fiber blocking its worker in a system call is
 * not charged for the block either, as the kernel charges a task only the time it runs. The owner samples every
 * STEAL_SAMPLE_NS when it updates its rq clock, and before it charges a long run (not under valgrind).
 */
#include "internal.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

static struct {
	bool use_tsc;
	uint64_t tsc0, ns0;
	uint64_t mult; /* ns = ns0 + ((tsc - tsc0) * mult) >> 32 */
} clk;
static pthread_once_t clk_once = PTHREAD_ONCE_INIT;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool tsc_invariant(void)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	bool constant = false, nonstop = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		constant = strstr(line, " constant_tsc") != NULL;
		nonstop = strstr(line, " nonstop_tsc") != NULL;
		break;
	}
	fclose(f);
	return constant && nonstop;
}

/* Sample the TSC and CLOCK_MONOTONIC as close together as possible (the pair with the shortest bracket wins). */
static void sample(uint64_t *tsc, uint64_t *ns)
{
	uint64_t best = UINT64_MAX;

	*tsc = *ns = 0;
	for (int i = 0; i < 5; i++) {
		uint64_t a = __rdtsc(), n = mono_ns(), b = __rdtsc();

		if (b - a < best) {
			best = b - a;
			*tsc = a + (b - a) / 2;
			*ns = n;
		}
	}
}

static void clock_calibrate(void)
{
	uint64_t t0, n0, t1, n1;
	struct timespec d = { 0, 5 * 1000 * 1000 };

	if (!tsc_invariant())
		return;
	sample(&t0, &n0);
	nanosleep(&d, NULL);
	sample(&t1, &n1);
	if (t1 <= t0 || n1 <= n0)
		return;
	clk.mult = (uint64_t)(((unsigned __int128)(n1 - n0) << 32) / (t1 - t0));
	clk.tsc0 = t1;
	clk.ns0 = n1;
	clk.use_tsc = clk.mult != 0;
}

void fiber__clock_init(void)
{
	pthread_once(&clk_once, clock_calibrate);
}

uint64_t fiber__sched_clock(void)
{
	if (likely(clk.use_tsc)) {
		uint64_t d = __rdtsc() - clk.tsc0;

		return clk.ns0 + (uint64_t)(((unsigned __int128)d * clk.mult) >> 32);
	}
	return mono_ns();
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* On @w's own thread, before it runs anything: the first steal sample, and the thread's stat for the monitor. */
void fiber__steal_init(struct worker *w)
{
	const char *pre = getenv("LD_PRELOAD");
	int saved = errno;
	bool on = !pre || !strstr(pre, "vgpreload");

	/*
	 * Under valgrind the clock is valgrind's slowed-down wall time and the samples would come every few
	 * instructions' worth of work, making callgrind's counts vary from run to run: no steal accounting there.
	 */
	/*
	 * The thread's state for the monitor's stuck check (monitor.c worker_held), opened here once rather than by
	 * the monitor at each check: a file opened by another thread at any moment changes the numbers the
	 * application's own open calls get (POSIX's lowest free descriptor).
	 */
	atomic_store_explicit(&w->stat_fd, open("/proc/thread-self/stat", O_RDONLY | O_CLOEXEC), memory_order_release);
	errno = saved;
	spin_lock(&w->rq.lock); /* fibers may already be queued here by other threads */
	w->steal_wall = fiber__sched_clock();
	w->steal_cpu = thread_cpu_ns();
	if (!w->steal_cpu) /* no per-thread CPU clock (it has run, so 0 is a failure): no steal accounting */
		on = false;
	w->steal_slept = 0;
	w->steal_slept_end = 0;
	w->rq.steal = 0;
	w->rq.excl_seen = fiber__rq_excluded(&w->rq);
	w->rq.steal_next = on ? w->steal_wall + STEAL_SAMPLE_NS : UINT64_MAX;
	spin_unlock(&w->rq.lock);
}

void fiber__steal_exit(struct worker *w)
{
	int sfd = atomic_exchange_explicit(&w->stat_fd, -1, memory_order_relaxed); /* the monitor has stopped */

	if (sfd >= 0)
		close(sfd);
}

/*
 * fiber__update_rq_clock found a sample due, or a charge up to rq->clock found a long run. Only the owner samples its
 * own thread (a waker or the monitor updating another worker's clock leaves it to the owner). The sample ends at
 * rq->clock, the time the charge goes up to, not at the moment of the sample: a host preemption between the clock
 * read and the sample belongs to the next charge, and taken into this one it was subtracted from a run that did
 * not hold it and then charged in full with the next (CI, and a loaded machine here: a fiber charged 1.7-6.2 ms
 * for 10 us of work). The thread's CPU time is read a little after rq->clock; the next interval starts at that
 * read, so what the gap holds evens out. The interval since the last sample is taken on its own and a negative
 * figure counts as none: no drift between the clocks can build up over a long busy period and hide a later steal.
 * rq->lock held.
 */
void fiber__steal_sample(struct rq *rq)
{
	struct worker *w = this_worker();
	uint64_t wall, cpu, slept;
	int64_t off;

	if (!w || &w->rq != rq)
		return;
	wall = rq->clock;
	/* A clock read before the last sample (the first one, fiber__steal_init) or before a sleep ended: later. */
	if (wall <= w->steal_wall || wall < w->steal_slept_end)
		return;
	cpu = thread_cpu_ns();
	slept = w->steal_slept;
	rq->steal_next = wall + STEAL_SAMPLE_NS;
	off = (int64_t)(wall - w->steal_wall) - (int64_t)(cpu - w->steal_cpu) - (int64_t)slept;
	w->steal_wall = wall;
	w->steal_cpu = cpu;
	w->steal_slept = 0;
	if (off > 0) {
		fiber__rq_exclude(rq, (uint64_t)off);
		rq->steal += (uint64_t)off;
	}
}

/* The owner @w slept by choice in its idle loop from @t0 (fiber__sched_clock) to now: not steal. */
void fiber__steal_slept(struct worker *w, uint64_t t0)
{
	uint64_t now = fiber__sched_clock();

	w->steal_slept += now - t0;
	w->steal_slept_end = now;
}
