/*
 * bench_wake.c - blocking and waking: a fiber parks on a wait queue, another wakes it.
 *
 *	wake_pingpong_same	fibers A and B on one worker wake each other in turn (ns one-way: per wake-up
 *				plus the switch to the woken fiber)
 *	wake_pingpong_cross	the same with A pinned to worker 0 and B to worker 1; each worker has nothing else
 *				to run while its fiber waits, so every wake-up is a wake of a sleeping worker
 *	wake_latency_cross	B waits on worker 1, which is otherwise idle; A, spinning on worker 0, waits 50 us
 *				(so that worker 1 is asleep) and then wakes it; ns from just before the wake call to
 *				B running. Baseline: a thread asleep in FUTEX_WAIT on an idle CPU (pthread_bench.c)
 *	wake_latency_busy	the same, but worker 1 also runs a CPU-bound fiber that calls fiber_cond_resched()
 *				in a loop: the wake-up must preempt it (budget: a median under 1 us)
 *	wake_latency_*_p99	the 99th percentile of the same wake-ups (the two rows above report the median of
 *				each repetition's wake-ups: bench_lat in common/bench.h)
 *	(chan_pingpong_1w/2w: bench_sync.c)
 *
 * The cross-worker rows run with pinned workers (FIBER_CFG_PIN; FIBER_PIN=0 in the environment: the default,
 * unpinned), as the pthread baseline pins its two threads: unpinned, the host may put both worker threads on one
 * CPU, and the row then measures the host's scheduler.
 *
 * The blocking primitive: fiber.h has no wait-queue API yet, so this program uses the runtime's internal wait
 * queues (runtime/wait.c: fiber__prepare_to_wait / fiber__schedule / fiber__finish_wait / fiber__wake_up, the
 * loop fiber_join itself uses) and links libfiber.a.
 * TODO: switch to the public fiber_wait_event() / fiber_wake_up() of API.md once fiber.h declares them, and link
 * libfiber.so like the other public-API benchmarks.
 */
#include "lf.h"

#if __has_include("internal.h")
#include "internal.h"
#define HAVE_WAIT 1
#else
#define HAVE_WAIT 0
#endif

#define LATENCY_GAP_NS 50000   /* how long the wakee sleeps before each measured wake-up */
#define STUCK_NS 1000000000ull /* a wake-up not delivered after 1 s: give up on the measurement */

static const char *const wake_ops[] = {
	"wake_pingpong_same", "wake_pingpong_cross",	"wake_latency_cross",
	"wake_latency_busy",  "wake_latency_cross_p99", "wake_latency_busy_p99",
};
#define NR_WAKE_OPS (sizeof(wake_ops) / sizeof(wake_ops[0]))

#if HAVE_WAIT

/* An event: a sequence number and the fibers waiting for it to reach a value. */
struct event {
	struct wait_queue_head wq;
	int seq;
};

static void ev_init(struct event *ev)
{
	fiber__init_waitqueue_head(&ev->wq);
	ev->seq = 0;
}

/* ev_wait - park until @ev's sequence number is @want (the kernel's wait_event loop). */
static void ev_wait(struct event *ev, int want)
{
	struct wait_queue_entry e;

	if (__atomic_load_n(&ev->seq, __ATOMIC_ACQUIRE) == want)
		return;
	memset(&e, 0, sizeof(e));
	INIT_LIST_HEAD(&e.entry);
	for (;;) {
		fiber__prepare_to_wait(&ev->wq, &e, TASK_UNINTERRUPTIBLE);
		if (__atomic_load_n(&ev->seq, __ATOMIC_ACQUIRE) == want)
			break;
		fiber__schedule();
	}
	fiber__finish_wait(&ev->wq, &e);
}

/* ev_post - set @ev's sequence number to @v and wake one waiter. */
static void ev_post(struct event *ev, int v)
{
	__atomic_store_n(&ev->seq, v, __ATOMIC_RELEASE);
	fiber__wake_up(&ev->wq, TASK_NORMAL, 1);
}

/* The shared state of one measurement. */
struct wake {
	struct event ping, pong;
	int n;
	int busy_stop;	      /* tells the CPU-bound fiber of wake_latency_busy to finish */
	uint64_t t_wake;      /* latency: time just before ev_post(ping) */
	struct bench_lat lat; /* latency: every wake-up's, recorded by the wakee */
	int err;	      /* first failed fiber_spawn */
	int done;	      /* latency: the waker has finished, the wakee must too */
	int stuck;	      /* latency: a wake-up was not delivered within STUCK_NS */
	int wa, wb;	      /* the workers a and b are pinned to, -1: any */
	int misplaced;	      /* times a woken fiber ran on a worker its affinity excludes */
};

/* check_worker - after a wake-up: count it if the fiber runs outside its affinity (the test would be void). */
static void check_worker(struct wake *w, int want)
{
	if (want >= 0 && fiber_worker_id() != want)
		__atomic_fetch_add(&w->misplaced, 1, __ATOMIC_RELAXED);
}

static void *pp_a(void *arg)
{
	struct wake *w = arg;
	int i;

	for (i = 1; i <= w->n; i++) {
		ev_post(&w->ping, i);
		ev_wait(&w->pong, i);
		check_worker(w, w->wa);
	}
	return NULL;
}

static void *pp_b(void *arg)
{
	struct wake *w = arg;
	int i;

	for (i = 1; i <= w->n; i++) {
		ev_wait(&w->ping, i);
		check_worker(w, w->wb);
		ev_post(&w->pong, i);
	}
	return NULL;
}

static void *lat_waker(void *arg)
{
	struct wake *w = arg;
	uint64_t until;
	int i;

	for (i = 1; i <= w->n && !w->stuck; i++) {
		until = bench_now_ns() + LATENCY_GAP_NS;
		while (bench_now_ns() < until)
			bench_cpu_relax();
		__atomic_store_n(&w->t_wake, bench_now_ns(), __ATOMIC_RELAXED);
		ev_post(&w->ping, i);
		until = bench_now_ns() + STUCK_NS;
		while (__atomic_load_n(&w->pong.seq, __ATOMIC_ACQUIRE) != i) {
			if (!w->stuck && bench_now_ns() > until) {
				/* Not delivered: stop the CPU-bound fiber so that the wakee gets to run at all. */
				w->stuck = 1;
				__atomic_store_n(&w->busy_stop, 1, __ATOMIC_RELAXED);
			}
			bench_cpu_relax();
		}
	}
	/* Tell the wakee to finish. */
	__atomic_store_n(&w->done, 1, __ATOMIC_RELAXED);
	ev_post(&w->ping, i);
	return NULL;
}

static void *lat_wakee(void *arg)
{
	struct wake *w = arg;
	int i;

	for (i = 1;; i++) {
		ev_wait(&w->ping, i);
		if (__atomic_load_n(&w->done, __ATOMIC_RELAXED))
			break;
		bench_lat_add(&w->lat, bench_now_ns() - __atomic_load_n(&w->t_wake, __ATOMIC_RELAXED));
		check_worker(w, w->wb);
		__atomic_store_n(&w->pong.seq, i, __ATOMIC_RELEASE);
	}
	return NULL;
}

static void *busy(void *arg)
{
	struct wake *w = arg;

	while (!__atomic_load_n(&w->busy_stop, __ATOMIC_RELAXED))
		fiber_cond_resched();
	return NULL;
}

/* run2 - run @a on worker @wa and @b on worker @wb (-1: any) until both return; ns from spawn to joined. */
static uint64_t run2(struct wake *w, void *(*a)(void *), int wa, void *(*b)(void *), int wb, int with_busy)
{
	struct fiber_attr attr;
	fiber_t *fa = NULL, *fb = NULL, *fbusy = NULL;
	uint64_t t0;
	int err;

	w->wa = wa;
	w->wb = wb;
	if (with_busy) {
		lf_attr_on(&attr, wb);
		err = fiber_spawn(&fbusy, &attr, busy, w);
		if (err)
			goto fail;
	}
	t0 = bench_now_ns();
	lf_attr_on(&attr, wb);
	err = fiber_spawn(&fb, &attr, b, w);
	if (err)
		goto fail;
	lf_attr_on(&attr, wa);
	err = fiber_spawn(&fa, &attr, a, w);
	if (err)
		goto fail;
	fiber_join(fa, NULL);
	fiber_join(fb, NULL);
	t0 = bench_now_ns() - t0;
	if (fbusy) {
		__atomic_store_n(&w->busy_stop, 1, __ATOMIC_RELAXED);
		fiber_join(fbusy, NULL);
	}
	return t0;

fail:
	/* Let whatever did start finish: b waits for a ping that never comes, so give it all of them. */
	if (!w->err)
		w->err = err;
	if (fb && !fa) {
		for (int i = 1; i <= w->n; i++)
			ev_post(&w->ping, i);
		fiber_join(fb, NULL);
	}
	if (fbusy) {
		__atomic_store_n(&w->busy_stop, 1, __ATOMIC_RELAXED);
		fiber_join(fbusy, NULL);
	}
	return 1;
}

static struct wake *wake_new(uint64_t iters)
{
	static struct wake w;

	memset(&w, 0, sizeof(w));
	ev_init(&w.ping);
	ev_init(&w.pong);
	w.n = iters > 0x7fffffff ? 0x7fffffff : (int)iters;
	return &w;
}

static int first_err;
static int misplaced[NR_WAKE_OPS]; /* per wake_ops[] entry: wake-ups that ran outside the fiber's affinity */
static int stuck_busy;		   /* wake_latency_busy: a wake-up never preempted the CPU-bound fiber */

static uint64_t pingpong_same(void *arg, uint64_t iters)
{
	struct wake *w = wake_new(iters);
	uint64_t ns = run2(w, pp_a, -1, pp_b, -1, 0);

	(void)arg;
	if (w->err && !first_err)
		first_err = w->err;
	return ns;
}

static uint64_t pingpong_cross(void *arg, uint64_t iters)
{
	struct wake *w = wake_new(iters);
	uint64_t ns = run2(w, pp_a, 0, pp_b, 1, 0);

	(void)arg;
	misplaced[1] += w->misplaced;
	if (w->err && !first_err)
		first_err = w->err;
	return ns;
}

/* Which latency row: the wakee's worker idle or busy, and the quantile it reports. */
struct lat_row {
	int busy;
	double q;
	int op; /* index in wake_ops[] */
};

static const struct lat_row lat_cross = { 0, 0.5, 2 }, lat_busy = { 1, 0.5, 3 }, lat_cross_p99 = { 0, 0.99, 4 },
			    lat_busy_p99 = { 1, 0.99, 5 };

static uint64_t latency(void *arg, uint64_t iters)
{
	const struct lat_row *row = arg;
	struct wake *w = wake_new(iters);

	bench_lat_init(&w->lat, iters);
	run2(w, lat_waker, 0, lat_wakee, 1, row->busy);
	if (w->err && !first_err)
		first_err = w->err;
	if (w->stuck)
		stuck_busy = 1;
	misplaced[row->op] += w->misplaced;
	return bench_lat_result(&w->lat, row->q, iters);
}

static void root_same(void *arg)
{
	(void)arg;
	if (bench_want("wake_pingpong_same"))
		bench_run("wake_pingpong_same", "libfiber", "ns/wake", pingpong_same, NULL, 2);
}

static void root_cross(void *arg)
{
	(void)arg;
	if (bench_want("wake_pingpong_cross"))
		bench_run("wake_pingpong_cross", "libfiber", "ns/wake", pingpong_cross, NULL, 2);
	if (bench_want("wake_latency_cross"))
		bench_run("wake_latency_cross", "libfiber", "ns/wake", latency, (void *)&lat_cross, 1);
	if (bench_want("wake_latency_cross_p99"))
		bench_run("wake_latency_cross_p99", "libfiber", "ns/wake", latency, (void *)&lat_cross_p99, 1);
	if (bench_want("wake_latency_busy"))
		bench_run("wake_latency_busy", "libfiber", "ns/wake", latency, (void *)&lat_busy, 1);
	if (bench_want("wake_latency_busy_p99"))
		bench_run("wake_latency_busy_p99", "libfiber", "ns/wake", latency, (void *)&lat_busy_p99, 1);
}

static int run_all(void)
{
	int err;

	err = lf_run(1, root_same, NULL);
	if (err) {
		lf_na_err(wake_ops[0], "fiber_run", err);
		return 1;
	}
	/* Pinned: each worker is a CPU, as the pthread baseline's threads are (FIBER_PIN=0: unpinned). */
	err = lf_run_flags(2, lf_pin_flags(), root_cross, NULL);
	if (err) {
		for (unsigned i = 1; i < NR_WAKE_OPS; i++)
			if (bench_want(wake_ops[i]))
				lf_na_err(wake_ops[i], "fiber_run", err);
		return 1;
	}
	for (unsigned i = 1; i < NR_WAKE_OPS; i++) {
		char reason[160];

		if (!misplaced[i])
			continue;
		snprintf(reason, sizeof(reason),
			 "%d wake-ups ran on a worker the fiber's affinity excludes; the measurement is void",
			 misplaced[i]);
		bench_na(wake_ops[i], "libfiber", reason);
	}
	if (stuck_busy) {
		bench_na("wake_latency_busy", "libfiber",
			 "a wake-up was not delivered within 1 s while a CPU-bound fiber ran on the wakee's worker");
		bench_na("wake_latency_busy_p99", "libfiber",
			 "a wake-up was not delivered within 1 s while a CPU-bound fiber ran on the wakee's worker");
	}
	if (first_err) {
		/* Printed after the RESULT lines, so the runner shows the failure instead of a meaningless figure. */
		for (unsigned i = 0; i < NR_WAKE_OPS; i++)
			if (bench_want(wake_ops[i]))
				lf_na_err(wake_ops[i], "fiber_spawn", first_err);
		return 1;
	}
	return 0;
}

#else /* !HAVE_WAIT */

static int run_all(void)
{
	for (unsigned i = 0; i < NR_WAKE_OPS; i++)
		if (bench_want(wake_ops[i]))
			bench_na(wake_ops[i], "libfiber", "not available: needs a blocking primitive");
	return 0;
}

#endif /* HAVE_WAIT */

int main(int argc, char **argv)
{
	int bad;

	bench_init(argc, argv);
	bad = run_all();
	/* chan_pingpong_1w/2w: bench_sync.c. */
	return bad;
}
