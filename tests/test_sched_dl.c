/*
 * test_sched_dl: the dl class, EDF + CBS with partitioned admission (KERNEL_MAP §7.3). Black-box: only
 * include/fiber.h. A DEADLINE fiber is spawned NORMAL and sets itself DEADLINE (fiber_spawn refuses it).
 *  - three admissible fibers (2/20, 3/30, 5/50 ms) that each try to use the whole CPU, next to a CPU-bound NORMAL
 *    fiber, each get runtime/period of the CPU over 2 s (within 15%), have had k budgets by the start of their k-th
 *    period, and run in every period (unless host preemption charged to them made them a whole budget early);
 *  - a fiber that overruns (10 ms every 50 ms, never yields) is throttled to its 20% (within 5 points) while a
 *    CPU-bound NORMAL fiber on the same worker gets at least 70%;
 *  - fiber_yield gives up the rest of the budget until the next period: a fiber that runs 1 ms of its 5 ms and
 *    yields runs once per period and is charged its bursts only;
 *  - admission is per worker: with 2 workers two 60% fibers fit (one per worker), a third 60% does not (-EBUSY,
 *    the fiber keeps its policy), a 30% one still does.
 */
#include "test_util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <pthread.h>

#include "internal.h"

#define ATTR_DL(r, d, p)                                                                                               \
	((struct fiber_sched_attr){                                                                                    \
	    .policy = FIBER_SCHED_DEADLINE, .runtime_ns = (r), .deadline_ns = (d), .period_ns = (p) })

/* Gaps between two loop iterations longer than this mean the fiber was not running in between. */
#define RUN_GAP_NS (100 * US)

static atomic_int stop;
static atomic_int err; /* or-ed from several fibers */

static uint64_t exec_ns(fiber_t *f)
{
	int e = 0;
	uint64_t ns = fiber_exec_ns(f, &e);

	atomic_fetch_or(&err, e);
	return ns;
}

/* CPU-bound until told to stop (or for 10 s at most, so that a broken scheduler cannot hang the test). */
static void *hog(void *arg)
{
	uint64_t cap = now_ns() + 10000 * MS;

	while (!atomic_load_explicit(&stop, memory_order_relaxed) && now_ns() < cap)
		fiber_cond_resched();
	return NULL;
}

/* ---- every fiber gets runtime/period, in every period ---- */

#define EP_RUN_NS (2000 * MS)
#define EP_N 3
#define EP_MAX_PERIODS 128
#define EP_TOL_NS (1 * MS)	/* a tick: how finely the runtime charges and throttles */
#define EP_GAP_MAX_NS (10 * MS) /* half the shortest period: a shorter host stretch only delays a period's service */
static const uint64_t ep_runtime[EP_N] = { 2 * MS, 3 * MS, 5 * MS };
static const uint64_t ep_period[EP_N] = { 20 * MS, 30 * MS, 50 * MS };
static struct {
	int set, nb;
	uint64_t exec, wall;
	uint64_t charged[EP_MAX_PERIODS + 1]; /* sum_exec_ns when boundary k had passed, since the change */
	bool served[EP_MAX_PERIODS];	      /* the fiber ran in period k */
} ep[EP_N];
static atomic_int ep_done;
static uint64_t ep_host_gap; /* the longest stretch the host kept the worker off the CPU, seen by any fiber here */

/*
 * Between a fiber's consecutive loop iterations the wall clock moved by d and the worker thread's CPU time by c
 * (whichever fibers ran meanwhile: they all run on that thread); d - c is what the host took. All of this test's
 * fibers run on its one worker, so the plain maximum needs no lock.
 */
static void ep_note_gap(uint64_t *last_t, uint64_t *last_c, uint64_t t)
{
	uint64_t c = thread_cpu_ns();

	if (*last_t && t - *last_t > c - *last_c && t - *last_t - (c - *last_c) > ep_host_gap)
		ep_host_gap = t - *last_t - (c - *last_c);
	*last_t = t;
	*last_c = c;
}

/*
 * The first period starts when the change is made (between t0 and setattr's return) and each next one a period
 * later: period k is [t0 + k p, t0 + (k + 1) p) to within the few microseconds setattr takes. On its first loop
 * iteration at or after each boundary the fiber notes its sum_exec_ns (charged[k]: everything it was charged
 * before it got the worker back, so the service of the periods before k) and whether that iteration is still in
 * period k (served[k]). The fiber never blocks: it is only throttled.
 */
static void *ep_fiber(void *arg)
{
	int i = (int)(intptr_t)arg, k = 0;
	uint64_t t0, t, p = ep_period[i], s0 = 0, lt = 0, lc = 0;

	t0 = now_ns();
	ep[i].set = fiber_setattr(NULL, &ATTR_DL(ep_runtime[i], p, p));
	for (;;) {
		t = now_ns();
		ep_note_gap(&lt, &lc, t);
		if (t >= t0 + k * p && k <= EP_MAX_PERIODS) {
			uint64_t s = exec_ns(NULL);

			if (k == 0)
				s0 = s;
			for (; t >= t0 + k * p && k <= EP_MAX_PERIODS; k++) {
				ep[i].charged[k] = s - s0;
				if (k < EP_MAX_PERIODS)
					ep[i].served[k] = t < t0 + (k + 1) * p;
			}
		}
		if (t - t0 >= EP_RUN_NS)
			break; /* with every boundary up to now noted */
		fiber_cond_resched();
	}
	ep[i].exec = exec_ns(NULL) - s0;
	ep[i].wall = t - t0;
	ep[i].nb = k; /* boundaries 0 .. k - 1 noted: periods 0 .. k - 2 are over */
	atomic_fetch_add(&ep_done, 1);
	return NULL;
}

static void ep_main(void *arg)
{
	fiber_t *f[EP_N] = { 0 };
	uint64_t cap, t, lt = 0, lc = 0;

	for (int i = 0; i < EP_N; i++)
		atomic_fetch_or(&err, fiber_spawn(&f[i], NULL, ep_fiber, (void *)(intptr_t)i));
	/* This NORMAL fiber is the CPU-bound background the DEADLINE fibers have to preempt. */
	cap = now_ns() + 3 * EP_RUN_NS;
	while (atomic_load(&ep_done) < EP_N && (t = now_ns()) < cap) {
		ep_note_gap(&lt, &lc, t);
		fiber_cond_resched();
	}
	for (int i = 0; i < EP_N; i++)
		fiber_join(f[i], NULL);
}

static void test_dl_each_gets_runtime_every_period(void **state)
{
	struct fiber_config c = sched_cfg(1);
	struct steal_probe sp;
	double stolen;

	memset(ep, 0, sizeof(ep));
	atomic_store(&ep_done, 0);
	ep_host_gap = 0;
	err = 0;
	steal_start(&sp); /* the NORMAL background keeps the one worker busy throughout */
	assert_int_equal(fiber_run(&c, ep_main, NULL), 0);
	stolen = steal_end(&sp);
	assert_int_equal(err, 0);
	for (int i = 0; i < EP_N; i++) {
		double want = (double)ep_runtime[i] / (double)ep_period[i] * (double)ep[i].wall;
		int empty = 0;

		for (int k = 0; k + 1 < ep[i].nb; k++)
			empty += !ep[i].served[k];
		print_message(
		    "  %llu/%llu ms: charged %.1f ms in %.1f ms (want %.1f); %d of %d periods without service\n",
		    (unsigned long long)(ep_runtime[i] / MS), (unsigned long long)(ep_period[i] / MS), ep[i].exec / 1e6,
		    ep[i].wall / 1e6, want / 1e6, empty, ep[i].nb - 1);
	}
	print_message("  the host kept the worker off the CPU for at most %.2f ms at once\n", ep_host_gap / 1e6);
	skip_if_stolen(stolen);
	for (int i = 0; i < EP_N; i++) {
		uint64_t q = ep_runtime[i];
		double want = (double)q / (double)ep_period[i] * (double)ep[i].wall;

		assert_int_equal(ep[i].set, 0);
		assert_true(ep[i].wall >= EP_RUN_NS);
		assert_true(ep[i].nb - 1 >= (int)(EP_RUN_NS / ep_period[i]));
		assert_true(ep[i].exec > want * 0.85 && ep[i].exec < want * 1.15);
		/*
		 * A period's service needs the worker: a stretch of host preemption that covers most of a period takes
		 * that period's service for good (CBS does not pay back a missed period); a shorter one only delays it
		 * (stretches of 1-3 ms are common here and harmless). CI once saw the 2/20 ms fiber lose 30 of 123
		 * periods and finish 460 ms late, with its total service right (246.7 ms of 246.0). A run with a
		 * stretch longer than EP_GAP_MAX_NS checks only the totals above.
		 */
		if (ep_host_gap > EP_GAP_MAX_NS) {
			print_message(
			    "  %llu/%llu ms: per-period checks skipped (the host took the worker for %.1f ms)\n",
			    (unsigned long long)(q / MS), (unsigned long long)(ep_period[i] / MS), ep_host_gap / 1e6);
			continue;
		}
		for (int k = 0; k + 1 < ep[i].nb; k++) {
			/* By the start of period k + 1 it has had the budgets of periods 0 .. k. */
			assert_true(ep[i].charged[k + 1] + EP_TOL_NS >= (k + 1) * q);
			/*
			 * It ran in period k, unless it had already been charged that period's budget too: CBS carries an
			 * overrun over as debt, and the runtime charges wall-clock time, so the host descheduling the
			 * worker thread while the fiber runs can cost the fiber a later period. Without that, an overrun
			 * is less than a tick and never a whole budget.
			 */
			if (!ep[i].served[k])
				assert_true(ep[i].charged[k] + EP_TOL_NS >= (k + 1) * q);
		}
	}
}

/* ---- an overrunning fiber is throttled to its bandwidth; fair fibers keep the rest ---- */

static int ov_set = 1;
static uint64_t ov_dl, ov_fair, ov_wall;

static void *ov_dl_fiber(void *arg)
{
	ov_set = fiber_setattr(NULL, &ATTR_DL(10 * MS, 50 * MS, 50 * MS));
	return hog(NULL); /* never yields, never blocks: only CBS throttling stops it */
}

static void ov_main(void *arg)
{
	fiber_t *d = NULL, *n = NULL;
	uint64_t d0, n0, t0;

	atomic_fetch_or(&err, fiber_spawn(&d, NULL, ov_dl_fiber, NULL));
	atomic_fetch_or(&err, fiber_spawn(&n, NULL, hog, NULL));
	if (!d || !n)
		goto out;
	fiber_sleep(100 * MS);
	d0 = exec_ns(d), n0 = exec_ns(n), t0 = now_ns();
	fiber_sleep(1500 * MS);
	ov_dl = exec_ns(d) - d0, ov_fair = exec_ns(n) - n0, ov_wall = now_ns() - t0;
out:
	atomic_store(&stop, 1);
	fiber_join(d, NULL);
	fiber_join(n, NULL);
}

/* @monitor false: FIBER_MONITOR=0 for this run only (unset before any assertion can leave the test). */
static void ov_run_and_check(bool monitor)
{
	struct fiber_config c = sched_cfg(1);
	double dl_share, fair_share, stolen;
	struct steal_probe sp;
	int rc;

	atomic_store(&stop, 0);
	err = 0;
	ov_set = 1;
	ov_dl = ov_fair = ov_wall = 0;
	if (!monitor)
		setenv("FIBER_MONITOR", "0", 1);
	steal_start(&sp); /* the DEADLINE and NORMAL hogs keep the one worker busy throughout */
	rc = fiber_run(&c, ov_main, NULL);
	stolen = steal_end(&sp);
	if (!monitor)
		unsetenv("FIBER_MONITOR");
	assert_int_equal(rc, 0);
	assert_int_equal(err, 0);
	assert_int_equal(ov_set, 0);
	assert_true(ov_wall > 0);
	dl_share = (double)ov_dl / (double)ov_wall;
	fair_share = (double)ov_fair / (double)ov_wall;
	print_message("  DEADLINE 10/50 ms: %.1f%%, NORMAL: %.1f%% of %.1f ms; the host took %.1f%%\n", dl_share * 100,
		      fair_share * 100, ov_wall / 1e6, stolen * 100);
	skip_if_stolen(stolen);
	/*
	 * The budget is 10 ms of the fiber's own run time per 50 ms of wall time, so the DEADLINE share of the wall is
	 * 20% whatever the host takes. The runtime's clock leaves host preemption out of every fiber's run time (the
	 * kernel's rq_clock_task): the NORMAL fiber keeps the rest less what the host took (CI saw 67.9% with 11%
	 * taken).
	 */
	assert_true(dl_share > 0.15 && dl_share < 0.25);
	assert_true(fair_share + stolen >= 0.70);
}

static void test_dl_overrun_throttled_fair_still_runs(void **state)
{
	ov_run_and_check(true);
}

/*
 * The budget's tick without the monitor thread (FIBER_MONITOR=0): the worker ticks itself at preemption points
 * (core.c tick_fallback). Before that fallback nothing ticked the worker: the DEADLINE hog was never throttled and
 * the NORMAL fiber never ran (0.0% and 0.0% of the window as the runtime charged them; the spawn test's DEADLINE
 * fiber ran 99.8 ms of 100).
 */
static void test_dl_budget_enforced_without_the_monitor(void **state)
{
	ov_run_and_check(false);
}

/* ---- yield gives up the rest of the budget until the next period ---- */

#define YD_RUNTIME_NS (5 * MS)
#define YD_PERIOD_NS (50 * MS)
#define YD_RUN_NS (1000 * MS)
#define YD_MAX 256
static int yd_set = 1, yd_n;
static uint64_t yd_resume[YD_MAX], yd_exec, yd_wall, yd_burst_wall;

/* Runs for @ns of its own run time (time off the worker does not count). */
static void burn_run_ns(uint64_t ns)
{
	uint64_t ran = 0, last = now_ns(), t;

	while (ran < ns) {
		fiber_cond_resched();
		t = now_ns();
		if (t - last < RUN_GAP_NS)
			ran += t - last;
		last = t;
	}
}

static void *yd_fiber(void *arg)
{
	uint64_t t0 = now_ns(), s0;

	yd_set = fiber_setattr(NULL, &ATTR_DL(YD_RUNTIME_NS, YD_PERIOD_NS, YD_PERIOD_NS));
	s0 = exec_ns(NULL);
	while (now_ns() - t0 < YD_RUN_NS && yd_n < YD_MAX) {
		uint64_t b0 = now_ns();

		burn_run_ns(1 * MS); /* a fifth of the budget */
		yd_burst_wall += now_ns() - b0;
		fiber_yield();
		yd_resume[yd_n++] = now_ns();
	}
	yd_exec = exec_ns(NULL) - s0;
	yd_wall = now_ns() - t0;
	atomic_store(&stop, 1);
	return NULL;
}

static void yd_main(void *arg)
{
	fiber_t *y = NULL, *n = NULL;

	atomic_fetch_or(&err, fiber_spawn(&y, NULL, yd_fiber, NULL));
	atomic_fetch_or(&err,
			fiber_spawn(&n, NULL, hog, NULL)); /* takes the worker whenever the DEADLINE fiber does not */
	fiber_join(y, NULL);
	atomic_store(&stop, 1);
	fiber_join(n, NULL);
}

static void test_dl_yield_gives_up_budget(void **state)
{
	struct fiber_config c = sched_cfg(1);
	uint64_t min_gap = UINT64_MAX;
	int periods;

	atomic_store(&stop, 0);
	err = 0;
	yd_set = 1;
	yd_n = 0;
	yd_exec = yd_wall = yd_burst_wall = 0;
	assert_int_equal(fiber_run(&c, yd_main, NULL), 0);
	assert_int_equal(err, 0);
	assert_int_equal(yd_set, 0);
	for (int k = 1; k < yd_n; k++)
		if (yd_resume[k] - yd_resume[k - 1] < min_gap)
			min_gap = yd_resume[k] - yd_resume[k - 1];
	periods = (int)(yd_wall / YD_PERIOD_NS);
	print_message("  %d yields in %.1f ms (%d periods), charged %.1f ms for %.1f ms of bursts, shortest "
		      "yield-to-yield %.2f ms\n",
		      yd_n, yd_wall / 1e6, periods, yd_exec / 1e6, yd_burst_wall / 1e6, min_gap / 1e6);
	/*
	 * One 1 ms burst per period: each yield waits for the next period (a yield that kept the budget would give
	 * five bursts per period, 1 ms apart). Host preemption can delay one resumption and so shorten the next
	 * gap by a few ms, never to half a period; and host preemption charged to a burst (the runtime charges
	 * wall-clock time) can cost a period, as CBS debt.
	 */
	assert_in_range(yd_n, periods / 2, periods + 2);
	assert_true(min_gap > YD_PERIOD_NS / 2);
	/* The fiber is charged for its bursts (wall-clock) and nothing more: the rest of each budget is given up. */
	assert_true(yd_exec < yd_burst_wall + (uint64_t)yd_n * 500 * US);
}

/* ---- admission is per worker ---- */

enum { AD_A, AD_B, AD_C, AD_D, AD_N };
static const uint64_t ad_runtime[AD_N] = { 6 * MS, 6 * MS, 6 * MS, 3 * MS }; /* of 10 ms: 60, 60, 60, 30% */
static struct {
	atomic_int done;
	int set, worker;
	struct fiber_sched_attr after;
} ad[AD_N];
static atomic_int ad_release;

static void *ad_fiber(void *arg)
{
	int i = (int)(intptr_t)arg;

	ad[i].set = fiber_setattr(NULL, &ATTR_DL(ad_runtime[i], 10 * MS, 10 * MS));
	fiber_sleep(1 * MS); /* a DEADLINE fiber wakes up on the worker it was given */
	ad[i].worker = fiber_worker_id();
	atomic_fetch_or(&err, fiber_getattr(NULL, &ad[i].after));
	atomic_store(&ad[i].done, 1);
	while (!atomic_load(&ad_release))
		fiber_sleep(2 * MS);
	return NULL;
}

static void ad_main(void *arg)
{
	fiber_t *f[AD_N] = { 0 };

	/* One after the other, so that each admission sees the ones before it. */
	for (int i = 0; i < AD_N; i++) {
		uint64_t cap = now_ns() + 1000 * MS;

		atomic_fetch_or(&err, fiber_spawn(&f[i], NULL, ad_fiber, (void *)(intptr_t)i));
		while (!atomic_load(&ad[i].done) && now_ns() < cap)
			fiber_sleep(1 * MS);
	}
	atomic_store(&ad_release, 1);
	for (int i = 0; i < AD_N; i++)
		fiber_join(f[i], NULL);
}

static void test_dl_admission_per_worker(void **state)
{
	struct fiber_config c = sched_cfg(2);

	memset(ad, 0, sizeof(ad));
	for (int i = 0; i < AD_N; i++)
		ad[i].set = 1, ad[i].worker = -1;
	atomic_store(&ad_release, 0);
	err = 0;
	assert_int_equal(fiber_run(&c, ad_main, NULL), 0);
	assert_int_equal(err, 0);
	print_message("  60%%: %d on worker %d, 60%%: %d on worker %d, 60%%: %d, 30%%: %d on worker %d\n", ad[AD_A].set,
		      ad[AD_A].worker, ad[AD_B].set, ad[AD_B].worker, ad[AD_C].set, ad[AD_D].set, ad[AD_D].worker);
	assert_int_equal(ad[AD_A].set, 0);
	assert_int_equal(ad[AD_B].set, 0);
	assert_int_equal(ad[AD_C].set, -EBUSY);
	assert_int_equal(ad[AD_D].set, 0);
	/* 60% + 60% cannot share a worker. */
	assert_true(ad[AD_A].worker == 0 || ad[AD_A].worker == 1);
	assert_true(ad[AD_B].worker == 0 || ad[AD_B].worker == 1);
	assert_int_not_equal(ad[AD_A].worker, ad[AD_B].worker);
	assert_int_equal(ad[AD_A].after.policy, FIBER_SCHED_DEADLINE);
	assert_int_equal(ad[AD_C].after.policy, FIBER_SCHED_NORMAL); /* refused: unchanged */
	assert_int_equal(ad[AD_D].after.policy, FIBER_SCHED_DEADLINE);
}

/*
 * Concurrent fiber_setattr(DEADLINE) calls on one fiber, from fibers on two workers and two plain threads, with
 * different budgets: the reservations never add up to more than one fiber's (admission runs under the fiber's
 * locks, so the calls apply one after the other), nothing is left reserved or armed afterwards, and nothing leaks
 * (the ASan suite checks leaks; the old code allocated the replenishment timer outside the locks).
 */
static atomic_int target_stop, mutators_left, dl_errors, dl_overbooked;
static fiber_t *dl_target;

static void *dl_target_fn(void *arg)
{
	(void)arg;
	while (!atomic_load(&target_stop)) {
		spin_ns(200 * US);
		fiber_sleep(100 * US);
	}
	return NULL;
}

static uint64_t total_dl_bw(void)
{
	uint64_t bw = 0;

	spin_lock(&fiber__rt.dl_lock);
	for (unsigned i = 0; i < fiber__rt.nr_workers; i++)
		bw += cpu_rq((int)i)->dl.this_bw;
	spin_unlock(&fiber__rt.dl_lock);
	return bw;
}

static void dl_mutate(unsigned seed)
{
	static const uint64_t budgets[] = { 500 * US, 1 * MS, 2 * MS };
	const uint64_t max_bw = ((2 * MS) << BW_SHIFT) / (10 * MS);

	for (int i = 0; i < 3000; i++) {
		struct fiber_sched_attr a = { .policy = FIBER_SCHED_DEADLINE,
					      .deadline_ns = 10 * MS,
					      .period_ns = 10 * MS };
		int ret;

		seed = seed * 1103515245u + 12345u;
		a.runtime_ns = budgets[(seed >> 8) % 3];
		if ((seed >> 12) % 5 == 0)
			a = (struct fiber_sched_attr){ .policy = FIBER_SCHED_NORMAL };
		ret = fiber_setattr(dl_target, &a);
		if (ret && ret != -EBUSY)
			atomic_fetch_add(&dl_errors, 1);
		if (total_dl_bw() > max_bw + 1)
			atomic_fetch_add(&dl_overbooked, 1);
	}
	atomic_fetch_sub(&mutators_left, 1);
}

static void *dl_mutator_fiber(void *arg)
{
	dl_mutate((unsigned)(uintptr_t)arg);
	return NULL;
}

static void *dl_mutator_thread(void *arg)
{
	dl_mutate((unsigned)(uintptr_t)arg);
	return NULL;
}

static void test_dl_concurrent_setattr_one_fiber(void **state)
{
	struct fiber_config c = sched_cfg(2);
	struct fiber_sched_attr normal = { .policy = FIBER_SCHED_NORMAL };
	pthread_t thr[2];
	fiber_t *m[2];
	unsigned armed = 0;
	uint64_t left_bw;

	(void)state;
	assert_int_equal(fiber_runtime_start(&c), 0);
	assert_int_equal(fiber_spawn(&dl_target, NULL, dl_target_fn, NULL), 0);
	atomic_store(&mutators_left, 4);
	for (int i = 0; i < 2; i++) {
		struct fiber_attr a;

		fiber_attr_init(&a);
		CPU_SET(i, &a.affinity);
		assert_int_equal(fiber_spawn(&m[i], &a, dl_mutator_fiber, (void *)(uintptr_t)(i + 1)), 0);
		assert_int_equal(pthread_create(&thr[i], NULL, dl_mutator_thread, (void *)(uintptr_t)(i + 11)), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(fiber_join(m[i], NULL), 0);
		pthread_join(thr[i], NULL);
	}
	assert_int_equal(fiber_setattr(dl_target, &normal), 0);
	left_bw = total_dl_bw();
	atomic_store(&target_stop, 1);
	assert_int_equal(fiber_join(dl_target, NULL), 0);
	/* The join returns when the fiber has exited; its last switch-out (which deletes the timer) may still run. */
	while (atomic_load(&fiber__rt.nr_fibers))
		usleep(100);
	for (unsigned i = 0; i < fiber__rt.nr_workers; i++)
		armed += fiber__rt.workers[i].timers.nr;
	assert_int_equal(fiber_runtime_stop(), 0);

	assert_int_equal(atomic_load(&dl_errors), 0);
	assert_int_equal(atomic_load(&dl_overbooked), 0);
	assert_int_equal(left_bw, 0);
	assert_int_equal(armed, 0); /* the dead fiber's replenishment timer is not left on a heap */
}

/* A spawn that asks for DEADLINE is admitted like fiber_setattr, runs on the worker holding its bandwidth, gets its
 * budget, and gives the bandwidth back when it exits; one that does not fit is -EBUSY and never runs. */
static atomic_int dl_spawn_worker = -1, dl_spawn_policy = -1, dl_spawn_ran_busy;
static atomic_uint_fast64_t dl_spawn_exec;

static void *dl_spawned(void *arg)
{
	struct fiber_sched_attr a;
	int err = 0;

	(void)arg;
	if (fiber_getattr(NULL, &a) == 0)
		atomic_store(&dl_spawn_policy, (int)a.policy);
	atomic_store(&dl_spawn_worker, fiber_worker_id());
	spin_ns(100 * MS);
	atomic_store(&dl_spawn_exec, fiber_exec_ns(fiber_self(), &err));
	return NULL;
}

static void *dl_busy_fn(void *arg)
{
	(void)arg;
	atomic_store(&dl_spawn_ran_busy, 1);
	return NULL;
}

static void test_dl_spawn_admitted(void **state)
{
	struct fiber_config c = sched_cfg(2);
	struct fiber_attr a;
	fiber_t *f, *g;
	uint64_t bw_running, bw_after;
	int busy;

	(void)state;
	assert_int_equal(fiber_runtime_start(&c), 0);
	fiber_attr_init(&a);
	a.sched.policy = FIBER_SCHED_DEADLINE;
	a.sched.runtime_ns = 10 * MS;
	a.sched.deadline_ns = a.sched.period_ns = 50 * MS;
	CPU_SET(1, &a.affinity);
	assert_int_equal(fiber_spawn(&f, &a, dl_spawned, NULL), 0);
	bw_running = total_dl_bw();
	/* 90% more does not fit next to 20% on worker 1, the only one allowed. */
	a.sched.runtime_ns = 45 * MS;
	busy = fiber_spawn(&g, &a, dl_busy_fn, NULL);
	assert_int_equal(fiber_join(f, NULL), 0);
	bw_after = total_dl_bw();
	assert_int_equal(fiber_runtime_stop(), 0);

	assert_int_equal(busy, -EBUSY);
	assert_int_equal(atomic_load(&dl_spawn_ran_busy), 0);
	assert_int_equal(atomic_load(&dl_spawn_policy), FIBER_SCHED_DEADLINE);
	assert_int_equal(atomic_load(&dl_spawn_worker), 1);
	assert_true(bw_running > 0);
	assert_int_equal(bw_after, 0);
	/* 20% of 100 ms, throttled by CBS (generous bounds: a loaded host steals time). */
	print_message("DEADLINE spawn ran %.1f ms of 100 ms (budget 20%%)\n",
		      (double)atomic_load(&dl_spawn_exec) / 1e6);
	assert_true(atomic_load(&dl_spawn_exec) >= 8 * MS && atomic_load(&dl_spawn_exec) <= 45 * MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dl_each_gets_runtime_every_period),
		cmocka_unit_test(test_dl_overrun_throttled_fair_still_runs),
		cmocka_unit_test(test_dl_budget_enforced_without_the_monitor),
		cmocka_unit_test(test_dl_yield_gives_up_budget),
		cmocka_unit_test(test_dl_admission_per_worker),
		cmocka_unit_test(test_dl_concurrent_setattr_one_fiber),
		cmocka_unit_test(test_dl_spawn_admitted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
