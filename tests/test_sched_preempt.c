/*
 * test_sched_preempt (white-box): preemption points and the stop class.
 *  - fiber_preempt_disable holds off a pending preemption (a woken higher-class fiber) until the matching enable,
 *    which switches at once; nesting counts;
 *  - fiber_cond_resched is a preemption point; so is the return from a runtime call;
 *  - the stopper preempts everything: work queued for a worker runs there while a FIFO-99 hog is the running fiber,
 *    and the hog makes no progress while it runs;
 *  - fiber_setattr(DEADLINE) on a fiber running on another worker moves it to the worker holding its bandwidth
 *    through that worker's stopper (migration_cpu_stop).
 */
#include "test_util.h"

#include "internal.h"

#include <stdatomic.h>
#include <sys/wait.h>

/* ---- preempt_disable / enable ---- */

static atomic_int rt_ran, ran_while_disabled, ran_after_enable;

static void *rt_waker(void *arg)
{
	atomic_store(&rt_ran, 1);
	return NULL;
}

static void pd_main(void *arg)
{
	struct fiber_attr a;
	fiber_t *f;

	fiber_attr_init(&a);
	a.sched.policy = FIBER_SCHED_FIFO;
	a.sched.priority = 10;
	fiber_preempt_disable();
	fiber_preempt_disable();
	/* The spawn's wake-up sets need_resched (rt > fair), but we are not preemptible. */
	fiber_spawn(&f, &a, rt_waker, NULL);
	fiber_cond_resched();
	ran_while_disabled = atomic_load(&rt_ran);
	fiber_preempt_enable(); /* depth 1: still disabled */
	ran_while_disabled += atomic_load(&rt_ran);
	fiber_preempt_enable(); /* depth 0: switches now */
	ran_after_enable = atomic_load(&rt_ran);
	fiber_join(f, NULL);
}

static void test_sched_preempt_disable_enable(void **state)
{
	struct fiber_config c = test_cfg(1);

	atomic_store(&rt_ran, 0);
	assert_int_equal(fiber_run(&c, pd_main, NULL), 0);
	assert_int_equal(ran_while_disabled, 0);
	assert_int_equal(ran_after_enable, 1);
}

/* A runtime call's return is a preemption point: spawning a higher-class fiber switches to it before returning. */
static int ran_at_return;
static void rc_main(void *arg)
{
	struct fiber_attr a;
	fiber_t *f;

	fiber_attr_init(&a);
	a.sched.policy = FIBER_SCHED_RR;
	a.sched.priority = 5;
	atomic_store(&rt_ran, 0);
	fiber_spawn(&f, &a, rt_waker, NULL);
	ran_at_return = atomic_load(&rt_ran);
	fiber_join(f, NULL);
}

static void test_sched_preempt_runtime_call_return(void **state)
{
	struct fiber_config c = test_cfg(1);

	assert_int_equal(fiber_run(&c, rc_main, NULL), 0);
	assert_int_equal(ran_at_return, 1);
}

/* ---- the stopper ---- */

static atomic_long hog_iters;
static atomic_int hog_stop;
static long iters_at_work_start, iters_at_work_end;
static int work_worker = -2, work_curr_is_stopper;
static atomic_int work_done;

static void *hog(void *arg)
{
	while (!atomic_load(&hog_stop)) {
		atomic_fetch_add(&hog_iters, 1);
		fiber_cond_resched();
	}
	return NULL;
}

static void stop_work_fn(void *arg)
{
	struct worker *w = this_worker();
	uint64_t t0 = now_ns();

	iters_at_work_start = atomic_load(&hog_iters);
	work_worker = w->id;
	work_curr_is_stopper = w->current == w->rq.stop;
	while (now_ns() - t0 < 20000000) /* 20 ms: the hog would run ~thousands of iterations if it could */
		;
	iters_at_work_end = atomic_load(&hog_iters);
	atomic_store(&work_done, 1);
}

/* Runs pinned to worker 1, so the FIFO-99 hog on worker 0 cannot starve it. */
static void *stop_controller(void *arg)
{
	struct fiber_attr a;
	fiber_t *f;
	struct cpu_stop_work work = { .fn = stop_work_fn };

	fiber_attr_init(&a);
	a.sched.policy = FIBER_SCHED_FIFO;
	a.sched.priority = 99;
	CPU_SET(0, &a.affinity);
	fiber_spawn(&f, &a, hog, NULL);
	while (atomic_load(&hog_iters) < 1000)
		fiber_sleep(1000000);
	INIT_LIST_HEAD(&work.list);
	fiber__stop_one_cpu_nowait(0, &work);
	while (!atomic_load(&work_done))
		fiber_sleep(1000000);
	atomic_store(&hog_stop, 1);
	fiber_join(f, NULL);
	return NULL;
}

static void stop_main(void *arg)
{
	struct fiber_attr a;
	fiber_t *c;

	fiber_attr_init(&a);
	CPU_SET(1, &a.affinity);
	fiber_spawn(&c, &a, stop_controller, NULL);
	fiber_join(c, NULL);
}

static void test_sched_preempt_stopper_preempts_everything(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, stop_main, NULL), 0);
	assert_int_equal(work_worker, 0);
	assert_true(work_curr_is_stopper);
	assert_true(iters_at_work_start >= 1000);
	/* nothing ran on worker 0 while the stopper worked: the FIFO-99 hog did not advance */
	assert_int_equal(iters_at_work_end, iters_at_work_start);
}

/* ---- setattr(DEADLINE) moves a running fiber to the worker holding its bandwidth ---- */

static atomic_int moved_to = -1, dl_hog_stop;
static int setattr_ret = 1;

static void *dl_hog(void *arg)
{
	while (!atomic_load(&dl_hog_stop)) {
		if (fiber_worker_id() != 0)
			atomic_store(&moved_to, fiber_worker_id());
		fiber_cond_resched();
	}
	return NULL;
}

static void *sleep50(void *arg)
{
	fiber_sleep(50000000);
	return NULL;
}

static fiber_t *mig_f;
static atomic_int mig_go, mig_started_on = -1;

static void *dl_hog_first(void *arg)
{
	atomic_store(&mig_started_on, fiber_worker_id());
	return dl_hog(arg);
}

/* Pinned to worker 0: spawns the hog there (worker 1 is busy, so fork placement keeps it local). */
static void *mig_starter(void *arg)
{
	struct fiber_attr a;

	fiber_attr_init(&a);
	CPU_SET(0, &a.affinity);
	CPU_SET(1, &a.affinity);
	fiber_spawn(&mig_f, &a, dl_hog_first, NULL);
	atomic_store(&mig_go, 1);
	return NULL;
}

/* Pinned to worker 1: keeps it busy, then makes the hog (running on worker 0) a DEADLINE fiber. */
static void *mig_controller(void *arg)
{
	struct fiber_sched_attr d = {
		.policy = FIBER_SCHED_DEADLINE, .runtime_ns = 5000000, .deadline_ns = 10000000, .period_ns = 10000000
	};
	struct fiber_sched_attr full = d;
	struct fiber_attr a;
	fiber_t *g, *s;

	/* Worker 0's DL bandwidth goes to a sleeping DL fiber first, so the hog's must be on worker 1. */
	fiber_attr_init(&a);
	CPU_SET(0, &a.affinity);
	fiber_spawn(&g, &a, sleep50, NULL);
	full.runtime_ns = 9000000;
	fiber_setattr(g, &full);

	fiber_spawn(&s, &a, mig_starter, NULL);
	while (!atomic_load(&mig_go))
		fiber_cond_resched(); /* busy: worker 1 is not idle while the hog is placed */
	/* Still busy until the hog has run once: an idle worker 1 would pull the queued hog (newidle). */
	while (atomic_load(&mig_started_on) < 0)
		fiber_cond_resched();
	setattr_ret = fiber_setattr(mig_f, &d);
	for (int i = 0; i < 200 && atomic_load(&moved_to) < 0; i++)
		fiber_sleep(1000000);
	atomic_store(&dl_hog_stop, 1);
	fiber_join(mig_f, NULL);
	fiber_join(s, NULL);
	fiber_join(g, NULL);
	return NULL;
}

static void mig_main(void *arg)
{
	struct fiber_attr a;
	fiber_t *c;

	fiber_attr_init(&a);
	CPU_SET(1, &a.affinity);
	fiber_spawn(&c, &a, mig_controller, NULL);
	fiber_join(c, NULL);
}

static void test_sched_preempt_dl_setattr_migrates_running(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, mig_main, NULL), 0);
	assert_int_equal(mig_started_on, 0);
	assert_int_equal(setattr_ret, 0);
	assert_int_equal(atomic_load(&moved_to), 1);
}

/* ---- blocking, yielding or exiting with preemption disabled is contained to the fiber that did it ---- */

enum atomic_case { AC_EXIT, AC_YIELD, AC_BLOCK };

static int peer_count = -1, culprit_after = -1;

static void *peer_fn(void *arg)
{
	(void)arg;
	peer_count = this_worker()->preempt_count;
	return NULL;
}

static void *culprit_fn(void *arg)
{
	enum atomic_case c = (enum atomic_case)(intptr_t)arg;
	fiber_t *peer;

	fiber_preempt_disable();
	fiber_preempt_disable();
	if (c == AC_EXIT)
		return NULL;	/* exits with depth 2 */
	fiber_preempt_enable(); /* depth 1 from here */
	fiber_spawn(&peer, NULL, peer_fn, NULL);
	if (c == AC_YIELD)
		fiber_yield();
	else
		fiber_sleep(2 * MS);
	culprit_after = this_worker()->preempt_count;
	fiber_preempt_enable();
	fiber_join(peer, NULL);
	return NULL;
}

/* Child process: one worker, the culprit, then (for exit) a fiber that reports the depth it starts with. */
static void atomic_child(enum atomic_case c, int outfd)
{
	struct fiber_config cfg = sched_cfg(1);
	struct fiber_attr a;
	fiber_t *f, *p;
	char line[64];
	int n;

	fiber_attr_init(&a);
	a.name = "culprit";
	if (fiber_runtime_start(&cfg))
		_exit(3);
	if (fiber_spawn(&f, &a, culprit_fn, (void *)(intptr_t)c) || fiber_join(f, NULL))
		_exit(4);
	if (c == AC_EXIT && (fiber_spawn(&p, NULL, peer_fn, NULL) || fiber_join(p, NULL)))
		_exit(5);
	fiber_runtime_stop();
	n = snprintf(line, sizeof(line), "%d %d\n", peer_count, culprit_after);
	if (write(outfd, line, (size_t)n) != n)
		_exit(6);
	_exit(0);
}

/* Run the case in a child; its stdout and stderr come back in @out and @err. Returns the wait status. */
static int run_atomic_case(enum atomic_case c, char *out, size_t outlen, char *err, size_t errlen)
{
	int po[2], pe[2], status = 0;
	ssize_t n;
	pid_t pid;

	if (pipe(po) || pipe(pe))
		return -1;
	pid = fork();
	if (pid == 0) {
		close(po[0]);
		close(pe[0]);
		dup2(pe[1], 2);
		atomic_child(c, po[1]);
	}
	close(po[1]);
	close(pe[1]);
	n = read(po[0], out, outlen - 1);
	out[n > 0 ? n : 0] = 0;
	n = read(pe[0], err, errlen - 1);
	err[n > 0 ? n : 0] = 0;
	close(po[0]);
	close(pe[0]);
	waitpid(pid, &status, 0);
	return status;
}

static void check_atomic_case(enum atomic_case c, const char *what)
{
	char out[128], err[1024], want[64];
	int status = run_atomic_case(c, out, sizeof(out), err, sizeof(err));

	snprintf(want, sizeof(want), "\"culprit\" %s with preemption disabled", what);
	assert_non_null(strstr(err, want)); /* the one warning names the fiber: id and name */
	assert_non_null(strstr(err, "libfiber: fiber "));
#ifdef FIBER_DEBUG
	/* A debug build stops at the bug. */
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#else
	int pc = -1, after = -1;

	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(sscanf(out, "%d %d", &pc, &after), 2);
	assert_int_equal(pc, 0); /* the fiber that ran next started preemptible */
	if (c != AC_EXIT)
		assert_int_equal(after, 1); /* the culprit got its own depth back */
#endif
}

static void test_sched_preempt_exit_while_disabled_is_contained(void **state)
{
	(void)state;
	check_atomic_case(AC_EXIT, "exited");
}

static void test_sched_preempt_yield_while_disabled_is_contained(void **state)
{
	(void)state;
	check_atomic_case(AC_YIELD, "yielded");
}

static void test_sched_preempt_block_while_disabled_is_contained(void **state)
{
	(void)state;
	check_atomic_case(AC_BLOCK, "blocked");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sched_preempt_disable_enable),
		cmocka_unit_test(test_sched_preempt_runtime_call_return),
		cmocka_unit_test(test_sched_preempt_stopper_preempts_everything),
		cmocka_unit_test(test_sched_preempt_dl_setattr_migrates_running),
		cmocka_unit_test(test_sched_preempt_exit_while_disabled_is_contained),
		cmocka_unit_test(test_sched_preempt_yield_while_disabled_is_contained),
		cmocka_unit_test(test_sched_preempt_block_while_disabled_is_contained),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
