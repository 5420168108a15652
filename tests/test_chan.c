/*
 * test_chan: channels (buffered, rendezvous, close) and fiber_chan_select.
 *
 * Nothing asserts inside a fiber: fibers record into globals, the test asserts after the runtime stopped.
 * FIBER_TEST_LONG=1: the full 10^6 elements and 20 repetitions; the default is a short CI setting.
 */
#include "test_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif

#define MS_ 1000000ull

static bool long_run(void)
{
	const char *s = getenv("FIBER_TEST_LONG");

	return s && *s && *s != '0';
}

static int reps(void)
{
	return long_run() ? 20 : 2;
}

static atomic_int errs;

/* ------------------------------------------------------------------------------------------------------------
 * 10^6 elements through a buffered channel across workers: each arrives exactly once
 * ---------------------------------------------------------------------------------------------------------- */

#define PRODUCERS 4
#define CONSUMERS 4
static fiber_chan_t *bch;
static long n_items;
static atomic_uchar *seen;
static atomic_long received;

static void *producer(void *arg)
{
	long id = (long)(intptr_t)arg;

	for (long v = id; v < n_items; v += PRODUCERS)
		if (fiber_chan_send(bch, &v))
			atomic_fetch_add(&errs, 1);
	return NULL;
}

static void *consumer(void *arg)
{
	long v;
	int r;

	while ((r = fiber_chan_recv(bch, &v)) == 0) {
		if (v < 0 || v >= n_items || atomic_fetch_add(&seen[v], 1) != 0)
			atomic_fetch_add(&errs, 1);
		atomic_fetch_add(&received, 1);
	}
	if (r != -EPIPE)
		atomic_fetch_add(&errs, 1);
	return NULL;
}

static void million_main(void *arg)
{
	fiber_t *p[PRODUCERS], *c[CONSUMERS];

	for (int i = 0; i < CONSUMERS; i++)
		fiber_spawn(&c[i], NULL, consumer, NULL);
	for (int i = 0; i < PRODUCERS; i++)
		fiber_spawn(&p[i], NULL, producer, (void *)(intptr_t)i);
	for (int i = 0; i < PRODUCERS; i++)
		fiber_join(p[i], NULL);
	fiber_chan_close(bch); /* consumers drain what is buffered, then get -EPIPE */
	for (int i = 0; i < CONSUMERS; i++)
		fiber_join(c[i], NULL);
}

static void test_chan_buffered_elements_arrive_exactly_once(void **state)
{
	struct fiber_config c = test_cfg(4);

	n_items = 1000000;
	if (!long_run())
		n_items = 200000;
#ifdef TEST_ASAN
	if (!long_run())
		n_items = 50000;
#endif
	seen = calloc((size_t)n_items, 1);
	for (int r = 0; r < (long_run() ? 3 : 1); r++) {
		memset((void *)seen, 0, (size_t)n_items);
		atomic_store(&received, 0);
		atomic_store(&errs, 0);
		assert_int_equal(fiber_chan_create(&bch, sizeof(long), 64), 0);
		assert_int_equal(fiber_run(&c, million_main, NULL), 0);
		assert_int_equal(atomic_load(&errs), 0);
		assert_int_equal(atomic_load(&received), n_items);
		for (long i = 0; i < n_items; i++)
			if (seen[i] != 1)
				fail_msg("element %ld arrived %d times", i, seen[i]);
		assert_int_equal(fiber_chan_destroy(bch), 0);
	}
	free((void *)seen);
}

/* ------------------------------------------------------------------------------------------------------------
 * Rendezvous ping-pong chain: a token goes around a ring of fibers over unbuffered channels
 * ---------------------------------------------------------------------------------------------------------- */

#define RING 16
static fiber_chan_t *ring[RING];
static int ring_rounds;
static long ring_hops;

static void *ring_fiber(void *arg)
{
	int me = (int)(intptr_t)arg;
	long tok;

	for (int r = 0; r < ring_rounds; r++) {
		if (fiber_chan_recv(ring[me], &tok))
			atomic_fetch_add(&errs, 1);
		if (tok != (long)r * RING + me)
			atomic_fetch_add(&errs, 1);
		ring_hops++; /* only the token holder touches it */
		tok++;
		if (me != RING - 1 || r != ring_rounds - 1)
			if (fiber_chan_send(ring[(me + 1) % RING], &tok))
				atomic_fetch_add(&errs, 1);
	}
	return NULL;
}

static void ring_main(void *arg)
{
	fiber_t *f[RING];
	long tok = 0;

	for (int i = 0; i < RING; i++)
		fiber_spawn(&f[i], NULL, ring_fiber, (void *)(intptr_t)i);
	fiber_chan_send(ring[0], &tok);
	for (int i = 0; i < RING; i++)
		fiber_join(f[i], NULL);
}

static void run_ring(unsigned workers)
{
	struct fiber_config c = test_cfg(workers);

	ring_rounds = 2000;
#ifdef TEST_ASAN
	ring_rounds = 500;
#endif
	for (int r = 0; r < reps(); r++) {
		for (int i = 0; i < RING; i++)
			assert_int_equal(fiber_chan_create(&ring[i], sizeof(long), 0), 0);
		ring_hops = 0;
		atomic_store(&errs, 0);
		assert_int_equal(fiber_run(&c, ring_main, NULL), 0);
		assert_int_equal(atomic_load(&errs), 0);
		assert_int_equal(ring_hops, (long)RING * ring_rounds);
		for (int i = 0; i < RING; i++)
			assert_int_equal(fiber_chan_destroy(ring[i]), 0);
	}
}

static void test_chan_rendezvous_ring_exact(void **state)
{
	run_ring(4);
}

static void test_chan_rendezvous_ring_oversubscribed(void **state)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	run_ring((unsigned)(n > 0 ? 2 * n + 1 : 5));
}

/* ------------------------------------------------------------------------------------------------------------
 * Close wakes every blocked sender and receiver
 * ---------------------------------------------------------------------------------------------------------- */

static fiber_chan_t *full, *empty;
static atomic_int close_epipe, close_other, blocked;
static int drain_r[3], after_send_r;

static void *blocked_sender(void *arg)
{
	int v = 7;
	atomic_fetch_add(&blocked, 1);
	int r = fiber_chan_send(full, &v);

	atomic_fetch_add(r == -EPIPE ? &close_epipe : &close_other, 1);
	return NULL;
}

static void *blocked_receiver(void *arg)
{
	int v;
	atomic_fetch_add(&blocked, 1);
	int r = fiber_chan_recv(empty, &v);

	atomic_fetch_add(r == -EPIPE ? &close_epipe : &close_other, 1);
	return NULL;
}

static void close_main(void *arg)
{
	int v = 1;

	fiber_chan_send(full, &v); /* capacity 1: full now */
	for (int i = 0; i < 10; i++) {
		fiber_spawn(NULL, NULL, blocked_sender, NULL);
		fiber_spawn(NULL, NULL, blocked_receiver, NULL);
	}
	while (atomic_load(&blocked) < 20)
		fiber_sleep(MS_);
	fiber_sleep(10 * MS_);
	fiber_chan_close(full);
	fiber_chan_close(empty);
	while (atomic_load(&close_epipe) + atomic_load(&close_other) < 20)
		fiber_sleep(MS_);
	/* The buffered element is still there after close, then -EPIPE. */
	drain_r[0] = fiber_chan_recv(full, &v);
	drain_r[1] = v;
	drain_r[2] = fiber_chan_recv(full, &v);
	after_send_r = fiber_chan_send(full, &v);
}

static void test_chan_close_wakes_all(void **state)
{
	struct fiber_config c = test_cfg(3);

	assert_int_equal(fiber_chan_create(&full, sizeof(int), 1), 0);
	assert_int_equal(fiber_chan_create(&empty, sizeof(int), 0), 0);
	assert_int_equal(fiber_run(&c, close_main, NULL), 0);
	assert_int_equal(atomic_load(&close_epipe), 20);
	assert_int_equal(atomic_load(&close_other), 0);
	assert_int_equal(drain_r[0], 0);
	assert_int_equal(drain_r[1], 1);
	assert_int_equal(drain_r[2], -EPIPE);
	assert_int_equal(after_send_r, -EPIPE);
	assert_int_equal(fiber_chan_close(full), -EPIPE);
	assert_int_equal(fiber_chan_destroy(full), 0);
	assert_int_equal(fiber_chan_destroy(empty), 0);
}

/* ------------------------------------------------------------------------------------------------------------
 * select: fairness, timeout, exactly one case completes
 * ---------------------------------------------------------------------------------------------------------- */

static fiber_chan_t *sa, *sb;
static int picks[2], sel_bad;

static void fair_main(void *arg)
{
	int v = 0, got;

	for (int i = 0; i < 10000; i++) {
		/* Both always ready: keep one element in each. */
		struct fiber_chan_op ops[2] = {
			{ sa, FIBER_CHAN_RECV, &got, 1 },
			{ sb, FIBER_CHAN_RECV, &got, 1 },
		};
		int k = fiber_chan_select(ops, 2, 0);

		if (k < 0 || k > 1 || ops[k].result != 0) {
			sel_bad++;
			continue;
		}
		picks[k]++;
		fiber_chan_send(k ? sb : sa, &v);
	}
}

static void test_chan_select_fair_among_ready(void **state)
{
	struct fiber_config c = test_cfg(1);
	int v = 0;

	assert_int_equal(fiber_chan_create(&sa, sizeof(int), 1), 0);
	assert_int_equal(fiber_chan_create(&sb, sizeof(int), 1), 0);
	assert_int_equal(fiber_chan_trysend(sa, &v), 0);
	assert_int_equal(fiber_chan_trysend(sb, &v), 0);
	assert_int_equal(fiber_run(&c, fair_main, NULL), 0);
	assert_int_equal(sel_bad, 0);
	/* Uniform choice: 5000 +- a wide margin (binomial sd is 50). */
	assert_true(picks[0] > 4000 && picks[1] > 4000);
	fiber_chan_destroy(sa);
	fiber_chan_destroy(sb);
}

static int to_r, to_r0, to_rnil, to_late_r, to_late_idx, to_late_v;
static uint64_t to_elapsed, to0_elapsed;

static void *late_sender(void *arg)
{
	int v = 99;

	fiber_sleep(10 * MS_);
	fiber_chan_send(sb, &v);
	return NULL;
}

static void timeout_main(void *arg)
{
	int got = 0;
	struct fiber_chan_op ops[3] = {
		{ sa, FIBER_CHAN_RECV, &got, 1 },
		{ sb, FIBER_CHAN_RECV, &got, 1 },
		{ NULL, FIBER_CHAN_RECV, &got, 1 }, /* never ready */
	};
	fiber_t *f;
	uint64_t t0 = now_ns();

	to_r0 = fiber_chan_select(ops, 3, 0);
	to0_elapsed = now_ns() - t0;
	t0 = now_ns();
	to_r = fiber_chan_select(ops, 3, (int64_t)(20 * MS_));
	to_elapsed = now_ns() - t0;
	to_rnil = fiber_chan_select(&ops[2], 1, (int64_t)MS_);
	fiber_spawn(&f, NULL, late_sender, NULL);
	to_late_idx = fiber_chan_select(ops, 3, -1);
	to_late_r = ops[1].result;
	to_late_v = got;
	fiber_join(f, NULL);
}

static void test_chan_select_timeout(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_chan_create(&sa, sizeof(int), 0), 0);
	assert_int_equal(fiber_chan_create(&sb, sizeof(int), 0), 0);
	assert_int_equal(fiber_run(&c, timeout_main, NULL), 0);
	assert_int_equal(to_r0, -ETIMEDOUT);
	assert_true(to0_elapsed < 500 * MS_);
	assert_int_equal(to_r, -ETIMEDOUT);
	assert_true(to_elapsed >= 20 * MS_);
	assert_int_equal(to_rnil, -ETIMEDOUT);
	assert_int_equal(to_late_idx, 1);
	assert_int_equal(to_late_r, 0);
	assert_int_equal(to_late_v, 99);
	assert_int_equal(fiber_chan_destroy(sa), 0);
	assert_int_equal(fiber_chan_destroy(sb), 0);
}

/* Many selecting receivers and a mix of senders: every message is received exactly once, by one case. */
#define SEL_MSGS 20000
static atomic_long sel_sum, sel_count;
static atomic_int sel_send_done;

static void *sel_sender(void *arg)
{
	fiber_chan_t *ch = (intptr_t)arg & 1 ? sb : sa;

	for (long v = 1; v <= SEL_MSGS; v++)
		if (fiber_chan_send(ch, &v))
			atomic_fetch_add(&errs, 1);
	atomic_fetch_add(&sel_send_done, 1);
	return NULL;
}

static void *sel_receiver(void *arg)
{
	long got;

	for (;;) {
		struct fiber_chan_op ops[2] = {
			{ sa, FIBER_CHAN_RECV, &got, 1 },
			{ sb, FIBER_CHAN_RECV, &got, 1 },
		};
		int k = fiber_chan_select(ops, 2, -1);

		if (k < 0) {
			atomic_fetch_add(&errs, 1);
			break;
		}
		if (ops[k].result == -EPIPE)
			break; /* closed: the other channel may still hold messages, drain with the next select */
		atomic_fetch_add(&sel_sum, got);
		atomic_fetch_add(&sel_count, 1);
	}
	return NULL;
}

static void sel_main(void *arg)
{
	fiber_t *r[6], *s[4];
	long got;

	for (int i = 0; i < 6; i++)
		fiber_spawn(&r[i], NULL, sel_receiver, NULL);
	for (int i = 0; i < 4; i++)
		fiber_spawn(&s[i], NULL, sel_sender, (void *)(intptr_t)i);
	for (int i = 0; i < 4; i++)
		fiber_join(s[i], NULL);
	/* All sent and received (rendezvous: a send returns once received). Close one; receivers leave. */
	fiber_chan_close(sa);
	for (int i = 0; i < 6; i++)
		fiber_join(r[i], NULL);
	if (fiber_chan_tryrecv(sb, &got) != -EAGAIN)
		atomic_fetch_add(&errs, 1);
}

static void test_chan_select_exactly_one_case(void **state)
{
	struct fiber_config c = test_cfg(4);

	for (int r = 0; r < reps(); r++) {
		assert_int_equal(fiber_chan_create(&sa, sizeof(long), 0), 0);
		assert_int_equal(fiber_chan_create(&sb, sizeof(long), 0), 0);
		atomic_store(&sel_sum, 0);
		atomic_store(&sel_count, 0);
		atomic_store(&errs, 0);
		assert_int_equal(fiber_run(&c, sel_main, NULL), 0);
		assert_int_equal(atomic_load(&errs), 0);
		assert_int_equal(atomic_load(&sel_count), 4L * SEL_MSGS);
		assert_int_equal(atomic_load(&sel_sum), 4L * SEL_MSGS * (SEL_MSGS + 1) / 2);
		assert_int_equal(fiber_chan_destroy(sa), 0);
		assert_int_equal(fiber_chan_destroy(sb), 0);
	}
}

/* A select with a send case and a receive case: the peer completes exactly the one it matches. */
static int mix_k, mix_res, mix_got;

static void *mix_peer(void *arg)
{
	fiber_sleep(5 * MS_);
	fiber_chan_recv(sa, &mix_got); /* takes the select's send */
	return NULL;
}

static void mix_main(void *arg)
{
	int out = 5, in = 0;
	struct fiber_chan_op ops[2] = {
		{ sa, FIBER_CHAN_SEND, &out, 1 },
		{ sb, FIBER_CHAN_RECV, &in, 1 },
	};
	fiber_t *f;

	fiber_spawn(&f, NULL, mix_peer, NULL);
	mix_k = fiber_chan_select(ops, 2, -1);
	mix_res = ops[mix_k < 0 ? 0 : mix_k].result;
	fiber_join(f, NULL);
}

static void test_chan_select_send_and_recv_cases(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_chan_create(&sa, sizeof(int), 0), 0);
	assert_int_equal(fiber_chan_create(&sb, sizeof(int), 0), 0);
	assert_int_equal(fiber_run(&c, mix_main, NULL), 0);
	assert_int_equal(mix_k, 0);
	assert_int_equal(mix_res, 0);
	assert_int_equal(mix_got, 5);
	assert_int_equal(fiber_chan_destroy(sa), 0);
	assert_int_equal(fiber_chan_destroy(sb), 0);
}

/* ------------------------------------------------------------------------------------------------------------
 * Cancellation: a cancelled receiver returns -ECANCELED, never takes a message meant for another
 * ---------------------------------------------------------------------------------------------------------- */

static int cr_a = 1, cr_b = 1, cr_b_v, cr_sel = 1;

static void *cr_recv(void *arg)
{
	int v = 0;
	int *res = arg;

	*res = fiber_chan_recv(sa, &v);
	if (res == &cr_b)
		cr_b_v = v;
	return NULL;
}

static void *cr_select(void *arg)
{
	int v;
	struct fiber_chan_op ops[1] = { { sb, FIBER_CHAN_RECV, &v, 1 } };

	cr_sel = fiber_chan_select(ops, 1, -1);
	return NULL;
}

static void cancel_main(void *arg)
{
	fiber_t *a, *b, *s;
	int v = 17;

	fiber_spawn(&a, NULL, cr_recv, &cr_a);
	fiber_sleep(5 * MS_);
	fiber_spawn(&b, NULL, cr_recv, &cr_b);
	fiber_spawn(&s, NULL, cr_select, NULL);
	fiber_sleep(5 * MS_);
	fiber_cancel(a);
	fiber_cancel(s);
	fiber_chan_send(sa, &v); /* a is cancelled: b must get it */
	fiber_join(a, NULL);
	fiber_join(b, NULL);
	fiber_join(s, NULL);
}

static void test_chan_cancel_recv_passes_message_on(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_chan_create(&sa, sizeof(int), 0), 0);
	assert_int_equal(fiber_chan_create(&sb, sizeof(int), 0), 0);
	assert_int_equal(fiber_run(&c, cancel_main, NULL), 0);
	assert_int_equal(cr_a, -ECANCELED);
	assert_int_equal(cr_b, 0);
	assert_int_equal(cr_b_v, 17);
	assert_int_equal(cr_sel, -ECANCELED);
	assert_int_equal(fiber_chan_destroy(sa), 0);
	assert_int_equal(fiber_chan_destroy(sb), 0);
}

/* ------------------------------------------------------------------------------------------------------------
 * A plain pthread sends to a fiber, receives from one, selects
 * ---------------------------------------------------------------------------------------------------------- */

static int pt_send_r = 1, pt_recv_r = 1, pt_recv_v, pt_fiber_v, pt_sel_k = -5;
static atomic_int pt_go;

static void *pt_thread(void *arg)
{
	int v = 41, w = 0;

	while (!atomic_load(&pt_go))
		usleep(1000);
	pt_send_r = fiber_chan_send(sa, &v); /* unbuffered: blocks until the fiber receives */
	pt_recv_r = fiber_chan_recv(sb, &pt_recv_v);
	struct fiber_chan_op ops[1] = { { sb, FIBER_CHAN_RECV, &w, 1 } };
	pt_sel_k = fiber_chan_select(ops, 1, (int64_t)(5 * MS_));
	return NULL;
}

static void pt_main(void *arg)
{
	int v = 43;

	atomic_store(&pt_go, 1);
	fiber_chan_recv(sa, &pt_fiber_v);
	fiber_sleep(10 * MS_); /* the pthread blocks in recv meanwhile */
	fiber_chan_send(sb, &v);
}

static void test_chan_pthread_send_recv(void **state)
{
	struct fiber_config c = test_cfg(2);
	pthread_t t;

	assert_int_equal(fiber_chan_create(&sa, sizeof(int), 0), 0);
	assert_int_equal(fiber_chan_create(&sb, sizeof(int), 0), 0);
	assert_int_equal(pthread_create(&t, NULL, pt_thread, NULL), 0);
	assert_int_equal(fiber_run(&c, pt_main, NULL), 0);
	pthread_join(t, NULL);
	assert_int_equal(pt_send_r, 0);
	assert_int_equal(pt_fiber_v, 41);
	assert_int_equal(pt_recv_r, 0);
	assert_int_equal(pt_recv_v, 43);
	assert_int_equal(pt_sel_k, -ETIMEDOUT);
	assert_int_equal(fiber_chan_destroy(sa), 0);
	assert_int_equal(fiber_chan_destroy(sb), 0);
}

/* ------------------------------------------------------------------------------------------------------------
 * Bad input and would-block
 * ---------------------------------------------------------------------------------------------------------- */

static int busy_r;
static fiber_chan_t *busy_ch;

static void *busy_waiter(void *arg)
{
	int v;

	fiber_chan_recv(busy_ch, &v);
	return NULL;
}

static void busy_main(void *arg)
{
	fiber_t *f;
	int v = 1;

	fiber_spawn(&f, NULL, busy_waiter, NULL);
	fiber_sleep(5 * MS_);
	busy_r = fiber_chan_destroy(busy_ch);
	fiber_chan_send(busy_ch, &v);
	fiber_join(f, NULL);
}

/* ------------------------------------------------------------------------------------------------------------
 * A hand-off wakes its receiver WF_SYNC: onto the sender's worker, picked when the sender blocks, and no idle worker
 * is kicked for it. A sender that goes on running instead must not strand the receiver there: its slice ends at a
 * tick, the tick kicks an idle worker, and without preemption points the monitor moves queued fibers off it.
 * ---------------------------------------------------------------------------------------------------------- */

static fiber_chan_t *hand_ch;
static _Atomic uint64_t hand_sent_at, hand_recv_at;
static atomic_int hand_preempt_points;

static void *hand_receiver(void *arg)
{
	int v;

	(void)arg;
	if (fiber_chan_recv(hand_ch, &v) || v != 42)
		atomic_fetch_add(&errs, 1);
	atomic_store(&hand_recv_at, now_ns());
	return NULL;
}

static void *hand_sender(void *arg)
{
	int v = 42;
	uint64_t end;

	(void)arg;
	fiber_sleep(20 * MS_); /* the receiver is parked by now */
	atomic_store(&hand_sent_at, now_ns());
	if (fiber_chan_send(hand_ch, &v))
		atomic_fetch_add(&errs, 1);
	/* Go on running for 300 ms instead of blocking, with or without preemption points. */
	end = now_ns() + 300 * MS_;
	while (now_ns() < end)
		if (atomic_load(&hand_preempt_points))
			fiber_cond_resched();
	return NULL;
}

static void hand_main(void *arg)
{
	fiber_t *r, *s;

	(void)arg;
	fiber_spawn(&r, NULL, hand_receiver, NULL);
	fiber_spawn(&s, NULL, hand_sender, NULL);
	fiber_join(s, NULL);
	fiber_join(r, NULL);
}

static void run_handoff_busy_sender(int preempt_points)
{
	struct fiber_config c = test_cfg(2);
	uint64_t lat;

	c.tick_hz = 1000;
	atomic_store(&errs, 0);
	atomic_store(&hand_recv_at, 0);
	atomic_store(&hand_preempt_points, preempt_points);
	assert_int_equal(fiber_chan_create(&hand_ch, sizeof(int), 0), 0);
	assert_int_equal(fiber_run(&c, hand_main, NULL), 0);
	assert_int_equal(fiber_chan_destroy(hand_ch), 0);
	assert_int_equal(atomic_load(&errs), 0);
	assert_true(atomic_load(&hand_recv_at) != 0);
	lat = atomic_load(&hand_recv_at) - atomic_load(&hand_sent_at);
	print_message("receiver ran %.2f ms after the send\n", (double)lat / 1e6);
	/* Expected within a slice or a tick (a few ms); generous for a loaded host. */
	assert_true(lat < 100 * MS_);
}

static void test_chan_handoff_busy_sender_does_not_strand_receiver(void **state)
{
	(void)state;
	run_handoff_busy_sender(1);
}

static void test_chan_handoff_cpu_loop_sender_does_not_strand_receiver(void **state)
{
	(void)state;
	run_handoff_busy_sender(0);
}

static void test_chan_errors(void **state)
{
	struct fiber_config c = test_cfg(2);
	fiber_chan_t *ch, *z;
	int v = 3;
	struct fiber_chan_op bad = { NULL, 7, &v, 0 };

	assert_int_equal(fiber_chan_create(NULL, 4, 1), -EINVAL);
	assert_int_equal(fiber_chan_create(&ch, SIZE_MAX / 2, 4), -EINVAL);
	assert_int_equal(fiber_chan_create(&ch, sizeof(int), 1), 0);
	assert_int_equal(fiber_chan_send(NULL, &v), -EINVAL);
	assert_int_equal(fiber_chan_recv(NULL, &v), -EINVAL);
	assert_int_equal(fiber_chan_send(ch, NULL), -EINVAL);
	assert_int_equal(fiber_chan_recv(ch, NULL), -EINVAL);
	assert_int_equal(fiber_chan_trysend(NULL, &v), -EINVAL);
	assert_int_equal(fiber_chan_tryrecv(NULL, &v), -EINVAL);
	assert_int_equal(fiber_chan_close(NULL), -EINVAL);
	assert_int_equal(fiber_chan_destroy(NULL), -EINVAL);
	assert_int_equal(fiber_chan_select(NULL, 1, 0), -EINVAL);
	assert_int_equal(fiber_chan_select(&bad, 1, 0), -EINVAL);
	assert_int_equal(fiber_chan_select(NULL, 0, 0), -ETIMEDOUT);
	assert_int_equal(fiber_chan_tryrecv(ch, &v), -EAGAIN);
	assert_int_equal(fiber_chan_trysend(ch, &v), 0);
	assert_int_equal(fiber_chan_trysend(ch, &v), -EAGAIN);
	v = 0;
	assert_int_equal(fiber_chan_tryrecv(ch, &v), 0);
	assert_int_equal(v, 3);
	assert_int_equal(fiber_chan_close(ch), 0);
	assert_int_equal(fiber_chan_trysend(ch, &v), -EPIPE);
	assert_int_equal(fiber_chan_tryrecv(ch, &v), -EPIPE);
	assert_int_equal(fiber_chan_destroy(ch), 0);
	/* Element size 0 (a signal channel): NULL elements are fine. */
	assert_int_equal(fiber_chan_create(&z, 0, 2), 0);
	assert_int_equal(fiber_chan_trysend(z, NULL), 0);
	assert_int_equal(fiber_chan_tryrecv(z, NULL), 0);
	assert_int_equal(fiber_chan_destroy(z), 0);
	/* Destroying a channel with a blocked receiver: -EBUSY. */
	assert_int_equal(fiber_chan_create(&busy_ch, sizeof(int), 0), 0);
	assert_int_equal(fiber_run(&c, busy_main, NULL), 0);
	assert_int_equal(busy_r, -EBUSY);
	assert_int_equal(fiber_chan_destroy(busy_ch), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_chan_buffered_elements_arrive_exactly_once),
		cmocka_unit_test(test_chan_rendezvous_ring_exact),
		cmocka_unit_test(test_chan_rendezvous_ring_oversubscribed),
		cmocka_unit_test(test_chan_close_wakes_all),
		cmocka_unit_test(test_chan_select_fair_among_ready),
		cmocka_unit_test(test_chan_select_timeout),
		cmocka_unit_test(test_chan_select_exactly_one_case),
		cmocka_unit_test(test_chan_select_send_and_recv_cases),
		cmocka_unit_test(test_chan_cancel_recv_passes_message_on),
		cmocka_unit_test(test_chan_pthread_send_recv),
		cmocka_unit_test(test_chan_handoff_busy_sender_does_not_strand_receiver),
		cmocka_unit_test(test_chan_handoff_cpu_loop_sender_does_not_strand_receiver),
		cmocka_unit_test(test_chan_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
