/*
 * test_errno: the library never changes the caller's errno. Before, fiber_join from a plain thread left EAGAIN
 * from its futex wait in almost every call, and fiber_runtime_start left whatever its environment parsing and
 * madvise probes set. Inside fibers, each fiber keeps its own errno across switches and migrations.
 */
#include "test_util.h"

#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>

static void *short_fiber(void *arg)
{
	fiber_yield();
	return arg;
}

static void test_errno_pthread_join_keeps_errno(void **state)
{
	int changed = 0;

	(void)state;
	assert_int_equal(fiber_runtime_start(NULL), 0);
	for (int i = 0; i < 20000; i++) {
		fiber_t *f;

		errno = 4321;
		if (fiber_spawn(&f, NULL, short_fiber, NULL) || errno != 4321)
			changed++;
		errno = 1234;
		if (fiber_join(f, NULL) || errno != 1234)
			changed++;
	}
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_int_equal(changed, 0);
}

static void test_errno_start_stop_keep_errno(void **state)
{
	struct fiber_config c;

	(void)state;
	errno = 777;
	assert_int_equal(fiber_runtime_start(NULL), 0);
	assert_int_equal(errno, 777);
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_int_equal(errno, 777);
	/* A refused start (bad environment value) reports through the return value only. */
	setenv("FIBER_WORKERS", "not-a-number", 1);
	fiber_config_init(&c);
	errno = 778;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	assert_int_equal(errno, 778);
	unsetenv("FIBER_WORKERS");
	/* Plain-thread fallbacks. */
	errno = 779;
	assert_int_equal(fiber_sleep(1000), 0);
	fiber_yield();
	assert_int_equal(errno, 779);
	assert_int_equal(fiber_runtime_stop(), -ESRCH);
	assert_int_equal(errno, 779);
}

/*
 * Each fiber's errno survives its own switches, migrations and runtime calls. The test reads and writes errno
 * through functions the compiler cannot see into: glibc declares __errno_location const, so code that keeps
 * &errno across a switch would use the old worker's errno after a migration (fiber.h says so).
 */
static atomic_int fiber_errno_bad;

static OPAQUE int get_errno(void)
{
	return errno;
}

static OPAQUE void set_errno(int v)
{
	errno = v;
}

static void *errno_keeper(void *arg)
{
	int mine = (int)(intptr_t)arg;

	set_errno(mine);
	for (int i = 0; i < 200; i++) {
		fiber_t *f;

		if (i % 3 == 0)
			fiber_yield();
		else if (i % 3 == 1)
			fiber_sleep(10000);
		else if (fiber_spawn(&f, NULL, short_fiber, NULL) == 0)
			fiber_join(f, NULL);
		if (get_errno() != mine)
			atomic_fetch_add(&fiber_errno_bad, 1);
		set_errno(mine);
	}
	return NULL;
}

static void test_errno_each_fiber_keeps_its_own(void **state)
{
	struct fiber_config c = test_cfg(3);
	fiber_t *f[16];

	(void)state;
	assert_int_equal(fiber_runtime_start(&c), 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(fiber_spawn(&f[i], NULL, errno_keeper, (void *)(intptr_t)(100 + i)), 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(fiber_join(f[i], NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_int_equal(atomic_load(&fiber_errno_bad), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_errno_pthread_join_keeps_errno),
		cmocka_unit_test(test_errno_start_stop_keep_errno),
		cmocka_unit_test(test_errno_each_fiber_keeps_its_own),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
