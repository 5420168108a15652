/*
 * test_stack: stack overflow. A fiber that runs over its stack dies of SIGSEGV with a report on stderr (id, name,
 * stack bounds, faulting address, backtrace); a frame larger than a page but smaller than the 64 KiB guard lands in
 * the guard instead of in a neighbouring stack; a SIGSEGV that is not an overflow goes to the handler the
 * application installed before. Each case runs in a child process, whose stderr the test reads.
 * The stack cache: after a burst of fibers, an idle runtime gives the cached stacks back (in this process).
 * Units (stack.c): a parked fiber's descriptor and first frames share one resident page; every unit of a chunk has
 * its guard; units that gave their pages back are reused, so bursts do not grow the address space.
 */
#include "test_util.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "internal.h"

/* Run @fn in a child with stderr on a pipe and no core dump; its output in @buf, its wait status returned. */
static int run_child(void (*fn)(void), char *buf, size_t size)
{
	int pfd[2], status = -1;
	size_t len = 0;
	pid_t pid;

	if (pipe(pfd))
		return -1;
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };

		setrlimit(RLIMIT_CORE, &no_core);
		/* cmocka's inherited SIGSEGV handler is not the application's: the child starts with the default. */
		signal(SIGSEGV, SIG_DFL);
		dup2(pfd[1], STDERR_FILENO);
		close(pfd[0]);
		close(pfd[1]);
		fn();
		_exit(0);
	}
	close(pfd[1]);
	for (;;) {
		ssize_t n = read(pfd[0], buf + len, size - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == size - 1)
			break;
	}
	buf[len] = 0;
	close(pfd[0]);
	if (pid > 0)
		waitpid(pid, &status, 0);
	return status;
}

static bool died_of_segv(int status)
{
	return status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV;
}

/* ---- unbounded recursion ---- */

static __attribute__((noinline)) int recurse(int depth)
{
	volatile char frame[512];

	frame[0] = (char)depth;
	if (depth == INT_MAX) /* never: only there so that the compiler sees an end */
		return frame[0];
	return recurse(depth + 1) + frame[0];
}

static void *deep_fn(void *arg)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "child: id %llu\n", (unsigned long long)fiber_id(fiber_self()));

	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return NULL;
	return (void *)(intptr_t)recurse(0);
}

static void deep_main(void *arg)
{
	struct fiber_attr a;
	fiber_t *f;

	fiber_attr_init(&a);
	a.name = "deep-recursion";
	if (fiber_spawn(&f, &a, deep_fn, NULL) == 0)
		fiber_join(f, NULL);
}

static void child_recursion(void)
{
	struct fiber_config c = test_cfg(1);

	fiber_run(&c, deep_main, NULL);
}

static void test_stack_overflow_reported(void **state)
{
	static char out[16384];
	unsigned long long id = 0;
	char want[96];
	const char *p;
	int status = run_child(child_recursion, out, sizeof(out));

	assert_true(died_of_segv(status));
	p = strstr(out, "child: id ");
	assert_non_null(p);
	assert_int_equal(sscanf(p, "child: id %llu", &id), 1);
	snprintf(want, sizeof(want),
		 "libfiber: stack overflow in fiber %llu \"deep-recursion\" on worker 0: fault at 0x", id);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, ", stack 0x"));
	assert_non_null(strstr(out, " KiB), guard 0x"));
	assert_non_null(strstr(out, "libfiber: backtrace:\n"));
	assert_non_null(strstr(out, "libfiber: the default action of SIGSEGV follows"));
}

/* ---- FIBER_CFG_NO_OVERFLOW_REPORT: no handler, a plain SIGSEGV ---- */

static void child_recursion_no_report(void)
{
	struct fiber_config c = test_cfg(1);

	signal(SIGSEGV, SIG_DFL); /* cmocka's own handler, inherited, would catch it */
	c.flags = FIBER_CFG_NO_OVERFLOW_REPORT;
	fiber_run(&c, deep_main, NULL);
}

static void test_stack_no_report_flag(void **state)
{
	static char out[16384];
	int status;

#if defined(__SANITIZE_ADDRESS__)
	skip(); /* ASan's own SIGSEGV handler reports the overflow */
#endif
	status = run_child(child_recursion_no_report, out, sizeof(out));
	assert_true(died_of_segv(status));
	assert_null(strstr(out, "stack overflow"));
}

/* ---- the same without MADV_GUARD_INSTALL (older kernels): an mprotect(PROT_NONE) guard ---- */

static void child_recursion_mprotect(void)
{
	fiber__stack_guard_markers(false);
	child_recursion();
}

static void test_stack_overflow_reported_mprotect_guard(void **state)
{
	static char out[16384];
	int status = run_child(child_recursion_mprotect, out, sizeof(out));

	assert_true(died_of_segv(status));
	assert_non_null(strstr(out, "\"deep-recursion\" on worker 0: fault at 0x"));
}

/* ---- a stack that cannot be mapped: one line naming vm.max_map_count ---- */

static atomic_int spawned, spawn_err;

static void *park_fn(void *arg)
{
	fiber_sleep(10ull * 1000 * 1000 * 1000);
	return NULL;
}

static void map_main(void *arg)
{
	static fiber_t *f[4096];
	struct fiber_attr a;
	int n = 0, ret = 0;

	fiber_attr_init(&a);
	a.stack_size = 1 << 20;
	while (n < 4096 && (ret = fiber_spawn(&f[n], &a, park_fn, NULL)) == 0)
		n++;
	atomic_store(&spawned, n);
	atomic_store(&spawn_err, ret);
	for (int i = 0; i < n; i++) {
		fiber_cancel(f[i]);
		fiber_join(f[i], NULL);
	}
}

/* Address space for 64 more MiB of stacks: the 1 MiB stacks run out after about 60, with ENOMEM. */
static void child_map_limit(void)
{
	struct fiber_config c = test_cfg(1);
	long vm_pages = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	struct rlimit as;
	char line[64];
	int n;

	if (!f || fscanf(f, "%ld", &vm_pages) != 1)
		_exit(2);
	fclose(f);
	/* A first start and stop, so that what the runtime keeps after it (allocator arenas) is mapped already. */
	if (fiber_runtime_start(&c))
		_exit(2);
	as.rlim_cur = as.rlim_max = (rlim_t)vm_pages * (rlim_t)sysconf(_SC_PAGESIZE) + (64u << 20) + (16u << 20);
	if (setrlimit(RLIMIT_AS, &as))
		_exit(2);
	fiber_runtime_stop();
	fiber_run(&c, map_main, NULL);
	n = snprintf(line, sizeof(line), "child: %d spawned, then %d\n", atomic_load(&spawned),
		     atomic_load(&spawn_err));
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		_exit(3);
}

static void test_stack_map_failure_names_limit(void **state)
{
	static char out[16384];
	int status, spawned_n = 0, err = 0;
	const char *p, *q;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	skip(); /* ASan and TSan reserve terabytes of shadow: an RLIMIT_AS child cannot even start */
#endif
	status = run_child(child_map_limit, out, sizeof(out));
	assert_true(status != -1 && WIFEXITED(status));
	if (WEXITSTATUS(status) == 2)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
	p = strstr(out, "child: ");
	assert_non_null(p);
	assert_int_equal(sscanf(p, "child: %d spawned, then %d", &spawned_n, &err), 2);
	assert_int_equal(err, -ENOMEM);
	assert_true(spawned_n > 0 && spawned_n < 4096);
	p = strstr(out, "libfiber: cannot map a fiber stack (mmap: ENOMEM)");
	assert_non_null(p);
	assert_non_null(strstr(p, "vm.max_map_count ("));
	q = strchr(p, '\n');
	assert_non_null(q);
	print_message("  %d stacks, then: %.*s\n", spawned_n, (int)(q - p), p);
	assert_null(strstr(q, "cannot map")); /* once */
}

/* ---- one frame larger than a page, smaller than the guard ---- */

#define BIG_FRAME (40 * 1024)

/*
 * Touches only the lowest byte of a 40 KiB frame: without probes, every page above it is stepped over. The index
 * is read from a volatile, so that the compiler has to allocate the whole array: with a constant index clang kept
 * only buf[0], in the red zone, and the frame never reached the guard.
 */
static volatile int big_frame_index;

static __attribute__((noinline)) int big_frame(int x)
{
	volatile char buf[BIG_FRAME];
	int i = big_frame_index;

	buf[i] = (char)x;
	return buf[i];
}

#define CANARY 0x5a5a5a5a5a5a5a5aull
#define CANARY_WORDS 2048
static atomic_int victim_ready;

/* A parked fiber with canaries on its stack: a neighbour whose stack an overflow could land in. */
static void *victim_fn(void *arg)
{
	volatile uint64_t canary[CANARY_WORDS];

	for (int i = 0; i < CANARY_WORDS; i++)
		canary[i] = CANARY;
	atomic_store(&victim_ready, 1);
	fiber_sleep(10ull * 1000 * 1000 * 1000);
	return (void *)(uintptr_t)canary[0];
}

static void *overflow_fn(void *arg)
{
	return (void *)(intptr_t)big_frame(1);
}

static void big_main(void *arg)
{
	struct fiber_attr a;
	fiber_t *v, *f;

	fiber_attr_init(&a);
	a.name = "victim";
	a.stack_size = 32 * 1024;
	if (fiber_spawn(&v, &a, victim_fn, NULL))
		return;
	while (!atomic_load(&victim_ready))
		fiber_yield();
	/* 32 KiB of stack: the 40 KiB frame starts 8 KiB below it, inside the 64 KiB guard. */
	a.name = "big-frame";
	if (fiber_spawn(&f, &a, overflow_fn, NULL) == 0)
		fiber_join(f, NULL);
	fiber_cancel(v);
	fiber_join(v, NULL);
}

static void child_big_frame(void)
{
	struct fiber_config c = test_cfg(1);

	fiber_run(&c, big_main, NULL);
}

static void test_stack_large_frame_hits_guard(void **state)
{
	static char out[16384];
	int status = run_child(child_big_frame, out, sizeof(out));

	assert_true(died_of_segv(status));
	assert_non_null(strstr(out, "\"big-frame\" on worker 0: fault at 0x"));
}

/* ---- any other SIGSEGV: the application's handler ---- */

static void app_segv(int sig)
{
	static const char msg[] = "app handler\n";

	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(4);
	_exit(3);
}

static void *wild_fn(void *arg)
{
	return (void *)(intptr_t) * (volatile int *)arg;
}

static void wild_main(void *arg)
{
	fiber_t *f;

	if (fiber_spawn(&f, NULL, wild_fn, (void *)16) == 0)
		fiber_join(f, NULL);
}

static void child_wild(void)
{
	struct fiber_config c = test_cfg(1);

	signal(SIGSEGV, app_segv);
	fiber_run(&c, wild_main, NULL);
}

static void test_stack_other_segv_chained(void **state)
{
	static char out[16384];
	int status = run_child(child_wild, out, sizeof(out));

	assert_true(status != -1 && WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 3);
	assert_non_null(strstr(out, "app handler"));
	assert_null(strstr(out, "stack overflow"));
}

static void child_wild_default(void)
{
	struct fiber_config c = test_cfg(1);

	fiber_run(&c, wild_main, NULL);
}

/* Nothing (but perhaps ASan) handled SIGSEGV before the runtime: a wild pointer kills, without an overflow report. */
static void test_stack_other_segv_default(void **state)
{
	static char out[16384];
	int status = run_child(child_wild_default, out, sizeof(out));

	/* SIGSEGV, or ASan's report and exit (or abort, with abort_on_error=1) */
	assert_true(status != -1 && (WIFSIGNALED(status) || WEXITSTATUS(status) != 0));
	assert_null(strstr(out, "stack overflow"));
}

/* ---- the global stack cache gives its memory back when idle (monitor, fiber__stack_cache_trim) ---- */

#define TRIM_FIBERS 1000
#define TRIM_TOUCH (32 * 1024) /* stack bytes each fiber touches, so that its cached stack holds that much */

static fiber_sem_t trim_go;

static void *toucher_fn(void *arg)
{
	volatile char buf[TRIM_TOUCH];

	for (size_t i = 0; i < sizeof(buf); i += 512)
		buf[i] = (char)i;
	fiber_sem_wait(&trim_go);
	return (void *)(uintptr_t)buf[0];
}

/*
 * A burst: 1000 fibers, each with 32 KiB of its stack touched, all alive at once, then all gone. Beyond the
 * per-worker caches their stacks go to the global cache; with the process idle the monitor unmaps them within two
 * STACK_TRIM_NS periods, and the resident memory comes down with them.
 */
static void test_stack_cache_trimmed_when_idle(void **state)
{
	static fiber_t *f[TRIM_FIBERS];
	struct fiber_config c = test_cfg(2);
	unsigned cached_before, cached_after;
	size_t rss_burst, rss_after;
	uint64_t t0, waited;
	int spawned = 0;

	assert_int_equal(fiber_sem_init(&trim_go, 0), 0);
	assert_int_equal(fiber_runtime_start(&c), 0);
	for (int i = 0; i < TRIM_FIBERS; i++)
		spawned += fiber_spawn(&f[i], NULL, toucher_fn, NULL) == 0;
	for (int i = 0; i < TRIM_FIBERS; i++)
		fiber_sem_post(&trim_go);
	for (int i = 0; i < TRIM_FIBERS; i++)
		fiber_join(f[i], NULL);
	rss_burst = rss_bytes();
	cached_before = fiber__stack_cached();
	t0 = now_ns();
	do {
		usleep(50000);
		cached_after = fiber__stack_cached();
	} while (cached_after && now_ns() - t0 < 10 * STACK_TRIM_NS);
	waited = now_ns() - t0;
	rss_after = rss_bytes();
	fiber_runtime_stop();
	printf("stack cache: %u stacks after the burst, %u after %.2f s; RSS %zu KiB -> %zu KiB\n", cached_before,
	       cached_after, (double)waited / 1e9, rss_burst / 1024, rss_after / 1024);

	assert_int_equal(spawned, TRIM_FIBERS);
	/* Most went to the global cache (the per-worker caches keep up to STACK_CACHE_WORKER each). */
	assert_true(cached_before >= TRIM_FIBERS / 2);
	assert_int_equal(cached_after, 0);
	/* At least half of what the cached stacks held resident went back (ASan's shadow pages come back too). */
	assert_true(rss_after + (size_t)cached_before * TRIM_TOUCH / 2 <= rss_burst);
}

/* ---- units: descriptor and stack in one mapping, one page per parked fiber, guards, reuse ---- */

#define UNITS_PARKED 130 /* more than two chunks of UNIT_CHUNK (64) */

static fiber_sem_t park_sem;
static atomic_int parked_n;

static void *parked_fn(void *arg)
{
	atomic_fetch_add(&parked_n, 1);
	fiber_sem_wait(&park_sem);
	return arg;
}

/* Resident pages of [base, base + len) (page aligned), by mincore. */
static size_t resident_pages(void *base, size_t len)
{
	static unsigned char vec[FIBER_STACK_MAX / 4096 + 64];
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), n = len / pg, r = 0;

	if (n > sizeof(vec) || mincore(base, len, vec))
		return SIZE_MAX;
	for (size_t i = 0; i < n; i++)
		r += vec[i] & 1;
	return r;
}

static void park_all(fiber_t **f, int n)
{
	atomic_store(&parked_n, 0);
	assert_int_equal(fiber_sem_init(&park_sem, 0), 0);
	for (int i = 0; i < n; i++)
		assert_int_equal(fiber_spawn(&f[i], NULL, parked_fn, NULL), 0);
	while (atomic_load(&parked_n) < n)
		usleep(1000);
	usleep(20000); /* from the count to the switch away: let the last ones finish parking */
}

static void release_all(fiber_t **f, int n)
{
	for (int i = 0; i < n; i++)
		fiber_sem_post(&park_sem);
	for (int i = 0; i < n; i++)
		fiber_join(f[i], NULL);
}

/*
 * A fiber that parked after a few calls has exactly one resident page: the top of its unit, which holds both its
 * descriptor and its frames (before units: the stack's top page plus a share of a descriptor slab, 4.94 KiB per
 * parked fiber in bench_park). The fibers of a fresh runtime get units whose pages were given back at the last
 * stop, or fresh ones.
 */
static void test_stack_parked_fiber_has_one_resident_page(void **state)
{
	static fiber_t *f[UNITS_PARKED];
	struct fiber_config c = test_cfg(2);
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), pages[UNITS_PARKED];
	bool desc_on_top[UNITS_PARKED];
	int one = 0;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	skip(); /* the sanitizers' frames (redzones, interceptors) are larger */
#endif
	assert_int_equal(fiber_runtime_start(&c), 0);
	park_all(f, UNITS_PARKED);
	for (int i = 0; i < UNITS_PARKED; i++) {
		struct fiber *p = f[i];
		uintptr_t top = (uintptr_t)p->stack_base + p->stack_size;

		pages[i] = resident_pages(p->stack_base, p->stack_size);
		desc_on_top[i] = (uintptr_t)p >= top - pg && (uintptr_t)(p + 1) <= top;
		one += pages[i] == 1;
	}
	release_all(f, UNITS_PARKED);
	fiber_runtime_stop();
	print_message("  %d of %d parked fibers with one resident page (first: %zu)\n", one, UNITS_PARKED, pages[0]);
	for (int i = 0; i < UNITS_PARKED; i++) {
		assert_true(desc_on_top[i]);
		assert_int_equal(pages[i], 1);
	}
}

/* Can this process read @addr? (write() from it into a pipe: EFAULT if not, no signal.) */
static int readable(int wfd, const void *addr)
{
	return write(wfd, addr, 1) == 1 ? 0 : errno;
}

/* Every unit of a chunk, the first and the last included, has its guard below its stack, and nothing else. */
static void test_stack_every_unit_of_a_chunk_guarded(void **state)
{
	static fiber_t *f[UNITS_PARKED];
	static int below[UNITS_PARKED], guard_top[UNITS_PARKED], stack_low[UNITS_PARKED];
	struct fiber_config c = test_cfg(2);
	size_t guard = fiber__stack_guard_size();
	int pfd[2];
	char sink[4096];

	assert_int_equal(pipe(pfd), 0);
	assert_int_equal(fiber_runtime_start(&c), 0);
	park_all(f, UNITS_PARKED);
	for (int i = 0; i < UNITS_PARKED; i++) {
		char *base = f[i]->stack_base;

		below[i] = readable(pfd[1], base);
		guard_top[i] = readable(pfd[1], base + guard - 1);
		stack_low[i] = readable(pfd[1], base + guard);
		while (read(pfd[0], sink, sizeof(sink)) == sizeof(sink))
			;
	}
	release_all(f, UNITS_PARKED);
	fiber_runtime_stop();
	close(pfd[0]);
	close(pfd[1]);
	for (int i = 0; i < UNITS_PARKED; i++) {
		assert_int_equal(below[i], EFAULT);
		assert_int_equal(guard_top[i], EFAULT);
		assert_int_equal(stack_low[i], 0);
	}
}

/*
 * The idle workers' share of spawning (fiber__stack_prefault): after a spawn takes a fresh unit, a worker that goes
 * idle populates the top pages of the next units of the chunk, so the next spawns find them present. In a child:
 * a fresh process has no cold units, so its spawns take fresh ones.
 */
static void child_prefault(void)
{
	struct fiber_config c = test_cfg(2);
	static fiber_t *f[4];
	char *next, *end, *mark, line[128];
	size_t unit, pg = (size_t)sysconf(_SC_PAGESIZE);
	unsigned char v;
	int resident = 0, ahead = 0, n;
	uint64_t t0;

	/* No cmocka asserts in the child: it reports on stderr. */
	atomic_store(&parked_n, 0);
	if (fiber_sem_init(&park_sem, 0) || fiber_runtime_start(&c))
		_exit(2);
	for (int i = 0; i < 4; i++)
		if (fiber_spawn(&f[i], NULL, parked_fn, NULL))
			_exit(2);
	t0 = now_ns();
	do {
		usleep(1000);
		fiber__stack_chunk_peek(&next, &end, &mark, &unit);
	} while ((!mark || mark <= next) && now_ns() - t0 < 2000000000ull);
	if (mark > next && unit) {
		ahead = (int)((size_t)(mark - next) / unit);
		for (int i = 0; i < ahead; i++)
			resident += mincore(next + (size_t)(i + 1) * unit - pg, pg, &v) == 0 && (v & 1);
	}
	release_all(f, 4);
	fiber_runtime_stop();
	n = snprintf(line, sizeof(line), "child: %d ahead, %d resident\n", ahead, resident);
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		_exit(3);
}

static void test_stack_idle_worker_prefaults_next_units(void **state)
{
	static char out[4096];
	int status = run_child(child_prefault, out, sizeof(out)), ahead = -1, resident = -1;
	const char *p;

	assert_true(status != -1 && WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	p = strstr(out, "child: ");
	assert_non_null(p);
	assert_int_equal(sscanf(p, "child: %d ahead, %d resident", &ahead, &resident), 2);
	print_message("  %d units prefaulted ahead of the spawns, %d of them resident\n", ahead, resident);
	assert_true(ahead > 0);
	assert_int_equal(resident, ahead);
}

#define REUSE_FIBERS 10000 /* beyond the global cache (8192) and the per-worker ones: some go cold at once */

static void *exit_fn(void *arg)
{
	return arg;
}

/* Spawn REUSE_FIBERS that exit at once, note their units (still theirs until joined), join them. */
static int burst(fiber_t **f, uintptr_t *units)
{
	int ok = 0;

	for (int i = 0; i < REUSE_FIBERS; i++) {
		units[i] = 0;
		if (fiber_spawn(&f[i], NULL, exit_fn, NULL) == 0) {
			units[i] = (uintptr_t)f[i]->stack_base;
			ok++;
		}
	}
	for (int i = 0; i < REUSE_FIBERS; i++)
		if (units[i])
			fiber_join(f[i], NULL);
	return ok;
}

static int cmp_uptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Units are never unmapped (descriptors are type-stable), so they must be reused: after a burst whose units went
 * back (global cache full, then the idle trim), a second burst of the same size runs on units of the first one,
 * none newly mapped - but for up to a worker cache's worth per worker: a unit goes to the cache of the worker where
 * its last reference went, which is the worker's finish_task_switch when the joining thread (a plain one here, which
 * cannot take from a worker's cache) dropped its reference first, depending on which thread the host ran first.
 * One CI run (2026-12-02) had 9,984 of 10,000; that is the likely place of the 16 others (not traced).
 */
static void test_stack_cold_units_reused_by_next_burst(void **state)
{
	static fiber_t *f[REUSE_FIBERS];
	static uintptr_t first[REUSE_FIBERS], second[REUSE_FIBERS];
	struct fiber_config c = test_cfg(2);
	int ok1, ok2, reused = 0;
	unsigned cached;
	uint64_t t0;

	assert_int_equal(fiber_runtime_start(&c), 0);
	ok1 = burst(f, first);
	t0 = now_ns();
	while ((cached = fiber__stack_cached()) && now_ns() - t0 < 10 * STACK_TRIM_NS)
		usleep(50000);
	ok2 = burst(f, second);
	fiber_runtime_stop();
	qsort(first, REUSE_FIBERS, sizeof(first[0]), cmp_uptr);
	for (int i = 0; i < REUSE_FIBERS; i++)
		reused += second[i] && bsearch(&second[i], first, REUSE_FIBERS, sizeof(first[0]), cmp_uptr);
	print_message("  %d of %d units of the second burst were the first burst's (global cache %u)\n", reused,
		      REUSE_FIBERS, cached);
	assert_int_equal(ok1, REUSE_FIBERS);
	assert_int_equal(ok2, REUSE_FIBERS);
	assert_int_equal(cached, 0);
	assert_true(reused >= REUSE_FIBERS - (int)c.workers * STACK_CACHE_WORKER);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stack_overflow_reported),
		cmocka_unit_test(test_stack_no_report_flag),
		cmocka_unit_test(test_stack_overflow_reported_mprotect_guard),
		cmocka_unit_test(test_stack_map_failure_names_limit),
		cmocka_unit_test(test_stack_large_frame_hits_guard),
		cmocka_unit_test(test_stack_other_segv_chained),
		cmocka_unit_test(test_stack_other_segv_default),
		cmocka_unit_test(test_stack_cache_trimmed_when_idle),
		cmocka_unit_test(test_stack_parked_fiber_has_one_resident_page),
		cmocka_unit_test(test_stack_every_unit_of_a_chunk_guarded),
		cmocka_unit_test(test_stack_cold_units_reused_by_next_burst),
		cmocka_unit_test(test_stack_idle_worker_prefaults_next_units),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
