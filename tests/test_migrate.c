/*
 * test_migrate: moving fibers between workers never lets a fiber run on a worker other than task_cpu(p), and never
 * on two workers at once (KERNEL_MAP §6.1, §6.2 B2-B4). The stress races fiber_setattr(DEADLINE) and
 * fiber_setaffinity from fibers and from a plain thread against wake-ups from fibers on other workers and from a
 * plain thread, with a sched_out notifier that spins to keep the woken fiber on_cpu longer (so wakers use the
 * remote wakelist and the fiber sits in TASK_WAKING there). From sched_in each victim checks that the worker it
 * runs on is task_cpu(p). FIBER_DEBUG builds also check next->on_cpu at every switch.
 * FIBER_TEST_LONG=1 runs the stress for 10 s instead of 1 s.
 */
#include "test_util.h"

#include <pthread.h>

#include "internal.h"

#define NVICTIMS 8
#define NWAKERS 3
#define WORKERS 4

struct victim {
	struct wait_queue_head wq;
	atomic_int token;
	fiber_t *f;
	struct fiber_preempt_notifier n;
	atomic_long runs;     /* sched_in calls */
	atomic_long bad_cpu;  /* sched_in on a worker that is not task_cpu(p) */
	atomic_long bad_self; /* fiber_worker_id() disagreeing with the notifier's worker */
};

static struct victim victims[NVICTIMS];
static atomic_int stop_flag, stop_mutators;
static atomic_long wakes, setattrs, affinities, mutate_errors;

static void spin_cycles(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++)
		;
}

static void victim_sched_in(struct fiber_preempt_notifier *n, int cpu)
{
	struct victim *v = container_of(n, struct victim, n);
	struct fiber *p = (struct fiber *)fiber_self();

	atomic_fetch_add(&v->runs, 1);
	if (p->cpu != cpu)
		atomic_fetch_add(&v->bad_cpu, 1);
	if (fiber_worker_id() != cpu)
		atomic_fetch_add(&v->bad_self, 1);
}

/* Runs under the rq lock with the fiber still on_cpu: spinning here widens the window a waker can hit. */
static void victim_sched_out(struct fiber_preempt_notifier *n, fiber_t *next)
{
	(void)n, (void)next;
	spin_cycles(2000);
}

static const struct fiber_preempt_ops victim_ops = { victim_sched_in, victim_sched_out };

static void *victim_fn(void *arg)
{
	struct victim *v = arg;
	struct wait_queue_entry e = { .flags = 0 };

	INIT_LIST_HEAD(&e.entry);
	fiber_preempt_notifier_init(&v->n, &victim_ops);
	fiber_preempt_notifier_register(&v->n);
	while (!atomic_load(&stop_flag)) {
		fiber__prepare_to_wait(&v->wq, &e, TASK_UNINTERRUPTIBLE);
		if (atomic_exchange(&v->token, 0) || atomic_load(&stop_flag)) {
			fiber__finish_wait(&v->wq, &e);
			spin_cycles(500);
			continue;
		}
		fiber__schedule();
		fiber__finish_wait(&v->wq, &e);
	}
	fiber_preempt_notifier_unregister(&v->n);
	return NULL;
}

static unsigned next_rand(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void wake_one(unsigned *seed)
{
	struct victim *v = &victims[next_rand(seed) % NVICTIMS];

	atomic_store(&v->token, 1);
	fiber__wake_up(&v->wq, TASK_NORMAL, 1);
	atomic_fetch_add(&wakes, 1);
}

static void *waker_fn(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop_flag)) {
		wake_one(&seed);
		if (next_rand(&seed) % 4 == 0)
			fiber_yield();
	}
	return NULL;
}

static void mutate_one(unsigned *seed)
{
	struct victim *v = &victims[next_rand(seed) % NVICTIMS];
	unsigned r = next_rand(seed);
	int ret;

	if (r % 3 == 0) {
		struct fiber_sched_attr a = { .policy = FIBER_SCHED_DEADLINE,
					      .runtime_ns = 50 * US,
					      .deadline_ns = 1 * MS,
					      .period_ns = 1 * MS };

		ret = fiber_setattr(v->f, &a);
		atomic_fetch_add(&setattrs, 1);
	} else if (r % 3 == 1) {
		struct fiber_sched_attr a = { .policy = FIBER_SCHED_NORMAL };

		ret = fiber_setattr(v->f, &a);
		atomic_fetch_add(&setattrs, 1);
	} else {
		cpu_set_t set;
		unsigned bits = 1 + next_rand(seed) % ((1u << WORKERS) - 1);

		CPU_ZERO(&set);
		for (int i = 0; i < WORKERS; i++)
			if (bits & (1u << i))
				CPU_SET(i, &set);
		ret = fiber_setaffinity(v->f, &set);
		atomic_fetch_add(&affinities, 1);
	}
	/* -EBUSY: a DEADLINE fiber that does not fit where the new mask allows it; anything else is an error. */
	if (ret && ret != -EBUSY)
		atomic_fetch_add(&mutate_errors, 1);
}

static void *mutator_fn(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop_mutators)) {
		mutate_one(&seed);
		fiber_yield();
	}
	return NULL;
}

static void *plain_waker(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop_flag)) {
		wake_one(&seed);
		sched_yield();
	}
	return NULL;
}

static void *plain_mutator(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop_mutators)) {
		mutate_one(&seed);
		sched_yield();
	}
	return NULL;
}

static void test_migrate_runs_only_on_task_cpu(void **state)
{
	struct fiber_config c = sched_cfg(WORKERS);
	fiber_t *helpers[NWAKERS + 1];
	pthread_t pw, pm;
	uint64_t secs = getenv("FIBER_TEST_LONG") ? 10 : 1;
	long runs = 0, bad_cpu = 0, bad_self = 0;
	uint64_t bw = 0;

	(void)state;
	assert_int_equal(fiber_runtime_start(&c), 0);
	for (int i = 0; i < NVICTIMS; i++) {
		fiber__init_waitqueue_head(&victims[i].wq);
		assert_int_equal(fiber_spawn(&victims[i].f, NULL, victim_fn, &victims[i]), 0);
	}
	for (int i = 0; i < NWAKERS; i++) {
		struct fiber_attr a;

		fiber_attr_init(&a);
		CPU_SET(i % WORKERS, &a.affinity);
		assert_int_equal(fiber_spawn(&helpers[i], &a, waker_fn, (void *)(uintptr_t)(i + 1)), 0);
	}
	assert_int_equal(fiber_spawn(&helpers[NWAKERS], NULL, mutator_fn, (void *)(uintptr_t)99), 0);
	assert_int_equal(pthread_create(&pw, NULL, plain_waker, (void *)(uintptr_t)7), 0);
	assert_int_equal(pthread_create(&pm, NULL, plain_mutator, (void *)(uintptr_t)13), 0);

	usleep((useconds_t)(secs * 1000000));
	atomic_store(&stop_mutators, 1);
	pthread_join(pm, NULL);
	assert_int_equal(fiber_join(helpers[NWAKERS], NULL), 0);
	for (int i = 0; i < NVICTIMS; i++) {
		struct fiber_sched_attr a = { .policy = FIBER_SCHED_NORMAL };

		assert_int_equal(fiber_setattr(victims[i].f, &a), 0);
	}
	atomic_store(&stop_flag, 1);
	pthread_join(pw, NULL);
	for (int i = 0; i < NWAKERS; i++)
		assert_int_equal(fiber_join(helpers[i], NULL), 0);
	for (int i = 0; i < NVICTIMS; i++) {
		atomic_store(&victims[i].token, 1);
		fiber__wake_up(&victims[i].wq, TASK_NORMAL, 0);
	}
	for (int i = 0; i < NVICTIMS; i++)
		assert_int_equal(fiber_join(victims[i].f, NULL), 0);
	for (int i = 0; i < WORKERS; i++)
		bw += cpu_rq(i)->dl.this_bw;
	assert_int_equal(fiber_runtime_stop(), 0);

	for (int i = 0; i < NVICTIMS; i++) {
		runs += atomic_load(&victims[i].runs);
		bad_cpu += atomic_load(&victims[i].bad_cpu);
		bad_self += atomic_load(&victims[i].bad_self);
	}
	print_message("switch-ins %ld, wake-ups %ld, setattr %ld, setaffinity %ld\n", runs, atomic_load(&wakes),
		      atomic_load(&setattrs), atomic_load(&affinities));
	assert_true(runs > 1000);
	assert_true(atomic_load(&setattrs) > 100 && atomic_load(&affinities) > 50);
	assert_int_equal(bad_cpu, 0);
	assert_int_equal(bad_self, 0);
	assert_int_equal(atomic_load(&mutate_errors), 0);
	assert_int_equal(bw, 0); /* every reservation given back once the victims left DEADLINE */
}

/* The plain cases of fiber_setaffinity: where a queued, a sleeping and the running fiber end up. */
static atomic_int moved_worker = -2, self_worker = -2;
static atomic_int aff_errs;

static atomic_int hog_release;

/* A FIFO fiber that keeps its worker until released: fair fibers queued behind it stay queued. */
static void *hog_fn(void *arg)
{
	(void)arg;
	while (!atomic_load(&hog_release))
		fiber_cond_resched();
	return NULL;
}

static void *report_worker(void *arg)
{
	if (arg)
		atomic_store((atomic_int *)arg, fiber_worker_id());
	return NULL;
}

static void *move_self(void *arg)
{
	cpu_set_t set, got;

	(void)arg;
	CPU_ZERO(&set);
	CPU_SET(1, &set);
	if (fiber_setaffinity(NULL, &set))
		atomic_fetch_add(&aff_errs, 1);
	atomic_store(&self_worker, fiber_worker_id());
	if (fiber_getaffinity(NULL, &got) || !CPU_EQUAL(&set, &got))
		atomic_fetch_add(&aff_errs, 1);
	/* Migration disabled: the move waits for fiber_migrate_enable. */
	CPU_ZERO(&set);
	CPU_SET(0, &set);
	fiber_migrate_disable();
	if (fiber_setaffinity(NULL, &set) || fiber_worker_id() != 1)
		atomic_fetch_add(&aff_errs, 1);
	fiber_migrate_enable();
	if (fiber_worker_id() != 0)
		atomic_fetch_add(&aff_errs, 1);
	return NULL;
}

static void test_migrate_setaffinity_moves_fibers(void **state)
{
	struct fiber_config c = sched_cfg(2);
	struct fiber_attr a;
	struct fiber_stats st;
	cpu_set_t set;
	fiber_t *f, *hog;

	(void)state;
	assert_int_equal(fiber_runtime_start(&c), 0);
	fiber_attr_init(&a);
	CPU_SET(0, &a.affinity);
	assert_int_equal(fiber_spawn(&f, &a, move_self, NULL), 0);
	assert_int_equal(fiber_join(f, NULL), 0);
	/* A queued fiber that has not run yet (worker 0 is held by a FIFO hog), sent to worker 1. */
	a.sched.policy = FIBER_SCHED_FIFO;
	a.sched.priority = 10;
	assert_int_equal(fiber_spawn(&hog, &a, hog_fn, NULL), 0);
	a.sched.policy = FIBER_SCHED_NORMAL;
	a.sched.priority = 0;
	while (fiber_stats(hog, &st) == 0 && st.sum_exec_ns == 0)
		usleep(100);
	assert_int_equal(fiber_spawn(&f, &a, report_worker, &moved_worker), 0);
	CPU_ZERO(&set);
	CPU_SET(1, &set);
	assert_int_equal(fiber_setaffinity(f, &set), 0);
	assert_int_equal(fiber_join(f, NULL), 0);
	atomic_store(&hog_release, 1);
	assert_int_equal(fiber_join(hog, NULL), 0);
	/* Bad input. */
	CPU_ZERO(&set);
	CPU_SET(5, &set);
	assert_int_equal(fiber_setaffinity(NULL, &set), -EINVAL); /* not a fiber */
	assert_int_equal(fiber_spawn(&f, NULL, report_worker, NULL), 0);
	assert_int_equal(fiber_setaffinity(f, &set), -EINVAL); /* names no worker */
	assert_int_equal(fiber_setaffinity(f, NULL), -EINVAL);
	assert_int_equal(fiber_getaffinity(f, NULL), -EINVAL);
	assert_int_equal(fiber_join(f, NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_int_equal(fiber_setaffinity(f, &set), -ESRCH);
	assert_int_equal(atomic_load(&aff_errs), 0);
	assert_int_equal(atomic_load(&self_worker), 1);
	assert_int_equal(atomic_load(&moved_worker), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_migrate_setaffinity_moves_fibers),
		cmocka_unit_test(test_migrate_runs_only_on_task_cpu),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
