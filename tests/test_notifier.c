/*
 * test_notifier (white-box for the switch log): preempt notifiers.
 *  - sched_out and sched_in counts equal the fiber's real switches (seen by finish_task_switch);
 *  - sched_out's next is the fiber that runs next; sched_in's worker is the current one;
 *  - nothing fires when the scheduler picks the same fiber again;
 *  - errno set before a sleep is still there after it, also when the fiber moved to another worker.
 */
#include "test_util.h"

#include "internal.h"

#include <errno.h>

static struct fiber *watched;
static atomic_long outs, ins, real_outs, real_ins, next_wrong, worker_wrong;
static struct fiber *expected_next;
static int expect_pending;

static void n_out(struct fiber_preempt_notifier *n, fiber_t *next)
{
	atomic_fetch_add(&outs, 1);
	/* Checked by the hook at the next finish_task_switch on this worker. */
	expected_next = next;
	expect_pending = 1;
}

static void n_in(struct fiber_preempt_notifier *n, int worker)
{
	atomic_fetch_add(&ins, 1);
	if (worker != fiber_worker_id() || fiber_self() != watched)
		atomic_fetch_add(&worker_wrong, 1);
}

static const struct fiber_preempt_ops ops = { .sched_in = n_in, .sched_out = n_out };

static void hook(struct fiber *curr, struct fiber *last, int worker)
{
	if (last == watched && watched) {
		atomic_fetch_add(&real_outs, 1);
		if (expect_pending) {
			struct fiber *want = expected_next ? expected_next : cpu_rq(worker)->idle;

			if (curr != want)
				atomic_fetch_add(&next_wrong, 1);
			expect_pending = 0;
		}
	}
	if (curr == watched && watched)
		atomic_fetch_add(&real_ins, 1);
}
static struct fiber__test_hooks hooks = { .finish_task_switch = hook };

static atomic_int b_done;
static long alone_before, alone_after, alone_real_before, alone_real_after;

static void *peer(void *arg)
{
	for (int i = 0; i < 1000; i++) {
		fiber_yield();
		if (i % 100 == 0)
			fiber_sleep(10000);
	}
	atomic_store(&b_done, 1);
	return NULL;
}

static void *watched_fn(void *arg)
{
	struct fiber_preempt_notifier n;

	/* Counted from here on; nothing between this and the registration can switch. */
	watched = fiber_self();
	fiber_preempt_notifier_init(&n, &ops);
	fiber_preempt_notifier_register(&n);
	while (!atomic_load(&b_done)) {
		fiber_yield();
		fiber_sleep(1000);
	}
	/*
	 * Almost alone on the worker: the peer has exited; the main fiber may still need one switch to reach its
	 * join. The other yields pick this fiber again, and then nothing may fire.
	 */
	alone_before = atomic_load(&outs) + atomic_load(&ins);
	alone_real_before = atomic_load(&real_outs) + atomic_load(&real_ins);
	for (int i = 0; i < 1000; i++)
		fiber_yield();
	alone_after = atomic_load(&outs) + atomic_load(&ins);
	alone_real_after = atomic_load(&real_outs) + atomic_load(&real_ins);
	fiber_preempt_notifier_unregister(&n);
	return NULL;
}

static void notif_main(void *arg)
{
	fiber_t *a, *b;

	fiber_spawn(&b, NULL, peer, NULL);
	fiber_spawn(&a, NULL, watched_fn, NULL);
	fiber_join(b, NULL);
	fiber_join(a, NULL);
}

static void test_notifier_counts_next_worker(void **state)
{
	struct fiber_config c = test_cfg(1);

	atomic_store(&fiber__hooks, &hooks);
	assert_int_equal(fiber_run(&c, notif_main, NULL), 0);
	atomic_store(&fiber__hooks, NULL);
	assert_true(atomic_load(&outs) > 100);
	/*
	 * Real switches, counted by finish_task_switch from the moment the fiber registered: every switch-in fired
	 * sched_in; every switch-out fired sched_out except the final one (exit), which comes after the unregister.
	 */
	assert_int_equal(atomic_load(&ins), atomic_load(&real_ins));
	assert_int_equal(atomic_load(&outs), atomic_load(&real_outs) - 1);
	assert_int_equal(atomic_load(&next_wrong), 0);
	assert_int_equal(atomic_load(&worker_wrong), 0);
	/* 1000 yields, at most a couple of real switches among them, and notifications for exactly those */
	assert_true(alone_real_after - alone_real_before <= 4);
	assert_int_equal(alone_after - alone_before, alone_real_after - alone_real_before);
	/* Nothing is registered any more: the static key is off. */
	assert_int_equal(atomic_load(&fiber__preempt_notifier_key), 0);
}

/* ---- errno across sleeps and migrations ---- */

#define EF 8
static atomic_long errno_wrong, migrations;

/*
 * glibc declares __errno_location() const, so the compiler may keep &errno in a register across fiber_sleep and
 * then read the old worker's errno after a migration (include/fiber.h says: use fiber_migrate_disable() for that).
 * Re-reading it through a function the compiler cannot see into is what ordinary code between calls does.
 */
static OPAQUE int read_errno(void)
{
	return errno;
}

/*
 * The store too: with link-time optimisation the compiler sees through fiber_sleep and fiber_yield and may hoist
 * &errno out of the loop.
 */
static OPAQUE void write_errno(int v)
{
	errno = v;
}

static void *errno_fn(void *arg)
{
	int i = (int)(intptr_t)arg;
	unsigned seed = (unsigned)i * 7919u + 1;

	for (int r = 0; r < 300; r++) {
		int want = 1000 + i * 1000 + r;
		int before = fiber_worker_id();

		write_errno(want);
		if (r % 2)
			fiber_sleep(1000 + rand_r(&seed) % 200000);
		else
			fiber_yield();
		if (read_errno() != want)
			atomic_fetch_add(&errno_wrong, 1);
		if (fiber_worker_id() != before)
			atomic_fetch_add(&migrations, 1);
		/* A little work, so workers are sometimes busy when timers fire. */
		for (volatile int k = 0; k < (int)(rand_r(&seed) % 20000); k++)
			;
	}
	return NULL;
}

static void errno_main(void *arg)
{
	fiber_t *f[EF];

	for (int i = 0; i < EF; i++)
		fiber_spawn(&f[i], NULL, errno_fn, (void *)(intptr_t)i);
	for (int i = 0; i < EF; i++)
		fiber_join(f[i], NULL);
}

static void test_notifier_errno_survives_sleep_and_migration(void **state)
{
	struct fiber_config c = test_cfg(4);

	assert_int_equal(fiber_run(&c, errno_main, NULL), 0);
	assert_int_equal(atomic_load(&errno_wrong), 0);
	assert_true(atomic_load(&migrations) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_notifier_counts_next_worker),
		cmocka_unit_test(test_notifier_errno_survives_sleep_and_migration),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
