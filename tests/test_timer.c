/*
 * test_timer: the per-worker timers (runtime/timer.c) order, re-arm and delete correctly, and sleeping,
 * timeouts and deadline replenishment need no memory: with every allocation of the runtime failing, thousands of
 * concurrent sleeps and a DEADLINE fiber's throttle/replenish cycle still work (before, a failed heap growth made
 * fiber__timer_add spin for ever with preemption disabled, and fiber_setattr(DEADLINE) returned -ENOMEM).
 */
#include "test_util.h"

#include "internal.h"

/* ---- the heap itself, without a runtime ---- */

#define NT 5000

static struct fiber_timer timers[NT];
static uint64_t fired_order[NT];
static int nfired;

static void record(struct fiber_timer *t)
{
	fired_order[nfired++] = t->expires;
}

static unsigned rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void test_timer_heap_fires_in_order_and_honours_delete(void **state)
{
	struct timer_base b;
	unsigned seed = 1;
	bool deleted[NT] = { false };
	int expect = 0;

	(void)state;
	fiber__timer_base_init(&b);
	for (int i = 0; i < NT; i++) {
		fiber__timer_init(&timers[i], record, NULL);
		fiber__timer_add(&b, &timers[i], 1 + rnd(&seed) % 100000, NULL);
	}
	assert_int_equal(b.nr, NT);
	/* Re-arm a third (moves them, never queues twice), delete a third. */
	for (int i = 0; i < NT; i += 3)
		fiber__timer_add(&b, &timers[i], 1 + rnd(&seed) % 100000, NULL);
	assert_int_equal(b.nr, NT);
	for (int i = 1; i < NT; i += 3) {
		fiber__timer_del(&timers[i]);
		deleted[i] = true;
	}
	for (int i = 0; i < NT; i++)
		expect += !deleted[i];
	assert_int_equal(b.nr, expect);
	assert_int_equal(atomic_load(&b.next_expiry) != UINT64_MAX, 1);
	/* Fire half the range, then the rest. */
	fiber__run_timers(&b, 50000);
	for (int i = 0; i < nfired; i++)
		assert_true(fired_order[i] <= 50000);
	fiber__run_timers(&b, UINT64_MAX - 1);
	assert_int_equal(nfired, expect);
	for (int i = 1; i < nfired; i++)
		assert_true(fired_order[i - 1] <= fired_order[i]);
	assert_int_equal(b.nr, 0);
	assert_true(atomic_load(&b.next_expiry) == UINT64_MAX);
	for (int i = 0; i < NT; i++)
		assert_int_equal(timers[i].pending, false);
	fiber__timer_base_destroy(&b);
}

/*
 * ---- arming and deleting a timer touches few others, whichever it is ----
 * A timeout per I/O call arms timers in expiry order (now + the same timeout) and deletes them mostly in that order
 * too. In the pairing heap every such arming became a child of the root, and deleting the earliest timer merged all
 * of them: hundreds of microseconds with 500 connections, in the time of whichever fiber's call held it, which the
 * fair class then charged to that fiber and held it back for. Counted here without a clock: the timers (other than
 * the one armed or deleted) whose bytes an operation changed. The pairing heap changed 4095 of 4096 when the
 * earliest was deleted; the tree changes a few (its depth is O(log n)).
 */
#define NL 4096
#define NL_MAX_TOUCHED 64 /* log2(NL) = 12; a treap's expected depth is about 2 ln NL = 17 */

static struct fiber_timer lt[NL], lt_copy[NL];

/* How many timers but @skip changed since the copy. */
static int touched_since_copy(int skip)
{
	int n = 0;

	for (int i = 0; i < NL; i++)
		n += i != skip && memcmp(&lt[i], &lt_copy[i], sizeof(lt[i])) != 0;
	return n;
}

static void test_timer_arm_and_delete_touch_few_timers(void **state)
{
	struct timer_base b;
	uint64_t next = 1;
	int worst_del = 0, worst_add = 0;

	(void)state;
	fiber__timer_base_init(&b);
	for (int i = 0; i < NL; i++) {
		fiber__timer_init(&lt[i], record, NULL);
		fiber__timer_add(&b, &lt[i], next++, NULL);
	}
	/* The server's pattern: the earliest call completes (its timer is deleted), the next call arms at the back. */
	for (int r = 0; r < 256; r++) {
		int i = r % NL, n;

		memcpy(lt_copy, lt, sizeof(lt));
		fiber__timer_del(&lt[i]);
		n = touched_since_copy(i);
		worst_del = n > worst_del ? n : worst_del;
		memcpy(lt_copy, lt, sizeof(lt));
		fiber__timer_add(&b, &lt[i], next++, NULL);
		n = touched_since_copy(i);
		worst_add = n > worst_add ? n : worst_add;
		assert_int_equal(b.nr, NL);
	}
	print_message("  %d timers armed in expiry order: a delete touched at most %d others, an arming %d\n", NL,
		      worst_del, worst_add);
	assert_true(worst_del <= NL_MAX_TOUCHED);
	assert_true(worst_add <= NL_MAX_TOUCHED);
	nfired = 0;
	fiber__run_timers(&b, UINT64_MAX - 1);
	assert_int_equal(nfired, NL);
	fiber__timer_base_destroy(&b);
}

/* ---- sleeping and replenishment with every allocation failing ---- */

#define NSLEEPERS 3000

static atomic_int go, sleep_errors, early;
static atomic_long sleeps_done;

static void *sleeper(void *arg)
{
	(void)arg;
	while (!atomic_load(&go))
		fiber_sleep(1000 * 1000);
	for (int i = 0; i < 5; i++) {
		uint64_t t0 = now_ns();

		if (fiber_sleep(2 * MS))
			atomic_fetch_add(&sleep_errors, 1);
		if (now_ns() - t0 < 2 * MS)
			atomic_fetch_add(&early, 1);
		atomic_fetch_add(&sleeps_done, 1);
	}
	return NULL;
}

static atomic_int dl_ret = 1;
static atomic_uint_fast64_t dl_exec, dl_throttles;

static void *dl_spinner(void *arg)
{
	struct fiber_sched_attr a = {
		.policy = FIBER_SCHED_DEADLINE, .runtime_ns = 1 * MS, .deadline_ns = 10 * MS, .period_ns = 10 * MS
	};
	int err = 0;

	(void)arg;
	atomic_store(&dl_ret, fiber_setattr(NULL, &a));
	/* 100 ms of wall time: about 10 periods, each throttled after 1 ms and replenished by the timer. */
	spin_ns(100 * MS);
	atomic_store(&dl_exec, fiber_exec_ns(fiber_self(), &err));
	{
		struct fiber_stats st;

		/* Nothing preempts a DEADLINE fiber here but its own throttling: each involuntary switch is one. */
		if (fiber_stats(NULL, &st) == 0)
			atomic_store(&dl_throttles, st.nivcsw);
	}
	a.policy = FIBER_SCHED_NORMAL;
	fiber_setattr(NULL, &a);
	return NULL;
}

static void test_timer_sleep_and_replenish_need_no_memory(void **state)
{
	struct fiber_config c = sched_cfg(2);
	static fiber_t *f[NSLEEPERS];
	fiber_t *dl;
	unsigned long failures;

	(void)state;
	assert_int_equal(fiber_runtime_start(&c), 0);
	for (int i = 0; i < NSLEEPERS; i++)
		assert_int_equal(fiber_spawn(&f[i], NULL, sleeper, NULL), 0);
	usleep(20000);
	atomic_store(&fiber__alloc_failures, 0);
	atomic_store(&fiber__fail_alloc, -1);
	/* Phase 1: every sleeper sleeps five times at once, with allocations failing. */
	atomic_store(&go, 1);
	for (int i = 0; i < NSLEEPERS; i++)
		assert_int_equal(fiber_join(f[i], NULL), 0);
	/* Phase 2: a DEADLINE fiber enters the class and is throttled and replenished, allocations failing again. */
	atomic_store(&fiber__fail_alloc, 0);
	assert_int_equal(fiber_spawn(&dl, NULL, dl_spinner, NULL), 0);
	atomic_store(&fiber__fail_alloc, -1);
	assert_int_equal(fiber_join(dl, NULL), 0);
	atomic_store(&fiber__fail_alloc, 0);
	failures = atomic_load(&fiber__alloc_failures);
	assert_int_equal(fiber_runtime_stop(), 0);

	print_message("allocations refused meanwhile: %lu; DL fiber ran %.1f ms in 100 ms, throttled %llu times\n",
		      failures, (double)atomic_load(&dl_exec) / 1e6, (unsigned long long)atomic_load(&dl_throttles));
	assert_int_equal(atomic_load(&sleeps_done), NSLEEPERS * 5);
	assert_int_equal(atomic_load(&sleep_errors), 0);
	assert_int_equal(atomic_load(&early), 0);
	assert_int_equal(atomic_load(&dl_ret), 0);
	/*
	 * Throttled and replenished period after period (about 10 times in 100 ms; the run-time share itself is the
	 * class tests' business): the fiber kept running, so every throttle was followed by a replenishment.
	 */
	assert_true(atomic_load(&dl_throttles) >= 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timer_heap_fires_in_order_and_honours_delete),
		cmocka_unit_test(test_timer_arm_and_delete_touch_few_timers),
		cmocka_unit_test(test_timer_sleep_and_replenish_need_no_memory),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
