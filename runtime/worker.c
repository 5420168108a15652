/*
 * runtime/worker.c - worker pthreads (the CPUs), their idle loop, the idle mask and the kick protocol.
 *
 * A worker's idle fiber is the pthread itself, on its own stack, with preempt_count 1 (KERNEL_MAP §3.2, §7.5). Its
 * loop: drain the wakelist, run due timers, and if anything became runnable, schedule_idle(). Otherwise it polls
 * for a few microseconds with TIF_POLLING set (a waker then needs no syscall), clears POLLING, fences, re-checks,
 * and sleeps until the next timer: in its ring while I/O is in flight there (fiber__io_idle_wait, uring.c), else in
 * futex_wait on its own tif word (TIF_RING_WAIT says which). A waker sets NEED_RESCHED on that word and, only when
 * POLLING and NEED_RESCHED were clear, writes the ring's kick eventfd or calls futex_wake (fiber__kick_worker): a
 * worker is kicked only when it is asleep, once per sleep, and a sleeping runtime burns no CPU. The tick is the
 * monitor's (monitor.c): workers get no signals.
 */
#include "io.h"

#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IDLE_POLL_NS 20000 /* poll this long before sleeping: cheaper than a futex round trip for quick work */

static void *worker_main(void *arg);
static int worker_attr_init(pthread_attr_t *attr);

void fiber__idle_mask_set(int cpu, bool idle)
{
	atomic_uint *word = &fiber__rt.idle_mask[cpu / 32];
	unsigned bit = 1u << (cpu % 32);

	/* seq_cst: leaving idle pairs with the monitor's fence before it sleeps (prepare_task_switch). */
	if (idle)
		atomic_fetch_or_explicit(word, bit, memory_order_relaxed);
	else
		atomic_fetch_and_explicit(word, ~bit, memory_order_seq_cst);
}

/* An idle worker in @allowed (or -1). Racy by nature: the caller re-checks under the rq lock or accepts a miss. */
int fiber__first_idle_worker(const cpu_set_t *allowed)
{
	unsigned n = fiber__rt.nr_workers;

	for (unsigned i = 0; i < (n + 31) / 32; i++) {
		unsigned bits = atomic_load_explicit(&fiber__rt.idle_mask[i], memory_order_relaxed);

		while (bits) {
			int cpu = (int)(i * 32 + (unsigned)__builtin_ctz(bits));

			bits &= bits - 1;
			if (cpu < (int)n && CPU_ISSET(cpu, allowed))
				return cpu;
		}
	}
	return -1;
}

static bool idle_has_work(struct worker *w)
{
	return (atomic_load_explicit(&w->idle_fiber.tif, memory_order_relaxed) & TIF_NEED_RESCHED) ||
	       atomic_load_explicit(&w->wake_list, memory_order_relaxed) ||
	       atomic_load_explicit(&w->rq.nr_running, memory_order_relaxed) ||
	       atomic_load_explicit(&fiber__rt.stopping, memory_order_relaxed) ||
	       (w->spare && (atomic_load_explicit(&w->offload_req, memory_order_relaxed) ||
			     atomic_load_explicit(&w->offload_ret, memory_order_relaxed)));
}

/* A spare thread's only work: take in a fiber starting a blocking region, hand back one that ended it. */
static void spare_work(struct worker *w)
{
	/* The acquire exchanges pair with the release stores of fiber_blocking_begin and fiber_blocking_end. */
	struct fiber *f = atomic_exchange_explicit(&w->offload_req, NULL, memory_order_acquire);

	if (f)
		fiber__offload_wake(f, w->id);
	f = atomic_exchange_explicit(&w->offload_ret, NULL, memory_order_acquire);
	if (f) {
		fiber__offload_wake(f, -1);
		atomic_store_explicit(&w->spare_busy, 0, memory_order_release); /* pairs with fiber__spare_claim */
	}
}

static void idle_sleep(struct worker *w)
{
	struct fiber *idle = &w->idle_fiber;
	uint64_t next = atomic_load_explicit(&w->timers.next_expiry, memory_order_relaxed);
	struct timespec ts, *tsp = NULL;
	bool ring = w->io && fiber__io_idle_needs_ring(w);
	unsigned val, nval, sleeps;

	/*
	 * Stop polling, and say where the sleep is (TIF_RING_WAIT: in the ring, else on this word) in the same RMW, so
	 * that a kicker that finds POLLING clear knows how to wake us (fiber__kick_worker). The full fence orders it
	 * before the re-checks and pairs with the waker's fetch_or.
	 */
	sleeps = atomic_load_explicit(&w->nr_sleeps, memory_order_relaxed);
	/* Counted before the CAS: a kicker that sees POLLING clear sees this too. */
	atomic_store_explicit(&w->nr_sleeps, sleeps + 1, memory_order_relaxed);
	val = atomic_load_explicit(&idle->tif, memory_order_relaxed);
	for (;;) {
		nval = (val & ~(TIF_POLLING | TIF_RING_WAIT)) | (ring ? TIF_RING_WAIT : 0);
		if (atomic_compare_exchange_weak_explicit(&idle->tif, &val, nval, memory_order_seq_cst,
							  memory_order_relaxed))
			break;
	}
	val = nval;
	if (!(val & TIF_NEED_RESCHED) && !idle_has_work(w)) {
		if (next != UINT64_MAX) {
			uint64_t now = fiber__sched_clock();
			uint64_t d = next > now ? next - now : 0;

			ts.tv_sec = (time_t)(d / 1000000000ull);
			ts.tv_nsec = (long)(d % 1000000000ull);
			tsp = &ts;
		}
		if (ring) {
			fiber__io_idle_wait(w, tsp); /* submits, then blocks until a CQE, the kick's or the timeout */
		} else if (!tsp || ts.tv_sec || ts.tv_nsec) {
			uint64_t t0 = fiber__sched_clock();

			fiber__futex(&idle->tif, FUTEX_WAIT_PRIVATE, (int)val, tsp);
			fiber__steal_slept(w, t0);
		}
	}
	/* Polling again: a kicker that sees it skips the wake-up, and its NEED_RESCHED is what the loop reads next. */
	atomic_fetch_or_explicit(&idle->tif, TIF_POLLING, memory_order_seq_cst);
}

/*
 * do_idle: the idle fiber's loop. Returns when the runtime stops. While it polls it also looks for queued fibers
 * on busier workers (newidle balance) every microsecond or so.
 */
static void do_idle(struct worker *w)
{
	for (;;) {
		uint64_t poll_until = 0, next_pull = 0;
		bool polling = false;

		for (;;) {
			uint64_t next, now;
			bool ring_wait = false;

			/* Nothing else to run: submit and reap, or leave both to the wait in the ring (uring.c). */
			if (w->io)
				ring_wait = fiber__io_idle_work(w);
			if (w->spare)
				spare_work(w);
			if (atomic_load_explicit(&w->wake_list, memory_order_relaxed))
				fiber__sched_ttwu_pending(w);
			next = atomic_load_explicit(&w->timers.next_expiry, memory_order_relaxed);
			now = fiber__sched_clock();
			if (next != UINT64_MAX && now >= next)
				fiber__run_timers(&w->timers, now);
			if (atomic_load_explicit(&w->rq.nr_running, memory_order_relaxed))
				break;
			/* Pairs with fiber__workers_stop's store. */
			if (atomic_load_explicit(&fiber__rt.stopping, memory_order_acquire))
				break;
			clear_tsk_need_resched(&w->idle_fiber);
			/*
			 * A kicker that found NEED_RESCHED set did not kick (fiber__kick_worker): what it published before
			 * its fetch_or must be seen by the look for work below. Pairs with that seq_cst fetch_or, through
			 * the RMW that cleared the flag.
			 */
			atomic_thread_fence(memory_order_acquire);
			if (now >= next_pull && !w->spare) { /* nothing is pulled onto a spare */
				if (fiber__newidle_balance(w))
					break;
				next_pull = now + 1000;
			}
			if (!poll_until) {
				/* once per idle period, before polling or sleeping */
				fiber__live_flush(w);
				if (!w->spare)
					fiber__stack_prefault();
			}
			/*
			 * With I/O in flight the next work most likely comes with a completion, which ends the wait in
			 * the ring anyway: no polling then. Spinning for it cost a busy echo worker more CPU than the
			 * sleep it saved, since the ring's wait returns at once when a completion is already there.
			 */
			if (!ring_wait && !poll_until) {
				poll_until = now + IDLE_POLL_NS;
				fiber__idle_polling(true);
				polling = true;
			}
			if (!ring_wait && now < poll_until) {
				cpu_relax();
				continue;
			}
			if (polling)
				fiber__idle_polling(false);
			polling = false;
			idle_sleep(w);
			poll_until = 0;
			next_pull = 0;
		}
		if (polling)
			fiber__idle_polling(false);
		if (atomic_load_explicit(&fiber__rt.stopping, memory_order_acquire) &&
		    !atomic_load_explicit(&w->rq.nr_running, memory_order_relaxed))
			return;
		fiber__schedule_idle();
		w = this_worker();
	}
}

/*
 * Pinning, only on request (FIBER_CFG_PIN, FIBER_PIN=1): worker i goes to the i-th CPU the process may use (round
 * robin when there are more workers), so that a worker is a CPU as in the kernel's model. By default the workers
 * are left to the host scheduler, like Go's Ms: two libfiber processes then never share one CPU while another
 * idles, which a fixed "worker 0 on the first allowed CPU" would make them do.
 */
static void worker_pin(struct worker *w)
{
	cpu_set_t allowed, one;
	int n, k = 0;

	if (!fiber__rt.pin_workers)
		return;
	if (sched_getaffinity(0, sizeof(allowed), &allowed))
		return;
	n = CPU_COUNT(&allowed);
	if (n <= 1)
		return;
	k = w->id % n;
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &allowed))
			continue;
		if (k-- == 0) {
			CPU_ZERO(&one);
			CPU_SET(cpu, &one);
			pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
			return;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct fiber *idle = &w->idle_fiber;
	pthread_attr_t attr;
	char name[16];
	int ret;

	fiber__tls_worker = w;
	w->errno_loc = &errno;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &w->native_stack_bottom, &w->native_stack_size);
		pthread_attr_destroy(&attr);
	}
	if (w->spare)
		snprintf(name, sizeof(name), "fiber-s%d", w->id - (int)fiber__rt.nr_workers);
	else
		snprintf(name, sizeof(name), "fiber-w%d", w->id);
	pthread_setname_np(pthread_self(), name);
	if (!w->spare)
		worker_pin(w);
	fiber__overflow_setup(); /* stack.c: the SIGSEGV handler's alternate stack */

	w->current = idle;
	w->preempt_count = 1; /* the idle fiber runs with preemption disabled (init_idle_preempt_count) */
	/* The ring is created here, on its owner's thread (SINGLE_ISSUER); workers_start waits for the outcome. */
	ret = fiber__io_worker_init(w);
	atomic_store_explicit(&w->io_state, ret ? ret : 1, memory_order_release); /* pairs with workers_start */
	fiber__futex(&w->io_state, FUTEX_WAKE_PRIVATE, 1, NULL);
	if (ret) {
		fiber__overflow_teardown();
		fiber__tls_worker = NULL;
		return NULL;
	}
	WRITE_ONCE(w->tid, gettid()); /* the monitor reads it */
	fiber__steal_init(w);
	/* Timer slack at its minimum: the idle sleep's timeout is the next fiber timer, and 50 us of slack is late. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	/* Under the rq lock: a spawner's enqueue here reads rq->curr's exec_start (update_curr_fair). */
	spin_lock(&w->rq.lock);
	idle->exec_start = fiber__sched_clock();
	spin_unlock(&w->rq.lock);
	fiber__idle_mask_set(w->id, true);
	do_idle(w);
	fiber__idle_mask_set(w->id, false);
	fiber__steal_exit(w);
	fiber__overflow_teardown();
	fiber__tls_worker = NULL;
	return NULL;
}

static void worker_init(struct worker *w, int id)
{
	struct fiber *idle = &w->idle_fiber;

	memset(w, 0, sizeof(*w));
	w->id = id;
	spin_lock_init(&w->rq.lock);
	w->rq.cpu = id;
	w->rq.steal_next = UINT64_MAX; /* until the worker's thread takes its first sample (fiber__steal_init) */
	atomic_init(&w->stat_fd, -1);
	fiber__init_cfs_rq(&w->rq.cfs);
	fiber__init_rt_rq(&w->rq.rt);
	fiber__init_dl_rq(&w->rq.dl);
	fiber__timer_base_init(&w->timers);
	w->timers.cpu = id;
	fiber__stack_cache_init(&w->stacks, STACK_CACHE_WORKER);
	spin_lock_init(&w->all_lock);
	INIT_LIST_HEAD(&w->all_fibers);
	spin_lock_init(&w->stop_lock);
	INIT_LIST_HEAD(&w->stop_work);

	/* The idle fiber: id 0, always RUNNING, never queued, on the CPU from the start. */
	idle->id = 0;
	idle->flags = PF_IDLE;
	idle->magic = FIBER_MAGIC_LIVE;
	idle->cpu = id;
	idle->sched_class = &fiber__idle_sched_class;
	idle->policy = FIBER_SCHED_IDLE;
	idle->prio = idle->normal_prio = idle->static_prio = MAX_RT_PRIO + 40; /* below every fair fiber */
	idle->dl.dl_cpu = -1;
	atomic_init(&idle->on_cpu, 1);
	atomic_init(&idle->tif, TIF_POLLING);
	atomic_init(&idle->usage, 1);
	spin_lock_init(&idle->pi_lock);
	snprintf(idle->name, sizeof(idle->name), "idle/%d", id);
	CPU_ZERO(&idle->cpus_mask);
	CPU_SET(id, &idle->cpus_mask);
	idle->nr_cpus_allowed = 1;
	w->rq.idle = idle;
	w->rq.curr = idle;
}

/*
 * The worker threads' attributes: with a host policy (fiber_config.host_policy, FIBER_WORKER_SCHED) the threads are
 * created with it, so that a process that may not use it fails here with EPERM, before any worker runs.
 */
static int worker_attr_init(pthread_attr_t *attr)
{
	struct sched_param sp = { .sched_priority = fiber__rt.host_priority };
	int err = pthread_attr_init(attr);

	if (err || fiber__rt.host_policy == SCHED_OTHER)
		return err;
	err = pthread_attr_setinheritsched(attr, PTHREAD_EXPLICIT_SCHED);
	if (!err)
		err = pthread_attr_setschedpolicy(attr, fiber__rt.host_policy);
	if (!err)
		err = pthread_attr_setschedparam(attr, &sp);
	if (err)
		pthread_attr_destroy(attr);
	return err;
}

int fiber__workers_start(unsigned n)
{
	struct worker *ws;
	pthread_attr_t attr;
	unsigned i, ns = fiber__rt.spare_threads; /* env.c: one per worker by default */
	int ret;

	ws = fiber__zalloc_lines((n + ns) * sizeof(*ws));
	if (!ws) {
		fiber__start_error("out of memory for %u workers (%zu bytes); lower fiber_config.workers or "
				   "FIBER_WORKERS, or raise the memory limit",
				   n, (n + ns) * sizeof(*ws));
		return -ENOMEM;
	}
	ret = worker_attr_init(&attr);
	if (ret) {
		fiber__worker_create_error(0, n, ret);
		fiber__free_lines(ws, (n + ns) * sizeof(*ws));
		return -ret;
	}
	for (i = 0; i < n + ns; i++) {
		worker_init(&ws[i], (int)i);
		ws[i].spare = i >= n;
	}
	pthread_mutex_init(&fiber__rt.spare_lock, NULL);
	fiber__rt.workers = ws;
	fiber__rt.nr_workers = n;
	fiber__rt.nr_spares = ns;
	for (i = 0; i < n; i++) {
		ret = -pthread_create(&ws[i].thr, &attr, worker_main, &ws[i]);
		if (ret) {
			fiber__worker_create_error(i, n, -ret);
			atomic_store(&fiber__rt.stopping, 1);
			while (i--) {
				fiber__kick_worker(&ws[i]);
				pthread_join(ws[i].thr, NULL);
			}
			for (i = 0; i < n + ns; i++) {
				fiber__io_worker_exit(&ws[i]);
				fiber__stack_cache_drain(&ws[i].stacks);
				fiber__timer_base_destroy(&ws[i].timers);
			}
			fiber__rt.workers = NULL;
			fiber__rt.nr_workers = 0;
			fiber__rt.nr_spares = 0;
			fiber__free_lines(ws, (n + ns) * sizeof(*ws));
			pthread_attr_destroy(&attr);
			return ret;
		}
	}
	pthread_attr_destroy(&attr);
	/* Each worker sets its ring up on its own thread: a refusal (memory, RLIMIT_MEMLOCK) fails the start. */
	ret = 0;
	for (i = 0; i < n; i++) {
		int st;

		/* Pairs with worker_main's release store of io_state: the ring is set up when it is seen. */
		while (!(st = atomic_load_explicit(&ws[i].io_state, memory_order_acquire)))
			fiber__futex(&ws[i].io_state, FUTEX_WAIT_PRIVATE, 0, NULL);
		if (st < 0 && !ret) {
			ret = st;
			fiber__start_error("cannot set up io_uring for worker %u (%s); raise RLIMIT_MEMLOCK, lower "
					   "fiber_config.io_entries, or set FIBER_IO=poll",
					   i, strerror(-st));
		}
	}
	if (ret)
		fiber__workers_stop();
	return ret;
}

/* Called once no fiber is left: the workers leave their idle loops, their caches are freed. */
void fiber__workers_stop(void)
{
	unsigned n = fiber__rt.nr_workers, ns = fiber__rt.nr_spares;
	struct worker *ws = fiber__rt.workers;

	/* Before the kicks: pairs with the idle loops' acquire loads of stopping (do_idle). */
	atomic_store_explicit(&fiber__rt.stopping, 1, memory_order_seq_cst);
	for (unsigned i = 0; i < n + ns; i++)
		if (!ws[i].spare || ws[i].spare_started)
			fiber__kick_worker(&ws[i]);
	for (unsigned i = 0; i < n + ns; i++)
		if (!ws[i].spare || ws[i].spare_started)
			pthread_join(ws[i].thr, NULL);
	for (unsigned i = 0; i < n + ns; i++) {
		fiber__io_worker_exit(&ws[i]); /* after the join: nobody submits or kicks any more */
		fiber__stack_cache_drain(&ws[i].stacks);
		fiber__timer_base_destroy(&ws[i].timers);
	}
	pthread_mutex_destroy(&fiber__rt.spare_lock);
	fiber__rt.workers = NULL;
	fiber__rt.nr_workers = 0;
	fiber__rt.nr_spares = 0;
	fiber__free_lines(ws, (n + ns) * sizeof(*ws));
}

/*
 * A spare thread for a fiber entering a blocking region (fiber_blocking_begin): claimed, and its thread created
 * the first time it is needed (a runtime that never blocks never has one). NULL when none is free.
 */
struct worker *fiber__spare_claim(void)
{
	unsigned n = fiber__rt.nr_workers;

	for (unsigned i = 0; i < fiber__rt.nr_spares; i++) {
		struct worker *s = &fiber__rt.workers[n + i];
		int zero = 0;
		bool started;

		if (atomic_load_explicit(&s->spare_busy, memory_order_relaxed) ||
		    /* acquire: pairs with the release stores that free the spare (spare_work; the failure below) */
		    !atomic_compare_exchange_strong_explicit(&s->spare_busy, &zero, 1, memory_order_acquire,
							     memory_order_relaxed))
			continue;
		pthread_mutex_lock(&fiber__rt.spare_lock);
		if (!s->spare_started) {
			pthread_attr_t attr;

			if (!worker_attr_init(&attr)) {
				s->spare_started = !pthread_create(&s->thr, &attr, worker_main, s);
				pthread_attr_destroy(&attr);
			}
		}
		started = s->spare_started;
		pthread_mutex_unlock(&fiber__rt.spare_lock);
		if (started)
			return s;
		atomic_store_explicit(&s->spare_busy, 0, memory_order_release);
		return NULL; /* no thread (RLIMIT_NPROC...): the region runs in place */
	}
	return NULL;
}
