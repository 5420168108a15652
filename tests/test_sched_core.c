/*
 * test_sched_core: what the scheduler core promises about classes and attributes, whatever the class
 * (API.md "Scheduling", KERNEL_MAP §5, §9.1). Black-box: only include/fiber.h.
 *  - class order: on one worker, fibers of every policy made runnable at once first run in the order
 *    DEADLINE (earliest deadline first) > FIFO/RR (higher priority first) > NORMAL, BATCH > SCHED_IDLE policy,
 *    whatever order they became runnable in;
 *  - fiber_setattr refuses exactly what sched_setattr(2) refuses, with the same errno (-EINVAL), leaves the fiber
 *    unchanged when it refuses, clamps nice, round-trips through fiber_getattr, answers -ESRCH for a fiber that
 *    has exited and -EBUSY when DEADLINE bandwidth on a worker would exceed 95%;
 *  - a change takes effect at once: on a queued fiber (its place in the pick order changes before it runs), and
 *    on a worker that runs a FIFO hog, changed from another worker (the queued fiber runs within milliseconds,
 *    where without the change it would wait for the hog to finish).
 */
#include "test_util.h"

#include <errno.h>
#include <stdatomic.h>

/* Compound literals, so that &ATTR_...(...) can be passed straight to fiber_setattr. */
#define ATTR_FAIR(pol, n) ((struct fiber_sched_attr){ .policy = (pol), .nice = (n) })
#define ATTR_RT(pol, prio) ((struct fiber_sched_attr){ .policy = (pol), .priority = (prio) })
#define ATTR_DL(r, d, p)                                                                                               \
	((struct fiber_sched_attr){                                                                                    \
	    .policy = FIBER_SCHED_DEADLINE, .runtime_ns = (r), .deadline_ns = (d), .period_ns = (p) })

/* ---- class order ---- */

enum {
	CO_IDLE, /* spawned first: the spawn order is the reverse of the expected run order */
	CO_BATCH,
	CO_NORMAL,
	CO_FIFO10,
	CO_RR30,
	CO_FIFO50,
	CO_RR70,
	CO_DL30, /* spawned NORMAL, then made DEADLINE (deadline 30 ms) while queued */
	CO_DL20, /* the same with deadline 20 ms */
	CO_N
};
static const char *const co_name[CO_N] = { "IDLE",    "BATCH", "NORMAL", "FIFO-10", "RR-30",
					   "FIFO-50", "RR-70", "DL-30",	 "DL-20" };
static atomic_int co_seq;
static int co_rank[CO_N]; /* 1 = ran first */
static int co_policy_seen[CO_N];
static int co_err;

static void *co_fiber(void *arg)
{
	int i = (int)(intptr_t)arg;
	struct fiber_sched_attr a;

	co_rank[i] = atomic_fetch_add(&co_seq, 1) + 1;
	co_policy_seen[i] = fiber_getattr(NULL, &a) ? -1 : (int)a.policy;
	spin_ns(1 * MS); /* a little CPU work: nothing below it may sneak in meanwhile */
	return NULL;
}

static void co_main(void *arg)
{
	const struct fiber_sched_attr spawn_as[CO_N] = {
		[CO_IDLE] = ATTR_FAIR(FIBER_SCHED_IDLE, 0),	[CO_BATCH] = ATTR_FAIR(FIBER_SCHED_BATCH, 0),
		[CO_NORMAL] = ATTR_FAIR(FIBER_SCHED_NORMAL, 0), [CO_FIFO10] = ATTR_RT(FIBER_SCHED_FIFO, 10),
		[CO_RR30] = ATTR_RT(FIBER_SCHED_RR, 30),	[CO_FIFO50] = ATTR_RT(FIBER_SCHED_FIFO, 50),
		[CO_RR70] = ATTR_RT(FIBER_SCHED_RR, 70),	[CO_DL30] = ATTR_FAIR(FIBER_SCHED_NORMAL, 0),
		[CO_DL20] = ATTR_FAIR(FIBER_SCHED_NORMAL, 0),
	};
	struct fiber_sched_attr top = ATTR_RT(FIBER_SCHED_FIFO, 99);
	struct fiber_sched_attr dl30 = ATTR_DL(2 * MS, 30 * MS, 100 * MS);
	struct fiber_sched_attr dl20 = ATTR_DL(2 * MS, 20 * MS, 100 * MS);
	fiber_t *f[CO_N] = { 0 };
	struct fiber_attr a;

	co_err |= fiber_setattr(NULL, &top);
	/*
	 * Nothing but a DEADLINE fiber can preempt a FIFO-99 one, and the first DEADLINE change would do so before the
	 * second: with preemption off, every fiber is queued before any of them runs.
	 */
	fiber_preempt_disable();
	for (int i = 0; i < CO_N; i++) {
		fiber_attr_init(&a);
		a.sched = spawn_as[i];
		co_err |= fiber_spawn(&f[i], &a, co_fiber, (void *)(intptr_t)i);
	}
	/* (f NULL would mean the caller: never pass the handle of a failed spawn.) */
	co_err |= f[CO_DL30] ? fiber_setattr(f[CO_DL30], &dl30) : -1;
	co_err |= f[CO_DL20] ? fiber_setattr(f[CO_DL20], &dl20) : -1;
	fiber_preempt_enable();
	for (int i = 0; i < CO_N; i++)
		fiber_join(f[i], NULL);
}

static void test_core_class_order(void **state)
{
	struct fiber_config c = sched_cfg(1);
	static const int want[CO_N] = {
		[CO_DL20] = 1, [CO_DL30] = 2,	[CO_RR70] = 3, [CO_FIFO50] = 4,
		[CO_RR30] = 5, [CO_FIFO10] = 6, [CO_IDLE] = 9, /* NORMAL and BATCH share ranks 7 and 8, in either order */
	};

	atomic_store(&co_seq, 0);
	co_err = 0;
	memset(co_rank, 0, sizeof(co_rank));
	assert_int_equal(fiber_run(&c, co_main, NULL), 0);
	assert_int_equal(co_err, 0);
	for (int i = 0; i < CO_N; i++)
		print_message("  %-8s ran %d\n", co_name[i], co_rank[i]);
	assert_int_equal(co_policy_seen[CO_DL20], FIBER_SCHED_DEADLINE);
	assert_int_equal(co_policy_seen[CO_DL30], FIBER_SCHED_DEADLINE);
	for (int i = 0; i < CO_N; i++)
		if (want[i])
			assert_int_equal(co_rank[i], want[i]);
	assert_true(co_rank[CO_NORMAL] == 7 || co_rank[CO_NORMAL] == 8);
	assert_true(co_rank[CO_BATCH] == 7 || co_rank[CO_BATCH] == 8);
}

/* ---- fiber_setattr validation, clamping, getattr round trip, -ESRCH, -EBUSY ---- */

/* A fiber that only sleeps until released: a target whose attributes the tests change. */
static atomic_int targets_release;

static void *target_fn(void *arg)
{
	while (!atomic_load(&targets_release))
		fiber_sleep(2 * MS);
	return NULL;
}

static void *dl_self_fn(void *arg)
{
	/* Self-set DEADLINE (spawn refuses it); the result goes back through arg. */
	*(int *)arg = fiber_setattr(NULL, &(struct fiber_sched_attr){ .policy = FIBER_SCHED_DEADLINE });
	return NULL;
}

static void *exit_at_once(void *arg)
{
	return arg;
}

struct bad_case {
	const char *what;
	struct fiber_sched_attr a;
};

#define DL_PERIOD_MIN (100 * US)
#define DL_PERIOD_MAX (4194304ull * US)

static const struct bad_case bad_cases[] = {
	{ "policy 4 (SCHED_ISO, not valid)", { .policy = 4 } },
	{ "policy 7 (SCHED_EXT, not supported)", { .policy = 7 } },
	{ "policy UINT32_MAX", { .policy = UINT32_MAX } },
	{ "FIFO priority 100", { .policy = FIBER_SCHED_FIFO, .priority = 100 } },
	{ "RR priority UINT32_MAX", { .policy = FIBER_SCHED_RR, .priority = UINT32_MAX } },
	{ "NORMAL priority 100", { .policy = FIBER_SCHED_NORMAL, .priority = 100 } },
	{ "FIFO priority 0", { .policy = FIBER_SCHED_FIFO, .priority = 0 } },
	{ "RR priority 0", { .policy = FIBER_SCHED_RR, .priority = 0 } },
	{ "NORMAL priority 1", { .policy = FIBER_SCHED_NORMAL, .priority = 1 } },
	{ "BATCH priority 1", { .policy = FIBER_SCHED_BATCH, .priority = 1 } },
	{ "IDLE priority 99", { .policy = FIBER_SCHED_IDLE, .priority = 99 } },
	{ "DEADLINE priority 1",
	  { .policy = FIBER_SCHED_DEADLINE, .priority = 1, .runtime_ns = MS, .deadline_ns = 10 * MS } },
	{ "DEADLINE deadline 0",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = MS, .deadline_ns = 0, .period_ns = 10 * MS } },
	{ "DEADLINE all zero", { .policy = FIBER_SCHED_DEADLINE } },
	{ "DEADLINE runtime 1023 ns",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = 1023, .deadline_ns = MS, .period_ns = MS } },
	{ "DEADLINE deadline bit 63",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = MS, .deadline_ns = (1ull << 63) | (10 * MS) } },
	{ "DEADLINE period bit 63",
	  { .policy = FIBER_SCHED_DEADLINE,
	    .runtime_ns = MS,
	    .deadline_ns = 10 * MS,
	    .period_ns = (1ull << 63) | (20 * MS) } },
	{ "DEADLINE runtime > deadline",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = 11 * MS, .deadline_ns = 10 * MS, .period_ns = 20 * MS } },
	{ "DEADLINE runtime > deadline, period 0 (= deadline)",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = 11 * MS, .deadline_ns = 10 * MS } },
	{ "DEADLINE deadline > period",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = MS, .deadline_ns = 30 * MS, .period_ns = 20 * MS } },
	{ "DEADLINE period 1 us below the minimum",
	  { .policy = FIBER_SCHED_DEADLINE,
	    .runtime_ns = 10 * US,
	    .deadline_ns = DL_PERIOD_MIN - US,
	    .period_ns = DL_PERIOD_MIN - US } },
	{ "DEADLINE period 0 and deadline below the minimum period",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = 10 * US, .deadline_ns = 50 * US } },
	{ "DEADLINE period 1 us above the maximum",
	  { .policy = FIBER_SCHED_DEADLINE,
	    .runtime_ns = MS,
	    .deadline_ns = 10 * MS,
	    .period_ns = DL_PERIOD_MAX + US } },
};
#define NR_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

struct good_case {
	const char *what;
	struct fiber_sched_attr set, want; /* want: what fiber_getattr reads back */
};

static const struct good_case good_cases[] = {
	{ "NORMAL nice 7", { .policy = FIBER_SCHED_NORMAL, .nice = 7 }, { .policy = FIBER_SCHED_NORMAL, .nice = 7 } },
	{ "BATCH nice -3", { .policy = FIBER_SCHED_BATCH, .nice = -3 }, { .policy = FIBER_SCHED_BATCH, .nice = -3 } },
	{ "IDLE", { .policy = FIBER_SCHED_IDLE }, { .policy = FIBER_SCHED_IDLE } },
	{ "NORMAL nice -21 clamps to -20",
	  { .policy = FIBER_SCHED_NORMAL, .nice = -21 },
	  { .policy = FIBER_SCHED_NORMAL, .nice = -20 } },
	{ "NORMAL nice INT32_MIN clamps to -20",
	  { .policy = FIBER_SCHED_NORMAL, .nice = INT32_MIN },
	  { .policy = FIBER_SCHED_NORMAL, .nice = -20 } },
	{ "BATCH nice 20 clamps to 19",
	  { .policy = FIBER_SCHED_BATCH, .nice = 20 },
	  { .policy = FIBER_SCHED_BATCH, .nice = 19 } },
	{ "NORMAL nice INT32_MAX clamps to 19",
	  { .policy = FIBER_SCHED_NORMAL, .nice = INT32_MAX },
	  { .policy = FIBER_SCHED_NORMAL, .nice = 19 } },
	{ "FIFO 1", { .policy = FIBER_SCHED_FIFO, .priority = 1 }, { .policy = FIBER_SCHED_FIFO, .priority = 1 } },
	{ "FIFO 42", { .policy = FIBER_SCHED_FIFO, .priority = 42 }, { .policy = FIBER_SCHED_FIFO, .priority = 42 } },
	{ "RR 99", { .policy = FIBER_SCHED_RR, .priority = 99 }, { .policy = FIBER_SCHED_RR, .priority = 99 } },
	{ "DEADLINE 1/10/20 ms",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = MS, .deadline_ns = 10 * MS, .period_ns = 20 * MS },
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = MS, .deadline_ns = 10 * MS, .period_ns = 20 * MS } },
	{ "DEADLINE period 0 reads back as the deadline",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = MS, .deadline_ns = 10 * MS },
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = MS, .deadline_ns = 10 * MS, .period_ns = 10 * MS } },
	{ "DEADLINE runtime = deadline = period",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = 5 * MS, .deadline_ns = 50 * MS, .period_ns = 50 * MS },
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = 5 * MS, .deadline_ns = 50 * MS, .period_ns = 50 * MS } },
	{ "DEADLINE smallest runtime (1024 ns), smallest period",
	  { .policy = FIBER_SCHED_DEADLINE,
	    .runtime_ns = 1024,
	    .deadline_ns = DL_PERIOD_MIN,
	    .period_ns = DL_PERIOD_MIN },
	  { .policy = FIBER_SCHED_DEADLINE,
	    .runtime_ns = 1024,
	    .deadline_ns = DL_PERIOD_MIN,
	    .period_ns = DL_PERIOD_MIN } },
	{ "DEADLINE largest period",
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = MS, .deadline_ns = 10 * MS, .period_ns = DL_PERIOD_MAX },
	  { .policy = FIBER_SCHED_DEADLINE, .runtime_ns = MS, .deadline_ns = 10 * MS, .period_ns = DL_PERIOD_MAX } },
};
#define NR_GOOD (sizeof(good_cases) / sizeof(good_cases[0]))

static struct {
	int null_attr, null_attr_self;
	int bad[NR_BAD];
	struct fiber_sched_attr after_bad[NR_BAD]; /* getattr after each refused change */
	int good[NR_GOOD], good_get[NR_GOOD];
	struct fiber_sched_attr got[NR_GOOD];
	int self_set, self_get;
	struct fiber_sched_attr self_got;
	int dl_self_policy0; /* a DEADLINE change with every parameter 0 refused on oneself */
	int exited, exited_join;
	int busy50, busy40, busy10, busy4, busy10_get;
	struct fiber_sched_attr busy10_attr;
	int setup;
} sv;

static void sv_main(void *arg)
{
	const struct fiber_sched_attr base = { .policy = FIBER_SCHED_BATCH, .nice = 4 };
	const struct fiber_sched_attr normal = { .policy = FIBER_SCHED_NORMAL };
	fiber_t *t = NULL, *e = NULL, *bw[4] = { 0 };
	void *r;

	atomic_store(&targets_release, 0);
	sv.setup |= fiber_spawn(&t, NULL, target_fn, NULL);
	if (!t)
		return;

	sv.null_attr = fiber_setattr(t, NULL);
	sv.null_attr_self = fiber_setattr(NULL, NULL);

	/* Every refused change leaves the target as it was. */
	sv.setup |= fiber_setattr(t, &base);
	for (size_t i = 0; i < NR_BAD; i++) {
		sv.bad[i] = fiber_setattr(t, &bad_cases[i].a);
		memset(&sv.after_bad[i], 0x5a, sizeof(sv.after_bad[i]));
		sv.setup |= fiber_getattr(t, &sv.after_bad[i]);
	}
	for (size_t i = 0; i < NR_GOOD; i++) {
		sv.good[i] = fiber_setattr(t, &good_cases[i].set);
		memset(&sv.got[i], 0x5a, sizeof(sv.got[i]));
		sv.good_get[i] = fiber_getattr(t, &sv.got[i]);
		sv.setup |= fiber_setattr(t, &normal); /* leave DEADLINE before the next case: no bandwidth piles up */
	}
	sv.dl_self_policy0 = 1;
	sv.setup |= fiber_spawn(&e, NULL, dl_self_fn, &sv.dl_self_policy0);
	sv.setup |= fiber_join(e, NULL);

	/* f NULL is the caller. */
	sv.self_set = fiber_setattr(NULL, &(struct fiber_sched_attr){ .policy = FIBER_SCHED_NORMAL, .nice = 3 });
	sv.self_get = fiber_getattr(NULL, &sv.self_got);

	/* A fiber that has exited but is not joined yet. */
	e = NULL;
	sv.setup |= fiber_spawn(&e, NULL, exit_at_once, (void *)0x42);
	fiber_sleep(10 * MS);
	sv.exited = e ? fiber_setattr(e, &normal) : -1;
	sv.exited_join = fiber_join(e, &r) == 0 && r == (void *)0x42 ? 0 : -1;

	/*
	 * One worker: 50% + 40% fit under 95%, another 10% does not, 4% still does. The DEADLINE cases above left
	 * DEADLINE long enough ago (Linux frees the bandwidth at the 0-lag time, within a period) to count no more.
	 */
	fiber_sleep(100 * MS);
	for (int i = 0; i < 4; i++)
		sv.setup |= fiber_spawn(&bw[i], NULL, target_fn, NULL);
	if (!bw[0] || !bw[1] || !bw[2] || !bw[3]) {
		atomic_store(&targets_release, 1);
		return;
	}
	sv.busy50 = fiber_setattr(bw[0], &ATTR_DL(5 * MS, 10 * MS, 10 * MS));
	sv.busy40 = fiber_setattr(bw[1], &ATTR_DL(4 * MS, 10 * MS, 10 * MS));
	sv.busy10 = fiber_setattr(bw[2], &ATTR_DL(1 * MS, 10 * MS, 10 * MS));
	sv.busy10_get = fiber_getattr(bw[2], &sv.busy10_attr);
	sv.busy4 = fiber_setattr(bw[3], &ATTR_DL(400 * US, 10 * MS, 10 * MS));

	atomic_store(&targets_release, 1);
	sv.setup |= fiber_join(t, NULL);
	for (int i = 0; i < 4; i++)
		sv.setup |= fiber_join(bw[i], NULL);
}

static int fair_policy(uint32_t policy)
{
	return policy == FIBER_SCHED_NORMAL || policy == FIBER_SCHED_BATCH || policy == FIBER_SCHED_IDLE;
}

/* nice is compared for the fair policies only, the DEADLINE parameters for DEADLINE only. */
static void assert_attr_equal(const struct fiber_sched_attr *got, const struct fiber_sched_attr *want, const char *what)
{
	if (got->policy != want->policy || got->priority != want->priority ||
	    (fair_policy(want->policy) && got->nice != want->nice) ||
	    (want->policy == FIBER_SCHED_DEADLINE &&
	     (got->runtime_ns != want->runtime_ns || got->deadline_ns != want->deadline_ns ||
	      got->period_ns != want->period_ns))) {
		print_error("%s: got policy %u nice %d prio %u dl %llu/%llu/%llu, want policy %u nice %d prio %u dl "
			    "%llu/%llu/%llu\n",
			    what, got->policy, got->nice, got->priority, (unsigned long long)got->runtime_ns,
			    (unsigned long long)got->deadline_ns, (unsigned long long)got->period_ns, want->policy,
			    want->nice, want->priority, (unsigned long long)want->runtime_ns,
			    (unsigned long long)want->deadline_ns, (unsigned long long)want->period_ns);
		fail();
	}
}

static void test_core_setattr_validation(void **state)
{
	struct fiber_config c = sched_cfg(1);
	const struct fiber_sched_attr base = { .policy = FIBER_SCHED_BATCH, .nice = 4 };
	const struct fiber_sched_attr self_want = { .policy = FIBER_SCHED_NORMAL, .nice = 3 };
	const struct fiber_sched_attr normal = { .policy = FIBER_SCHED_NORMAL };

	memset(&sv, 0, sizeof(sv));
	assert_int_equal(fiber_run(&c, sv_main, NULL), 0);
	assert_int_equal(sv.setup, 0);
	assert_int_equal(sv.null_attr, -EINVAL);
	assert_int_equal(sv.null_attr_self, -EINVAL);
	for (size_t i = 0; i < NR_BAD; i++) {
		if (sv.bad[i] != -EINVAL)
			print_error("%s: got %d, want -EINVAL\n", bad_cases[i].what, sv.bad[i]);
		assert_int_equal(sv.bad[i], -EINVAL);
		assert_attr_equal(&sv.after_bad[i], &base, bad_cases[i].what);
	}
	for (size_t i = 0; i < NR_GOOD; i++) {
		if (sv.good[i] != 0)
			print_error("%s: got %d, want 0\n", good_cases[i].what, sv.good[i]);
		assert_int_equal(sv.good[i], 0);
		assert_int_equal(sv.good_get[i], 0);
		assert_attr_equal(&sv.got[i], &good_cases[i].want, good_cases[i].what);
	}
	assert_int_equal(sv.dl_self_policy0, -EINVAL);
	assert_int_equal(sv.self_set, 0);
	assert_int_equal(sv.self_get, 0);
	assert_attr_equal(&sv.self_got, &self_want, "setattr(NULL) on the caller");
	assert_int_equal(sv.exited, -ESRCH);
	assert_int_equal(sv.exited_join, 0);
	assert_int_equal(sv.busy50, 0);
	assert_int_equal(sv.busy40, 0);
	assert_int_equal(sv.busy10, -EBUSY);
	assert_int_equal(sv.busy10_get, 0);
	assert_attr_equal(&sv.busy10_attr, &normal, "after -EBUSY the fiber keeps its policy");
	assert_int_equal(sv.busy4, 0);
}

/* ---- a change on a queued fiber reorders it before it runs ---- */

static atomic_int q_seq;
static int q_rank[2];
static struct fiber_sched_attr q_seen_b;
static int q_err;

static void *q_fiber(void *arg)
{
	int i = (int)(intptr_t)arg;

	q_rank[i] = atomic_fetch_add(&q_seq, 1) + 1;
	if (i == 1)
		q_err |= fiber_getattr(NULL, &q_seen_b);
	spin_ns(1 * MS);
	return NULL;
}

static void q_main(void *arg)
{
	struct fiber_attr a;
	fiber_t *fa = NULL, *fb = NULL;

	q_err |= fiber_setattr(NULL, &ATTR_RT(FIBER_SCHED_FIFO, 50));
	/* Without the change A (nice -20) would surely run before B (nice 19). */
	fiber_attr_init(&a);
	a.sched = ATTR_FAIR(FIBER_SCHED_NORMAL, -20);
	q_err |= fiber_spawn(&fa, &a, q_fiber, (void *)0);
	a.sched = ATTR_FAIR(FIBER_SCHED_NORMAL, 19);
	q_err |= fiber_spawn(&fb, &a, q_fiber, (void *)1);
	q_err |= fb ? fiber_setattr(fb, &ATTR_RT(FIBER_SCHED_FIFO, 10)) : -1;
	fiber_join(fa, NULL);
	fiber_join(fb, NULL);
}

static void test_core_setattr_queued_takes_effect(void **state)
{
	struct fiber_config c = sched_cfg(1);

	atomic_store(&q_seq, 0);
	q_err = 0;
	assert_int_equal(fiber_run(&c, q_main, NULL), 0);
	assert_int_equal(q_err, 0);
	assert_int_equal(q_seen_b.policy, FIBER_SCHED_FIFO);
	assert_int_equal(q_seen_b.priority, 10);
	assert_int_equal(q_rank[1], 1); /* B, now FIFO-10, ran first */
	assert_int_equal(q_rank[0], 2);
}

/*
 * ---- a change made from worker 1 takes effect on worker 0 at once ----
 *
 * Worker 0 runs X, a FIFO-10 hog that would loop for 1.5 s; Y, NORMAL and pinned to worker 0, waits behind it.
 * A controller on worker 1 either lowers the running X to the SCHED_IDLE policy or raises the queued Y to FIFO-20;
 * either way Y must run within milliseconds.
 */

enum { REMOTE_LOWER_RUNNING, REMOTE_RAISE_QUEUED };
#define HOG_NS (1500 * MS)

static struct {
	int mode;
	fiber_t *_Atomic x;
	fiber_t *y;
	atomic_int x_running, y_ran;
	int x_worker, y_worker, y_ran_early;
	int err, set_ret;
	uint64_t t_change, t_y, x_loop_ns;
	struct fiber_sched_attr x_after;
} rm;

static void *rm_x(void *arg)
{
	uint64_t t0 = now_ns();

	rm.x_worker = fiber_worker_id();
	atomic_store(&rm.x, fiber_self());
	atomic_store(&rm.x_running, 1);
	while (!atomic_load(&rm.y_ran) && now_ns() - t0 < HOG_NS)
		fiber_cond_resched();
	rm.x_loop_ns = now_ns() - t0;
	rm.err |= fiber_getattr(NULL, &rm.x_after);
	return NULL;
}

static void *rm_y(void *arg)
{
	rm.t_y = now_ns();
	rm.y_worker = fiber_worker_id();
	atomic_store(&rm.y_ran, 1);
	return NULL;
}

static void *rm_ctl(void *arg)
{
	struct fiber_attr a;

	uint64_t t0 = now_ns();

	while (!atomic_load(&rm.x_running)) {
		if (now_ns() - t0 > HOG_NS) /* X never started: rm.x_worker says so */
			return NULL;
		fiber_sleep(1 * MS);
	}
	fiber_attr_init(&a);
	CPU_SET(0, &a.affinity);
	rm.err |= fiber_spawn(&rm.y, &a, rm_y, NULL);
	fiber_sleep(20 * MS);
	rm.y_ran_early = atomic_load(&rm.y_ran); /* the premise: X keeps Y off worker 0 */
	rm.t_change = now_ns();
	if (rm.mode == REMOTE_LOWER_RUNNING)
		rm.set_ret = fiber_setattr(atomic_load(&rm.x), &ATTR_FAIR(FIBER_SCHED_IDLE, 0));
	else
		rm.set_ret = rm.y ? fiber_setattr(rm.y, &ATTR_RT(FIBER_SCHED_FIFO, 20)) : -1;
	while (!atomic_load(&rm.y_ran) && now_ns() - rm.t_change < 2 * HOG_NS)
		fiber_sleep(1 * MS);
	return NULL;
}

static void rm_main(void *arg)
{
	struct fiber_attr a;
	fiber_t *ctl = NULL, *x = NULL;

	fiber_attr_init(&a);
	CPU_SET(1, &a.affinity);
	rm.err |= fiber_spawn(&ctl, &a, rm_ctl, NULL);
	fiber_attr_init(&a);
	CPU_SET(0, &a.affinity);
	a.sched = ATTR_RT(FIBER_SCHED_FIFO, 10);
	rm.err |= fiber_spawn(&x, &a, rm_x, NULL);
	fiber_join(ctl, NULL);
	fiber_join(x, NULL);
	fiber_join(rm.y, NULL);
}

static void run_remote(int mode)
{
	struct fiber_config c = sched_cfg(2);
	uint64_t delay;

	memset(&rm, 0, sizeof(rm));
	rm.mode = mode;
	rm.x_worker = rm.y_worker = -1;
	assert_int_equal(fiber_run(&c, rm_main, NULL), 0);
	assert_int_equal(rm.err, 0);
	assert_int_equal(rm.x_worker, 0);
	assert_int_equal(rm.y_ran_early, 0);
	assert_int_equal(rm.set_ret, 0);
	assert_int_equal(rm.y_worker, 0);
	assert_true(rm.t_y > 0);
	delay = rm.t_y - rm.t_change;
	print_message("  Y ran %.3f ms after the change (X looped %.1f ms)\n", delay / 1e6, rm.x_loop_ns / 1e6);
	assert_true(rm.t_y > rm.t_change);
	assert_true(delay < 50 * MS);
	if (mode == REMOTE_LOWER_RUNNING)
		assert_int_equal(rm.x_after.policy, FIBER_SCHED_IDLE);
}

static void test_core_setattr_lowers_running_fiber_on_other_worker(void **state)
{
	run_remote(REMOTE_LOWER_RUNNING);
}

static void test_core_setattr_raises_queued_fiber_on_other_worker(void **state)
{
	run_remote(REMOTE_RAISE_QUEUED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_core_class_order),
		cmocka_unit_test(test_core_setattr_validation),
		cmocka_unit_test(test_core_setattr_queued_takes_effect),
		cmocka_unit_test(test_core_setattr_lowers_running_fiber_on_other_worker),
		cmocka_unit_test(test_core_setattr_raises_queued_fiber_on_other_worker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
