/*
 * test_lifecycle: handles and plain threads across fiber_runtime_stop and start/stop/start cycles.
 *
 * The rule (fiber.h, fiber_join): a joinable fiber's handle stays valid until it is joined or detached, also after
 * the runtime stopped; a released handle never makes the library touch freed memory (-EINVAL in the runtime that
 * released it, -ESRCH later). fiber_spawn from a plain thread racing fiber_runtime_stop either spawns a fiber
 * that runs or returns -ESRCH. These run in the ASan suite, where a use-after-free is a failure.
 */
#include "test_util.h"

#include <pthread.h>
#include <sys/mman.h>

#include "internal.h"

static void *ret_arg(void *arg)
{
	return arg;
}

static void test_lifecycle_unjoined_handle_joins_after_stop(void **state)
{
	fiber_t *f;
	void *r = NULL;

	(void)state;
	assert_int_equal(fiber_runtime_start(NULL), 0);
	assert_int_equal(fiber_spawn(&f, NULL, ret_arg, (void *)(uintptr_t)42), 0);
	assert_int_equal(fiber_runtime_stop(), 0); /* waits until f exited; f is not joined */
	assert_int_not_equal(fiber_id(f), 0);
	assert_int_equal(fiber_join(f, &r), 0);
	assert_ptr_equal(r, (void *)(uintptr_t)42);
	assert_int_equal(fiber_join(f, &r), -ESRCH); /* released, and no runtime */
	assert_int_equal(fiber_id(f), 0);
}

static void test_lifecycle_unjoined_handle_detaches_after_stop(void **state)
{
	fiber_t *f;

	(void)state;
	assert_int_equal(fiber_runtime_start(NULL), 0);
	assert_int_equal(fiber_spawn(&f, NULL, ret_arg, NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_int_equal(fiber_detach(f), 0);
	assert_int_equal(fiber_detach(f), -ESRCH);
}

static void test_lifecycle_released_handle_is_esrch_in_next_runtime(void **state)
{
	struct fiber_sched_attr a = { .policy = FIBER_SCHED_NORMAL };
	cpu_set_t set;
	fiber_t *f;

	(void)state;
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	assert_int_equal(fiber_runtime_start(NULL), 0);
	assert_int_equal(fiber_spawn(&f, NULL, ret_arg, NULL), 0);
	assert_int_equal(fiber_join(f, NULL), 0);
	assert_int_equal(fiber_join(f, NULL), -EINVAL); /* joined twice in the same runtime, as pthreads */
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_int_equal(fiber_runtime_start(NULL), 0);
	assert_int_equal(fiber_join(f, NULL), -ESRCH);
	assert_int_equal(fiber_detach(f), -ESRCH);
	assert_int_equal(fiber_cancel(f), -ESRCH);
	assert_int_equal(fiber_setattr(f, &a), -ESRCH);
	assert_int_equal(fiber_setaffinity(f, &set), -ESRCH);
	assert_int_equal(fiber_id(f), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
}

/* Plain threads blocked in fiber_join while the runtime stops: they return with the value, nothing freed. */
#define NJOINERS 8

struct joiner {
	pthread_t thr;
	fiber_t *f;
	void *r;
	int ret;
};

static void *joiner_main(void *arg)
{
	struct joiner *j = arg;

	j->ret = fiber_join(j->f, &j->r);
	return NULL;
}

static void *short_sleep(void *arg)
{
	fiber_sleep(200 * 1000);
	return arg;
}

static void test_lifecycle_pthread_joiners_race_stop(void **state)
{
	struct joiner js[NJOINERS];
	int bad = 0;

	(void)state;
	for (int cycle = 0; cycle < 20; cycle++) {
		assert_int_equal(fiber_runtime_start(NULL), 0);
		for (int i = 0; i < NJOINERS; i++) {
			assert_int_equal(fiber_spawn(&js[i].f, NULL, short_sleep, &js[i]), 0);
			assert_int_equal(pthread_create(&js[i].thr, NULL, joiner_main, &js[i]), 0);
		}
		assert_int_equal(fiber_runtime_stop(), 0);
		for (int i = 0; i < NJOINERS; i++) {
			pthread_join(js[i].thr, NULL);
			bad += js[i].ret != 0 || js[i].r != &js[i];
		}
	}
	assert_int_equal(bad, 0);
}

/*
 * Many cycles, each leaving joinable handles for the next one, which joins them while it spawns (and reuses
 * descriptors): a leftover must never be handed out again, and its return value must survive.
 */
static void test_lifecycle_start_stop_cycles_with_leftover_handles(void **state)
{
	enum { N = 300 };
	static fiber_t *left[N / 2];
	int bad = 0, nleft = 0;

	(void)state;
	for (int cycle = 0; cycle < 30; cycle++) {
		fiber_t *now[N];

		assert_int_equal(fiber_runtime_start(NULL), 0);
		for (int i = 0; i < N; i++)
			assert_int_equal(fiber_spawn(&now[i], NULL, ret_arg, (void *)(uintptr_t)(cycle * N + i + 1)),
					 0);
		for (int i = 0; i < nleft; i++) {
			void *r;

			bad += fiber_join(left[i], &r) != 0 || r != (void *)(uintptr_t)((cycle - 1) * N + 2 * i + 2);
		}
		nleft = 0;
		for (int i = 0; i < N; i++) {
			void *r;

			if (i % 2) {
				left[nleft++] = now[i];
				continue;
			}
			bad += fiber_join(now[i], &r) != 0 || r != (void *)(uintptr_t)(cycle * N + i + 1);
		}
		assert_int_equal(fiber_runtime_stop(), 0);
	}
	for (int i = 0; i < nleft; i++)
		bad += fiber_join(left[i], NULL) != 0;
	assert_int_equal(bad, 0);
}

/* fiber_spawn from plain threads racing fiber_runtime_stop: 0 and the fiber ran, or -ESRCH. */
#define NSPAWNERS 4

static atomic_long ran, spawned, refused, other;
static atomic_int spawners_go;

static void *count_run(void *arg)
{
	(void)arg;
	atomic_fetch_add(&ran, 1);
	return NULL;
}

static void *spawner_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&spawners_go))
		;
	for (;;) {
		int ret = fiber_spawn(NULL, NULL, count_run, NULL);

		if (ret == 0) {
			atomic_fetch_add(&spawned, 1);
		} else if (ret == -ESRCH) {
			atomic_fetch_add(&refused, 1);
			return NULL;
		} else {
			atomic_fetch_add(&other, 1);
		}
	}
}

static void test_lifecycle_spawn_races_stop(void **state)
{
	pthread_t thr[NSPAWNERS];

	(void)state;
	for (int cycle = 0; cycle < 30; cycle++) {
		assert_int_equal(fiber_runtime_start(NULL), 0);
		atomic_store(&spawners_go, 0);
		for (int i = 0; i < NSPAWNERS; i++)
			assert_int_equal(pthread_create(&thr[i], NULL, spawner_main, NULL), 0);
		atomic_store(&spawners_go, 1);
		usleep(2000);
		assert_int_equal(fiber_runtime_stop(), 0);
		for (int i = 0; i < NSPAWNERS; i++)
			pthread_join(thr[i], NULL);
		assert_int_equal(atomic_load(&ran), atomic_load(&spawned));
	}
	print_message("spawned %ld (all ran), refused %ld\n", atomic_load(&spawned), atomic_load(&refused));
	assert_int_equal(atomic_load(&other), 0);
	assert_int_equal(atomic_load(&refused), 30 * NSPAWNERS);
	assert_true(atomic_load(&spawned) > 0);
}

/*
 * ---- the live count: fibers spawned on one worker and reaped on another ----
 * nr_fibers is counted in per-worker credits (internal.h, fiber__live_get/put). A spawner on worker 0 starts
 * fibers that run and die on worker 1: the counts are taken on 0 and given back on 1. Stop must still return as
 * soon as the last one has gone (the test would hang otherwise; the alarm turns that into a failure), and the dump
 * must say how many are alive while worker 0, kept busy, still holds counts it took in advance.
 */
#define LIVE_SHORT 1000
#define LIVE_PARKED 10

static fiber_t *live_parked[LIVE_PARKED];
static atomic_int live_ran, live_spawn_err, live_done, live_published;

static void pin(struct fiber_attr *a, int worker)
{
	fiber_attr_init(a);
	CPU_SET(worker, &a->affinity);
}

static void *live_short(void *arg)
{
	(void)arg;
	atomic_fetch_add(&live_ran, 1);
	return NULL;
}

static void *live_park(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)fiber_sleep(60ull * 1000000000ull);
}

static void *live_spawner(void *arg)
{
	struct fiber_attr a;

	(void)arg;
	pin(&a, 1);
	a.flags |= FIBER_ATTR_DETACHED;
	for (int i = 0; i < LIVE_SHORT; i++)
		if (fiber_spawn(NULL, &a, live_short, NULL))
			atomic_fetch_add(&live_spawn_err, 1);
	pin(&a, 1);
	for (int i = 0; i < LIVE_PARKED; i++)
		if (fiber_spawn(&live_parked[i], &a, live_park, NULL))
			atomic_fetch_add(&live_spawn_err, 1);
	atomic_store(&live_published, 1); /* live_parked[] is written: the test thread may read it */
	/* Worker 0 stays busy, so it keeps the counts it took in advance (no idle period hands them back). */
	while (!atomic_load(&live_done))
		fiber_yield();
	return NULL;
}

static void test_lifecycle_stop_counts_fibers_reaped_on_another_worker(void **state)
{
	struct fiber_config c = test_cfg(2);
	struct fiber_attr a;
	char text[4096] = "";
	fiber_t *sp;
	void *r;
	int fd = memfd_create("live", 0), parked = 0;
	ssize_t n;

	(void)state;
	assert_true(fd >= 0);
	alarm(60);
	assert_int_equal(fiber_runtime_start(&c), 0);
	pin(&a, 0);
	assert_int_equal(fiber_spawn(&sp, &a, live_spawner, NULL), 0);
	for (int t = 0; t < 5000 && (atomic_load(&live_ran) < LIVE_SHORT || parked < LIVE_PARKED); t++) {
		struct fiber_stats st;

		usleep(1000);
		parked = 0;
		if (!atomic_load(&live_published))
			continue;
		for (int i = 0; i < LIVE_PARKED; i++)
			parked += live_parked[i] && fiber_stats(live_parked[i], &st) == 0 && st.state == 1;
	}
	fiber_dump(fd);
	atomic_store(&live_done, 1);
	assert_int_equal(fiber_join(sp, NULL), 0);
	for (int i = 0; i < LIVE_PARKED; i++) {
		fiber_cancel(live_parked[i]);
		assert_int_equal(fiber_join(live_parked[i], &r), 0);
		assert_int_equal((intptr_t)r, -ECANCELED);
	}
	assert_int_equal(fiber_runtime_stop(), 0);
	alarm(0);
	n = pread(fd, text, sizeof(text) - 1, 0);
	close(fd);
	assert_true(n > 0);
	assert_int_equal(atomic_load(&live_spawn_err), 0);
	assert_int_equal(atomic_load(&live_ran), LIVE_SHORT);
	assert_int_equal(parked, LIVE_PARKED);
	/* the spawner and the ten parked ones; the short ones are gone, whichever worker holds their counts */
	assert_non_null(strstr(text, "2 workers, 11 fibers,"));
	assert_int_equal(atomic_load(&fiber__rt.nr_fibers), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle_unjoined_handle_joins_after_stop),
		cmocka_unit_test(test_lifecycle_unjoined_handle_detaches_after_stop),
		cmocka_unit_test(test_lifecycle_released_handle_is_esrch_in_next_runtime),
		cmocka_unit_test(test_lifecycle_pthread_joiners_race_stop),
		cmocka_unit_test(test_lifecycle_start_stop_cycles_with_leftover_handles),
		cmocka_unit_test(test_lifecycle_spawn_races_stop),
		cmocka_unit_test(test_lifecycle_stop_counts_fibers_reaped_on_another_worker),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
