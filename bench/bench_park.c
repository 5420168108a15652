/*
 * bench_park.c - a million fibers that exist and wait: what a parked fiber costs in time and memory.
 *
 *	park_1m		spawn 1,000,000 fibers (default attributes) that each park on a wait queue; ms from the first
 *			spawn until all have parked. All workers.
 *	park_1m_rss	the resident memory each parked fiber adds (KiB per fiber): /proc/self/statm once all have
 *			parked, minus before the first spawn
 *
 * Also on stderr: the page tables each parked fiber adds (VmPTE of /proc/self/status, which RSS leaves out).
 *
 * Then the fibers are woken and exit. The figures are those of the first, cold run (fresh stacks and descriptors,
 * as a server meets a million connections); up to 2 more runs follow and go to stderr only, because they reuse
 * whatever the caches kept (the runtime keeps a few thousand stacks, Go keeps every dead goroutine's stack), which
 * would compare unlike things. --quick: 10,000 fibers; BENCH_PARK_FIBERS=N overrides the count. The Go baseline
 * starts the same number of goroutines that block on a channel receive (GOMAXPROCS = NumCPU), the same way.
 *
 * The parking primitive is the runtime's internal wait queue (as bench_wake.c, until fiber.h has a public one),
 * so this program links libfiber.a.
 */
#include "lf.h"

#include <unistd.h>

#if __has_include("internal.h")
#include "internal.h"
#define HAVE_WAIT 1
#else
#define HAVE_WAIT 0
#endif

#define PARK_RUNS_MAX 3
#define PARK_BUDGET_NS (60 * 1000000000ull)

static size_t rss_bytes(void)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

/* The process's page tables (KiB), or 0. */
static size_t pte_kib(void)
{
	char line[256];
	size_t kib = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmPTE: %zu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	return kib;
}

#if HAVE_WAIT

struct park {
	struct wait_queue_head wq;
	int open; /* the gate: 1 lets the parked fibers go */
	uint64_t n;
	uint64_t parked, exited; /* atomic */
	int err;
	double ms[PARK_RUNS_MAX], kib[PARK_RUNS_MAX], pte[PARK_RUNS_MAX];
	int runs;
};

static void *parker(void *arg)
{
	struct park *pk = arg;
	struct wait_queue_entry e;

	memset(&e, 0, sizeof(e));
	INIT_LIST_HEAD(&e.entry);
	for (;;) {
		fiber__prepare_to_wait(&pk->wq, &e, TASK_UNINTERRUPTIBLE);
		if (__atomic_load_n(&pk->open, __ATOMIC_ACQUIRE))
			break;
		/* on the queue now: counted as parked (the root reads the count after its own wait) */
		__atomic_fetch_add(&pk->parked, 1, __ATOMIC_RELEASE);
		fiber__schedule();
		if (__atomic_load_n(&pk->open, __ATOMIC_ACQUIRE))
			break;
		__atomic_fetch_sub(&pk->parked, 1, __ATOMIC_RELAXED); /* spurious: park again */
	}
	fiber__finish_wait(&pk->wq, &e);
	__atomic_fetch_add(&pk->exited, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* One run: ns until all parked, RSS added; 0 on failure. */
static uint64_t one_run(struct park *pk, size_t *rss_added, size_t *pte_added)
{
	size_t rss0, pte0;
	uint64_t t0, t, i;
	int err;

	__atomic_store_n(&pk->open, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pk->parked, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pk->exited, 0, __ATOMIC_RELAXED);
	rss0 = rss_bytes();
	pte0 = pte_kib();
	t0 = bench_now_ns();
	for (i = 0; i < pk->n; i++) {
		err = fiber_spawn(NULL, NULL, parker, pk);
		if (err) {
			pk->err = err;
			break;
		}
	}
	while (__atomic_load_n(&pk->parked, __ATOMIC_ACQUIRE) < i)
		fiber_sleep(100000);
	t = bench_now_ns() - t0;
	*rss_added = rss_bytes() - rss0;
	*pte_added = pte_kib() - pte0;
	/* Let them go and wait until all have exited. */
	__atomic_store_n(&pk->open, 1, __ATOMIC_RELEASE);
	fiber__wake_up(&pk->wq, TASK_NORMAL, 0);
	while (__atomic_load_n(&pk->exited, __ATOMIC_ACQUIRE) < i)
		fiber_sleep(100000);
	return pk->err ? 0 : (t ? t : 1);
}

static void root(void *arg)
{
	struct park *pk = arg;
	uint64_t start = bench_now_ns();
	int reps = bench_opts.reps < PARK_RUNS_MAX ? bench_opts.reps : PARK_RUNS_MAX;

	for (pk->runs = 0; pk->runs < reps; pk->runs++) {
		size_t added, pte;
		uint64_t t;

		if (pk->runs > 0 && bench_now_ns() - start > PARK_BUDGET_NS) {
			fprintf(stderr, "park_1m: over the %llu s budget, stopped after %d runs\n",
				(unsigned long long)(PARK_BUDGET_NS / 1000000000ull), pk->runs);
			break;
		}
		t = one_run(pk, &added, &pte);
		if (!t)
			return;
		pk->ms[pk->runs] = (double)t / 1e6;
		pk->kib[pk->runs] = (double)added / 1024.0 / (double)pk->n;
		pk->pte[pk->runs] = (double)pte / (double)pk->n;
	}
}

int main(int argc, char **argv)
{
	static struct park pk;
	const char *env = getenv("BENCH_PARK_FIBERS");
	int err;

	bench_init(argc, argv);
	if (!bench_want("park_1m") && !bench_want("park_1m_rss"))
		return 0;
	fiber__init_waitqueue_head(&pk.wq);
	pk.n = bench_opts.quick ? 10000 : 1000000;
	if (env && strtoull(env, NULL, 0) > 0)
		pk.n = strtoull(env, NULL, 0);
	err = lf_run(0, root, &pk);
	if (err) {
		lf_na_err("park_1m", "fiber_run", err);
		lf_na_err("park_1m_rss", "fiber_run", err);
		return 1;
	}
	if (pk.err) {
		lf_na_err("park_1m", "fiber_spawn", pk.err);
		lf_na_err("park_1m_rss", "fiber_spawn", pk.err);
		return 1;
	}
	for (int r = 1; r < pk.runs; r++)
		fprintf(stderr, "park_1m: warm run %d: %.1f ms, %.2f KiB per fiber (not reported)\n", r + 1, pk.ms[r],
			pk.kib[r]);
	if (pk.runs) {
		fprintf(stderr, "park_1m: page tables %.2f KiB per fiber (not in the RSS figure)\n", pk.pte[0]);
		bench_report("park_1m", "libfiber", pk.ms, 1, "ms/run");
		bench_report("park_1m_rss", "libfiber", pk.kib, 1, "KiB/fiber");
	}
	return 0;
}

#else

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	bench_na("park_1m", "libfiber", "built without runtime/internal.h (the wait queues)");
	bench_na("park_1m_rss", "libfiber", "built without runtime/internal.h (the wait queues)");
	return 0;
}

#endif
