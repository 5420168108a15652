/*
 * test_wakeup (white-box): try_to_wake_up's on_rq/on_cpu protocol. Tokens circulate through a ring of fibers on
 * more workers than cores; each hand-off wakes a fiber that has often only just gone to sleep on another worker
 * and may still be switching out. A test hook inside finish_task_switch (it runs on the resumed fiber's stack,
 * before last->on_cpu is cleared) counts, per fiber, the workers it is on: the count must never exceed one, which
 * is exactly "a fiber woken on another worker never runs until its switch-out has completed".
 */
#include "test_util.h"

#include "internal.h"

#define N 16
#define TOKENS 6
#define PASSES 200000
#define WORKERS 8

static struct fiber *ring[N];
static atomic_int tokens[N];
static atomic_long passes;
static atomic_int done;
static atomic_int running[N];
static atomic_long violations, corrupt, hook_calls;

static void *ring_fn(void *arg);

static int ring_index(struct fiber *p)
{
	return p->fn == ring_fn ? (int)(intptr_t)p->arg : -1;
}

static void hook(struct fiber *curr, struct fiber *last, int worker)
{
	int i = ring_index(last), j = ring_index(curr);

	atomic_fetch_add_explicit(&hook_calls, 1, memory_order_relaxed);
	if (i >= 0)
		atomic_fetch_sub(&running[i], 1);
	if (j >= 0 && atomic_fetch_add(&running[j], 1) != 0)
		atomic_fetch_add(&violations, 1);
}
static struct fiber__test_hooks hooks = { .finish_task_switch = hook };

static void *ring_fn(void *arg)
{
	int i = (int)(intptr_t)arg;
	volatile uint64_t canary[32];

	for (int k = 0; k < 32; k++)
		canary[k] = (uint64_t)i * 0x9e3779b97f4a7c15ull + (uint64_t)k;
	for (;;) {
		for (;;) {
			fiber__set_current_state(TASK_UNINTERRUPTIBLE);
			if (atomic_load(&tokens[i]) > 0 || atomic_load(&done))
				break;
			fiber__schedule();
		}
		atomic_store_explicit(&fiber_self()->state, TASK_RUNNING, memory_order_relaxed);
		for (int k = 0; k < 32; k++)
			if (canary[k] != (uint64_t)i * 0x9e3779b97f4a7c15ull + (uint64_t)k)
				atomic_fetch_add(&corrupt, 1);
		if (atomic_load(&tokens[i]) == 0)
			break; /* done */
		atomic_fetch_sub(&tokens[i], 1);
		if (atomic_fetch_add(&passes, 1) + 1 >= PASSES && !atomic_exchange(&done, 1)) {
			for (int k = 0; k < N; k++)
				fiber__wake_up_process(ring[k]);
		}
		int j = (i + 1 + (i & 1) * 4) % N; /* two interleaved rings: more cross-worker traffic */
		atomic_fetch_add(&tokens[j], 1);
		fiber__wake_up_process(ring[j]);
		if (atomic_load(&done))
			break;
	}
	return NULL;
}

static void ring_main(void *arg)
{
	fiber_t *f[N];

	/* Spawned with no tokens: they all park first. */
	for (int i = 0; i < N; i++) {
		fiber_spawn(&f[i], NULL, ring_fn, (void *)(intptr_t)i);
		ring[i] = f[i];
	}
	fiber_sleep(2000000);
	for (int t = 0; t < TOKENS; t++) {
		atomic_fetch_add(&tokens[t * 2], 1);
		fiber__wake_up_process(ring[t * 2]);
	}
	for (int i = 0; i < N; i++)
		fiber_join(f[i], NULL);
}

static void test_wakeup_never_on_two_workers(void **state)
{
	struct fiber_config c = test_cfg(WORKERS);

	for (int rep = 0; rep < 3; rep++) {
		memset(tokens, 0, sizeof(tokens));
		memset(running, 0, sizeof(running));
		atomic_store(&passes, 0);
		atomic_store(&done, 0);
		atomic_store(&violations, 0);
		atomic_store(&corrupt, 0);
		atomic_store(&fiber__hooks, &hooks);
		assert_int_equal(fiber_run(&c, ring_main, NULL), 0);
		atomic_store(&fiber__hooks, NULL);
		assert_true(atomic_load(&passes) >= PASSES);
		assert_int_equal(atomic_load(&violations), 0);
		assert_int_equal(atomic_load(&corrupt), 0);
		for (int i = 0; i < N; i++)
			assert_int_equal(atomic_load(&running[i]), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wakeup_never_on_two_workers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
