/*
 * test_sched_rt: the rt class, SCHED_FIFO and SCHED_RR (KERNEL_MAP §7.2). Black-box: only include/fiber.h.
 *  - a FIFO fiber is not preempted by one of its own priority: a peer that wakes up while it runs (and then
 *    waits queued through its preemption points and ticks, for longer than an RR slice) runs only once it has
 *    finished;
 *  - a FIFO fiber preempted by a higher priority stays at the head of its level: it resumes before its peer;
 *  - a priority change requeues at the tail of the new level when raised, at the head when lowered;
 *  - two RR fibers alternate once per time slice (FIBER_RR_TIMESLICE_MS=20): each run is charged 20 ms within a
 *    tick or two (plus what the host kept the worker thread off the CPU meanwhile, which delays the tick);
 *  - an RT fiber woken from a sleep preempts a CPU-bound fair fiber within about a tick (of the worker's time: time
 *    the host keeps the worker thread off the CPU is not counted).
 * All on one worker. The parent of the FIFO and RR tests is FIFO-50 (or -90), so that the fibers it spawns stay
 * queued until it blocks.
 */
#include "test_util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>

#define ATTR_RT(pol, prio) ((struct fiber_sched_attr){ .policy = (pol), .priority = (prio) })

static int spawn_rt(fiber_t **f, uint32_t policy, uint32_t prio, void *(*fn)(void *), void *arg)
{
	struct fiber_attr a;

	*f = NULL;
	fiber_attr_init(&a);
	a.sched = ATTR_RT(policy, prio);
	return fiber_spawn(f, &a, fn, arg);
}

/* ---- FIFO: equal priorities do not share the worker ---- */

#define FIFO_RUN_NS (150 * MS) /* longer than the default RR slice (100 ms) */
#define FIFO_SLEEP_NS (20 * MS)
static uint64_t ff_start[2], ff_end[2], ff_wake_due;
static int ff_err;

/* A: runs 150 ms, passing a preemption point all along. */
static void *ff_runner(void *arg)
{
	ff_start[0] = now_ns();
	spin_ns(FIFO_RUN_NS);
	ff_end[0] = now_ns();
	return NULL;
}

/* B, the same priority: sleeps first, so that it wakes (and then waits, queued) while A runs. */
static void *ff_sleeper(void *arg)
{
	ff_wake_due = now_ns() + FIFO_SLEEP_NS;
	fiber_sleep(FIFO_SLEEP_NS);
	ff_start[1] = now_ns();
	spin_ns(FIFO_RUN_NS);
	ff_end[1] = now_ns();
	return NULL;
}

static void ff_main(void *arg)
{
	fiber_t *a, *b;

	ff_err |= fiber_setattr(NULL, &ATTR_RT(FIBER_SCHED_FIFO, 50));
	ff_err |= spawn_rt(&b, FIBER_SCHED_FIFO, 10, ff_sleeper, NULL); /* first in line: goes to sleep at once */
	ff_err |= spawn_rt(&a, FIBER_SCHED_FIFO, 10, ff_runner, NULL);
	fiber_join(a, NULL);
	fiber_join(b, NULL);
}

static void test_rt_fifo_equal_priority_runs_to_completion(void **state)
{
	struct fiber_config c = sched_cfg(1);

	ff_err = 0;
	memset(ff_start, 0, sizeof(ff_start));
	memset(ff_end, 0, sizeof(ff_end));
	ff_wake_due = 0;
	assert_int_equal(fiber_run(&c, ff_main, NULL), 0);
	assert_int_equal(ff_err, 0);
	print_message("  A %.1f..%.1f ms, B due to wake at %.1f ms, ran %.1f..%.1f ms\n", 0.0,
		      (ff_end[0] - ff_start[0]) / 1e6, ((int64_t)ff_wake_due - (int64_t)ff_start[0]) / 1e6,
		      ((int64_t)ff_start[1] - (int64_t)ff_start[0]) / 1e6,
		      ((int64_t)ff_end[1] - (int64_t)ff_start[0]) / 1e6);
	assert_true(ff_start[0] > 0 && ff_start[1] > 0);
	/* The premise: B woke while A was running. */
	assert_true(ff_wake_due < ff_end[0]);
	/* Neither its wake-up nor 130 ms of A's preemption points and ticks let B in before A had finished. */
	assert_true(ff_start[1] >= ff_end[0]);
}

/* ---- FIFO: a preempted fiber stays at the head of its level ---- */

#define HEAD_RUN_NS (60 * MS)
#define HEAD_SLEEP_NS (20 * MS)
static uint64_t hd_start[2], hd_end[2], hd_wake, hd_done;
static int hd_err;

static void *hd_fiber(void *arg)
{
	int i = (int)(intptr_t)arg;

	hd_start[i] = now_ns();
	spin_ns(HEAD_RUN_NS);
	hd_end[i] = now_ns();
	return NULL;
}

static void *hd_high(void *arg)
{
	fiber_sleep(HEAD_SLEEP_NS); /* A starts meanwhile; the wake-up preempts it */
	hd_wake = now_ns();
	spin_ns(2 * MS);
	hd_done = now_ns();
	return NULL;
}

static void hd_main(void *arg)
{
	fiber_t *f[2], *h;

	hd_err |= fiber_setattr(NULL, &ATTR_RT(FIBER_SCHED_FIFO, 50));
	for (int i = 0; i < 2; i++)
		hd_err |= spawn_rt(&f[i], FIBER_SCHED_FIFO, 10, hd_fiber, (void *)(intptr_t)i);
	hd_err |= spawn_rt(&h, FIBER_SCHED_FIFO, 20, hd_high, NULL);
	fiber_join(h, NULL);
	for (int i = 0; i < 2; i++)
		fiber_join(f[i], NULL);
}

static void test_rt_fifo_preempted_stays_at_head(void **state)
{
	struct fiber_config c = sched_cfg(1);

	hd_err = 0;
	memset(hd_start, 0, sizeof(hd_start));
	memset(hd_end, 0, sizeof(hd_end));
	hd_wake = hd_done = 0;
	assert_int_equal(fiber_run(&c, hd_main, NULL), 0);
	assert_int_equal(hd_err, 0);
	print_message("  A %.1f..%.1f ms, high %.1f..%.1f ms, B %.1f..%.1f ms\n", 0.0, (hd_end[0] - hd_start[0]) / 1e6,
		      ((int64_t)hd_wake - (int64_t)hd_start[0]) / 1e6, ((int64_t)hd_done - (int64_t)hd_start[0]) / 1e6,
		      ((int64_t)hd_start[1] - (int64_t)hd_start[0]) / 1e6,
		      ((int64_t)hd_end[1] - (int64_t)hd_start[0]) / 1e6);
	/* The premise: the FIFO-20 fiber woke while A was running, and so preempted it. */
	assert_true(hd_start[0] > 0 && hd_wake > hd_start[0] && hd_done < hd_end[0]);
	/* When it blocked again, A (head of level 10) resumed, not B. */
	assert_true(hd_start[1] >= hd_end[0]);
}

/* ---- priority changes: raised goes to the tail of the new level, lowered to the head ---- */

enum { PC_Q1, PC_Q2, PC_RAISED, PC_LOWERED, PC_N };
static atomic_int pc_seq;
static int pc_rank[PC_N];
static int pc_err;

static void *pc_fiber(void *arg)
{
	pc_rank[(intptr_t)arg] = atomic_fetch_add(&pc_seq, 1) + 1;
	spin_ns(1 * MS);
	return NULL;
}

static void pc_main(void *arg)
{
	static const uint32_t prio[PC_N] = { [PC_Q1] = 20, [PC_Q2] = 20, [PC_RAISED] = 10, [PC_LOWERED] = 30 };
	fiber_t *f[PC_N];

	pc_err |= fiber_setattr(NULL, &ATTR_RT(FIBER_SCHED_FIFO, 90));
	for (int i = 0; i < PC_N; i++)
		pc_err |= spawn_rt(&f[i], FIBER_SCHED_FIFO, prio[i], pc_fiber, (void *)(intptr_t)i);
	if (f[PC_RAISED] && f[PC_LOWERED]) {
		pc_err |= fiber_setattr(f[PC_RAISED], &ATTR_RT(FIBER_SCHED_FIFO, 20));	/* 10 -> 20: the tail */
		pc_err |= fiber_setattr(f[PC_LOWERED], &ATTR_RT(FIBER_SCHED_FIFO, 20)); /* 30 -> 20: the head */
	}
	for (int i = 0; i < PC_N; i++)
		fiber_join(f[i], NULL);
}

static void test_rt_priority_change_requeue_position(void **state)
{
	struct fiber_config c = sched_cfg(1);

	atomic_store(&pc_seq, 0);
	pc_err = 0;
	memset(pc_rank, 0, sizeof(pc_rank));
	assert_int_equal(fiber_run(&c, pc_main, NULL), 0);
	assert_int_equal(pc_err, 0);
	print_message("  lowered %d, Q1 %d, Q2 %d, raised %d\n", pc_rank[PC_LOWERED], pc_rank[PC_Q1], pc_rank[PC_Q2],
		      pc_rank[PC_RAISED]);
	assert_int_equal(pc_rank[PC_LOWERED], 1);
	assert_int_equal(pc_rank[PC_Q1], 2);
	assert_int_equal(pc_rank[PC_Q2], 3);
	assert_int_equal(pc_rank[PC_RAISED], 4);
}

/* ---- RR: two fibers alternate once per slice ---- */

#define RR_SLICE_NS (20 * MS)
#define RR_SEGMENTS 20 /* whole runs measured, about 10 per fiber */
#define RR_CAP_NS (1500 * MS)

/*
 * Both RR fibers run on the one worker thread, one at a time, so plain globals do. On the first loop iteration of
 * each run (the other fiber ran last), a fiber notes the wall clock, the worker thread's CPU clock and its own
 * sum_exec_ns. A run's length is what the scheduler charged for it: the difference of the fiber's sum_exec_ns
 * between the starts of this run and of its next one.
 *
 * The runtime charges wall-clock time and sees the slice end at a tick. When the host keeps the worker thread off
 * the CPU, the tick that ends a slice comes late, so a run may be charged more than the slice by up to the time
 * the thread was off the CPU (the wall clock minus the thread's CPU clock) from the start of the run to the start
 * of the fiber's next run. Never less than the slice.
 */
static struct rr_run {
	int fiber;
	uint64_t wall, cpu, exec;
} rr_run[RR_SEGMENTS + 3];
static int rr_nrun, rr_last, rr_stop, rr_err;

static void *rr_fiber(void *arg)
{
	int me = (int)(intptr_t)arg;
	uint64_t cap = now_ns() + RR_CAP_NS;

	while (!rr_stop) {
		uint64_t t = now_ns(), c = thread_cpu_ns();
		struct fiber_stats st;

		if (t > cap)
			break;
		if (rr_last != me) {
			if (rr_nrun == RR_SEGMENTS + 3) {
				rr_stop = 1;
				break;
			}
			rr_err |= fiber_stats(NULL, &st);
			rr_run[rr_nrun++] = (struct rr_run){ .fiber = me, .wall = t, .cpu = c, .exec = st.sum_exec_ns };
			rr_last = me;
		}
		fiber_cond_resched();
	}
	return NULL;
}

static void rr_main(void *arg)
{
	fiber_t *f[2];

	rr_err |= fiber_setattr(NULL, &ATTR_RT(FIBER_SCHED_FIFO, 50));
	for (int i = 0; i < 2; i++)
		rr_err |= spawn_rt(&f[i], FIBER_SCHED_RR, 10, rr_fiber, (void *)(intptr_t)i);
	for (int i = 0; i < 2; i++)
		fiber_join(f[i], NULL);
}

/* Time the worker thread was off the CPU between the starts of runs a and b. */
static uint64_t rr_off_cpu(int a, int b)
{
	uint64_t wall = rr_run[b].wall - rr_run[a].wall, cpu = rr_run[b].cpu - rr_run[a].cpu;

	return cpu < wall ? wall - cpu : 0;
}

/*
 * How much shorter than RR_SLICE_NS a slice may be charged: a tick. Under ThreadSanitizer (5-15x slower) the
 * first whole slice came out 18.9 ms of 20 in three of three runs; TSan's runs check races, not tick precision.
 */
#if defined(__SANITIZE_THREAD__)
#define SLICE_EARLY_TOL_NS (2 * MS)
#else
#define SLICE_EARLY_TOL_NS (1 * MS)
#endif

/* @monitor false: FIBER_MONITOR=0 for this run only (unset before any assertion can leave the test). */
static void rr_run_and_check(bool monitor)
{
	struct fiber_config c = sched_cfg(1);
	uint64_t charged[RR_SEGMENTS + 1], off[RR_SEGMENTS + 1];
	int undisturbed = 0, late = 0, rc;

	memset(rr_run, 0, sizeof(rr_run));
	rr_nrun = rr_stop = rr_err = 0;
	rr_last = -1;
	setenv("FIBER_RR_TIMESLICE_MS", "20", 1);
	if (!monitor)
		setenv("FIBER_MONITOR", "0", 1);
	rc = fiber_run(&c, rr_main, NULL);
	unsetenv("FIBER_RR_TIMESLICE_MS");
	if (!monitor)
		unsetenv("FIBER_MONITOR");
	assert_int_equal(rc, 0);
	assert_int_equal(rr_err, 0);
	/* They alternated (a run ends when the other fiber runs) often enough within the cap. */
	print_message("  %d runs in %.1f ms\n", rr_nrun,
		      rr_nrun ? (rr_run[rr_nrun - 1].wall - rr_run[0].wall) / 1e6 : 0.0);
	assert_int_equal(rr_nrun, RR_SEGMENTS + 3);

	/* Run 0 began whenever the first fiber started; runs 1 .. RR_SEGMENTS are whole slices. */
	print_message("  charged ms (ms the host had the worker off the CPU):");
	for (int k = 1; k <= RR_SEGMENTS; k++) {
		charged[k] = rr_run[k + 2].exec - rr_run[k].exec;
		off[k] = rr_off_cpu(k, k + 2);
		undisturbed += off[k] < 200 * US;
		print_message("%s %.2f", (k - 1) % 8 ? "" : "\n   ", charged[k] / 1e6);
		if (off[k] >= 200 * US)
			print_message(" (%.1f)", off[k] / 1e6);
	}
	print_message("\n  %d of %d runs undisturbed by the host\n", undisturbed, RR_SEGMENTS);
	for (int k = 1; k <= RR_SEGMENTS; k++) {
		assert_int_not_equal(rr_run[k].fiber, rr_run[k + 1].fiber);
		assert_true(charged[k] >= RR_SLICE_NS - SLICE_EARLY_TOL_NS);
		/*
		 * The slice ends at the first tick after it is used up; the tick is the monitor thread's store, which
		 * a loaded host can delay by a few ms on top of what it took from the worker (off[k]). What the host
		 * took from the monitor's own CPU is not measured here: CI once saw one slice of 20 charged 39.1 ms with
		 * the worker undisturbed, the other 19 within 1 ms of the slice. So one slice may be late by up to one
		 * more slice; a slice that is never ended, or late every time, still fails.
		 */
		assert_true(charged[k] <= 2 * RR_SLICE_NS + 5 * MS + off[k]);
		late += charged[k] > RR_SLICE_NS + 5 * MS + off[k];
	}
	assert_true(late <= 1);
}

static void test_rt_rr_alternates_per_slice(void **state)
{
	rr_run_and_check(true);
}

/*
 * Without the monitor thread (FIBER_MONITOR=0), the tick the slices need comes from the workers' own preemption
 * points (core.c tick_fallback), two tick periods after the last tick or switch. Before that fallback the first RR
 * fiber ran until the test's cap (one run, not RR_SEGMENTS + 3): nothing else ticked the worker.
 */
static void test_rt_rr_slices_end_without_the_monitor(void **state)
{
	rr_run_and_check(false);
}

/* ---- a woken RT fiber preempts a running fair fiber within about a tick ---- */

#define WK_ROUNDS 21
#define WK_SLEEP_NS (3 * MS)
static atomic_int wk_stop;
static atomic_ulong wk_fair_loops;
static uint64_t wk_late[WK_ROUNDS];
static uint64_t wk_rounds_ns;
static int wk_fair_ran_every_round, wk_err;

static void *wk_fair(void *arg)
{
	uint64_t cap = now_ns() + 5000 * MS;

	while (!atomic_load(&wk_stop) && now_ns() < cap) {
		atomic_fetch_add_explicit(&wk_fair_loops, 1, memory_order_relaxed);
		fiber_cond_resched();
	}
	return NULL;
}

static void *wk_rt(void *arg)
{
	uint64_t t0;

	wk_fair_ran_every_round = 1;
	t0 = now_ns();
	fiber_sleep(5 * MS); /* let the fair fiber get going */
	for (int i = 0; i < WK_ROUNDS; i++) {
		unsigned long loops = atomic_load(&wk_fair_loops);
		uint64_t t = now_ns(), c = thread_cpu_ns(), t1, c1, off;

		fiber_sleep(WK_SLEEP_NS);
		t1 = now_ns(), c1 = thread_cpu_ns();
		/*
		 * How long after its timer expired (t + WK_SLEEP_NS at the earliest) did this fiber run, not counting
		 * time the host kept the worker thread off the CPU meanwhile (the fair fiber ran on it all along)?
		 */
		off = c1 - c < t1 - t ? (t1 - t) - (c1 - c) : 0;
		wk_late[i] = t1 - (t + WK_SLEEP_NS);
		wk_late[i] = wk_late[i] > off ? wk_late[i] - off : 0;
		if (atomic_load(&wk_fair_loops) == loops)
			wk_fair_ran_every_round = 0; /* nothing was running to be preempted */
	}
	wk_rounds_ns = now_ns() - t0;
	atomic_store(&wk_stop, 1);
	return NULL;
}

static void wk_main(void *arg)
{
	struct fiber_attr a;
	fiber_t *fair = NULL, *rt = NULL;

	fiber_attr_init(&a);
	wk_err |= fiber_spawn(&fair, &a, wk_fair, NULL);
	wk_err |= spawn_rt(&rt, FIBER_SCHED_FIFO, 10, wk_rt, NULL);
	fiber_join(rt, NULL);
	atomic_store(&wk_stop, 1);
	fiber_join(fair, NULL);
}

static void test_rt_wakeup_preempts_fair_within_tick(void **state)
{
	struct fiber_config c = sched_cfg(1);
	uint64_t sorted[WK_ROUNDS];

	atomic_store(&wk_stop, 0);
	atomic_store(&wk_fair_loops, 0);
	wk_err = 0;
	for (int i = 0; i < WK_ROUNDS; i++)
		wk_late[i] = UINT64_MAX;
	assert_int_equal(fiber_run(&c, wk_main, NULL), 0);
	assert_int_equal(wk_err, 0);
	print_message("  5 ms + %d x %.0f ms of sleeps took %.1f ms\n", WK_ROUNDS, WK_SLEEP_NS / 1e6,
		      wk_rounds_ns / 1e6);
	/* Without the preemption the first wake-up waits for the fair fiber to give up (5 s). */
	assert_true(wk_rounds_ns < 5 * MS + WK_ROUNDS * WK_SLEEP_NS + 500 * MS);
	/* The premise: the fair fiber was running (so had to be preempted) whenever the RT fiber woke. */
	assert_true(wk_fair_ran_every_round);
	memcpy(sorted, wk_late, sizeof(sorted));
	qsort(sorted, WK_ROUNDS, sizeof(sorted[0]), cmp_u64);
	print_message("  wake-up to run: min %.3f median %.3f max %.3f ms\n", sorted[0] / 1e6,
		      sorted[WK_ROUNDS / 2] / 1e6, sorted[WK_ROUNDS - 1] / 1e6);
	assert_true(sorted[WK_ROUNDS / 2] < 2 * MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rt_fifo_equal_priority_runs_to_completion),
		cmocka_unit_test(test_rt_fifo_preempted_stays_at_head),
		cmocka_unit_test(test_rt_priority_change_requeue_position),
		cmocka_unit_test(test_rt_rr_alternates_per_slice),
		cmocka_unit_test(test_rt_rr_slices_end_without_the_monitor),
		cmocka_unit_test(test_rt_wakeup_preempts_fair_within_tick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
