/*
 * runtime/clock.c - sched_clock(): a monotonic nanosecond clock cheap enough for every switch.
 *
 * Where the TSC is invariant (constant_tsc and nonstop_tsc in /proc/cpuinfo), the clock is the TSC scaled to
 * nanoseconds with a multiply and a shift, calibrated once per process against CLOCK_MONOTONIC (rdtsc costs about a
 * third of a vDSO clock_gettime here). Otherwise it is clock_gettime(CLOCK_MONOTONIC). Either way the values are on
 * CLOCK_MONOTONIC's time line, so they can be compared with it.
 *
 * Steal: the worker threads are host threads, and the host may leave one runnable but not running for
 * milliseconds (another process on its CPU, a VM's vCPU descheduled). The clock runs on meanwhile, so that time would
 * be charged to whichever fiber was current, as if it had run: a fair fiber then waits out a lag it never used (with
 * hundreds of runnable fibers, hundreds of milliseconds), a deadline fiber is throttled early. The kernel leaves
 * paravirt steal out of rq_clock_task for the same reason. Our steal source is the thread's own run_delay in
 * /proc/thread-self/schedstat (CONFIG_SCHED_INFO; no steal accounting where it is missing), read by the owner
 * worker every STEAL_SAMPLE_NS when it updates its rq clock, and before it charges a long run (not under valgrind).
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

/* run_delay (ns, the second field of schedstat) from @fd; false if it cannot be read. */
static bool read_run_delay(int fd, uint64_t *out)
{
	char buf[96], *p;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return false;
	buf[n] = 0;
	strtoull(buf, &p, 10); /* the time it ran */
	if (*p != ' ')
		return false;
	*out = strtoull(p, NULL, 10);
	return true;
}

/* On @w's own thread, before it runs anything: open its schedstat. */
void fiber__steal_init(struct worker *w)
{
	const char *pre = getenv("LD_PRELOAD");
	int saved = errno, fd = -1;

	/*
	 * Under valgrind the clock is valgrind's slowed-down wall time and the samples would come every few
	 * instructions' worth of work, making callgrind's counts vary from run to run: no steal accounting there.
	 */
	if (!pre || !strstr(pre, "vgpreload"))
		fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);

	if (fd >= 0 && !read_run_delay(fd, &w->run_delay0)) {
		close(fd);
		fd = -1;
	}
	/*
	 * The thread's state for the monitor's stuck check (monitor.c worker_held), opened here once rather than by
	 * the monitor at each check: a file opened by another thread at any moment changes the numbers the
	 * application's own open calls get (POSIX's lowest free descriptor).
	 */
	atomic_store_explicit(&w->stat_fd, open("/proc/thread-self/stat", O_RDONLY | O_CLOEXEC), memory_order_release);
	errno = saved;
	spin_lock(&w->rq.lock); /* fibers may already be queued here by other threads */
	w->schedstat_fd = fd;
	w->rq.steal = 0;
	w->rq.excl_seen = fiber__rq_excluded(&w->rq);
	w->rq.steal_next = fd >= 0 ? 0 : UINT64_MAX;
	spin_unlock(&w->rq.lock);
}

void fiber__steal_exit(struct worker *w)
{
	int sfd = atomic_exchange_explicit(&w->stat_fd, -1, memory_order_relaxed); /* the monitor has stopped */

	if (w->schedstat_fd >= 0)
		close(w->schedstat_fd);
	w->schedstat_fd = -1;
	if (sfd >= 0)
		close(sfd);
}

/*
 * fiber__update_rq_clock found a sample due. Only the owner reads its own thread's figure (a waker or the monitor
 * updating another worker's clock leaves it to the owner). rq->lock held.
 */
void fiber__steal_sample(struct rq *rq)
{
	struct worker *w = this_worker();
	uint64_t d;

	if (!w || &w->rq != rq)
		return;
	rq->steal_next = rq->clock + STEAL_SAMPLE_NS;
	if (read_run_delay(w->schedstat_fd, &d) && d >= w->run_delay0 && d - w->run_delay0 > rq->steal) {
		fiber__rq_exclude(rq, d - w->run_delay0 - rq->steal);
		rq->steal = d - w->run_delay0;
	}
}
