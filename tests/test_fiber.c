/*
 * test_fiber: the fiber life cycle of API.md - spawn, join (from fibers and from plain pthreads), detach, exit,
 * self, id, sleep, cancel, affinity - 1,000,000 spawn/exit/join cycles with bounded RSS, and every bad input the
 * API documents returning its -errno without aborting.
 */
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---- 1,000,000 spawn/exit/join cycles over all workers ---- */

#ifdef __SANITIZE_THREAD__
/* ThreadSanitizer (FIBER_TSAN): every cycle also makes and destroys a TSan fiber context; a shorter run. */
#define CYCLES 20000
#else
#define CYCLES 1000000
#endif
#define SPAWNERS 4
static size_t rss_early, rss_late;
static atomic_long cycles_done, ret_mismatch;

static void *leaf(void *arg)
{
	return (void *)((uintptr_t)arg * 2 + 1);
}

static void *spawner(void *arg)
{
	long n = CYCLES / SPAWNERS;

	for (long i = 0; i < n; i++) {
		fiber_t *f;
		void *ret;

		if (fiber_spawn(&f, NULL, leaf, (void *)(uintptr_t)i) || fiber_join(f, &ret)) {
			atomic_fetch_add(&ret_mismatch, 1);
			continue;
		}
		if ((uintptr_t)ret != (uintptr_t)i * 2 + 1)
			atomic_fetch_add(&ret_mismatch, 1);
		long done = atomic_fetch_add(&cycles_done, 1) + 1;
		if (done == CYCLES / 10)
			rss_early = rss_bytes();
		if (done == CYCLES - 1)
			rss_late = rss_bytes();
	}
	return NULL;
}

static void cycles_main(void *arg)
{
	fiber_t *f[SPAWNERS];

	for (int i = 0; i < SPAWNERS; i++)
		fiber_spawn(&f[i], NULL, spawner, NULL);
	for (int i = 0; i < SPAWNERS; i++)
		fiber_join(f[i], NULL);
}

static void test_fiber_million_spawn_join_rss_bounded(void **state)
{
	atomic_store(&cycles_done, 0);
	atomic_store(&ret_mismatch, 0);
	assert_int_equal(fiber_run(NULL, cycles_main, NULL), 0); /* all workers */
	assert_int_equal(atomic_load(&cycles_done), CYCLES);
	assert_int_equal(atomic_load(&ret_mismatch), 0);
	assert_true(rss_early > 0 && rss_late > 0);
	/* Dead stacks are reaped and reused: 900,000 more cycles may not grow RSS by more than 16 MiB (a leak of even
	 * 20 bytes a cycle would). */
#ifndef __SANITIZE_THREAD__
	/* (Not under TSan: its shadow memory and per-fiber state count in RSS and are not the runtime's.) */
	assert_true(rss_late < rss_early + 16 * 1024 * 1024);
#endif
}

/* ---- bad input before the runtime ---- */

static atomic_int ran;
static void *count_run(void *arg)
{
	atomic_fetch_add(&ran, 1);
	return arg;
}

static void test_fiber_calls_before_start(void **state)
{
	fiber_t *f = NULL;
	struct fiber_sched_attr sa = { 0 };

	atomic_store(&ran, 0);
	assert_int_equal(fiber_spawn(&f, NULL, count_run, NULL), -ESRCH);
	assert_int_equal(fiber_join((fiber_t *)&sa, NULL), -ESRCH); /* not dereferenced */
	assert_int_equal(fiber_cancel((fiber_t *)&sa), -ESRCH);
	assert_int_equal(fiber_setattr(NULL, &sa), -ESRCH);
	assert_int_equal(fiber_getattr(NULL, &sa), -ESRCH);
	assert_int_equal(fiber_runtime_stop(), -ESRCH);
	assert_int_equal(fiber_worker_count(), 0);
	assert_int_equal(fiber_worker_id(), -1);
	assert_null(fiber_self());
	assert_int_equal(fiber_id(NULL), 0);
	fiber_yield();				/* sched_yield() */
	assert_int_equal(fiber_sleep(1000), 0); /* nanosleep() */
	fiber_cond_resched();
	assert_int_equal(atomic_load(&ran), 0);
}

static void test_fiber_bad_config(void **state)
{
	struct fiber_config c;

	fiber_config_init(&c);
	c.flags = 0x80000000u; /* no such FIBER_CFG_ flag */
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	fiber_config_init(&c);
	c.workers = FIBER_MAX_WORKERS + 1;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	fiber_config_init(&c);
	c.stack_size = 1;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	c.stack_size = (size_t)-1;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);

	setenv("FIBER_WORKERS", "lots", 1);
	assert_int_equal(fiber_runtime_start(NULL), -EINVAL);
	setenv("FIBER_WORKERS", "0", 1);
	assert_int_equal(fiber_runtime_start(NULL), -EINVAL);
	unsetenv("FIBER_WORKERS");
	setenv("FIBER_STACK_SIZE", "0", 1);
	assert_int_equal(fiber_runtime_start(NULL), -EINVAL);
	setenv("FIBER_STACK_SIZE", "64K", 1);
	setenv("FIBER_WORKERS", "3", 1);
	assert_int_equal(fiber_runtime_start(NULL), 0);
	assert_int_equal(fiber_worker_count(), 3);
	assert_int_equal(fiber_runtime_start(NULL), -EBUSY);
	assert_int_equal(fiber_runtime_stop(), 0);
	unsetenv("FIBER_STACK_SIZE");
	unsetenv("FIBER_WORKERS");
}

/*
 * ---- bad input inside the runtime: one test per case ----
 *
 * Each case runs in the main fiber of its own runtime (run_in_fiber, 2 workers) and returns the call's result; the
 * test asserts on it after the runtime stopped. A refused spawn never runs its function (ran stays 0).
 */

static int spawn_with(const struct fiber_attr *a)
{
	fiber_t *f;

	return fiber_spawn(&f, a, count_run, NULL);
}

static int spawn_null_fn(void)
{
	fiber_t *f;

	return fiber_spawn(&f, NULL, NULL, NULL);
}

static void test_fiber_spawn_null_fn_einval(void **state)
{
	atomic_store(&ran, 0);
	assert_int_equal(run_in_fiber(2, spawn_null_fn), -EINVAL);
}

static int spawn_tiny_stack(void)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	a.stack_size = 1;
	return spawn_with(&a);
}

static void test_fiber_spawn_tiny_stack_einval(void **state)
{
	atomic_store(&ran, 0);
	assert_int_equal(run_in_fiber(2, spawn_tiny_stack), -EINVAL);
	assert_int_equal(atomic_load(&ran), 0);
}

static int spawn_huge_stack(void)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	a.stack_size = FIBER_STACK_MAX + 1;
	return spawn_with(&a);
}

static void test_fiber_spawn_huge_stack_einval(void **state)
{
	atomic_store(&ran, 0);
	assert_int_equal(run_in_fiber(2, spawn_huge_stack), -EINVAL);
	assert_int_equal(atomic_load(&ran), 0);
}

static int spawn_max_size_stack(void)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	a.stack_size = (size_t)-1;
	return spawn_with(&a);
}

static void test_fiber_spawn_size_max_stack_einval(void **state)
{
	atomic_store(&ran, 0);
	assert_int_equal(run_in_fiber(2, spawn_max_size_stack), -EINVAL);
	assert_int_equal(atomic_load(&ran), 0);
}

static int spawn_bad_flags(void)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	a.flags = 0x100;
	return spawn_with(&a);
}

static void test_fiber_spawn_bad_flags_einval(void **state)
{
	atomic_store(&ran, 0);
	assert_int_equal(run_in_fiber(2, spawn_bad_flags), -EINVAL);
	assert_int_equal(atomic_load(&ran), 0);
}

static int spawn_bad_affinity(void)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	CPU_SET(1000, &a.affinity); /* no such worker */
	return spawn_with(&a);
}

static void test_fiber_spawn_no_such_worker_einval(void **state)
{
	atomic_store(&ran, 0);
	assert_int_equal(run_in_fiber(2, spawn_bad_affinity), -EINVAL);
	assert_int_equal(atomic_load(&ran), 0);
}

static int spawn_bad_policy(void)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	a.sched.policy = 4; /* not a Linux policy number */
	return spawn_with(&a);
}

static void test_fiber_spawn_bad_policy_einval(void **state)
{
	atomic_store(&ran, 0);
	assert_int_equal(run_in_fiber(2, spawn_bad_policy), -EINVAL);
	assert_int_equal(atomic_load(&ran), 0);
}

static int spawn_normal_with_priority(void)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	a.sched.priority = 5; /* a priority with NORMAL */
	return spawn_with(&a);
}

static void test_fiber_spawn_normal_with_priority_einval(void **state)
{
	atomic_store(&ran, 0);
	assert_int_equal(run_in_fiber(2, spawn_normal_with_priority), -EINVAL);
	assert_int_equal(atomic_load(&ran), 0);
}

static int spawn_dl_overbooked(void)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	a.sched.policy = FIBER_SCHED_DEADLINE;
	/* A DEADLINE spawn is admitted like fiber_setattr: 100% of a worker never fits (95% at most). */
	a.sched.runtime_ns = a.sched.deadline_ns = a.sched.period_ns = 10000000;
	return spawn_with(&a);
}

static void test_fiber_spawn_dl_overbooked_ebusy(void **state)
{
	atomic_store(&ran, 0);
	assert_int_equal(run_in_fiber(2, spawn_dl_overbooked), -EBUSY);
	assert_int_equal(atomic_load(&ran), 0);
}

/* 0 means the runtime default stack */
static int spawn_default_stack(void)
{
	struct fiber_attr a;
	fiber_t *f;

	fiber_attr_init(&a);
	a.stack_size = 0;
	return fiber_spawn(&f, &a, count_run, NULL) == 0 && fiber_join(f, NULL) == 0;
}

static void test_fiber_spawn_zero_stack_is_default(void **state)
{
	atomic_store(&ran, 0);
	assert_int_equal(run_in_fiber(2, spawn_default_stack), 1);
	assert_int_equal(atomic_load(&ran), 1);
}

static void *sleepy(void *arg)
{
	fiber_sleep((uint64_t)(uintptr_t)arg);
	return (void *)0x5a;
}

/* a detached spawn hands back no handle: 1 if it did not */
static int spawn_detached_handle(void)
{
	struct fiber_attr a;
	fiber_t *f = (fiber_t *)&a;

	fiber_attr_init(&a);
	a.flags = FIBER_ATTR_DETACHED;
	fiber_spawn(&f, &a, sleepy, (void *)1000000);
	return f == NULL;
}

static void test_fiber_spawn_detached_gives_no_handle(void **state)
{
	assert_int_equal(run_in_fiber(2, spawn_detached_handle), 1);
}

static int join_after_detach(void)
{
	fiber_t *f;

	fiber_spawn(&f, NULL, sleepy, (void *)2000000);
	fiber_detach(f);
	return fiber_join(f, NULL);
}

static void test_fiber_join_after_detach_einval(void **state)
{
	assert_int_equal(run_in_fiber(2, join_after_detach), -EINVAL);
}

static int detach_twice(void)
{
	fiber_t *f;

	fiber_spawn(&f, NULL, sleepy, (void *)2000000);
	fiber_detach(f);
	return fiber_detach(f);
}

static void test_fiber_detach_twice_einval(void **state)
{
	assert_int_equal(run_in_fiber(2, detach_twice), -EINVAL);
}

static void *join_retval;
static int join_once(void)
{
	fiber_t *f;

	fiber_spawn(&f, NULL, sleepy, (void *)1000);
	join_retval = NULL;
	return fiber_join(f, &join_retval);
}

static void test_fiber_join_returns_retval(void **state)
{
	assert_int_equal(run_in_fiber(2, join_once), 0);
	assert_ptr_equal(join_retval, (void *)0x5a);
}

static int join_twice(void)
{
	fiber_t *f;

	fiber_spawn(&f, NULL, sleepy, (void *)1000);
	fiber_join(f, NULL);
	return fiber_join(f, NULL);
}

static void test_fiber_join_twice_einval(void **state)
{
	assert_int_equal(run_in_fiber(2, join_twice), -EINVAL);
}

static void *self_join(void *arg)
{
	return (void *)(intptr_t)fiber_join(fiber_self(), NULL);
}

static int join_self(void)
{
	fiber_t *f;
	void *r = NULL;

	fiber_spawn(&f, NULL, self_join, NULL);
	fiber_join(f, &r);
	return (int)(intptr_t)r;
}

static void test_fiber_join_self_edeadlk(void **state)
{
	assert_int_equal(run_in_fiber(2, join_self), -EDEADLK);
}

static int join_null(void)
{
	return fiber_join(NULL, NULL);
}

static void test_fiber_join_null_einval(void **state)
{
	assert_int_equal(run_in_fiber(2, join_null), -EINVAL);
}

static void *first_joiner(void *arg)
{
	return (void *)(intptr_t)fiber_join((fiber_t *)arg, NULL);
}

/* Two joiners at once: g joins first and waits; a second join meanwhile is refused, the first gets 0. */
static int first_join_ret;
static int second_joiner(void)
{
	fiber_t *f, *g;
	void *r = NULL;
	int ret;

	fiber_spawn(&f, NULL, sleepy, (void *)50000000);
	fiber_spawn(&g, NULL, first_joiner, f);
	fiber_sleep(10000000); /* g is waiting in its join by now */
	ret = fiber_join(f, NULL);
	fiber_join(g, &r);
	first_join_ret = (int)(intptr_t)r;
	return ret;
}

static void test_fiber_join_second_joiner_einval(void **state)
{
	first_join_ret = INT_MIN;
	assert_int_equal(run_in_fiber(2, second_joiner), -EINVAL);
	assert_int_equal(first_join_ret, 0);
}

static void test_fiber_runtime_stop_in_fiber_edeadlk(void **state)
{
	assert_int_equal(run_in_fiber(2, fiber_runtime_stop), -EDEADLK);
}

static void nothing(void *arg)
{
}

static int run_nested(void)
{
	return fiber_run(NULL, nothing, NULL);
}

static void test_fiber_run_in_fiber_ebusy(void **state)
{
	assert_int_equal(run_in_fiber(2, run_nested), -EBUSY);
}

static int start_nested(void)
{
	return fiber_runtime_start(NULL);
}

static void test_fiber_runtime_start_in_fiber_ebusy(void **state)
{
	assert_int_equal(run_in_fiber(2, start_nested), -EBUSY);
}

/* ---- join from a plain pthread, self/id, exit ---- */

static void *exit_early(void *arg)
{
	fiber_exit((void *)0x77);
}

static uint64_t ids[3];
static void *id_fn(void *arg)
{
	*(uint64_t *)arg = fiber_id(fiber_self());
	return fiber_self();
}

static void test_fiber_join_from_pthread(void **state)
{
	struct fiber_config c = test_cfg(2);
	fiber_t *f, *g[3];
	void *r = NULL;
	uint64_t t0;

	assert_int_equal(fiber_runtime_start(&c), 0);
	assert_int_equal(fiber_spawn(&f, NULL, sleepy, (void *)50000000), 0);
	t0 = now_ns();
	assert_int_equal(fiber_join(f, &r), 0); /* blocks this pthread until the fiber exits */
	assert_true(now_ns() - t0 >= 40000000);
	assert_ptr_equal(r, (void *)0x5a);
	assert_int_equal(fiber_spawn(&f, NULL, exit_early, NULL), 0);
	assert_int_equal(fiber_join(f, &r), 0);
	assert_ptr_equal(r, (void *)0x77);
	for (int i = 0; i < 3; i++)
		assert_int_equal(fiber_spawn(&g[i], NULL, id_fn, &ids[i]), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fiber_join(g[i], &r), 0);
		assert_ptr_equal(r, g[i]);
	}
	assert_true(ids[0] != 0 && ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
	assert_int_equal(fiber_runtime_stop(), 0);
}

/* ---- cancellation ---- */

static int cancel_sleep_ret, cancel_join_ret;
static uint64_t cancel_elapsed;

static void *cancel_victim(void *arg)
{
	uint64_t t0 = now_ns();

	cancel_sleep_ret = fiber_sleep(10ull * 1000000000ull);
	cancel_elapsed = now_ns() - t0;
	/* From then on every cancellation point returns -ECANCELED. */
	cancel_join_ret = fiber_join((fiber_t *)arg, NULL);
	return NULL;
}

static void cancel_main(void *arg)
{
	fiber_t *v, *other;

	fiber_spawn(&other, NULL, sleepy, (void *)10000000);
	fiber_spawn(&v, NULL, cancel_victim, other);
	fiber_sleep(5000000);
	fiber_cancel(v);
	fiber_join(v, NULL);
	fiber_join(other, NULL); /* still joinable: the cancelled join gave it back */
}

static void test_fiber_cancel(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, cancel_main, NULL), 0);
	assert_int_equal(cancel_sleep_ret, -ECANCELED);
	assert_true(cancel_elapsed < 1000000000ull);
	assert_int_equal(cancel_join_ret, -ECANCELED);
}

/* ---- affinity: a fiber only ever runs on a worker in its set ---- */

static atomic_int affinity_violations, affinity_checks;

static void *pinned(void *arg)
{
	int want = (int)(intptr_t)arg;

	for (int i = 0; i < 300; i++) {
		if (fiber_worker_id() != want)
			atomic_fetch_add(&affinity_violations, 1);
		atomic_fetch_add(&affinity_checks, 1);
		if (i % 3 == 0)
			fiber_sleep(10000);
		else
			fiber_yield();
	}
	return NULL;
}

static void affinity_main(void *arg)
{
	fiber_t *f[8];
	struct fiber_attr a;

	for (int i = 0; i < 8; i++) {
		fiber_attr_init(&a);
		CPU_SET(i % 3, &a.affinity);
		fiber_spawn(&f[i], &a, pinned, (void *)(intptr_t)(i % 3));
	}
	for (int i = 0; i < 8; i++)
		fiber_join(f[i], NULL);
}

static void test_fiber_affinity(void **state)
{
	struct fiber_config c = test_cfg(3);

	atomic_store(&affinity_violations, 0);
	assert_int_equal(fiber_run(&c, affinity_main, NULL), 0);
	assert_int_equal(atomic_load(&affinity_checks), 8 * 300);
	assert_int_equal(atomic_load(&affinity_violations), 0);
}

/* ---- sleep: at least the time asked ---- */

static uint64_t slept[4];
static void *sleep_measure(void *arg)
{
	int i = (int)(intptr_t)arg;
	uint64_t t0 = now_ns();

	fiber_sleep((uint64_t)(i + 1) * 3000000);
	slept[i] = now_ns() - t0;
	return NULL;
}

static void sleep_main(void *arg)
{
	fiber_t *f[4];

	for (int i = 0; i < 4; i++)
		fiber_spawn(&f[i], NULL, sleep_measure, (void *)(intptr_t)i);
	for (int i = 0; i < 4; i++)
		fiber_join(f[i], NULL);
}

static void test_fiber_sleep(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, sleep_main, NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_true(slept[i] >= (uint64_t)(i + 1) * 3000000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fiber_calls_before_start),
		cmocka_unit_test(test_fiber_bad_config),
		cmocka_unit_test(test_fiber_spawn_null_fn_einval),
		cmocka_unit_test(test_fiber_spawn_tiny_stack_einval),
		cmocka_unit_test(test_fiber_spawn_huge_stack_einval),
		cmocka_unit_test(test_fiber_spawn_size_max_stack_einval),
		cmocka_unit_test(test_fiber_spawn_bad_flags_einval),
		cmocka_unit_test(test_fiber_spawn_no_such_worker_einval),
		cmocka_unit_test(test_fiber_spawn_bad_policy_einval),
		cmocka_unit_test(test_fiber_spawn_normal_with_priority_einval),
		cmocka_unit_test(test_fiber_spawn_dl_overbooked_ebusy),
		cmocka_unit_test(test_fiber_spawn_zero_stack_is_default),
		cmocka_unit_test(test_fiber_spawn_detached_gives_no_handle),
		cmocka_unit_test(test_fiber_join_after_detach_einval),
		cmocka_unit_test(test_fiber_detach_twice_einval),
		cmocka_unit_test(test_fiber_join_returns_retval),
		cmocka_unit_test(test_fiber_join_twice_einval),
		cmocka_unit_test(test_fiber_join_self_edeadlk),
		cmocka_unit_test(test_fiber_join_null_einval),
		cmocka_unit_test(test_fiber_join_second_joiner_einval),
		cmocka_unit_test(test_fiber_runtime_stop_in_fiber_edeadlk),
		cmocka_unit_test(test_fiber_run_in_fiber_ebusy),
		cmocka_unit_test(test_fiber_runtime_start_in_fiber_ebusy),
		cmocka_unit_test(test_fiber_join_from_pthread),
		cmocka_unit_test(test_fiber_cancel),
		cmocka_unit_test(test_fiber_affinity),
		cmocka_unit_test(test_fiber_sleep),
		cmocka_unit_test(test_fiber_million_spawn_join_rss_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
