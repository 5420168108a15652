/*
 * test_balance: fibers spawned on one worker do not stay there while another worker idles. Spawns stay local, so
 * the idle worker must pull (newidle balance) after a wakep kick; fiber_worker_stats reports the moves.
 */
#include "test_util.h"

#include <stdatomic.h>

#define N 8
static atomic_int seen[4];
static uint64_t pulled[2], pushed[2];

static void *cpu_fiber(void *arg)
{
	uint64_t t0 = now_ns();

	while (now_ns() - t0 < 100000000ull) { /* 100 ms of work with preemption points */
		int w = fiber_worker_id();

		if (w >= 0 && w < 4)
			atomic_store(&seen[w], 1);
		for (volatile int i = 0; i < 1000; i++)
			;
		fiber_cond_resched();
	}
	return NULL;
}

static void bal_main(void *arg)
{
	fiber_t *f[N];
	struct fiber_worker_stats ws;

	for (int i = 0; i < N; i++)
		fiber_spawn(&f[i], NULL, cpu_fiber, NULL);
	for (int i = 0; i < N; i++)
		fiber_join(f[i], NULL);
	for (int i = 0; i < 2; i++) {
		fiber_worker_stats(i, &ws);
		pulled[i] = ws.pulled;
		pushed[i] = ws.pushed;
	}
}

static void test_balance_idle_worker_pulls(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, bal_main, NULL), 0);
	assert_int_equal(atomic_load(&seen[0]), 1);
	assert_int_equal(atomic_load(&seen[1]), 1);
	assert_true(pulled[0] + pulled[1] > 0);
	assert_int_equal(pulled[0] + pulled[1], pushed[0] + pushed[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_balance_idle_worker_pulls),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
