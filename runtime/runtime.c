/*
 * runtime/runtime.c - the runtime's start and stop (fiber_runtime_start/stop, fiber_run) and the gate that plain
 * threads pass to call into it; the configuration and the environment are read in env.c.
 *
 * Plain threads and the runtime's end: a plain pthread that calls into a running runtime (spawn, cancel, setattr)
 * holds it open for the duration of the call (fiber__rt_enter/fiber__rt_exit); fiber_runtime_stop closes that gate
 * before it frees the workers and waits until the calls in flight have left. Fibers need no gate: while one runs,
 * nr_fibers is not 0 and stop waits.
 */
#include "io.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

struct runtime fiber__rt;
#define GATE_CLOSED (1 << 30) /* fiber__rt.gate: stop has begun to tear the runtime down */
static pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER; /* start/stop against each other */

/* ------------------------------------------------------------------------------------------------------------
 * Runtime
 * ---------------------------------------------------------------------------------------------------------- */

const char *fiber_version(void)
{
#define STR2(x) #x
#define STR(x) STR2(x)
	return STR(FIBER_VERSION_MAJOR) "." STR(FIBER_VERSION_MINOR) "." STR(FIBER_VERSION_PATCH);
}

void fiber_config_init(struct fiber_config *cfg)
{
	if (cfg)
		memset(cfg, 0, sizeof(*cfg));
}

static int runtime_start(const struct fiber_config *cfg)
{
	struct fiber__start_cfg c;
	struct fiber_config dbg;
	int ret;

	if (this_worker()) {
		fiber__start_error("fiber_runtime_start called from a fiber or worker: the runtime is running");
		return -EBUSY;
	}
	ret = fiber__config_resolve(cfg, &c); /* env.c; prints what it refuses */
	if (ret)
		return ret;
	/* The debugging fields (stats.c, trace.c) are resolved apart from the rest: env FIBER_DUMP_SIGNAL, ... */
	fiber_config_init(&dbg);
	if (cfg)
		dbg = *cfg;
	ret = fiber__debug_config(&dbg);
	if (ret)
		return ret;

	pthread_mutex_lock(&rt_lock);
	if (atomic_load(&fiber__rt.running)) {
		pthread_mutex_unlock(&rt_lock);
		fiber__start_error("a runtime is already running; fiber_runtime_stop() it first");
		return -EBUSY;
	}
	fiber__clock_init();
	ret = fiber__trace_start(dbg.trace_file,
				 c.workers + c.spare_threads); /* first: nothing to undo when it fails */
	if (ret) {
		pthread_mutex_unlock(&rt_lock);
		return ret;
	}
	fiber__rt.stack_size = page_round(c.stack_size);
	fiber__rt.tick_hz = c.tick_hz;
	fiber__rt.cfg_flags = c.flags;
	fiber__rt.tick_ns = c.tick_hz ? 1000000000ull / c.tick_hz : 1000000ull;
	fiber__rt.rr_timeslice_ns = c.rr_timeslice_ms * 1000000ull;
	fiber__rt.pin_workers = c.pin;
	fiber__rt.host_policy = c.host_policy;
	fiber__rt.host_priority = c.host_priority;
	fiber__rt.io_entries = c.io_entries;
	fiber__rt.spare_threads = c.spare_threads;
	/* sysctl_sched_base_slice: 0.75 ms scaled by 1 + ilog2(min(cpus, 8)), as the kernel's tunable scaling */
	fiber__rt.base_slice_ns = 750000ull * (1u + (unsigned)(31 - __builtin_clz(c.workers < 8 ? c.workers : 8)));
	spin_lock_init(&fiber__rt.dl_lock);
	atomic_store(&fiber__rt.nr_stoppers, 0);
	atomic_store(&fiber__rt.stopping, 0);
	atomic_store(&fiber__rt.nr_fibers, 0);
	atomic_store(&fiber__rt.stop_waiting, 0);
	fiber__rt.gen++;
	/* stack_lock is not re-initialized: a plain thread may be freeing a fiber of an earlier runtime. */
	fiber__stack_cache_init(&fiber__rt.gstacks, STACK_CACHE_GLOBAL);
	for (unsigned i = 0; i < ARRAY_SIZE(fiber__rt.idle_mask); i++)
		atomic_store(&fiber__rt.idle_mask[i], 0);
	if (!atomic_load(&fiber__rt.next_id))
		atomic_store(&fiber__rt.next_id, 1); /* id 0 is the idle fibers' */
	ret = fiber__io_select(); /* uring.c: io_uring, or the poll path when the kernel refuses it */
	if (!ret)
		ret = fiber__workers_start(c.workers);
	if (ret) { /* worker.c (or uring.c) printed what failed */
		fiber__io_release();
		fiber__trace_stop();
		fiber__stack_cache_drain(&fiber__rt.gstacks);
		pthread_mutex_unlock(&rt_lock);
		return ret;
	}
	ret = fiber__stoppers_start();
	if (!ret)
		ret = fiber__monitor_start();
	if (ret) {
		if (ret == -ENOMEM)
			fiber__start_error("out of memory for the stopper fibers; lower fiber_config.workers or "
					   "FIBER_STACK_SIZE, or raise the memory limit");
		else
			fiber__start_error("cannot create the monitor thread (%s); raise RLIMIT_NPROC or lower "
					   "fiber_config.workers",
					   strerror(-ret));
		fiber__stoppers_stop();
		fiber__workers_stop();
		fiber__io_release();
		fiber__trace_stop();
		fiber__stack_cache_drain(&fiber__rt.gstacks);
		pthread_mutex_unlock(&rt_lock);
		return ret;
	}
	/* Open the gate for plain threads; the count of late callers that saw it closed stays balanced. */
	atomic_fetch_and(&fiber__rt.gate, ~GATE_CLOSED);
	/* Pairs with the acquire loads of running (fiber__rt_enter, spawn_allowed, the stats calls). */
	atomic_store_explicit(&fiber__rt.running, 1, memory_order_release);
	fiber__debug_start(&dbg);
	pthread_mutex_unlock(&rt_lock);
	return 0;
}

/*
 * A plain thread's way into a runtime call that touches the workers: true if the runtime runs and stays until
 * fiber__rt_exit. A fiber (or a worker's own thread) needs no gate: the runtime cannot stop under it.
 */
bool fiber__rt_enter(void)
{
	if (this_worker())
		return atomic_load_explicit(&fiber__rt.running, memory_order_acquire);
	/* seq_cst: pairs with stop's fetch_or of GATE_CLOSED; either we see it closed or stop sees us inside. */
	if (!(atomic_fetch_add_explicit(&fiber__rt.gate, 1, memory_order_seq_cst) & GATE_CLOSED) &&
	    atomic_load_explicit(&fiber__rt.running, memory_order_acquire))
		return true;
	fiber__rt_exit();
	return false;
}

/* fiber__rt_exit (internal.h) for a plain thread: leave the gate, wake stop when it waits for the last one. */
void fiber__rt_exit_thread(void)
{
	/* Release: the call's work before the exit; pairs with wait_for_fibers' acquire loads of the gate. */
	if (atomic_fetch_sub_explicit(&fiber__rt.gate, 1, memory_order_release) == (GATE_CLOSED | 1))
		fiber__futex(&fiber__rt.gate, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

int fiber_runtime_start(const struct fiber_config *cfg)
{
	int saved = errno; /* environment parsing, mmap, madvise: the caller's errno stays as it was */
	int ret = runtime_start(cfg);

	errno = saved;
	return ret;
}

/* Wait until no fiber is left (nr_fibers is also the futex word). */
static void wait_for_nr_fibers(void)
{
	for (;;) {
		int n = atomic_load_explicit(&fiber__rt.nr_fibers, memory_order_acquire);

		if (n == 0)
			break;
		/* A timeout as a safety net only: the last reaper wakes us. */
		struct timespec ts = { 0, 100 * 1000 * 1000 };

		fiber__futex(&fiber__rt.nr_fibers, FUTEX_WAIT_PRIVATE, n, &ts);
	}
}

/*
 * Wait until no fiber is left and no plain thread is inside a runtime call. Fibers may spawn fibers until the
 * last one exits; plain threads may spawn until the gate closes. A plain spawn that got through the gate before
 * it closed may still add a fiber, so after the calls in flight have left, look at nr_fibers again.
 */
static void wait_for_fibers(void)
{
	/*
	 * seq_cst: a plain spawn that does not see it got through the gate first, and is waited for below. Pairs
	 * with spawn_allowed's seq_cst load (fiber.c); the acquire loads of nr_fibers with the last exit's
	 * fetch_sub in finish_task_switch, the fetch_or of GATE_CLOSED with fiber__rt_enter's fetch_add.
	 */
	atomic_store_explicit(&fiber__rt.stop_waiting, 1, memory_order_seq_cst);
	for (;;) {
		int g;

		wait_for_nr_fibers();
		atomic_fetch_or_explicit(&fiber__rt.gate, GATE_CLOSED, memory_order_seq_cst);
		while ((g = atomic_load_explicit(&fiber__rt.gate, memory_order_acquire)) != GATE_CLOSED)
			fiber__futex(&fiber__rt.gate, FUTEX_WAIT_PRIVATE, g, NULL);
		if (!atomic_load_explicit(&fiber__rt.nr_fibers, memory_order_acquire))
			break;
	}
	atomic_store(&fiber__rt.stop_waiting, 0);
}

int fiber_runtime_stop(void)
{
	int saved = errno;

	if (this_worker())
		return -EDEADLK;
	pthread_mutex_lock(&rt_lock);
	if (!atomic_load(&fiber__rt.running)) {
		pthread_mutex_unlock(&rt_lock);
		return -ESRCH;
	}
	wait_for_fibers();
	fiber__debug_stop(); /* after the wait: a program that hangs in stop still gets its dump, its deadlock report */
	fiber__monitor_stop();
	fiber__stoppers_stop();
	fiber__workers_stop();
	fiber__io_release(); /* the readiness path's poller: every fiber has exited */
	fiber__trace_stop(); /* the workers are gone: the buffers are quiescent */
	atomic_store(&fiber__rt.running, 0);
	fiber__stack_cache_drain(&fiber__rt.gstacks);
	pthread_mutex_unlock(&rt_lock);
	errno = saved;
	return 0;
}

struct run_arg {
	void (*fn)(void *);
	void *arg;
};

static void *run_main(void *a)
{
	struct run_arg *ra = a;

	ra->fn(ra->arg);
	return NULL;
}

int fiber_run(const struct fiber_config *cfg, void (*fn)(void *), void *arg)
{
	struct run_arg ra = { fn, arg };
	struct fiber_attr attr;
	int ret;

	if (!fn)
		return -EINVAL;
	ret = fiber_runtime_start(cfg);
	if (ret)
		return ret;
	fiber_attr_init(&attr);
	attr.name = "main";
	attr.flags = FIBER_ATTR_DETACHED;
	ret = fiber_spawn(NULL, &attr, run_main, &ra);
	fiber_runtime_stop();
	return ret;
}

unsigned fiber_worker_count(void)
{
	return atomic_load_explicit(&fiber__rt.running, memory_order_acquire) ? fiber__rt.nr_workers : 0;
}

int fiber_worker_id(void)
{
	struct worker *w = this_worker();

	return w && !is_idle_task(w->current) && !w->spare ? w->id : -1; /* a spare thread is no worker */
}
