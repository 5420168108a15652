/*
 * test_idle: a runtime at rest - workers with nothing to run, fibers asleep on timers - uses under 1% of a CPU.
 * (Not a performance target: a busy-waiting idle loop would use 100% per worker.)
 */
#include "test_util.h"

#include "internal.h"

static uint64_t cpu_used, wall;

static void *sleeper(void *arg)
{
	fiber_sleep(1500000000ull);
	return NULL;
}

static void test_idle_at_rest_under_one_percent(void **state)
{
	struct fiber_config c = test_cfg(4);
	fiber_t *f[10];
	uint64_t c0, t0;

	assert_int_equal(fiber_runtime_start(&c), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(fiber_spawn(&f[i], NULL, sleeper, NULL), 0);
	usleep(200000); /* let start-up settle */
	c0 = cpu_ns();
	t0 = now_ns();
	usleep(1000000);
	cpu_used = cpu_ns() - c0;
	wall = now_ns() - t0;
	for (int i = 0; i < 10; i++)
		assert_int_equal(fiber_join(f[i], NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	/* under 1% of one CPU over the window */
	assert_true(cpu_used * 100 < wall);
}

static void test_idle_empty_runtime_under_one_percent(void **state)
{
	struct fiber_config c = test_cfg(4);
	uint64_t c0, t0;

	assert_int_equal(fiber_runtime_start(&c), 0);
	usleep(100000);
	c0 = cpu_ns();
	t0 = now_ns();
	usleep(500000);
	cpu_used = cpu_ns() - c0;
	wall = now_ns() - t0;
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_true(cpu_used * 100 < wall);
}

/*
 * A worker asleep in its idle loop is woken by the first kick; the ones that follow while it is on its way out of
 * its sleep find NEED_RESCHED already set and send nothing (resched_curr's rule). Before, each of them wrote the
 * worker's eventfd (or called futex_wake) again: a spawn loop on two workers made 115,070 such writes against 5,894
 * sleeps. So at most one wake-up per sleep: a second needs the worker to have woken, cleared the flag and gone to
 * sleep again (which a loaded host may let it do while the calls run).
 */
static unsigned kicks_sent, sleeps_entered;
static bool kick_target_slept;

static void test_idle_sleeping_worker_kicked_once(void **state)
{
	struct fiber_config c = test_cfg(2);
	struct worker *w;
	unsigned k0, s0;

	assert_int_equal(fiber_runtime_start(&c), 0);
	w = &fiber__rt.workers[1];
	/* Asleep: its idle fiber runs and has stopped polling (it polls for 20 us, then sleeps in its ring). */
	for (int i = 0; i < 2000 && !kick_target_slept; i++) {
		usleep(1000);
		kick_target_slept = READ_ONCE(w->rq.curr) == w->rq.idle &&
				    !(atomic_load(&w->idle_fiber.tif) & (TIF_POLLING | TIF_NEED_RESCHED));
	}
	s0 = atomic_load(&w->nr_sleeps);
	k0 = atomic_load(&w->nr_kicks);
	for (int i = 0; i < 100; i++)
		fiber__kick_worker(w);
	kicks_sent = atomic_load(&w->nr_kicks) - k0;
	sleeps_entered = atomic_load(&w->nr_sleeps) - s0;
	assert_int_equal(fiber_runtime_stop(), 0);
	print_message("100 kicks: %u wake-ups sent, %u sleeps entered meanwhile\n", kicks_sent, sleeps_entered);
	assert_true(kick_target_slept);
	/* The sleep it was in, and one for each sleep it entered again meanwhile. */
	assert_true(kicks_sent >= 1);
	assert_true(kicks_sent <= sleeps_entered + 1);
}

/*
 * Where an idle worker sleeps: in its ring only while an operation is in flight there (its completion must end the
 * wait), else on its futex, which a kick reaches sooner. TIF_RING_WAIT, set with the POLLING clear, tells kickers.
 */
static int ring_pipe[2];
static unsigned sleep_bits_plain, sleep_bits_io;
static bool slept_plain, slept_io;
static ssize_t ring_read_res;

static void *ring_reader(void *arg)
{
	char c;

	ring_read_res = fiber_read(ring_pipe[0], &c, 1);
	return NULL;
}

/* Wait (up to 2 s) until worker @w is asleep; its idle fiber's tif word then. */
static bool wait_asleep(struct worker *w, unsigned *bits)
{
	for (int i = 0; i < 2000; i++) {
		unsigned t = atomic_load(&w->idle_fiber.tif);

		if (READ_ONCE(w->rq.curr) == w->rq.idle && !(t & (TIF_POLLING | TIF_NEED_RESCHED))) {
			*bits = t;
			return true;
		}
		usleep(1000);
	}
	return false;
}

static void test_idle_worker_sleeps_in_ring_only_with_io_in_flight(void **state)
{
	struct fiber_config c = test_cfg(2);
	struct fiber_attr a;
	fiber_t *f;
	bool uring;

	assert_int_equal(pipe(ring_pipe), 0);
	assert_int_equal(fiber_runtime_start(&c), 0);
	uring = fiber__rt.workers[1].io != NULL;
	slept_plain = wait_asleep(&fiber__rt.workers[1], &sleep_bits_plain);
	fiber_attr_init(&a);
	CPU_SET(1, &a.affinity);
	assert_int_equal(fiber_spawn(&f, &a, ring_reader, NULL), 0);
	usleep(20000); /* the read is submitted on worker 1, which then goes back to sleep */
	slept_io = wait_asleep(&fiber__rt.workers[1], &sleep_bits_io);
	assert_int_equal(write(ring_pipe[1], "x", 1), 1);
	assert_int_equal(fiber_join(f, NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	close(ring_pipe[0]);
	close(ring_pipe[1]);
	if (!uring)
		skip(); /* FIBER_IO=poll or no io_uring here: every sleep is on the futex */
	assert_true(slept_plain);
	assert_true(slept_io);
	assert_int_equal(ring_read_res, 1);
	assert_false(sleep_bits_plain & TIF_RING_WAIT);
	assert_true(sleep_bits_io & TIF_RING_WAIT);
}

/* 1,000 fibers parked on a wait queue (no timer, no I/O): the workers and the monitor all sleep. */
static struct wait_queue_head park_wq;
static atomic_int park_release;

static void *parked(void *arg)
{
	struct wait_queue_entry e = { .flags = 0 };

	INIT_LIST_HEAD(&e.entry);
	for (;;) {
		fiber__prepare_to_wait(&park_wq, &e, TASK_UNINTERRUPTIBLE);
		if (atomic_load(&park_release))
			break;
		fiber__schedule();
	}
	fiber__finish_wait(&park_wq, &e);
	return NULL;
}

static void test_idle_thousand_parked_fibers_under_one_percent(void **state)
{
	struct fiber_config c = test_cfg(4);
	static fiber_t *f[1000];
	uint64_t c0, t0;

	fiber__init_waitqueue_head(&park_wq);
	assert_int_equal(fiber_runtime_start(&c), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(fiber_spawn(&f[i], NULL, parked, NULL), 0);
	usleep(200000);
	c0 = cpu_ns();
	t0 = now_ns();
	usleep(1000000);
	cpu_used = cpu_ns() - c0;
	wall = now_ns() - t0;
	atomic_store(&park_release, 1);
	fiber__wake_up(&park_wq, TASK_NORMAL, 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(fiber_join(f[i], NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	print_message("1,000 parked fibers: %.2f ms of CPU in %.0f ms\n", cpu_used / 1e6, wall / 1e6);
	assert_true(cpu_used * 100 < wall);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_at_rest_under_one_percent),
		cmocka_unit_test(test_idle_empty_runtime_under_one_percent),
		cmocka_unit_test(test_idle_thousand_parked_fibers_under_one_percent),
		cmocka_unit_test(test_idle_sleeping_worker_kicked_once),
		cmocka_unit_test(test_idle_worker_sleeps_in_ring_only_with_io_in_flight),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
