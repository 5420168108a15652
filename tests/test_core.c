/*
 * test_core (white-box, libfiber.a): switch_to(prev, next, last) and the resume paths.
 *  - at the assembly level, with A->B->C->A, A's fiber__switch returns C;
 *  - in the runtime, on one worker, every resume calls finish_task_switch exactly once, with last = the fiber that
 *    ran just before on that worker (new fibers through the trampoline's schedule_tail included), and the number
 *    of those calls equals rq->nr_switches.
 */
#include "test_util.h"

#include "internal.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- assembly level ---- */

struct ctx {
	void *sp;
};
static struct ctx cm, ca, cb, cc;
static struct fiber *a_got, *m_got;

static void entry_c(void)
{
	fiber__switch((struct fiber *)&cc, (struct fiber *)&ca);
	abort(); /* never resumed */
}

static void entry_b(void)
{
	fiber__switch((struct fiber *)&cb, (struct fiber *)&cc);
	abort();
}

static void entry_a(void)
{
	a_got = fiber__switch((struct fiber *)&ca, (struct fiber *)&cb);
	fiber__switch((struct fiber *)&ca, (struct fiber *)&cm);
	abort();
}

static void test_core_switch_returns_last(void **state)
{
	size_t sz = 64 * 1024;
	char *s = mmap(NULL, 3 * sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(s != MAP_FAILED);
	ca.sp = fiber__frame_init(s + sz, entry_a);
	cb.sp = fiber__frame_init(s + 2 * sz, entry_b);
	cc.sp = fiber__frame_init(s + 3 * sz, entry_c);
	m_got = fiber__switch((struct fiber *)&cm, (struct fiber *)&ca);
	assert_ptr_equal(a_got, (struct fiber *)&cc); /* A resumed by C: last == C */
	assert_ptr_equal(m_got, (struct fiber *)&ca); /* main resumed by A */
	munmap(s, 3 * sz);
}

/* ---- runtime level ---- */

#define LOG_MAX 100000
struct rec {
	struct fiber *curr, *last;
	int worker;
};
static struct rec recs[LOG_MAX];
static atomic_int nrec;

static void hook(struct fiber *curr, struct fiber *last, int worker)
{
	int i = atomic_fetch_add(&nrec, 1);

	if (i < LOG_MAX)
		recs[i] = (struct rec){ curr, last, worker };
}
static struct fiber__test_hooks hooks = { .finish_task_switch = hook };

static struct fiber *fa, *fb, *fc, *fmain;
static uint64_t switches_seen, hook_calls_seen;

static void *abc_fn(void *arg)
{
	for (int i = 0; i < 3; i++)
		fiber_yield();
	return NULL;
}

static void abc_main(void *arg)
{
	fiber_t *f[3];
	struct fiber_attr a;

	/* Same FIFO level: a yield goes to the tail, so the order is exactly A, B, C, A, ... */
	fiber_attr_init(&a);
	a.sched.policy = FIBER_SCHED_FIFO;
	a.sched.priority = 10;
	fmain = fiber_self();
	/* main above them, so that they start only once it blocks in join */
	struct fiber_sched_attr hi = { .policy = FIBER_SCHED_FIFO, .priority = 20 };
	fiber_setattr(NULL, &hi);
	fiber_spawn(&f[0], &a, abc_fn, NULL);
	fiber_spawn(&f[1], &a, abc_fn, NULL);
	fiber_spawn(&f[2], &a, abc_fn, NULL);
	fa = f[0], fb = f[1], fc = f[2];
	for (int i = 0; i < 3; i++)
		fiber_join(f[i], NULL);
	/* Same worker, same moment: every switch so far has had its finish_task_switch. */
	switches_seen = cpu_rq(0)->nr_switches;
	hook_calls_seen = (uint64_t)atomic_load(&nrec);
}

static void test_core_finish_task_switch_once_with_last(void **state)
{
	struct fiber_config c = test_cfg(1);
	int n, a_resumes = 0;

	atomic_store(&nrec, 0);
	atomic_store(&fiber__hooks, &hooks);
	assert_int_equal(fiber_run(&c, abc_main, NULL), 0);
	atomic_store(&fiber__hooks, NULL);

	n = atomic_load(&nrec);
	assert_true(n > 10 && n < LOG_MAX);
	assert_int_equal(hook_calls_seen, switches_seen);
	for (int i = 1; i < n; i++) {
		/* last is the fiber that ran just before, on this (only) worker */
		assert_ptr_equal(recs[i].last, recs[i - 1].curr);
		assert_int_equal(recs[i].worker, 0);
		assert_true(recs[i].curr != recs[i].last);
	}
	/* A->B->C->A: every time A is resumed while B and C still run, the fiber that resumed it is C. */
	for (int i = 0; i < n; i++) {
		if (recs[i].curr != fa || recs[i].last == fmain)
			continue;
		assert_ptr_equal(recs[i].last, fc);
		a_resumes++;
	}
	assert_true(a_resumes >= 2);
}

/* ---- stacks: a guard (64 KiB) below each ---- */

static int guard_errno, guard_top_errno, stack_errno;

static void *guard_probe(void *arg)
{
	struct fiber *self = fiber_self();
	int pfd[2];

	if (pipe(pfd))
		return NULL;
	/* write(2) copies from user memory: EFAULT for the guard page, success for the stack above it. */
	guard_errno = write(pfd[1], self->stack_base, 1) < 0 ? errno : 0;
	guard_top_errno = write(pfd[1], (char *)self->stack_base + fiber__stack_guard_size() - 1, 1) < 0 ? errno : 0;
	stack_errno = write(pfd[1], (char *)self->stack_base + fiber__stack_guard_size(), 1) < 0 ? errno : 0;
	close(pfd[0]);
	close(pfd[1]);
	return NULL;
}

static void guard_main(void *arg)
{
	fiber_t *f;

	fiber_spawn(&f, NULL, guard_probe, NULL);
	fiber_join(f, NULL);
}

static void test_core_stack_guard_page(void **state)
{
	struct fiber_config c = test_cfg(1);

	guard_errno = guard_top_errno = stack_errno = -1;
	assert_true(fiber__stack_guard_size() >= 64 * 1024);
	assert_int_equal(fiber_run(&c, guard_main, NULL), 0);
	assert_int_equal(guard_errno, EFAULT);
	assert_int_equal(guard_top_errno, EFAULT);
	assert_int_equal(stack_errno, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_core_switch_returns_last),
		cmocka_unit_test(test_core_finish_task_switch_once_with_last),
		cmocka_unit_test(test_core_stack_guard_page),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
