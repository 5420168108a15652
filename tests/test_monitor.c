/*
 * test_monitor: no stuck workers, no signals (runtime/monitor.c).
 *  - a fiber blocked in read(2) on worker 0, or in a CPU loop with no preemption point, delays neither a sleeper
 *    whose timer is on worker 0 nor a fiber woken meanwhile: the monitor runs worker 0's due timers and wake-up
 *    placement avoids the stuck worker;
 *  - nanosleep, poll and usleep inside fibers never fail with EINTR, with peers runnable (the tick active);
 *  - with every signal blocked before fiber_runtime_start, two CPU-bound fibers still share their worker by slices;
 *  - periodic balance evens out 8 runnable fibers on one worker against 1 on the other, with no worker idle, and
 *    leaves alone an imbalance that does not last from one pass to the next;
 *  - the monitor's own cost: its scans back off beside a worker that keeps switching, and a worker that idles
 *    between bursts does not wake it from a sleep at every burst.
 * Timing bounds are the (20 ms), far above what the monitor needs (a 3 ms stuck threshold, 1 ms scans).
 */
#include "test_util.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

#include "internal.h"

static int pipefd[2];
static atomic_int blocker_mode; /* 0: read(2), 1: CPU loop */

static void *writer_after(void *arg)
{
	usleep((useconds_t)(uintptr_t)arg);
	if (write(pipefd[1], "x", 1) != 1)
		abort();
	return NULL;
}

/* Holds worker 0 for about @arg microseconds without a preemption point. */
static void *blocker(void *arg)
{
	char c;

	if (atomic_load(&blocker_mode) == 0) {
		if (read(pipefd[0], &c, 1) != 1)
			abort();
	} else {
		uint64_t end = now_ns() + (uint64_t)(uintptr_t)arg * 1000;

		while (now_ns() < end)
			__asm__ __volatile__("" ::: "memory");
	}
	return NULL;
}

static uint64_t sleep_late_ns;
static atomic_int sleeper_worker = -1;

static void *sleeper_100ms(void *arg)
{
	uint64_t t0 = now_ns();

	(void)arg;
	fiber_sleep(100 * MS);
	sleep_late_ns = now_ns() - t0 - 100 * MS;
	atomic_store(&sleeper_worker, fiber_worker_id());
	return NULL;
}

static void wait_until_sleeping(fiber_t *f)
{
	struct fiber_stats st;

	uint64_t end = now_ns() + 5000 * MS;

	/* Bounded, and never for a fiber that has already exited (a handle stays valid until the join). */
	while (fiber_stats(f, &st) == 0 && st.state != TASK_INTERRUPTIBLE && st.state != TASK_DEAD && now_ns() < end)
		fiber_sleep(100 * US);
}

/* Main fiber on worker 0: a sleeper whose timer is on worker 0, then the blocker on worker 0. */
static void stuck_main(void *arg)
{
	struct fiber_attr a;
	cpu_set_t all;
	fiber_t *s, *b;

	(void)arg;
	fiber_attr_init(&a);
	CPU_SET(0, &a.affinity);
	fiber_spawn(&s, &a, sleeper_100ms, NULL);
	wait_until_sleeping(s); /* its timer is armed on worker 0's heap */
	CPU_ZERO(&all);
	CPU_SET(0, &all);
	CPU_SET(1, &all);
	fiber_setaffinity(s, &all); /* it may wake up anywhere now */
	fiber_spawn(&b, &a, blocker, (void *)(uintptr_t)(1000 * 1000));
	fiber_join(s, NULL);
	fiber_join(b, NULL);
}

static void run_stuck_sleeper(int mode)
{
	struct fiber_config c = sched_cfg(2);
	pthread_t w;

	assert_int_equal(pipe(pipefd), 0);
	atomic_store(&blocker_mode, mode);
	sleep_late_ns = UINT64_MAX;
	atomic_store(&sleeper_worker, -1);
	if (mode == 0)
		assert_int_equal(pthread_create(&w, NULL, writer_after, (void *)(uintptr_t)(1000 * 1000)), 0);
	assert_int_equal(fiber_run(&c, stuck_main, NULL), 0);
	if (mode == 0)
		pthread_join(w, NULL);
	close(pipefd[0]);
	close(pipefd[1]);
	print_message("sleeper late by %.2f ms, woke on worker %d\n", sleep_late_ns / 1e6,
		      atomic_load(&sleeper_worker));
	assert_true(sleep_late_ns <= 20 * MS);
	assert_int_equal(atomic_load(&sleeper_worker), 1);
}

static void test_monitor_blocked_read_does_not_delay_sleeper(void **state)
{
	(void)state;
	run_stuck_sleeper(0);
}

static void test_monitor_cpu_loop_does_not_delay_sleeper(void **state)
{
	(void)state;
	run_stuck_sleeper(1);
}

/* A fiber woken (by a plain thread) while its worker is stuck runs on another worker at once. */
static uint64_t woken_at, ran_at;
static atomic_int woken_worker = -1;

static void *long_sleeper(void *arg)
{
	(void)arg;
	fiber_sleep(10ull * 1000 * MS); /* cancelled long before */
	ran_at = now_ns();
	atomic_store(&woken_worker, fiber_worker_id());
	return NULL;
}

static fiber_t *_Atomic to_wake; /* spawned by a fiber, read by the canceller pthread */

static void *canceller(void *arg)
{
	usleep(300 * 1000); /* worker 0 is stuck by now */
	woken_at = now_ns();
	fiber_cancel(to_wake);
	return NULL;
}

static void *wake_main(void *arg)
{
	struct fiber_attr a;
	cpu_set_t all;
	fiber_t *b;

	(void)arg;
	fiber_attr_init(&a);
	CPU_SET(0, &a.affinity);
	fiber_t *t = NULL;

	fiber_spawn(&t, &a, long_sleeper, NULL);
	atomic_store(&to_wake, t);
	wait_until_sleeping(to_wake);
	CPU_ZERO(&all);
	CPU_SET(0, &all);
	CPU_SET(1, &all);
	fiber_setaffinity(to_wake, &all);
	fiber_spawn(&b, &a, blocker, (void *)(uintptr_t)(1000 * 1000));
	fiber_join(to_wake, NULL);
	fiber_join(b, NULL);
	return NULL;
}

static void run_stuck_wakeup(int mode)
{
	struct fiber_config c = sched_cfg(2);
	pthread_t w, k;

	assert_int_equal(pipe(pipefd), 0);
	atomic_store(&blocker_mode, mode);
	atomic_store(&woken_worker, -1);
	if (mode == 0)
		assert_int_equal(pthread_create(&w, NULL, writer_after, (void *)(uintptr_t)(1000 * 1000)), 0);
	assert_int_equal(fiber_runtime_start(&c), 0);
	assert_int_equal(pthread_create(&k, NULL, canceller, NULL), 0);
	assert_int_equal(fiber_spawn(NULL, NULL, wake_main, NULL), 0);
	pthread_join(k, NULL);
	assert_int_equal(fiber_runtime_stop(), 0);
	if (mode == 0)
		pthread_join(w, NULL);
	close(pipefd[0]);
	close(pipefd[1]);
	print_message("woken fiber ran %.2f ms after its wake-up, on worker %d\n", (ran_at - woken_at) / 1e6,
		      atomic_load(&woken_worker));
	assert_int_equal(atomic_load(&woken_worker), 1);
	assert_true(ran_at - woken_at <= 20 * MS);
}

static void test_monitor_wakeup_avoids_worker_blocked_in_read(void **state)
{
	(void)state;
	run_stuck_wakeup(0);
}

static void test_monitor_wakeup_avoids_worker_in_cpu_loop(void **state)
{
	(void)state;
	run_stuck_wakeup(1);
}

/* ---- no EINTR from libfiber ---- */

static atomic_int eintr, calls, stop_spin;

static void *spinner(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_spin))
		fiber_cond_resched();
	return NULL;
}

static void *syscaller(void *arg)
{
	(void)arg;
	for (int i = 0; i < 60; i++) {
		struct timespec ts = { 0, 1000 * 1000 };

		if (nanosleep(&ts, NULL) && errno == EINTR)
			atomic_fetch_add(&eintr, 1);
		if (poll(NULL, 0, 1) < 0 && errno == EINTR)
			atomic_fetch_add(&eintr, 1);
		if (usleep(1000) && errno == EINTR)
			atomic_fetch_add(&eintr, 1);
		atomic_fetch_add(&calls, 3);
		fiber_yield();
	}
	return NULL;
}

static void test_monitor_fiber_syscalls_never_eintr(void **state)
{
	struct fiber_config c = sched_cfg(2);
	fiber_t *sp[4], *sc[2];

	(void)state;
	assert_int_equal(fiber_runtime_start(&c), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(fiber_spawn(&sp[i], NULL, spinner, NULL), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(fiber_spawn(&sc[i], NULL, syscaller, NULL), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(fiber_join(sc[i], NULL), 0);
	atomic_store(&stop_spin, 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(fiber_join(sp[i], NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	print_message("%d blocking calls in fibers, %d EINTR\n", atomic_load(&calls), atomic_load(&eintr));
	assert_int_equal(atomic_load(&calls), 360);
	assert_int_equal(atomic_load(&eintr), 0);
}

/* ---- time slicing does not depend on signals ---- */

static uint64_t slice_switches;

static void slices_main(void *arg)
{
	fiber_t *a, *b;
	struct fiber_stats sa, sb;

	(void)arg;
	atomic_store(&stop_spin, 0);
	fiber_spawn(&a, NULL, spinner, NULL);
	fiber_spawn(&b, NULL, spinner, NULL);
	fiber_sleep(400 * MS);
	fiber_stats(a, &sa);
	fiber_stats(b, &sb);
	slice_switches = sa.nivcsw + sb.nivcsw;
	atomic_store(&stop_spin, 1);
	fiber_join(a, NULL);
	fiber_join(b, NULL);
}

static void test_monitor_slices_with_all_signals_blocked(void **state)
{
	struct fiber_config c = sched_cfg(1);
	sigset_t all, old;

	(void)state;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old); /* the workers inherit it, as with the signalfd pattern */
	assert_int_equal(fiber_run(&c, slices_main, NULL), 0);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	print_message("involuntary hand-offs between two CPU-bound fibers in 400 ms: %llu\n",
		      (unsigned long long)slice_switches);
	assert_true(slice_switches >= 20);
}

/* ---- periodic balance: 8 runnable on worker 0 and 1 on worker 1 even out, no worker ever idle ---- */

static atomic_int on_w1;

/* A CPU-bound fiber (spinner, until stop_spin) pinned to worker 1. */
static fiber_t *spawn_hog_on_worker1(void)
{
	struct fiber_attr pin1;
	fiber_t *hog;

	atomic_store(&stop_spin, 0);
	fiber_attr_init(&pin1);
	CPU_SET(1, &pin1.affinity);
	fiber_spawn(&hog, &pin1, spinner, NULL);
	return hog;
}

/* A runtime of 2 workers running @fn in a fiber pinned to worker 0, until it returns. */
static void run_on_worker0(void *(*fn)(void *))
{
	struct fiber_config c = sched_cfg(2);
	struct fiber_attr a;
	fiber_t *m;

	assert_int_equal(fiber_runtime_start(&c), 0);
	fiber_attr_init(&a);
	CPU_SET(0, &a.affinity);
	assert_int_equal(fiber_spawn(&m, &a, fn, NULL), 0);
	assert_int_equal(fiber_join(m, NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
}

/* How many of @f[0..7] run on worker 1 now. */
static int count_on_w1(fiber_t **f)
{
	int n = 0;

	for (int i = 0; i < 8; i++) {
		struct fiber_stats st;

		if (fiber_stats(f[i], &st) == 0 && st.worker == 1)
			n++;
	}
	return n;
}

static void *balance_main(void *arg)
{
	fiber_t *hog1, *f[8];

	(void)arg;
	hog1 = spawn_hog_on_worker1(); /* worker 1 never idles: no newidle pulls */
	for (int i = 0; i < 8; i++)
		fiber_spawn(&f[i], NULL, spinner, NULL); /* queued here, on worker 0 */
	/*
	 * The moves come within about 70 ms (two balance passes at most 32 ms apart). Up to 2 s for them: once, in CI
	 * under ASan, none had come after 200 ms (cause not found; 18 runs here afterwards moved 3-4 by then, 8 of them
	 * beside two spinning threads). Then 100 ms more, so that a later overshoot or a move back would show.
	 */
	for (int k = 0; k < 100 && count_on_w1(f) < 3; k++)
		fiber_sleep(20 * MS);
	fiber_sleep(100 * MS);
	atomic_store(&on_w1, count_on_w1(f));
	atomic_store(&stop_spin, 1);
	for (int i = 0; i < 8; i++)
		fiber_join(f[i], NULL);
	fiber_join(hog1, NULL);
	return NULL;
}

static void test_monitor_periodic_balance_evens_out(void **state)
{
	(void)state;
	run_on_worker0(balance_main);
	print_message("of 8 fibers spawned on worker 0 (worker 1 busy with 1): %d moved to worker 1\n",
		      atomic_load(&on_w1));
	/* 9 main + 8 on worker 0 against 1 on worker 1: balanced is 3 or 4 moved. */
	assert_true(atomic_load(&on_w1) >= 3 && atomic_load(&on_w1) <= 5);
}

/*
 * ---- periodic balance leaves a passing imbalance alone: worker 0 runs bursts of 8 queued fibers (3 ms) between
 * 1 ms idle spells while worker 1 runs one hog. Most balance passes (4 ms apart at the least) see the imbalance, but
 * worker 0 idles between any two of them, so none of its fibers is moved (and newidle balance cannot take them:
 * worker 1 never idles). Before, each pass that fell in a burst moved fibers to worker 1. ----
 */

static atomic_int burst_on_w1, burst_ran;

static void *burst_spin(void *arg)
{
	uint64_t end = now_ns() + 375 * 1000;

	(void)arg;
	while (now_ns() < end)
		__asm__ __volatile__("" ::: "memory");
	atomic_fetch_add(&burst_ran, 1);
	if (fiber_worker_id() == 1)
		atomic_fetch_add(&burst_on_w1, 1);
	return NULL;
}

static void *transient_main(void *arg)
{
	fiber_t *hog1, *f[8];

	(void)arg;
	hog1 = spawn_hog_on_worker1();
	for (int k = 0; k < 40; k++) {
		for (int i = 0; i < 8; i++)
			fiber_spawn(&f[i], NULL, burst_spin, NULL); /* queued here, on worker 0 */
		for (int i = 0; i < 8; i++)
			fiber_join(f[i], NULL);
		fiber_sleep(1 * MS); /* worker 0 idles */
	}
	atomic_store(&stop_spin, 1);
	fiber_join(hog1, NULL);
	return NULL;
}

static void test_monitor_periodic_balance_ignores_a_passing_imbalance(void **state)
{
	(void)state;
	run_on_worker0(transient_main);
	print_message("40 bursts of 8 fibers on worker 0 between idle spells: %d of %d ran on worker 1\n",
		      atomic_load(&burst_on_w1), atomic_load(&burst_ran));
	assert_int_equal(atomic_load(&burst_ran), 320);
	/* A host that holds worker 0 through two passes may make one imbalance look lasting: a few at most. */
	assert_true(atomic_load(&burst_on_w1) <= 8);
}

/*
 * ---- the monitor's own cost: scans back off beside a worker that keeps switching, and a worker that goes idle
 * between bursts does not kick it out of a sleep at every burst ----
 */

static atomic_int stop_yield;
static unsigned backoff_scans;
static uint64_t backoff_ns;

static void *yielder(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_yield))
		fiber_yield();
	return NULL;
}

static void backoff_main(void *arg)
{
	unsigned s0, s1, k;
	uint64_t t0;
	fiber_t *a, *b;

	(void)arg;
	atomic_store(&stop_yield, 0);
	fiber_spawn(&a, NULL, yielder, NULL);
	fiber_spawn(&b, NULL, yielder, NULL);
	fiber_sleep(50 * MS); /* the main fiber is off the runqueue: two runnable, the tick is wanted */
	fiber__monitor_counts(&s0, &k);
	t0 = now_ns();
	fiber_sleep(300 * MS);
	fiber__monitor_counts(&s1, &k);
	backoff_ns = now_ns() - t0;
	backoff_scans = s1 - s0;
	atomic_store(&stop_yield, 1);
	fiber_join(a, NULL);
	fiber_join(b, NULL);
}

static void test_monitor_scans_back_off_beside_a_switching_worker(void **state)
{
	struct fiber_config c = sched_cfg(1);

	(void)state;
	assert_int_equal(fiber_run(&c, backoff_main, NULL), 0);
	print_message("two fibers yielding for %.0f ms: %u monitor scans (the base period is 1 ms)\n", backoff_ns / 1e6,
		      backoff_scans);
	/* At the base period it would be one scan a ms; backed off, one per MON_PERIOD_MAX_NS (4 ms). */
	assert_true(backoff_scans > 0);
	assert_true((uint64_t)backoff_scans * 2 * MS <= backoff_ns);
}

/*
 * A deadline fiber's budget is enforced by the tick, which the monitor never skips for it (TICK_PRECISE), however
 * much the fair fibers beside it switch: with two fibers yielding all the time the scans back off, and a deadline
 * fiber of 500 us per 10 ms that spins with preemption points must still run no longer than its budget and about a
 * tick at a time.
 */
static uint64_t dl_longest_run, dl_run_len[64];
static atomic_int dl_runs;

/*
 * At least 300 ms and DL_MIN_RUNS runs, at most 2 s. A run is about 1 ms and comes every other period (it overran
 * its 500 us by up to a tick, which the next replenishment repays): 13-21 runs in 300 ms. A tick the host delays
 * (the monitor's thread not scheduled: the same test binary saw a 1 ms sleep end 10.7 ms late) makes one run
 * several ms long, and the CBS then skips the periods that repay it, as the kernel's replenishment does: 3-4 runs
 * in 300 ms in 1 of 20 runs here. Going on until enough runs were seen keeps one such run from deciding the test.
 */
#define DL_MIN_RUNS 16

static void *dl_spinner(void *arg)
{
	uint64_t last = now_ns(), start = last, min_end = last + 300 * MS, max_end = last + 2000 * MS;

	(void)arg;
	while (last < max_end && (last < min_end || atomic_load(&dl_runs) < DL_MIN_RUNS)) {
		uint64_t t;

		fiber_cond_resched();
		t = now_ns();
		if (t - last > 100 * US) { /* it was throttled (or the host took the thread) in between */
			int k = atomic_fetch_add(&dl_runs, 1);

			if (last - start > dl_longest_run)
				dl_longest_run = last - start;
			if (k < 64)
				dl_run_len[k] = last - start;
			start = t;
		}
		last = t;
	}
	atomic_store(&stop_yield, 1);
	return NULL;
}

static void dl_budget_main(void *arg)
{
	struct fiber_attr da;
	fiber_t *a, *b, *d;

	(void)arg;
	atomic_store(&stop_yield, 0);
	fiber_spawn(&a, NULL, yielder, NULL);
	fiber_spawn(&b, NULL, yielder, NULL);
	fiber_attr_init(&da);
	da.sched = (struct fiber_sched_attr){
		.policy = FIBER_SCHED_DEADLINE, .runtime_ns = 500 * US, .deadline_ns = 10 * MS, .period_ns = 10 * MS
	};
	assert_int_equal(fiber_spawn(&d, &da, dl_spinner, NULL), 0);
	fiber_join(d, NULL);
	fiber_join(a, NULL);
	fiber_join(b, NULL);
}

static void test_monitor_deadline_budget_ticked_beside_switching_fibers(void **state)
{
	struct fiber_config c = sched_cfg(1);
	int n;

	(void)state;
	dl_longest_run = 0;
	assert_int_equal(fiber_run(&c, dl_budget_main, NULL), 0);
	n = atomic_load(&dl_runs) < 64 ? atomic_load(&dl_runs) : 64;
	qsort(dl_run_len, (size_t)n, sizeof(dl_run_len[0]), cmp_u64);
	print_message(
	    "deadline fiber (500 us / 10 ms) beside two yielders: %d runs, median %.2f ms, the longest %.2f ms\n",
	    atomic_load(&dl_runs), n ? dl_run_len[n / 2] / 1e6 : 0.0, dl_longest_run / 1e6);
	assert_true(n >= 10);
	/*
	 * The budget plus at most a tick (1 ms): a median of 1.07 ms here. Without the monitor's care for it (no kick,
	 * the back-off while it runs) the medians were 1.50-2.15 ms and the longest 3.3-3.4 ms. The median, not the
	 * longest: one run in many (2 in about 60, the cause not traced) had one of 4.7-5 ms.
	 */
	assert_true(dl_run_len[n / 2] <= 1350 * US);
}

static unsigned burst_kicks;

static void *burst_child(void *arg)
{
	(void)arg;
	return NULL;
}

static void burst_main(void *arg)
{
	unsigned s, k0, k1;
	fiber_t *f;

	(void)arg;
	fiber_sleep(20 * MS);
	fiber__monitor_counts(&s, &k0);
	for (int i = 0; i < 100; i++) {
		fiber_sleep(2 * MS);			  /* the worker idles: nothing to watch */
		fiber_spawn(&f, NULL, burst_child, NULL); /* two runnable: the tick is wanted again */
		fiber_join(f, NULL);
	}
	fiber__monitor_counts(&s, &k1);
	burst_kicks = k1 - k0;
}

static void test_monitor_not_kicked_at_every_burst(void **state)
{
	struct fiber_config c = sched_cfg(1);

	(void)state;
	assert_int_equal(fiber_run(&c, burst_main, NULL), 0);
	print_message("100 bursts 2 ms apart: the monitor was woken from its sleep %u times\n", burst_kicks);
	/*
	 * Each burst used to wake it: it slept at the first scan that found the worker idle. Now it sleeps only after
	 * MON_QUIET_NS (16 ms) with nothing to watch, so at most once per 16 ms of this 200 ms run.
	 */
	assert_true(burst_kicks <= 30);
}

/* ---- fiber_blocking_begin/end: the worker's queued fibers and timers go elsewhere at once ---- */

static uint64_t main_delay_ns;
static atomic_int main_after_worker = -1;

static void *blocking_reader(void *arg)
{
	char c;

	(void)arg;
	fiber_blocking_begin();
	if (read(pipefd[0], &c, 1) != 1)
		abort();
	fiber_blocking_end();
	return NULL;
}

static void *blocking_main(void *arg)
{
	struct fiber_attr a;
	cpu_set_t all;
	fiber_t *s, *b;
	uint64_t t0;

	(void)arg;
	fiber_attr_init(&a);
	CPU_SET(0, &a.affinity);
	fiber_spawn(&s, &a, sleeper_100ms, NULL);
	wait_until_sleeping(s); /* its timer is on worker 0's heap */
	CPU_ZERO(&all);
	CPU_SET(0, &all);
	CPU_SET(1, &all);
	fiber_setaffinity(s, &all);
	fiber_setaffinity(NULL, &all);
	fiber_spawn(&b, &a, blocking_reader, NULL); /* queued here, on worker 0 */
	t0 = now_ns();
	fiber_yield(); /* the reader runs and blocks worker 0; we are queued behind it */
	main_delay_ns = now_ns() - t0;
	atomic_store(&main_after_worker, fiber_worker_id());
	fiber_join(s, NULL);
	fiber_join(b, NULL);
	return NULL;
}

static void blocking_region_run(void)
{
	struct fiber_config c = sched_cfg(2);
	struct fiber_attr a;
	pthread_t w;
	fiber_t *m;

	assert_int_equal(pipe(pipefd), 0);
	sleep_late_ns = UINT64_MAX;
	atomic_store(&sleeper_worker, -1);
	assert_int_equal(pthread_create(&w, NULL, writer_after, (void *)(uintptr_t)(1000 * 1000)), 0);
	assert_int_equal(fiber_runtime_start(&c), 0);
	fiber_attr_init(&a);
	CPU_SET(0, &a.affinity);
	assert_int_equal(fiber_spawn(&m, &a, blocking_main, NULL), 0);
	assert_int_equal(fiber_join(m, NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	pthread_join(w, NULL);
	close(pipefd[0]);
	close(pipefd[1]);
	print_message("queued behind a blocking region: resumed after %.2f ms on worker %d; sleeper late by %.2f ms "
		      "on worker %d\n",
		      main_delay_ns / 1e6, atomic_load(&main_after_worker), sleep_late_ns / 1e6,
		      atomic_load(&sleeper_worker));
}

/* The region runs on a spare thread: worker 0 goes on at once with its queue and its timers. */
static void test_monitor_blocking_region_runs_on_a_spare_thread(void **state)
{
	unsetenv("FIBER_SPARE_THREADS");
	blocking_region_run();
	/* Either worker may run them now (worker 1, idle, may pull the queued main): neither waits for the region. */
	assert_true(main_delay_ns <= 20 * MS);
	assert_true(sleep_late_ns <= 20 * MS);
}

/* With no spare thread the region runs in place: worker 0 is stuck, its queue and timers go to worker 1. */
static void test_monitor_blocking_region_in_place_hands_off_work(void **state)
{
	setenv("FIBER_SPARE_THREADS", "0", 1);
	blocking_region_run();
	unsetenv("FIBER_SPARE_THREADS");
	assert_int_equal(atomic_load(&main_after_worker), 1);
	assert_true(main_delay_ns <= 20 * MS);
	assert_int_equal(atomic_load(&sleeper_worker), 1);
	assert_true(sleep_late_ns <= 20 * MS);
}

/*
 * Every worker's fiber in a blocking region at once (2 workers, 2 regions of 500 ms): a ticker that sleeps 5 ms at
 * a time still runs on time, because the regions run on spare threads.
 */
static atomic_int all_blocked_go;
static uint64_t all_blocked_worst;
static int all_blocked_ticks;

static void *region_500ms(void *arg)
{
	(void)arg;
	fiber_blocking_begin();
	usleep(500 * 1000);
	fiber_blocking_end();
	return NULL;
}

static void *ticker_5ms(void *arg)
{
	(void)arg;
	while (!atomic_load(&all_blocked_go))
		fiber_sleep(1 * MS);
	for (int i = 0; i < 40; i++) {
		uint64_t t0 = now_ns(), late;

		fiber_sleep(5 * MS);
		late = now_ns() - t0 - 5 * MS;
		if (late > all_blocked_worst)
			all_blocked_worst = late;
		all_blocked_ticks++;
	}
	return NULL;
}

static void all_blocked_main(void *arg)
{
	struct fiber_attr a0, a1;
	fiber_t *r0, *r1, *t;

	(void)arg;
	fiber_attr_init(&a0);
	CPU_SET(0, &a0.affinity);
	fiber_attr_init(&a1);
	CPU_SET(1, &a1.affinity);
	fiber_spawn(&t, NULL, ticker_5ms, NULL);
	fiber_spawn(&r0, &a0, region_500ms, NULL);
	fiber_spawn(&r1, &a1, region_500ms, NULL);
	fiber_sleep(5 * MS); /* both regions have begun */
	atomic_store(&all_blocked_go, 1);
	fiber_join(r0, NULL);
	fiber_join(r1, NULL);
	fiber_join(t, NULL);
}

static void test_monitor_every_worker_in_a_blocking_region(void **state)
{
	struct fiber_config c = sched_cfg(2);

	unsetenv("FIBER_SPARE_THREADS");
	all_blocked_worst = 0;
	all_blocked_ticks = 0;
	assert_int_equal(fiber_run(&c, all_blocked_main, NULL), 0);
	print_message("both workers' fibers in 500 ms blocking regions: 40 sleeps of 5 ms, worst %.2f ms late\n",
		      all_blocked_worst / 1e6);
	assert_int_equal(all_blocked_ticks, 40);
	/*
	 * Typically under 4 ms; in place (FIBER_SPARE_THREADS=0) the ticker waits for a region to end (hundreds of
	 * ms). The bound leaves room for a loaded host, which can keep a runnable thread off the CPU for 50 ms.
	 */
	assert_true(all_blocked_worst <= 150 * MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_monitor_blocked_read_does_not_delay_sleeper),
		cmocka_unit_test(test_monitor_cpu_loop_does_not_delay_sleeper),
		cmocka_unit_test(test_monitor_wakeup_avoids_worker_blocked_in_read),
		cmocka_unit_test(test_monitor_wakeup_avoids_worker_in_cpu_loop),
		cmocka_unit_test(test_monitor_fiber_syscalls_never_eintr),
		cmocka_unit_test(test_monitor_slices_with_all_signals_blocked),
		cmocka_unit_test(test_monitor_periodic_balance_evens_out),
		cmocka_unit_test(test_monitor_periodic_balance_ignores_a_passing_imbalance),
		cmocka_unit_test(test_monitor_scans_back_off_beside_a_switching_worker),
		cmocka_unit_test(test_monitor_not_kicked_at_every_burst),
		cmocka_unit_test(test_monitor_deadline_budget_ticked_beside_switching_fibers),
		cmocka_unit_test(test_monitor_blocking_region_runs_on_a_spare_thread),
		cmocka_unit_test(test_monitor_blocking_region_in_place_hands_off_work),
		cmocka_unit_test(test_monitor_every_worker_in_a_blocking_region),
	};

	/* TEST_FILTER='*balance*' runs only the matching tests (cmocka_set_test_filter). */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
