/*
 * test_sync: mutex, cond, rwlock, semaphore, barrier, wait group, fiber-local storage and the public wait queues.
 *
 * Nothing asserts inside a fiber: fibers record into globals, the test asserts after fiber_run returned.
 * FIBER_TEST_LONG=1 runs the stress tests with the full 20 repetitions; the default is a short CI setting.
 */
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

static int reps(void)
{
	const char *s = getenv("FIBER_TEST_LONG");

	return s && *s && *s != '0' ? 20 : 2;
}

#define MS_ 1000000ull

/* ------------------------------------------------------------------------------------------------------------
 * Mutex: no lost wake-ups, exact totals
 * ---------------------------------------------------------------------------------------------------------- */

static fiber_mutex_t cnt_mutex = FIBER_MUTEX_INITIALIZER;
static long counter;
static int cnt_incs;
static atomic_int errs;

static void *inc_fiber(void *arg)
{
	for (int i = 0; i < cnt_incs; i++) {
		if (fiber_mutex_lock(&cnt_mutex))
			atomic_fetch_add(&errs, 1);
		counter++;
		if ((i & 63) == 0)
			fiber_yield(); /* holders get switched out too */
		if (fiber_mutex_unlock(&cnt_mutex))
			atomic_fetch_add(&errs, 1);
	}
	return NULL;
}

static int cnt_fibers;

static void counter_main(void *arg)
{
	fiber_t **f = calloc((size_t)cnt_fibers, sizeof(*f));

	for (int i = 0; i < cnt_fibers; i++)
		if (fiber_spawn(&f[i], NULL, inc_fiber, NULL))
			atomic_fetch_add(&errs, 1);
	for (int i = 0; i < cnt_fibers; i++)
		if (fiber_join(f[i], NULL))
			atomic_fetch_add(&errs, 1);
	free(f);
}

static void run_counter(unsigned workers)
{
	struct fiber_config c = test_cfg(workers);

	cnt_fibers = 1000;
	cnt_incs = 1000;
	for (int r = 0; r < reps(); r++) {
		counter = 0;
		atomic_store(&errs, 0);
		assert_int_equal(fiber_run(&c, counter_main, NULL), 0);
		assert_int_equal(atomic_load(&errs), 0);
		assert_int_equal(counter, (long)cnt_fibers * cnt_incs);
		assert_int_equal(fiber_mutex_destroy(&cnt_mutex), 0);
	}
}

static void test_sync_mutex_counter_exact(void **state)
{
	run_counter(4);
}

static void test_sync_mutex_counter_oversubscribed(void **state)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	run_counter((unsigned)(n > 0 ? 2 * n + 1 : 5));
}

/* ------------------------------------------------------------------------------------------------------------
 * Mutex: errors, trylock, timedlock, pthreads
 * ---------------------------------------------------------------------------------------------------------- */

static int r_try_held, r_unlock_other, r_destroy_locked, r_relock, r_try_self, r_timed0, r_timed, r_timed_max;
static uint64_t timed_elapsed;
static fiber_mutex_t em = FIBER_MUTEX_INITIALIZER;

static void *other_unlock(void *arg)
{
	r_unlock_other = fiber_mutex_unlock(&em);
	r_try_held = fiber_mutex_trylock(&em);
	r_timed0 = fiber_mutex_timedlock(&em, 0);
	uint64_t t0 = now_ns();
	r_timed = fiber_mutex_timedlock(&em, 20 * MS_);
	timed_elapsed = now_ns() - t0;
	r_timed_max = fiber_mutex_timedlock(&em, UINT64_MAX); /* gets it when main unlocks */
	fiber_mutex_unlock(&em);
	return NULL;
}

static void mutex_errors_main(void *arg)
{
	fiber_t *f;

	fiber_mutex_lock(&em);
	r_destroy_locked = fiber_mutex_destroy(&em);
	r_relock = fiber_mutex_lock(&em);
	r_try_self = fiber_mutex_trylock(&em);
	fiber_spawn(&f, NULL, other_unlock, NULL);
	fiber_sleep(60 * MS_);
	fiber_mutex_unlock(&em);
	fiber_join(f, NULL);
}

static void test_sync_mutex_errors(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, mutex_errors_main, NULL), 0);
	assert_int_equal(r_destroy_locked, -EBUSY);
	assert_int_equal(r_relock, -EDEADLK);
	assert_int_equal(r_try_self, -EBUSY);
	assert_int_equal(r_unlock_other, -EPERM);
	assert_int_equal(r_try_held, -EBUSY);
	assert_int_equal(r_timed0, -ETIMEDOUT);
	assert_int_equal(r_timed, -ETIMEDOUT);
	assert_true(timed_elapsed >= 20 * MS_);
	assert_int_equal(r_timed_max, 0);
	assert_int_equal(fiber_mutex_destroy(&em), 0);
	/* Unlocked mutex, no runtime: a plain pthread may use it too. */
	assert_int_equal(fiber_mutex_unlock(&em), -EPERM);
	assert_int_equal(fiber_mutex_lock(&em), 0);
	assert_int_equal(fiber_mutex_unlock(&em), 0);
}

/* A plain pthread blocks in fiber_mutex_lock while a fiber holds it, and the fiber's unlock hands it over. */
static fiber_mutex_t pm = FIBER_MUTEX_INITIALIZER;
static atomic_int pm_fiber_holds, pm_pthread_got;
static int pm_lock_r, pm_unlock_r;

static void *pm_thread(void *arg)
{
	while (!atomic_load(&pm_fiber_holds))
		usleep(1000);
	pm_lock_r = fiber_mutex_lock(&pm);
	atomic_store(&pm_pthread_got, 1);
	pm_unlock_r = fiber_mutex_unlock(&pm);
	return NULL;
}

static void pm_main(void *arg)
{
	fiber_mutex_lock(&pm);
	atomic_store(&pm_fiber_holds, 1);
	fiber_sleep(30 * MS_);
	if (atomic_load(&pm_pthread_got))
		atomic_fetch_add(&errs, 1); /* it got in while we held it */
	fiber_mutex_unlock(&pm);
}

static void test_sync_mutex_pthread_waiter(void **state)
{
	struct fiber_config c = test_cfg(2);
	pthread_t t;

	atomic_store(&errs, 0);
	assert_int_equal(pthread_create(&t, NULL, pm_thread, NULL), 0);
	assert_int_equal(fiber_run(&c, pm_main, NULL), 0);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&errs), 0);
	assert_int_equal(pm_lock_r, 0);
	assert_int_equal(pm_unlock_r, 0);
	assert_int_equal(atomic_load(&pm_pthread_got), 1);
}

/* Two fibers on two workers hammer a mutex; a third must still get it (the hand-off after 1 ms of waiting). */
static fiber_mutex_t sm = FIBER_MUTEX_INITIALIZER;
static atomic_int starve_done, starve_got;
static uint64_t starve_wait;

static void *hammer(void *arg)
{
	uint64_t end = now_ns() + 5000 * MS_; /* a safety net: the test fails if the waiter never got in */

	while (!atomic_load(&starve_done) && now_ns() < end) {
		fiber_mutex_lock(&sm);
		for (volatile int i = 0; i < 50; i++)
			;
		fiber_mutex_unlock(&sm);
	}
	return NULL;
}

static void *starving(void *arg)
{
	fiber_sleep(20 * MS_); /* the hammers are at it by now */
	uint64_t t0 = now_ns();
	fiber_mutex_lock(&sm);
	starve_wait = now_ns() - t0;
	atomic_store(&starve_got, !atomic_load(&starve_done));
	fiber_mutex_unlock(&sm);
	atomic_store(&starve_done, 1);
	return NULL;
}

static void starve_main(void *arg)
{
	struct fiber_attr a[3];
	fiber_t *f[3];

	for (int i = 0; i < 3; i++) {
		fiber_attr_init(&a[i]);
		CPU_SET(i % 2, &a[i].affinity);
	}
	fiber_spawn(&f[0], &a[0], hammer, NULL);
	fiber_spawn(&f[1], &a[1], hammer, NULL);
	fiber_spawn(&f[2], &a[2], starving, NULL);
	for (int i = 0; i < 3; i++)
		fiber_join(f[i], NULL);
}

static void test_sync_mutex_waiter_not_starved(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, starve_main, NULL), 0);
	assert_int_equal(atomic_load(&starve_got), 1);
	fprintf(stderr, "starving waiter got the mutex after %.2f ms\n", (double)starve_wait / 1e6);
}

/*
 * Priority inheritance, one worker: a fair fiber L holds the mutex, a FIFO-50 fiber H waits for it, a FIFO-10
 * fiber M burns the CPU for a long time. Without inheritance L (fair) never runs while M (rt) is runnable, so H
 * waits for M to finish; with it L runs at H's priority, unlocks, and H gets the mutex while M is still busy.
 */
static fiber_mutex_t pim = FIBER_MUTEX_INITIALIZER;
static atomic_int pi_l_holds, pi_m_done, pi_h_before_m, pi_l_prio_ok = -1;
static uint64_t pi_h_wait;

static void *pi_low(void *arg)
{
	struct fiber_sched_attr a;

	fiber_mutex_lock(&pim);
	atomic_store(&pi_l_holds, 1);
	spin_ns(20 * MS_); /* H and M arrive meanwhile */
	fiber_getattr(NULL, &a);
	atomic_store(&pi_l_prio_ok, a.policy == FIBER_SCHED_NORMAL); /* the boost does not show in getattr */
	fiber_mutex_unlock(&pim);
	return NULL;
}

static void *pi_high(void *arg)
{
	uint64_t t0 = now_ns();

	fiber_mutex_lock(&pim);
	pi_h_wait = now_ns() - t0;
	atomic_store(&pi_h_before_m, !atomic_load(&pi_m_done));
	fiber_mutex_unlock(&pim);
	return NULL;
}

static void *pi_mid(void *arg)
{
	spin_ns(1000 * MS_);
	atomic_store(&pi_m_done, 1);
	return NULL;
}

static void pi_main(void *arg)
{
	struct fiber_attr ah, am;
	fiber_t *l, *h, *m;

	fiber_spawn(&l, NULL, pi_low, NULL);
	while (!atomic_load(&pi_l_holds))
		fiber_yield();
	fiber_attr_init(&ah);
	ah.sched.policy = FIBER_SCHED_FIFO;
	ah.sched.priority = 50;
	fiber_attr_init(&am);
	am.sched.policy = FIBER_SCHED_FIFO;
	am.sched.priority = 10;
	fiber_spawn(&h, &ah, pi_high, NULL); /* runs at once, blocks on pim: L is boosted to 50 */
	fiber_spawn(&m, &am, pi_mid, NULL);
	fiber_join(h, NULL);
	fiber_join(m, NULL);
	fiber_join(l, NULL);
}

static void test_sync_mutex_priority_inheritance(void **state)
{
	struct fiber_config c = sched_cfg(1);

	assert_int_equal(fiber_run(&c, pi_main, NULL), 0);
	fprintf(stderr, "PI: the FIFO-50 waiter got the mutex after %.1f ms\n", (double)pi_h_wait / 1e6);
	assert_int_equal(atomic_load(&pi_h_before_m), 1);
	assert_int_equal(atomic_load(&pi_l_prio_ok), 1);
}

/* A DEADLINE waiter lends the holder the highest realtime priority (and the holder goes back afterwards). */
static fiber_mutex_t dlm = FIBER_MUTEX_INITIALIZER;
static atomic_int dl_holds, dl_r = 1, dl_set = 1, dl_l_back = -1;

static void *dl_low(void *arg)
{
	fiber_mutex_lock(&dlm);
	atomic_store(&dl_holds, 1);
	spin_ns(10 * MS_);
	fiber_mutex_unlock(&dlm);
	spin_ns(2 * MS_);
	struct fiber_stats st;
	atomic_store(&dl_l_back, fiber_stats(NULL, &st) == 0 && st.policy == FIBER_SCHED_NORMAL);
	return NULL;
}

static void *dl_waiter(void *arg)
{
	struct fiber_sched_attr a = {
		.policy = FIBER_SCHED_DEADLINE, .runtime_ns = 2 * MS_, .deadline_ns = 10 * MS_, .period_ns = 10 * MS_
	};

	atomic_store(&dl_set, fiber_setattr(NULL, &a));
	dl_r = fiber_mutex_lock(&dlm);
	fiber_mutex_unlock(&dlm);
	return NULL;
}

static void dl_main(void *arg)
{
	fiber_t *l, *w;

	fiber_spawn(&l, NULL, dl_low, NULL);
	while (!atomic_load(&dl_holds))
		fiber_yield();
	fiber_spawn(&w, NULL, dl_waiter, NULL);
	fiber_join(w, NULL);
	fiber_join(l, NULL);
}

static void test_sync_mutex_pi_deadline_waiter(void **state)
{
	struct fiber_config c = sched_cfg(1);

	assert_int_equal(fiber_run(&c, dl_main, NULL), 0);
	assert_int_equal(atomic_load(&dl_set), 0);
	assert_int_equal(atomic_load(&dl_r), 0);
	assert_int_equal(atomic_load(&dl_l_back), 1);
}

/* ------------------------------------------------------------------------------------------------------------
 * Cond: ping-pong chain with exact totals; timeout; cancel; broadcast
 * ---------------------------------------------------------------------------------------------------------- */

#define CHAIN 16
static fiber_mutex_t chain_m = FIBER_MUTEX_INITIALIZER;
static fiber_cond_t chain_c[CHAIN];
static int chain_turn;
static long chain_total;
static int chain_rounds;

static void *chain_fiber(void *arg)
{
	int me = (int)(intptr_t)arg;

	fiber_mutex_lock(&chain_m);
	for (int r = 0; r < chain_rounds; r++) {
		while (chain_turn != me)
			if (fiber_cond_wait(&chain_c[me], &chain_m))
				atomic_fetch_add(&errs, 1);
		chain_total++;
		chain_turn = (me + 1) % CHAIN;
		fiber_cond_signal(&chain_c[chain_turn]);
	}
	fiber_mutex_unlock(&chain_m);
	return NULL;
}

static void chain_main(void *arg)
{
	fiber_t *f[CHAIN];

	for (int i = 0; i < CHAIN; i++)
		fiber_spawn(&f[i], NULL, chain_fiber, (void *)(intptr_t)i);
	for (int i = 0; i < CHAIN; i++)
		fiber_join(f[i], NULL);
}

static void test_sync_cond_pingpong_chain(void **state)
{
	struct fiber_config c = test_cfg(4);

	chain_rounds = 2000;
#ifdef TEST_ASAN
	chain_rounds = 500;
#endif
	for (int r = 0; r < reps(); r++) {
		for (int i = 0; i < CHAIN; i++)
			fiber_cond_init(&chain_c[i]);
		chain_turn = 0;
		chain_total = 0;
		atomic_store(&errs, 0);
		assert_int_equal(fiber_run(&c, chain_main, NULL), 0);
		assert_int_equal(atomic_load(&errs), 0);
		assert_int_equal(chain_total, (long)CHAIN * chain_rounds);
		for (int i = 0; i < CHAIN; i++)
			assert_int_equal(fiber_cond_destroy(&chain_c[i]), 0);
	}
}

static fiber_cond_t tc = FIBER_COND_INITIALIZER;
static fiber_mutex_t tm = FIBER_MUTEX_INITIALIZER;
static int tc_r, tc_r0, tc_held_after, tc_perm;
static uint64_t tc_elapsed;

static void cond_timed_main(void *arg)
{
	tc_perm = fiber_cond_wait(&tc, &tm); /* not holding tm */
	fiber_mutex_lock(&tm);
	tc_r0 = fiber_cond_timedwait(&tc, &tm, 0);
	uint64_t t0 = now_ns();
	tc_r = fiber_cond_timedwait(&tc, &tm, 25 * MS_);
	tc_elapsed = now_ns() - t0;
	tc_held_after = fiber_mutex_trylock(&tm); /* -EBUSY: we hold it again */
	fiber_mutex_unlock(&tm);
}

static void test_sync_cond_timedwait_not_early(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, cond_timed_main, NULL), 0);
	assert_int_equal(tc_perm, -EPERM);
	assert_int_equal(tc_r0, -ETIMEDOUT);
	assert_int_equal(tc_r, -ETIMEDOUT);
	assert_true(tc_elapsed >= 25 * MS_);
	assert_int_equal(tc_held_after, -EBUSY);
	assert_int_equal(fiber_mutex_destroy(&tm), 0);
}

/* Two waiters; the first is cancelled; one signal must still reach the second (a cancelled waiter consumes nothing). */
static int cc_ra, cc_rb, cc_a_held, cc_flag;
static atomic_int cc_waiting;

static void *cc_waiter(void *arg)
{
	int *res = arg;

	fiber_mutex_lock(&tm);
	atomic_fetch_add(&cc_waiting, 1);
	*res = 1;
	while (!cc_flag) {
		int r = fiber_cond_wait(&tc, &tm);

		if (r) {
			*res = r;
			break;
		}
	}
	if (*res == 1)
		*res = 0;
	if (res == &cc_ra)
		cc_a_held = fiber_mutex_trylock(&tm); /* -EBUSY: held again after -ECANCELED */
	fiber_mutex_unlock(&tm);
	return NULL;
}

static void cond_cancel_main(void *arg)
{
	fiber_t *a, *b;

	fiber_spawn(&a, NULL, cc_waiter, &cc_ra);
	while (atomic_load(&cc_waiting) < 1)
		fiber_sleep(MS_);
	fiber_spawn(&b, NULL, cc_waiter, &cc_rb);
	while (atomic_load(&cc_waiting) < 2)
		fiber_sleep(MS_);
	fiber_sleep(5 * MS_);
	fiber_cancel(a);
	fiber_mutex_lock(&tm);
	cc_flag = 1;
	fiber_cond_signal(&tc); /* one signal: a is cancelled, so it must reach b */
	fiber_mutex_unlock(&tm);
	fiber_join(a, NULL);
	fiber_join(b, NULL);
}

static void test_sync_cond_cancel_passes_signal_on(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, cond_cancel_main, NULL), 0);
	assert_int_equal(cc_ra, -ECANCELED);
	assert_int_equal(cc_a_held, -EBUSY);
	assert_int_equal(cc_rb, 0);
	assert_int_equal(fiber_cond_destroy(&tc), 0);
}

static atomic_int bc_woken;
static int bc_go;

static void *bc_waiter(void *arg)
{
	fiber_mutex_lock(&tm);
	while (!bc_go)
		fiber_cond_wait(&tc, &tm);
	fiber_mutex_unlock(&tm);
	atomic_fetch_add(&bc_woken, 1);
	return NULL;
}

static void bc_main(void *arg)
{
	fiber_t *f[50];

	for (int i = 0; i < 50; i++)
		fiber_spawn(&f[i], NULL, bc_waiter, NULL);
	fiber_sleep(10 * MS_);
	fiber_mutex_lock(&tm);
	bc_go = 1;
	fiber_cond_broadcast(&tc);
	fiber_mutex_unlock(&tm);
	for (int i = 0; i < 50; i++)
		fiber_join(f[i], NULL);
}

static void test_sync_cond_broadcast_wakes_all(void **state)
{
	struct fiber_config c = test_cfg(3);

	assert_int_equal(fiber_run(&c, bc_main, NULL), 0);
	assert_int_equal(atomic_load(&bc_woken), 50);
}

/* ------------------------------------------------------------------------------------------------------------
 * rwlock
 * ---------------------------------------------------------------------------------------------------------- */

static fiber_rwlock_t rw = FIBER_RWLOCK_INITIALIZER;
static atomic_int rw_readers, rw_writers, rw_bad;
static atomic_int rw_stop;
static long rw_writes;

static void *rw_reader(void *arg)
{
	while (!atomic_load(&rw_stop)) {
		fiber_rwlock_rdlock(&rw);
		atomic_fetch_add(&rw_readers, 1);
		if (atomic_load(&rw_writers))
			atomic_fetch_add(&rw_bad, 1);
		fiber_yield(); /* hold it across a switch: readers overlap */
		atomic_fetch_sub(&rw_readers, 1);
		fiber_rwlock_unlock(&rw);
	}
	return NULL;
}

static void *rw_writer(void *arg)
{
	for (int i = 0; i < 200; i++) {
		fiber_rwlock_wrlock(&rw);
		if (atomic_fetch_add(&rw_writers, 1) || atomic_load(&rw_readers))
			atomic_fetch_add(&rw_bad, 1);
		rw_writes++;
		atomic_fetch_sub(&rw_writers, 1);
		fiber_rwlock_unlock(&rw);
	}
	return NULL;
}

static void rw_main(void *arg)
{
	fiber_t *r[8], *w[2];

	for (int i = 0; i < 8; i++)
		fiber_spawn(&r[i], NULL, rw_reader, NULL);
	/* Readers hold the lock continuously from here on: the writers finish only if they are not starved. */
	fiber_sleep(5 * MS_);
	for (int i = 0; i < 2; i++)
		fiber_spawn(&w[i], NULL, rw_writer, NULL);
	for (int i = 0; i < 2; i++)
		fiber_join(w[i], NULL);
	atomic_store(&rw_stop, 1);
	for (int i = 0; i < 8; i++)
		fiber_join(r[i], NULL);
}

static void test_sync_rwlock_exclusion_writers_not_starved(void **state)
{
	struct fiber_config c = test_cfg(4);

	assert_int_equal(fiber_run(&c, rw_main, NULL), 0);
	assert_int_equal(atomic_load(&rw_bad), 0);
	assert_int_equal(rw_writes, 400);
	assert_int_equal(fiber_rwlock_destroy(&rw), 0);
}

static void test_sync_rwlock_errors(void **state)
{
	fiber_rwlock_t l;

	assert_int_equal(fiber_rwlock_init(&l), 0);
	assert_int_equal(fiber_rwlock_unlock(&l), -EPERM);
	assert_int_equal(fiber_rwlock_rdlock(&l), 0);
	assert_int_equal(fiber_rwlock_tryrdlock(&l), 0);
	assert_int_equal(fiber_rwlock_trywrlock(&l), -EBUSY);
	assert_int_equal(fiber_rwlock_destroy(&l), -EBUSY);
	assert_int_equal(fiber_rwlock_unlock(&l), 0);
	assert_int_equal(fiber_rwlock_unlock(&l), 0);
	assert_int_equal(fiber_rwlock_wrlock(&l), 0);
	assert_int_equal(fiber_rwlock_wrlock(&l), -EDEADLK);
	assert_int_equal(fiber_rwlock_tryrdlock(&l), -EBUSY);
	assert_int_equal(fiber_rwlock_unlock(&l), 0);
	assert_int_equal(fiber_rwlock_destroy(&l), 0);
}

/* ------------------------------------------------------------------------------------------------------------
 * Semaphore
 * ---------------------------------------------------------------------------------------------------------- */

static fiber_sem_t sem_items, sem_space;
static long sem_sum, sem_count;
static fiber_mutex_t sem_m = FIBER_MUTEX_INITIALIZER;
static int sem_n;

static void *sem_producer(void *arg)
{
	for (int i = 1; i <= sem_n; i++) {
		if (fiber_sem_wait(&sem_space))
			atomic_fetch_add(&errs, 1);
		if (fiber_sem_post(&sem_items))
			atomic_fetch_add(&errs, 1);
	}
	return NULL;
}

static void *sem_consumer(void *arg)
{
	for (int i = 1; i <= sem_n; i++) {
		if (fiber_sem_wait(&sem_items))
			atomic_fetch_add(&errs, 1);
		fiber_mutex_lock(&sem_m);
		sem_count++;
		fiber_mutex_unlock(&sem_m);
		fiber_sem_post(&sem_space);
	}
	return NULL;
}

static void sem_main(void *arg)
{
	fiber_t *f[16];

	for (int i = 0; i < 8; i++) {
		fiber_spawn(&f[2 * i], NULL, sem_producer, NULL);
		fiber_spawn(&f[2 * i + 1], NULL, sem_consumer, NULL);
	}
	for (int i = 0; i < 16; i++)
		fiber_join(f[i], NULL);
}

static void test_sync_sem_producer_consumer_exact(void **state)
{
	struct fiber_config c = test_cfg(4);

	sem_n = 20000;
#ifdef TEST_ASAN
	sem_n = 5000;
#endif
	for (int r = 0; r < reps(); r++) {
		fiber_sem_init(&sem_items, 0);
		fiber_sem_init(&sem_space, 4);
		sem_count = 0;
		atomic_store(&errs, 0);
		assert_int_equal(fiber_run(&c, sem_main, NULL), 0);
		assert_int_equal(atomic_load(&errs), 0);
		assert_int_equal(sem_count, 8L * sem_n);
		assert_int_equal(fiber_sem_trywait(&sem_items), -EAGAIN);
		assert_int_equal(fiber_sem_destroy(&sem_items), 0);
	}
	(void)sem_sum;
}

static fiber_sem_t ts;
static int ts_r0, ts_r, ts_rmax;
static uint64_t ts_elapsed;

static void *ts_poster(void *arg)
{
	fiber_sleep(10 * MS_);
	fiber_sem_post(&ts);
	return NULL;
}

static void sem_timed_main(void *arg)
{
	fiber_t *f;

	ts_r0 = fiber_sem_timedwait(&ts, 0);
	uint64_t t0 = now_ns();
	ts_r = fiber_sem_timedwait(&ts, 15 * MS_);
	ts_elapsed = now_ns() - t0;
	fiber_spawn(&f, NULL, ts_poster, NULL);
	ts_rmax = fiber_sem_timedwait(&ts, UINT64_MAX);
	fiber_join(f, NULL);
}

static void test_sync_sem_timedwait_not_early(void **state)
{
	struct fiber_config c = test_cfg(2);

	fiber_sem_init(&ts, 0);
	assert_int_equal(fiber_run(&c, sem_timed_main, NULL), 0);
	assert_int_equal(ts_r0, -ETIMEDOUT);
	assert_int_equal(ts_r, -ETIMEDOUT);
	assert_true(ts_elapsed >= 15 * MS_);
	assert_int_equal(ts_rmax, 0);
}

/* Waiters A and B; A is cancelled, then one post: B must get it, A returns -ECANCELED, the value stays 0. */
static fiber_sem_t cs;
static int cs_ra = 1, cs_rb = 1, cs_pre = 1, cs_pre_value;

static void *cs_waiter(void *arg)
{
	*(int *)arg = fiber_sem_wait(&cs);
	return NULL;
}

static void *cs_precancelled(void *arg)
{
	fiber_sleep(20 * MS_);	      /* cancelled while sleeping */
	cs_pre = fiber_sem_wait(&cs); /* value 1: still -ECANCELED (a cancellation point) */
	return NULL;
}

static void sem_cancel_main(void *arg)
{
	fiber_t *a, *b, *p;

	fiber_spawn(&a, NULL, cs_waiter, &cs_ra);
	fiber_sleep(5 * MS_);
	fiber_spawn(&b, NULL, cs_waiter, &cs_rb);
	fiber_sleep(5 * MS_);
	fiber_cancel(a);
	fiber_join(a, NULL);
	fiber_sem_post(&cs);
	fiber_join(b, NULL);
	fiber_sem_post(&cs);
	fiber_spawn(&p, NULL, cs_precancelled, NULL);
	fiber_cancel(p);
	fiber_join(p, NULL);
	cs_pre_value = fiber_sem_trywait(&cs); /* the post is still there */
}

static void test_sync_sem_cancel_no_lost_post(void **state)
{
	struct fiber_config c = test_cfg(2);

	fiber_sem_init(&cs, 0);
	assert_int_equal(fiber_run(&c, sem_cancel_main, NULL), 0);
	assert_int_equal(cs_ra, -ECANCELED);
	assert_int_equal(cs_rb, 0);
	assert_int_equal(cs_pre, -ECANCELED);
	assert_int_equal(cs_pre_value, 0);
	assert_int_equal(fiber_sem_trywait(&cs), -EAGAIN);
	assert_int_equal(fiber_sem_destroy(&cs), 0);
}

/* A plain pthread posts to wake a fiber, waits for a fiber's post, and joins a fiber. */
static fiber_sem_t ps_to_fiber, ps_to_thread;
static int ps_fiber_r = 1, ps_thread_r = 1, ps_join_r = 1;
static void *ps_join_ret;
static atomic_int ps_ready;
static fiber_t *ps_joinee;

static void *ps_fiber(void *arg)
{
	ps_fiber_r = fiber_sem_wait(&ps_to_fiber);
	fiber_sem_post(&ps_to_thread);
	return (void *)0x1234;
}

static void *ps_thread(void *arg)
{
	while (!atomic_load(&ps_ready))
		usleep(1000);
	usleep(10000);
	fiber_sem_post(&ps_to_fiber);
	ps_thread_r = fiber_sem_wait(&ps_to_thread);
	ps_join_r = fiber_join(ps_joinee, &ps_join_ret);
	return NULL;
}

static void *ps_main(void *arg)
{
	fiber_spawn(&ps_joinee, NULL, ps_fiber, NULL);
	atomic_store(&ps_ready, 1);
	return NULL;
}

static void test_sync_sem_pthread_post_wait_join(void **state)
{
	struct fiber_config c = test_cfg(2);
	pthread_t t;

	fiber_sem_init(&ps_to_fiber, 0);
	fiber_sem_init(&ps_to_thread, 0);
	assert_int_equal(pthread_create(&t, NULL, ps_thread, NULL), 0);
	/* Not fiber_run: the pthread's join needs the runtime still running after the joinee exited. */
	assert_int_equal(fiber_runtime_start(&c), 0);
	assert_int_equal(fiber_spawn(NULL, NULL, ps_main, NULL), 0);
	pthread_join(t, NULL);
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_int_equal(ps_fiber_r, 0);
	assert_int_equal(ps_thread_r, 0);
	assert_int_equal(ps_join_r, 0);
	assert_ptr_equal(ps_join_ret, (void *)0x1234);
}

/* ------------------------------------------------------------------------------------------------------------
 * Barrier and wait group
 * ---------------------------------------------------------------------------------------------------------- */

#define BAR_N 12
#define BAR_ROUNDS 200
static fiber_barrier_t bar;
static atomic_int bar_serial[BAR_ROUNDS], bar_arrived[BAR_ROUNDS];

static void *bar_fiber(void *arg)
{
	for (int r = 0; r < BAR_ROUNDS; r++) {
		atomic_fetch_add(&bar_arrived[r], 1);
		int x = fiber_barrier_wait(&bar);

		if (x == FIBER_BARRIER_SERIAL)
			atomic_fetch_add(&bar_serial[r], 1);
		else if (x != 0)
			atomic_fetch_add(&errs, 1);
		/* Everybody of this round arrived before anybody left it. */
		if (atomic_load(&bar_arrived[r]) != BAR_N)
			atomic_fetch_add(&errs, 1);
	}
	return NULL;
}

static void bar_main(void *arg)
{
	fiber_t *f[BAR_N];

	for (int i = 0; i < BAR_N; i++)
		fiber_spawn(&f[i], NULL, bar_fiber, NULL);
	for (int i = 0; i < BAR_N; i++)
		fiber_join(f[i], NULL);
}

static void test_sync_barrier_one_serial_per_round(void **state)
{
	struct fiber_config c = test_cfg(4);

	atomic_store(&errs, 0);
	assert_int_equal(fiber_barrier_init(&bar, 0), -EINVAL);
	assert_int_equal(fiber_barrier_init(&bar, BAR_N), 0);
	assert_int_equal(fiber_run(&c, bar_main, NULL), 0);
	assert_int_equal(atomic_load(&errs), 0);
	for (int r = 0; r < BAR_ROUNDS; r++)
		assert_int_equal(atomic_load(&bar_serial[r]), 1);
	assert_int_equal(fiber_barrier_destroy(&bar), 0);
}

static fiber_wg_t wg = FIBER_WG_INITIALIZER;
static atomic_int wg_done_count;
static int wg_seen, wg_neg, wg_cancel_r = 1;

static void *wg_worker(void *arg)
{
	fiber_sleep((uint64_t)(intptr_t)arg * 100000ull);
	atomic_fetch_add(&wg_done_count, 1);
	fiber_wg_done(&wg);
	return NULL;
}

static fiber_wg_t wg2 = FIBER_WG_INITIALIZER;

static void *wg_cancelled(void *arg)
{
	wg_cancel_r = fiber_wg_wait(&wg2);
	return NULL;
}

static void wg_main(void *arg)
{
	fiber_t *c;

	wg_neg = fiber_wg_add(&wg, -1);
	fiber_wg_add(&wg, 100);
	for (int i = 0; i < 100; i++)
		fiber_spawn(NULL, NULL, wg_worker, (void *)(intptr_t)(i % 7));
	fiber_wg_wait(&wg);
	wg_seen = atomic_load(&wg_done_count);
	fiber_wg_add(&wg2, 1);
	fiber_spawn(&c, NULL, wg_cancelled, NULL);
	fiber_sleep(5 * MS_);
	fiber_cancel(c);
	fiber_join(c, NULL);
	fiber_wg_done(&wg2);
}

static void test_sync_wg_wait_sees_all_done(void **state)
{
	struct fiber_config c = test_cfg(3);

	assert_int_equal(fiber_run(&c, wg_main, NULL), 0);
	assert_int_equal(wg_neg, -EINVAL);
	assert_int_equal(wg_seen, 100);
	assert_int_equal(wg_cancel_r, -ECANCELED);
}

/* ------------------------------------------------------------------------------------------------------------
 * Fiber-local storage
 * ---------------------------------------------------------------------------------------------------------- */

static fiber_key_t k1, k2, kdel;
static fiber_sem_t key_gate;
static atomic_int d1_calls, d2_calls, ddel_calls, k_bad;

static void d1(void *v)
{
	atomic_fetch_add(&d1_calls, 1);
	free(v);
}

static void d2(void *v)
{
	atomic_fetch_add(&d2_calls, 1);
	/* Setting a value from a destructor: destroyed again, in the next round. */
	if (v == (void *)0x1)
		fiber_setspecific(k2, (void *)0x2);
}

static void ddel(void *v)
{
	atomic_fetch_add(&ddel_calls, 1);
}

static void *key_fiber(void *arg)
{
	int *p = malloc(sizeof(int));

	*p = (int)(intptr_t)arg;
	if (fiber_getspecific(k1) != NULL)
		atomic_fetch_add(&k_bad, 1);
	fiber_setspecific(k1, p);
	fiber_setspecific(k2, (void *)0x1);
	fiber_setspecific(kdel, (void *)0x3);
	fiber_sem_wait(&key_gate); /* exit only after main deleted kdel */
	if (fiber_getspecific(k1) != p || *(int *)fiber_getspecific(k1) != (int)(intptr_t)arg)
		atomic_fetch_add(&k_bad, 1);
	return NULL;
}

static void key_main(void *arg)
{
	fiber_t *f[64];

	for (int i = 0; i < 64; i++)
		fiber_spawn(&f[i], NULL, key_fiber, (void *)(intptr_t)i);
	fiber_sleep(MS_);
	fiber_key_delete(kdel); /* the fibers' values for it get no destructor call */
	for (int i = 0; i < 64; i++)
		fiber_sem_post(&key_gate);
	for (int i = 0; i < 64; i++)
		fiber_join(f[i], NULL);
}

static void test_sync_keys_destructors_once(void **state)
{
	struct fiber_config c = test_cfg(3);

	assert_int_equal(fiber_key_create(NULL, d1), -EINVAL);
	assert_int_equal(fiber_key_create(&k1, d1), 0);
	assert_int_equal(fiber_key_create(&k2, d2), 0);
	assert_int_equal(fiber_key_create(&kdel, ddel), 0);
	assert_int_equal(fiber_setspecific(k1, (void *)1), -EPERM); /* not a fiber */
	assert_null(fiber_getspecific(k1));
	assert_int_equal(fiber_run(&c, key_main, NULL), 0);
	assert_int_equal(atomic_load(&k_bad), 0);
	assert_int_equal(atomic_load(&d1_calls), 64);
	assert_int_equal(atomic_load(&d2_calls), 128); /* 0x1, then 0x2 set by the destructor */
	assert_int_equal(atomic_load(&ddel_calls), 0);
	assert_int_equal(fiber_key_delete(kdel), -EINVAL);
	assert_int_equal(fiber_key_delete(k1), 0);
	assert_int_equal(fiber_key_delete(k2), 0);
	assert_int_equal(fiber_key_delete(FIBER_KEYS_MAX), -EINVAL);
}

/* Keys created concurrently by four pthreads each keep their own destructor. */
#define KC_THREADS 4
#define KC_KEYS 50
static fiber_key_t kc_keys[KC_THREADS][KC_KEYS];
static atomic_int kc_calls, kc_wrong, kc_go;

#define KC_DTOR(t)                                                                                                     \
	static void kc_dtor##t(void *v)                                                                                \
	{                                                                                                              \
		atomic_fetch_add(&kc_calls, 1);                                                                        \
		if ((intptr_t)v != t + 1)                                                                              \
			atomic_fetch_add(&kc_wrong, 1);                                                                \
	}
KC_DTOR(0)
KC_DTOR(1)
KC_DTOR(2)
KC_DTOR(3)
static void (*const kc_dtors[KC_THREADS])(void *) = { kc_dtor0, kc_dtor1, kc_dtor2, kc_dtor3 };

static void *kc_creator(void *arg)
{
	int t = (int)(intptr_t)arg;

	while (!atomic_load(&kc_go))
		;
	for (int j = 0; j < KC_KEYS; j++)
		if (fiber_key_create(&kc_keys[t][j], kc_dtors[t]))
			atomic_fetch_add(&kc_wrong, 1);
	return NULL;
}

static void *kc_fiber(void *arg)
{
	for (int t = 0; t < KC_THREADS; t++)
		for (int j = 0; j < KC_KEYS; j++)
			fiber_setspecific(kc_keys[t][j], (void *)(intptr_t)(t + 1));
	return NULL;
}

static void kc_main(void *arg)
{
	fiber_t *f;

	fiber_spawn(&f, NULL, kc_fiber, NULL);
	fiber_join(f, NULL);
}

static void test_sync_keys_concurrent_create(void **state)
{
	struct fiber_config c = test_cfg(2);
	pthread_t th[KC_THREADS];

	for (int t = 0; t < KC_THREADS; t++)
		pthread_create(&th[t], NULL, kc_creator, (void *)(intptr_t)t);
	atomic_store(&kc_go, 1);
	for (int t = 0; t < KC_THREADS; t++)
		pthread_join(th[t], NULL);
	assert_int_equal(fiber_run(&c, kc_main, NULL), 0);
	assert_int_equal(atomic_load(&kc_wrong), 0);
	assert_int_equal(atomic_load(&kc_calls), KC_THREADS * KC_KEYS);
	for (int t = 0; t < KC_THREADS; t++)
		for (int j = 0; j < KC_KEYS; j++)
			assert_int_equal(fiber_key_delete(kc_keys[t][j]), 0);
}

/* ------------------------------------------------------------------------------------------------------------
 * Public wait queues
 * ---------------------------------------------------------------------------------------------------------- */

static struct fiber_waitq wq = FIBER_WAITQ_INIT(wq);
static atomic_int wq_flag, wq_woken;
static int wq_int_r = 1, wq_to_r = 1, wq_to_r2 = 1;
static uint64_t wq_elapsed;

static void *wq_waiter(void *arg)
{
	fiber_wait_event(&wq, atomic_load(&wq_flag) != 0);
	atomic_fetch_add(&wq_woken, 1);
	return NULL;
}

static void *wq_cancelled(void *arg)
{
	wq_int_r = fiber_wait_event_interruptible(&wq, atomic_load(&wq_flag) == 42);
	return NULL;
}

static void *wq_pthread_waker(void *arg)
{
	usleep(20000);
	atomic_store(&wq_flag, 1);
	fiber_wake_up_all(&wq);
	return NULL;
}

static void wq_main(void *arg)
{
	fiber_t *f[20], *c;
	pthread_t t;

	uint64_t t0 = now_ns();
	wq_to_r = fiber_wait_event_timeout(&wq, atomic_load(&wq_flag) == 42, 12 * MS_);
	wq_elapsed = now_ns() - t0;
	for (int i = 0; i < 20; i++)
		fiber_spawn(&f[i], NULL, wq_waiter, NULL);
	fiber_spawn(&c, NULL, wq_cancelled, NULL);
	fiber_sleep(5 * MS_);
	fiber_cancel(c);
	fiber_join(c, NULL);
	pthread_create(&t, NULL, wq_pthread_waker, NULL); /* wakes the 20 from a plain pthread */
	for (int i = 0; i < 20; i++)
		fiber_join(f[i], NULL);
	pthread_join(t, NULL);
	wq_to_r2 = fiber_wait_event_timeout(&wq, atomic_load(&wq_flag) == 1, 0);
}

static void test_sync_waitq_event_timeout_cancel_pthread_waker(void **state)
{
	struct fiber_config c = test_cfg(3);

	assert_int_equal(fiber_run(&c, wq_main, NULL), 0);
	assert_int_equal(wq_to_r, -ETIMEDOUT);
	assert_true(wq_elapsed >= 12 * MS_);
	assert_int_equal(wq_int_r, -ECANCELED);
	assert_int_equal(atomic_load(&wq_woken), 20);
	assert_int_equal(wq_to_r2, 0);
}

/* A plain pthread waits on a public wait queue; a fiber wakes it. */
static struct fiber_waitq pwq = FIBER_WAITQ_INIT(pwq);
static atomic_int pwq_flag;
static int pwq_r = 1;

static void *pwq_thread(void *arg)
{
	pwq_r = fiber_wait_event_interruptible(&pwq, atomic_load(&pwq_flag) != 0);
	return NULL;
}

static void pwq_main(void *arg)
{
	fiber_sleep(20 * MS_);
	atomic_store(&pwq_flag, 1);
	fiber_wake_up(&pwq);
}

static void test_sync_waitq_pthread_waiter(void **state)
{
	struct fiber_config c = test_cfg(2);
	pthread_t t;

	assert_int_equal(pthread_create(&t, NULL, pwq_thread, NULL), 0);
	assert_int_equal(fiber_run(&c, pwq_main, NULL), 0);
	pthread_join(t, NULL);
	assert_int_equal(pwq_r, 0);
}

/* ------------------------------------------------------------------------------------------------------------
 * Bad input
 * ---------------------------------------------------------------------------------------------------------- */

static void test_sync_null_arguments(void **state)
{
	fiber_mutex_t m;
	fiber_cond_t c;

	assert_int_equal(fiber_mutex_init(NULL), -EINVAL);
	assert_int_equal(fiber_mutex_destroy(NULL), -EINVAL);
	assert_int_equal(fiber_mutex_lock(NULL), -EINVAL);
	assert_int_equal(fiber_mutex_trylock(NULL), -EINVAL);
	assert_int_equal(fiber_mutex_timedlock(NULL, 1), -EINVAL);
	assert_int_equal(fiber_mutex_unlock(NULL), -EINVAL);
	assert_int_equal(fiber_cond_init(NULL), -EINVAL);
	assert_int_equal(fiber_cond_destroy(NULL), -EINVAL);
	assert_int_equal(fiber_mutex_init(&m), 0);
	assert_int_equal(fiber_cond_init(&c), 0);
	assert_int_equal(fiber_cond_wait(NULL, &m), -EINVAL);
	assert_int_equal(fiber_cond_wait(&c, NULL), -EINVAL);
	assert_int_equal(fiber_cond_timedwait(NULL, &m, 1), -EINVAL);
	assert_int_equal(fiber_cond_signal(NULL), -EINVAL);
	assert_int_equal(fiber_cond_broadcast(NULL), -EINVAL);
	assert_int_equal(fiber_rwlock_init(NULL), -EINVAL);
	assert_int_equal(fiber_rwlock_destroy(NULL), -EINVAL);
	assert_int_equal(fiber_rwlock_rdlock(NULL), -EINVAL);
	assert_int_equal(fiber_rwlock_wrlock(NULL), -EINVAL);
	assert_int_equal(fiber_rwlock_tryrdlock(NULL), -EINVAL);
	assert_int_equal(fiber_rwlock_trywrlock(NULL), -EINVAL);
	assert_int_equal(fiber_rwlock_unlock(NULL), -EINVAL);
	assert_int_equal(fiber_sem_init(NULL, 0), -EINVAL);
	assert_int_equal(fiber_sem_destroy(NULL), -EINVAL);
	assert_int_equal(fiber_sem_wait(NULL), -EINVAL);
	assert_int_equal(fiber_sem_trywait(NULL), -EINVAL);
	assert_int_equal(fiber_sem_timedwait(NULL, 0), -EINVAL);
	assert_int_equal(fiber_sem_post(NULL), -EINVAL);
	assert_int_equal(fiber_barrier_init(NULL, 1), -EINVAL);
	assert_int_equal(fiber_barrier_destroy(NULL), -EINVAL);
	assert_int_equal(fiber_barrier_wait(NULL), -EINVAL);
	assert_int_equal(fiber_wg_init(NULL), -EINVAL);
	assert_int_equal(fiber_wg_add(NULL, 1), -EINVAL);
	assert_int_equal(fiber_wg_done(NULL), -EINVAL);
	assert_int_equal(fiber_wg_wait(NULL), -EINVAL);
	fiber_waitq_init(NULL);
	fiber_wake_up(NULL);
	fiber_wake_up_all(NULL);
}

static void test_sync_sem_limits(void **state)
{
	fiber_sem_t s;

	assert_int_equal(fiber_sem_init(&s, FIBER_SEM_VALUE_MAX + 1u), -EINVAL);
	assert_int_equal(fiber_sem_init(&s, FIBER_SEM_VALUE_MAX), 0);
	assert_int_equal(fiber_sem_post(&s), -EOVERFLOW);
	assert_int_equal(fiber_sem_trywait(&s), 0);
	assert_int_equal(fiber_sem_post(&s), 0);
	/* From a plain pthread with the value > 0, no runtime needed. */
	assert_int_equal(fiber_sem_wait(&s), 0);
	assert_int_equal(fiber_sem_timedwait(&s, UINT64_MAX), 0);
	assert_int_equal(fiber_sem_destroy(&s), 0);
}

/* A plain pthread's timed waits (futex): never early either. */
static void test_sync_pthread_timed_waits_not_early(void **state)
{
	fiber_sem_t s;
	fiber_mutex_t m = FIBER_MUTEX_INITIALIZER;
	fiber_cond_t c = FIBER_COND_INITIALIZER;
	uint64_t t0;

	fiber_sem_init(&s, 0);
	t0 = now_ns();
	assert_int_equal(fiber_sem_timedwait(&s, 15 * MS_), -ETIMEDOUT);
	assert_true(now_ns() - t0 >= 15 * MS_);
	fiber_mutex_lock(&m);
	t0 = now_ns();
	assert_int_equal(fiber_cond_timedwait(&c, &m, 15 * MS_), -ETIMEDOUT);
	assert_true(now_ns() - t0 >= 15 * MS_);
	assert_int_equal(fiber_mutex_unlock(&m), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sync_mutex_counter_exact),
		cmocka_unit_test(test_sync_mutex_counter_oversubscribed),
		cmocka_unit_test(test_sync_mutex_errors),
		cmocka_unit_test(test_sync_mutex_pthread_waiter),
		cmocka_unit_test(test_sync_mutex_waiter_not_starved),
		cmocka_unit_test(test_sync_mutex_priority_inheritance),
		cmocka_unit_test(test_sync_mutex_pi_deadline_waiter),
		cmocka_unit_test(test_sync_cond_pingpong_chain),
		cmocka_unit_test(test_sync_cond_timedwait_not_early),
		cmocka_unit_test(test_sync_cond_cancel_passes_signal_on),
		cmocka_unit_test(test_sync_cond_broadcast_wakes_all),
		cmocka_unit_test(test_sync_rwlock_exclusion_writers_not_starved),
		cmocka_unit_test(test_sync_rwlock_errors),
		cmocka_unit_test(test_sync_sem_producer_consumer_exact),
		cmocka_unit_test(test_sync_sem_timedwait_not_early),
		cmocka_unit_test(test_sync_sem_cancel_no_lost_post),
		cmocka_unit_test(test_sync_sem_pthread_post_wait_join),
		cmocka_unit_test(test_sync_barrier_one_serial_per_round),
		cmocka_unit_test(test_sync_wg_wait_sees_all_done),
		cmocka_unit_test(test_sync_keys_destructors_once),
		cmocka_unit_test(test_sync_keys_concurrent_create),
		cmocka_unit_test(test_sync_waitq_event_timeout_cancel_pthread_waker),
		cmocka_unit_test(test_sync_waitq_pthread_waiter),
		cmocka_unit_test(test_sync_null_arguments),
		cmocka_unit_test(test_sync_sem_limits),
		cmocka_unit_test(test_sync_pthread_timed_waits_not_early),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
