/*
 * test_alloc: every allocation the runtime makes may fail, one at a time (Argobots' failure-injection test).
 *
 * The scenario - start a runtime, spawn fibers (plain, joinable and detached, DEADLINE, with affinities) from the
 * test thread and from fibers, sleep, change attributes and affinity, join, stop - is run once to count the
 * allocations it makes, then once per allocation with exactly that one failing (fiber__fail_alloc = N). Each run
 * must end cleanly: every call returns 0 or -ENOMEM (a start that fails says so and leaves nothing running), every
 * fiber that was spawned runs, and the ASan suite's LeakSanitizer finds nothing left over at exit. Sleeping,
 * timers, DEADLINE replenishment and migration are never among the allocations (test_timer checks that).
 */
#include "test_util.h"

#include <stdatomic.h>
#include <sys/wait.h>

#include "internal.h"

#define NSPAWN 20

static atomic_int ran, bad_ret, spawned;

static int ok_or_enomem(int ret)
{
	if (ret && ret != -ENOMEM)
		atomic_fetch_add(&bad_ret, 1);
	return ret;
}

static void *leaf(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
	fiber_sleep(100 * US);
	return NULL;
}

static void *parent(void *arg)
{
	struct fiber_attr a;
	fiber_t *f[NSPAWN];
	int n = 0;

	(void)arg;
	atomic_fetch_add(&ran, 1);
	fiber_attr_init(&a);
	for (int i = 0; i < NSPAWN; i++) {
		if (i % 5 == 1) {
			a.sched.policy = FIBER_SCHED_DEADLINE;
			a.sched.runtime_ns = 100 * US;
			a.sched.deadline_ns = a.sched.period_ns = 10 * MS;
		} else {
			a.sched = (struct fiber_sched_attr){ .policy = FIBER_SCHED_NORMAL };
		}
		CPU_ZERO(&a.affinity);
		if (i % 3 == 2)
			CPU_SET(i % 2, &a.affinity);
		if (ok_or_enomem(fiber_spawn(i % 4 == 3 ? NULL : &f[n], &a, leaf, NULL)) == 0) {
			atomic_fetch_add(&spawned, 1);
			if (i % 4 != 3)
				n++;
		}
	}
	for (int i = 0; i < n; i++) {
		struct fiber_sched_attr rr = { .policy = FIBER_SCHED_RR, .priority = 5 };
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(i % 2, &set);
		/* Nothing here allocates. The fiber may have exited already: -ESRCH is fine, nothing else but 0. */
		int r = i % 2 ? fiber_setattr(f[i], &rr) : fiber_setaffinity(f[i], &set);

		if (r && r != -ESRCH)
			atomic_fetch_add(&bad_ret, 1);
		if (fiber_join(f[i], NULL))
			atomic_fetch_add(&bad_ret, 1);
	}
	return NULL;
}

/* One run of the scenario. Returns 0 if the runtime started, -ENOMEM if the start failed. */
static int scenario(void)
{
	struct fiber_config c = test_cfg(2);
	fiber_t *p[3];
	int n = 0, ret;

	ret = ok_or_enomem(fiber_runtime_start(&c));
	if (ret)
		return ret;
	for (int i = 0; i < 3; i++) {
		if (ok_or_enomem(fiber_spawn(&p[n], NULL, parent, NULL)) == 0) {
			atomic_fetch_add(&spawned, 1);
			n++;
		}
	}
	for (int i = 0; i < n; i++)
		if (fiber_join(p[i], NULL))
			atomic_fetch_add(&bad_ret, 1);
	if (fiber_runtime_stop())
		atomic_fetch_add(&bad_ret, 1);
	return 0;
}

static void test_alloc_each_failure_is_clean(void **state)
{
	unsigned long total, injected = 0;
	int start_failures = 0;

	(void)state;
	/* Count: arm the hook so far away that nothing fails. */
	atomic_store(&fiber__alloc_calls, 0);
	atomic_store(&fiber__fail_alloc, 1000000000);
	assert_int_equal(scenario(), 0);
	atomic_store(&fiber__fail_alloc, 0);
	total = atomic_load(&fiber__alloc_calls);
	assert_int_equal(atomic_load(&bad_ret), 0);
	assert_int_equal(atomic_load(&ran), atomic_load(&spawned));
	assert_true(total > 5);

	/* Allocations after the first run come from caches, so the count only shrinks: N up to total covers all. */
	for (unsigned long n = 1; n <= total; n++) {
		atomic_store(&ran, 0);
		atomic_store(&spawned, 0);
		atomic_store(&fiber__alloc_failures, 0);
		atomic_store(&fiber__fail_alloc, (long)n);
		if (scenario())
			start_failures++;
		atomic_store(&fiber__fail_alloc, 0);
		injected += atomic_load(&fiber__alloc_failures);
		/* Every fiber whose spawn returned 0 ran; the calls returned 0 or -ENOMEM. */
		assert_int_equal(atomic_load(&ran), atomic_load(&spawned));
		assert_int_equal(atomic_load(&bad_ret), 0);
	}
	print_message("%lu allocations in the scenario; %lu runs with one failing (%lu failures injected, %d at "
		      "start)\n",
		      total, total, injected, start_failures);
	assert_true(injected > 0);
	assert_true(start_failures > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_each_failure_is_clean),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
