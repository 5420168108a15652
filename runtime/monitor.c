/*
 * runtime/monitor.c - the runtime's monitor thread: the tick, stuck workers, periodic balance (Go's sysmon; in the
 * kernel's terms the timer interrupt, the soft-lockup watchdog and the periodic load balancer).
 *
 * One plain pthread per runtime. It owns no scheduler state and never runs fibers; it only looks at workers
 * through what they publish lock-free (tick_wanted, pp_seq, rq->nr_running, the timer base's next expiry,
 * the idle mask) and acts through the same locked paths every worker uses:
 *
 *  - The tick. For each worker whose tick is needed (two runnable fibers or a deadline fiber: tick_wanted, set by
 *    the worker at the switch or enqueue that needs it, cleared at idle entry or by a tick that finds it no longer
 *    needed, core.c tick_update_switch), it stores tick_pending = 1 at tick_hz; the worker runs the class's
 *    task_tick at its next preemption point (fiber__sched_tick). No signal is sent and no handler installed, so
 *    fibers' own system calls never see EINTR because of libfiber, and a signal mask cannot stop time slicing.
 *  - Stuck workers. A worker that has not passed a preemption point (pp_seq unchanged) for STUCK_NS while it has
 *    something waiting - queued fibers, armed timers, wake-ups handed to it - is marked stuck (a fiber in a
 *    blocking system call, or a CPU loop without preemption points). The monitor then runs its due timers itself
 *    (fiber__run_timers from another thread is allowed: one runner at a time) and pushes its queued fibers that
 *    may move to other workers (move_queued_task, KERNEL_MAP §6.2 B4: never the running one). Wake-up placement
 *    avoids stuck workers. The worker clears the mark at its next preemption point. The first scan that sees no
 *    progress takes the thread's CPU-time baseline (worker_held) and brings the scan period back to the base. With
 *    the period backed off to MON_PERIOD_MAX_NS, the last scan that saw progress may have come a period after the
 *    last preemption point and the next one a period later, so a blocked worker is found stuck 8 ms after its last
 *    preemption point at worst (a thread spinning in the CPU one base period later), against 4 ms at the base.
 *  - Periodic balance (KERNEL_MAP §10, sched_balance_domains): every balance interval it moves queued fibers
 *    from the busiest worker to the least busy one until they differ by at most one, for an imbalance that lasted
 *    from one pass to the next (periodic_balance); the interval doubles while nothing moves (up to
 *    BALANCE_MAX_NS) and resets when it moved something.
 *
 *  - Stack trimming: every STACK_TRIM_NS, the global stack cache gives back what no spawn needed over the period
 *    (fiber__stack_cache_trim, runtime/stack.c), so that the memory of a burst of fibers does not stay resident.
 *
 * Each scan is a thread wake-up (20-40 us of CPU on a VM), so the monitor keeps their number down, as Go's sysmon
 * does: the period (1 ms, or the tick's if shorter) doubles up to MON_PERIOD_MAX_NS after each scan that found
 * nothing to do - no tick due (workers that keep switching need none, tick_due), no worker without progress, no
 * rescue, no balance move - and goes back to the base at the first scan that acts. A CPU-bound fiber with a peer
 * waiting is ticked at the base period; one that starts hogging after a quiet spell gets its first tick up to
 * MON_PERIOD_MAX_NS late (Go preempts after 10 ms).
 *
 * When no worker needs watching (all idle, or each running a lone fiber with nothing waiting) for MON_QUIET_NS,
 * the monitor sleeps in futex_wait until a worker that starts needing it kicks it (fiber__monitor_kick: one load
 * when it is awake); while the global stack cache holds stacks, only until the next trim (a stack put into the
 * empty cache kicks it). Not at the first quiet scan: a server's worker idles between bursts thousands of times a
 * second, and each burst then paid a futex wake and the monitor a wake-up.
 */
#include "internal.h"

#include <fcntl.h>
#include <sys/prctl.h>

#define MON_PERIOD_NS 1000000ull     /* look at the workers this often while one needs it */
#define STUCK_NS 3000000ull	     /* no preemption point for this long with work waiting: stuck */
#define STUCK_BUSY_NS 10000000ull    /* stuck this long: its queued fibers go to busy workers too */
#define MON_PERIOD_MAX_NS 4000000ull /* the longest scan period, reached while scans find nothing to do */
#define MON_QUIET_NS 16000000ull     /* nothing to watch for this long: sleep until kicked */
#define BALANCE_MIN_NS 4000000ull
#define BALANCE_MAX_NS 32000000ull

static struct {
	pthread_t thr;
	bool started;
	atomic_int sleeping; /* futex word: 1 while asleep with nothing to watch */
	atomic_int napping;  /* futex word: 1 while between scans with the period backed off (MON_PERIOD_MAX_NS) */
	atomic_int stop;
	uint64_t next_balance, balance_interval;
	int bal_src, bal_dst; /* the imbalance the last periodic balance found (-1: none) */
	uint64_t next_trim;   /* sched_clock of the next fiber__stack_cache_trim */
	uint64_t period;      /* the current scan period: the base one, doubled after each scan with nothing to do */
	uint64_t quiet_since; /* sched_clock of the first scan of a run that found nothing to watch (0: none) */
	atomic_uint nr_scans, nr_woken; /* scans, and futex wakes sent by fiber__monitor_kick (for tests) */
} mon;

/* A worker started needing the monitor: wake it if it sleeps for good. Context: any thread, no lock needed. */
void fiber__monitor_kick(void)
{
	if (likely(!atomic_load_explicit(&mon.sleeping, memory_order_relaxed)))
		return;
	/* Pairs with monitor_main's seq_cst store of sleeping = 1 before its last scan. */
	if (atomic_exchange_explicit(&mon.sleeping, 0, memory_order_seq_cst)) {
		atomic_fetch_add_explicit(&mon.nr_woken, 1, memory_order_relaxed);
		fiber__futex(&mon.sleeping, FUTEX_WAKE_PRIVATE, 1, NULL);
	}
}

/*
 * A worker now runs a fiber whose class needs every tick (fiber__tick_precise): a scan is due within a tick, not
 * after a backed-off period. A load when the monitor scans at the base period anyway; a futex wake when it naps.
 */
void fiber__monitor_kick_precise(void)
{
	/* seq_cst: after the caller's seq_cst store of tick_precise (the store-buffering pair with the nap below) */
	if (likely(!atomic_load_explicit(&mon.napping, memory_order_seq_cst)))
		return;
	if (atomic_exchange_explicit(&mon.napping, 0, memory_order_seq_cst))
		fiber__futex(&mon.napping, FUTEX_WAKE_PRIVATE, 1, NULL);
}

void fiber__monitor_counts(unsigned *scans, unsigned *woken)
{
	*scans = atomic_load_explicit(&mon.nr_scans, memory_order_relaxed);
	*woken = atomic_load_explicit(&mon.nr_woken, memory_order_relaxed);
}

/* Something waits on @w that only @w would otherwise handle: queued fibers, timers, handed-over wake-ups. */
static bool worker_has_waiting(struct worker *w)
{
	return atomic_load_explicit(&w->rq.nr_running, memory_order_relaxed) >= 2 ||
	       atomic_load_explicit(&w->timers.next_expiry, memory_order_relaxed) != UINT64_MAX ||
	       atomic_load_explicit(&w->wake_list, memory_order_relaxed);
}

/* Worker @cpu runs its idle fiber (the idle mask, a lock-free peek). */
static bool worker_idle_now(unsigned cpu)
{
	return atomic_load_explicit(&fiber__rt.idle_mask[cpu / 32], memory_order_relaxed) & (1u << (cpu % 32));
}

static bool worker_needs_watch(struct worker *w)
{
	if (worker_idle_now((unsigned)w->id))
		return false; /* its idle loop handles its timers and wake-ups itself */
	return atomic_load_explicit(&w->tick_wanted, memory_order_relaxed) || worker_has_waiting(w) ||
	       atomic_load_explicit(&w->stuck, memory_order_relaxed) ||
	       atomic_load_explicit(&w->blocking, memory_order_relaxed);
}

/*
 * A worker to take queued work from the stuck @src: the least loaded one that is not stuck, and while @src has
 * been stuck for less than STUCK_BUSY_NS only an idle one. A worker thread the host has preempted for a few ms
 * looks stuck too; moving its fibers onto busy workers would only make them ping-pong. -1 if none.
 */
static int rescue_target(struct worker *src, bool idle_only)
{
	unsigned best_load = UINT_MAX;
	int best = -1;

	for (unsigned i = 0; i < fiber__rt.nr_workers; i++) {
		struct worker *w = &fiber__rt.workers[i];
		unsigned load;

		if (w == src || atomic_load_explicit(&w->stuck, memory_order_relaxed))
			continue;
		if (idle_only && !worker_idle_now(i))
			continue;
		load = atomic_load_explicit(&w->rq.nr_running, memory_order_relaxed);
		if (load < best_load) {
			best_load = load;
			best = (int)i;
		}
	}
	return best;
}

/* @w is stuck (for @age ns): run its due timers here and move the fibers queued behind the one it is stuck in. */
static void rescue(struct worker *w, uint64_t now, uint64_t age)
{
	if (atomic_load_explicit(&w->timers.next_expiry, memory_order_relaxed) <= now)
		fiber__run_timers(&w->timers, now);
	if (atomic_load_explicit(&w->wake_list, memory_order_relaxed))
		fiber__sched_ttwu_pending(w); /* its switch-outs have completed: it is stuck in a fiber */
	for (int moved = 0; moved < 64; moved++) {
		int dst = rescue_target(w, age < STUCK_BUSY_NS);

		if (dst < 0 || atomic_load_explicit(&w->rq.nr_running, memory_order_relaxed) < 2)
			break;
		if (!fiber__balance_move_one(&w->rq, cpu_rq(dst)))
			break;
	}
}

/* The worker thread's CPU time, ns (0 if it cannot be read). */
static uint64_t thread_cpu_ns(struct worker *w)
{
	struct timespec ts;
	clockid_t cid;

	if (pthread_getcpuclockid(w->thr, &cid) || clock_gettime(cid, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Is @w's thread really held - blocked in the kernel, or spinning on a CPU - rather than runnable and waiting for
 * the host to give it a CPU (on a loaded machine a worker thread is often preempted for a few ms, and moving its
 * fibers then would only make them ping-pong)? Asked only of a worker that passed no preemption point for
 * STUCK_NS. A spinning worker is told from a preempted one by its thread CPU time since the first scan that saw
 * no progress (the monitor samples it then).
 */
static bool worker_held(struct worker *w, uint64_t now)
{
	char path[64], buf[512], *p = NULL;
	uint64_t cpu;
	bool spinning;
	ssize_t n = -1;
	int fd;

	fd = atomic_load_explicit(&w->stat_fd, memory_order_acquire); /* opened by the worker (fiber__steal_init) */
	if (fd >= 0) {
		n = pread(fd, buf, sizeof(buf) - 1, 0);
	} else {
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)READ_ONCE(w->tid));
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			n = read(fd, buf, sizeof(buf) - 1);
			close(fd);
		}
	}
	if (n > 0) {
		buf[n] = 0;
		p = strrchr(buf, ')'); /* the state follows the command name, which may hold anything */
	}
	if (p && p[1] == ' ' && p[2] != 'R')
		return true; /* S, D: in a blocking system call */
	cpu = thread_cpu_ns(w);
	if (!cpu)
		return true;
	/*
	 * Any real CPU time without a preemption point means fiber code running without one: a worker that runs
	 * ordinary fiber code passes preemption points all the time, and one the host has preempted gets no CPU.
	 * A tenth of the interval, so that a spinning worker on an overloaded host (a third of a CPU) still counts.
	 */
	/* No interval yet (the baseline was taken in this scan): not spinning, the next scan (at the base period) knows. */
	spinning = w->mon_cpu_at && now > w->mon_cpu_at && cpu - w->mon_cpu >= (now - w->mon_cpu_at) / 10;
	w->mon_cpu = cpu;
	w->mon_cpu_at = now;
	return spinning;
}

/*
 * Even out the runnable counts: busiest to least busy, one fiber at a time. Returns true if it moved any.
 *
 * Only an imbalance that lasted: the same source and destination at two passes in a row, the source not gone
 * idle since the last pass, nor the destination unless it is idle now. A worker that idles takes work for itself
 * (newidle balance), as the kernel's idle CPUs do, and the kernel's periodic balancer weighs load averaged over
 * tens of ms, not the runnable count of one instant. A server's workers go from a few hundred runnable fibers (a
 * reap's wake-ups) to none many times a second; moving fibers between two such queues at whatever instant the
 * monitor looked sent them behind a queue that was about to grow: with 500 connections on two workers (wrk -t1
 * -c500), 3.6% of the moved fibers waited over 20 ms to run (126 of 46,000 over 100 ms), and wrk's p99 was 50-72 ms
 * against 11-18 ms with no periodic balance at all.
 */
static bool periodic_balance(void)
{
	bool moved = false, busy[FIBER_MAX_WORKERS];
	int prev_src = mon.bal_src, prev_dst = mon.bal_dst;

	mon.bal_src = mon.bal_dst = -1; /* this pass's imbalance, if it finds one */

	for (unsigned i = 0; i < fiber__rt.nr_workers; i++) {
		struct worker *w = &fiber__rt.workers[i];
		unsigned idle = atomic_load_explicit(&w->nr_idle, memory_order_relaxed);

		busy[i] = idle == w->mon_idle;
		w->mon_idle = idle;
	}
	for (int round = 0; round < 64; round++) {
		unsigned max = 0, min = UINT_MAX;
		int busiest = -1, idlest = -1;

		for (unsigned i = 0; i < fiber__rt.nr_workers; i++) {
			struct worker *w = &fiber__rt.workers[i];
			unsigned n = atomic_load_explicit(&w->rq.nr_running, memory_order_relaxed);

			if (atomic_load_explicit(&w->stuck, memory_order_relaxed))
				continue;
			if (n > max && busy[i]) {
				max = n;
				busiest = (int)i;
			}
			if (n < min && (busy[i] || worker_idle_now(i))) {
				min = n;
				idlest = (int)i;
			}
		}
		if (busiest < 0 || idlest < 0 || max < min + 2)
			break;
		if (!round) {
			mon.bal_src = busiest;
			mon.bal_dst = idlest;
		}
		/* The same imbalance as at the last pass, or nothing moves (and the next pass is the confirmation). */
		if (busiest != prev_src || idlest != prev_dst)
			break;
		if (!fiber__balance_move_one(cpu_rq(busiest), cpu_rq(idlest)))
			break;
		moved = true;
	}
	return moved;
}

/* Some worker runs its idle loop (the tick's wakep has someone to kick). */
static bool any_worker_idle(void)
{
	for (unsigned i = 0; i < (fiber__rt.nr_workers + 31) / 32; i++)
		if (atomic_load_explicit(&fiber__rt.idle_mask[i], memory_order_relaxed))
			return true;
	return false;
}

/*
 * A tick is due on @w (its tick is wanted and a period has passed since the last one). Unless its class needs
 * every tick (tick_precise: a deadline fiber's budget), it is skipped while the fiber running there was switched in
 * less than half a tick ago: its class charged it and chose it at that
 * switch, so the slice, budget and eligibility a tick would look at are the ones the switch just decided - unless
 * another worker idles, which the tick's wakep would kick to take @w's queued fibers (fiber__sched_tick). Half a
 * tick, not a whole one: a CPU-bound fiber switched in by the previous tick has run a scan period less the few
 * microseconds the switch took, and must still get every tick.
 */
static bool tick_due(struct worker *w, uint64_t now, uint64_t tick_ns, bool idle_workers)
{
	uint64_t sw = atomic_load_explicit(&w->switch_clock, memory_order_relaxed);

	if (atomic_load_explicit(&w->tick_precise, memory_order_relaxed) || idle_workers)
		return true;
	return now > sw && now - sw >= tick_ns / 2; /* sw > now: it switched after our clock read */
}

static void *monitor_main(void *arg)
{
	uint64_t tick_ns = fiber__rt.tick_hz ? fiber__rt.tick_ns : 0;
	uint64_t base = tick_ns && tick_ns < MON_PERIOD_NS ? tick_ns : MON_PERIOD_NS;

	(void)arg;
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	pthread_setname_np(pthread_self(), "fiber-monitor");
	mon.balance_interval = BALANCE_MIN_NS;
	mon.period = base;
	mon.quiet_since = 0;
	while (!atomic_load_explicit(&mon.stop, memory_order_acquire)) {
		uint64_t now = fiber__sched_clock();
		bool any = false, acted = false, idle_workers = any_worker_idle();
		uint64_t tick_at = UINT64_MAX; /* the earliest tick a watched worker is due for */
		bool precise = false;	       /* a watched worker runs a fiber that needs every tick */
		struct timespec ts;

		atomic_fetch_add_explicit(&mon.nr_scans, 1, memory_order_relaxed);

		for (unsigned i = 0; i < fiber__rt.nr_workers; i++) {
			struct worker *w = &fiber__rt.workers[i];
			unsigned seq = atomic_load_explicit(&w->pp_seq, memory_order_relaxed);

			if (!worker_needs_watch(w)) {
				w->mon_seq = seq;
				w->mon_stamp = now;
				w->mon_cpu_at = 0;
				continue;
			}
			any = true;
			if (tick_ns && atomic_load_explicit(&w->tick_wanted, memory_order_relaxed) &&
			    now >= w->next_tick && tick_due(w, now, tick_ns, idle_workers)) {
				atomic_store_explicit(&w->tick_pending, 1, memory_order_relaxed);
				w->next_tick = now + tick_ns;
				acted = true;
			}
			if (tick_ns && atomic_load_explicit(&w->tick_wanted, memory_order_relaxed) &&
			    w->next_tick > now && w->next_tick < tick_at)
				tick_at = w->next_tick;
			if (atomic_load_explicit(&w->tick_precise, memory_order_relaxed))
				precise = true;
			/* In a blocking region: it said it will block, so its work goes elsewhere at once. */
			if (atomic_load_explicit(&w->blocking, memory_order_relaxed)) {
				if (worker_has_waiting(w))
					rescue(w, now, STUCK_BUSY_NS);
				acted = true;
				continue;
			}
			if (seq != w->mon_seq) {
				w->mon_seq = seq;
				w->mon_stamp = now;
				w->mon_cpu_at = 0;
				continue;
			}
			acted = true; /* no progress since the last scan: the stuck clock runs, look again soon */
			if (!w->mon_cpu_at) { /* the first scan without progress: the baseline for worker_held */
				w->mon_cpu = thread_cpu_ns(w);
				w->mon_cpu_at = now;
			}
			if (now - w->mon_stamp >= STUCK_NS && worker_has_waiting(w) && worker_held(w, now)) {
				atomic_store_explicit(&w->stuck, 1, memory_order_relaxed);
				rescue(w, now, now - w->mon_stamp);
			}
		}
		if (any && now >= mon.next_balance) {
			if (periodic_balance()) {
				mon.balance_interval = BALANCE_MIN_NS;
				acted = true;
			} else if (mon.balance_interval < BALANCE_MAX_NS) {
				mon.balance_interval *= 2;
			}
			mon.next_balance = now + mon.balance_interval;
		}
		if (now >= mon.next_trim) {
			fiber__stack_cache_trim();
			mon.next_trim = now + STACK_TRIM_NS;
		}
		/*
		 * The period backs off while scans find nothing to do (workers that keep switching, or nothing to
		 * watch), as Go's sysmon's delay does: each scan is a thread wake-up, about 20-40 us of CPU on a VM, and
		 * at the base period that was 3-4% of a CPU beside a busy worker (bench_echo_server, 1 worker). A scan
		 * that acted - a tick, a worker without progress, a rescue, a balance move - brings it back to the base.
		 */
		if (acted || precise)
			mon.period = base; /* a deadline fiber runs: every tick, at the base period */
		else if (mon.period < MON_PERIOD_MAX_NS)
			mon.period = mon.period * 2 < MON_PERIOD_MAX_NS ? mon.period * 2 : MON_PERIOD_MAX_NS;
		/*
		 * Nothing to watch goes on scanning for MON_QUIET_NS before it sleeps until kicked: a server's worker
		 * goes idle between bursts thousands of times a second, and sleeping at each of those cost a futex wake
		 * from the worker and a wake-up here for every burst (2,400 a second beside the 1,000 scans).
		 */
		if (any)
			mon.quiet_since = 0;
		else if (!mon.quiet_since)
			mon.quiet_since = now;
		if (any || now - mon.quiet_since < MON_QUIET_NS) {
			uint64_t sleep = mon.period;

			/* Not past a tick that is coming (with tick_hz under 1000 the period is shorter than the tick). */
			if (tick_at != UINT64_MAX && tick_at - now < sleep)
				sleep = tick_at - now;
			ts.tv_sec = 0;
			ts.tv_nsec = (long)sleep;
			if (sleep <= base) {
				clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
				continue;
			}
			/*
			 * Backed off: a worker that starts running a deadline fiber wakes us (fiber__monitor_kick_precise).
			 * The seq_cst store pairs with its exchange: it either sees napping == 1 or ran before our look at
			 * tick_wanted below.
			 */
			atomic_store_explicit(&mon.napping, 1, memory_order_seq_cst);
			for (unsigned i = 0; i < fiber__rt.nr_workers; i++)
				if (atomic_load_explicit(&fiber__rt.workers[i].tick_precise, memory_order_seq_cst))
					ts.tv_nsec = (long)base;
			fiber__futex(&mon.napping, FUTEX_WAIT_PRIVATE, 1, &ts);
			if (!atomic_exchange_explicit(&mon.napping, 0, memory_order_relaxed))
				mon.period = base; /* kicked */
			continue;
		}
		/*
		 * Nothing to watch: sleep until kicked. Announce it, fence, look once more (a worker that started needing
		 * us after our scan either sees sleeping == 1 and kicks, or we see it here): the store-buffering pair
		 * with fiber__monitor_kick's load after the worker's own update.
		 */
		atomic_store_explicit(&mon.sleeping, 1, memory_order_seq_cst);
		for (unsigned i = 0; i < fiber__rt.nr_workers && !any; i++)
			any = worker_needs_watch(&fiber__rt.workers[i]);
		if (!any && !atomic_load_explicit(&mon.stop, memory_order_acquire)) {
			/* Stacks to trim later: sleep until then (read after sleeping = 1, see fiber__stack_free). */
			uint64_t wait = fiber__stack_cached() ? mon.next_trim - now : 0;

			ts.tv_sec = (time_t)(wait / 1000000000ull);
			ts.tv_nsec = (long)(wait % 1000000000ull);
			fiber__futex(&mon.sleeping, FUTEX_WAIT_PRIVATE, 1, wait ? &ts : NULL);
		}
		atomic_store_explicit(&mon.sleeping, 0, memory_order_relaxed);
		mon.period = base;
		mon.quiet_since = 0;
		mon.bal_src = mon.bal_dst = -1; /* an imbalance from before the sleep confirms nothing */
	}
	return NULL;
}

int fiber__monitor_start(void)
{
	const char *env = getenv("FIBER_MONITOR");
	int ret;

	/*
	 * FIBER_MONITOR=0: no monitor thread (for instruction-counting profilers such as callgrind, which serialize
	 * threads and would count the monitor's scans into every operation). No stuck-worker rescue and no periodic
	 * balance then, and the tick comes only from the workers' fallback at preemption points (core.c
	 * tick_fallback), every two tick periods.
	 */
	mon.started = false;
	if (env && !strcmp(env, "0"))
		return 0;

	atomic_store(&mon.stop, 0);
	atomic_store(&mon.sleeping, 0);
	atomic_store(&mon.napping, 0);
	mon.next_balance = 0;
	mon.next_trim = 0;
	mon.bal_src = mon.bal_dst = -1;
	ret = -pthread_create(&mon.thr, NULL, monitor_main, NULL);
	mon.started = ret == 0;
	return ret;
}

void fiber__monitor_stop(void)
{
	if (!mon.started)
		return;
	/* Pairs with monitor_main's acquire loads of stop: it sees stop, or its futex wait sees sleeping == 0. */
	atomic_store_explicit(&mon.stop, 1, memory_order_seq_cst);
	atomic_store(&mon.sleeping, 0);
	fiber__futex(&mon.sleeping, FUTEX_WAKE_PRIVATE, 1, NULL);
	atomic_store(&mon.napping, 0);
	fiber__futex(&mon.napping, FUTEX_WAKE_PRIVATE, 1, NULL);
	pthread_join(mon.thr, NULL);
	mon.started = false;
}
