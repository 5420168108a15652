/*
 * tests/test_dump.c - fiber_dump: wait reasons, backtraces of parked fibers, runqueues by class, totals, and the
 * opt-in dump on a signal (fiber_config.dump_signal, FIBER_DUMP_SIGNAL), and the deadlock report
 * (fiber_config.deadlock_ms, FIBER_DEADLOCK_MS).
 *
 * The dumps are taken from the test's own thread (fiber_dump works from any thread) while the fibers are parked,
 * into a memfd, and checked after the runtime has stopped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "test_util.h"

#define SEC 1000000000ull

/* Everything a dump wrote to @fd, NUL-terminated (malloc'd). */
static char *memfd_text(int fd)
{
	off_t len = lseek(fd, 0, SEEK_END);
	char *s = malloc((size_t)len + 1);

	if (!s)
		return NULL;
	if (pread(fd, s, (size_t)len, 0) != len)
		len = 0;
	s[len] = 0;
	return s;
}

static int parked(fiber_t *f)
{
	struct fiber_stats st;

	return fiber_stats(f, &st) == 0 && st.state == 1;
}

static void wait_parked(fiber_t *f)
{
	for (int i = 0; i < 5000 && !parked(f); i++)
		usleep(1000);
}

/* OPAQUE: a link-time-optimised build would otherwise clone it (dump_parked_in_sleep.constprop.0, a local symbol). */
OPAQUE int dump_parked_in_sleep(uint64_t ns)
{
	int r = fiber_sleep(ns);

	__asm__ __volatile__("" ::: "memory"); /* not a tail call: this frame stays on the stack */
	return r;
}

static void *sleeper(void *arg)
{
	return (void *)(intptr_t)dump_parked_in_sleep(60 * SEC);
}

static void *joiner(void *arg)
{
	return (void *)(intptr_t)fiber_join(arg, NULL);
}

static fiber_t *spawn_named(const char *name, void *(*fn)(void *), void *arg)
{
	struct fiber_attr a;
	fiber_t *f = NULL;

	fiber_attr_init(&a);
	a.name = name;
	if (fiber_spawn(&f, &a, fn, arg))
		return NULL;
	return f;
}

/* A dump taken while a sleeper and a joiner of it are parked; then both are released. */
static char *dump_with_parked(void)
{
	struct fiber_config c = test_cfg(2);
	int fd = memfd_create("dump", 0);
	fiber_t *s, *j;
	char *out;

	assert_true(fd >= 0);
	assert_int_equal(fiber_runtime_start(&c), 0);
	s = spawn_named("dump-sleeper", sleeper, NULL);
	assert_non_null(s);
	j = spawn_named("dump-joiner", joiner, s);
	assert_non_null(j);
	wait_parked(s);
	wait_parked(j);
	fiber_dump(fd);
	fiber_cancel(s);
	assert_int_equal(fiber_join(j, NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	out = memfd_text(fd);
	close(fd);
	assert_non_null(out);
	return out;
}

/* A line of @out that contains all of @a, @b and @c. */
static bool line_has(const char *out, const char *a, const char *b, const char *c)
{
	const char *p = out;

	while (p && *p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		char *line = strndup(p, n);
		bool ok = strstr(line, a) && (!b || strstr(line, b)) && (!c || strstr(line, c));

		free(line);
		if (ok)
			return true;
		p = e ? e + 1 : NULL;
	}
	return false;
}

static void test_dump_wait_reasons(void **state)
{
	char *out = dump_with_parked();

	assert_true(line_has(out, "dump-sleeper", "sleeping", " sleep "));
	assert_true(line_has(out, "dump-joiner", "sleeping", " join "));
	free(out);
}

static void test_dump_backtrace_of_parked_fiber(void **state)
{
	char *out = dump_with_parked();
	char *at = strstr(out, "dump-sleeper");

	assert_non_null(at);
	/* The exact first frame is the scheduler, then the scanned frames down to the fiber's own function. */
	assert_non_null(strstr(at, "#0 "));
	assert_non_null(strstr(at, "__schedule"));
	assert_non_null(strstr(at, "fiber_sleep+"));
	assert_non_null(strstr(at, "dump_parked_in_sleep+"));
	free(out);
}

static void test_dump_totals(void **state)
{
	char *out = dump_with_parked();

	assert_non_null(strstr(out, "totals: nr_running "));
	assert_non_null(strstr(out, " fibers listed ("));
	free(out);
}

/* ---- runqueue contents by class: one worker, fibers queued behind a fiber that does not yield ---- */

static int rq_fd;

static void *queued_fn(void *arg)
{
	return NULL;
}

static void *rq_main(void *arg)
{
	struct fiber_attr a;
	fiber_t *f[3];

	/* Preemption off: the RT spawn would preempt us at once, and the fair ones could run at the tick. */
	fiber_preempt_disable();
	fiber_attr_init(&a);
	a.name = "q-fair";
	fiber_spawn(&f[0], &a, queued_fn, NULL);
	a.name = "q-fair2";
	fiber_spawn(&f[1], &a, queued_fn, NULL);
	a.name = "q-rt";
	a.sched.policy = FIBER_SCHED_FIFO;
	a.sched.priority = 10;
	fiber_spawn(&f[2], &a, queued_fn, NULL);
	/* All three are queued now, and this fiber still runs. */
	fiber_dump(rq_fd);
	fiber_preempt_enable();
	for (int i = 0; i < 3; i++)
		fiber_join(f[i], NULL);
	return NULL;
}

static void test_dump_runqueue_by_class(void **state)
{
	struct fiber_config c = test_cfg(1);
	fiber_t *m;
	char *out;

	rq_fd = memfd_create("dump", 0);
	assert_true(rq_fd >= 0);
	assert_int_equal(fiber_runtime_start(&c), 0);
	m = spawn_named("q-main", rq_main, NULL);
	assert_non_null(m);
	assert_int_equal(fiber_join(m, NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	out = memfd_text(rq_fd);
	close(rq_fd);
	assert_non_null(out);
	assert_true(line_has(out, "  fair:", "(q-fair)", "(q-fair2)"));
	assert_true(line_has(out, "  fair:", "[curr ", NULL));
	assert_true(line_has(out, "  rt:", "(q-rt)", NULL));
	free(out);
}

/* ---- the dump on a signal ---- */

/* Run the parked pair, send @sig, wait for the dump on stderr (redirected to a memfd), release, stop. */
static char *dump_on_signal(const struct fiber_config *c, int sig)
{
	int fd = memfd_create("stderr", 0), saved = dup(STDERR_FILENO);
	fiber_t *s;
	char *out = NULL;

	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(fiber_runtime_start(c), 0);
	s = spawn_named("sig-sleeper", sleeper, NULL);
	assert_non_null(s);
	wait_parked(s);
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	kill(getpid(), sig);
	/* The dump thread writes it; generous wait (a loaded machine). */
	for (int i = 0; i < 10000; i++) {
		free(out);
		out = memfd_text(fd);
		if (out && strstr(out, " fibers listed ("))
			break;
		usleep(1000);
	}
	dup2(saved, STDERR_FILENO);
	close(saved);
	fiber_cancel(s);
	assert_int_equal(fiber_join(s, NULL), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	close(fd);
	return out;
}

static void test_dump_on_config_signal(void **state)
{
	struct fiber_config c = test_cfg(2);
	struct sigaction sa;
	char *out;

	c.dump_signal = SIGUSR1;
	out = dump_on_signal(&c, SIGUSR1);
	assert_non_null(out);
	assert_true(line_has(out, "sig-sleeper", " sleep ", NULL));
	free(out);
	/* After stop the previous disposition is back. */
	assert_int_equal(sigaction(SIGUSR1, NULL, &sa), 0);
	assert_true(sa.sa_handler == SIG_DFL);
}

static void test_dump_on_env_signal(void **state)
{
	struct fiber_config c = test_cfg(2);
	char *out;

	setenv("FIBER_DUMP_SIGNAL", "SIGUSR2", 1);
	out = dump_on_signal(&c, SIGUSR2);
	unsetenv("FIBER_DUMP_SIGNAL");
	assert_non_null(out);
	assert_true(line_has(out, "sig-sleeper", " sleep ", NULL));
	free(out);
}

static void test_dump_signal_none_by_default(void **state)
{
	struct fiber_config c = test_cfg(1);
	struct sigaction sa;

	unsetenv("FIBER_DUMP_SIGNAL");
	assert_int_equal(fiber_runtime_start(&c), 0);
	assert_int_equal(sigaction(SIGQUIT, NULL, &sa), 0);
	assert_true(sa.sa_handler == SIG_DFL);
	assert_int_equal(fiber_runtime_stop(), 0);
}

static void test_dump_signal_bad_values(void **state)
{
	struct fiber_config c = test_cfg(1);

	c.dump_signal = SIGKILL;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	c.dump_signal = SIGSEGV;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	c.dump_signal = -1;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	c.dump_signal = 0;
	setenv("FIBER_DUMP_SIGNAL", "SIGNOPE", 1);
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	setenv("FIBER_DUMP_SIGNAL", "9", 1);
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	setenv("FIBER_DUMP_SIGNAL", "QUIT", 1);
	assert_int_equal(fiber_runtime_start(&c), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	unsetenv("FIBER_DUMP_SIGNAL");
}

/* ---- the deadlock report: two fibers that join each other ---- */

static fiber_t *_Atomic dl_b;

static void *dl_a(void *arg)
{
	fiber_sleep(20000000); /* until the test thread has published B */
	return (void *)(intptr_t)fiber_join(atomic_load(&dl_b), NULL);
}

static void *dl_join(void *arg)
{
	return (void *)(intptr_t)fiber_join(arg, NULL);
}

/*
 * Run A and B (deadlocked when @deadlock, else B sleeps @hold_ms) for up to @wait_ms, watching stderr for the
 * report; then release them and stop. Returns what went to stderr.
 */
static char *deadlock_run(int deadlock_ms, bool deadlock, unsigned wait_ms)
{
	struct fiber_config c = test_cfg(2);
	int fd = memfd_create("stderr", 0), saved = dup(STDERR_FILENO);
	fiber_t *a, *b;
	char *out = NULL;

	assert_true(fd >= 0 && saved >= 0);
	c.deadlock_ms = deadlock_ms;
	fflush(stderr);
	dup2(fd, STDERR_FILENO);
	if (fiber_runtime_start(&c)) {
		dup2(saved, STDERR_FILENO);
		fail_msg("fiber_runtime_start");
	}
	if (deadlock) {
		a = spawn_named("dl-a", dl_a, NULL);
		b = spawn_named("dl-b", dl_join, a);
		atomic_store(&dl_b, b);
	} else {
		a = spawn_named("dl-sleeper", sleeper, NULL);
		b = spawn_named("dl-joiner", dl_join, a);
	}
	for (unsigned i = 0; i < wait_ms; i++) {
		free(out);
		out = memfd_text(fd);
		if (out && strstr(out, " fibers listed ("))
			break;
		usleep(1000);
	}
	fiber_cancel(a); /* A's join (or sleep) returns -ECANCELED; A exits, which ends B's join */
	int joined;

	/* -EINVAL while A's cancelled join of B has not yet given B back (B is still "being joined"). */
	for (int i = 0; (joined = fiber_join(b, NULL)) == -EINVAL && i < 10000; i++)
		usleep(1000);
	int stopped = fiber_runtime_stop();

	dup2(saved, STDERR_FILENO);
	close(saved);
	assert_int_equal(joined, 0);
	assert_int_equal(stopped, 0);
	free(out);
	out = memfd_text(fd);
	close(fd);
	assert_non_null(out);
	return out;
}

static void test_dump_deadlock_reported_once(void **state)
{
	char *out = deadlock_run(100, true, 10000);
	char *first = strstr(out, "libfiber: deadlock? all 2 fibers have been blocked");

	if (!first)
		printf("stderr was:\n%s\n", out);

	assert_non_null(first);
	assert_null(strstr(first + 1, "libfiber: deadlock?"));
	assert_true(line_has(out, "dl-a", " join ", NULL));
	assert_true(line_has(out, "dl-b", " join ", NULL));
	free(out);
}

static void test_dump_deadlock_not_with_a_timer(void **state)
{
	/* A sleeper (timer armed) and its joiner for 500 ms: blocked, but not a deadlock. */
	char *out = deadlock_run(100, false, 500);

	assert_null(strstr(out, "deadlock?"));
	free(out);
}

static void test_dump_deadlock_report_off(void **state)
{
	char *out = deadlock_run(-1, true, 500);

	assert_null(strstr(out, "deadlock?"));
	free(out);
}

static void test_dump_deadlock_bad_values(void **state)
{
	struct fiber_config c = test_cfg(1);

	c.deadlock_ms = -2;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	c.deadlock_ms = 0;
	setenv("FIBER_DEADLOCK_MS", "soon", 1);
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	setenv("FIBER_DEADLOCK_MS", "0", 1); /* off */
	assert_int_equal(fiber_runtime_start(&c), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
	unsetenv("FIBER_DEADLOCK_MS");
}

/* Two fibers that each hold one mutex and want the other's, in a child process (mutex_lock cannot be undone). */
static fiber_mutex_t mx1 = FIBER_MUTEX_INITIALIZER, mx2 = FIBER_MUTEX_INITIALIZER;

static void *mx_a(void *arg)
{
	fiber_mutex_lock(&mx1);
	fiber_sleep(20000000);
	fiber_mutex_lock(&mx2);
	return NULL;
}

static void *mx_b(void *arg)
{
	fiber_mutex_lock(&mx2);
	fiber_sleep(20000000);
	fiber_mutex_lock(&mx1);
	return NULL;
}

static void test_dump_deadlock_on_mutexes_reported(void **state)
{
	int pfd[2];
	char buf[65536];
	size_t len = 0;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct fiber_config c = test_cfg(2);

		close(pfd[0]);
		dup2(pfd[1], STDERR_FILENO);
		c.deadlock_ms = 100;
		if (fiber_runtime_start(&c))
			_exit(2);
		spawn_named("mx-a", mx_a, NULL);
		spawn_named("mx-b", mx_b, NULL);
		sleep(30); /* the parent kills us once it has read the report */
		_exit(3);
	}
	close(pfd[1]);
	while (len < sizeof(buf) - 1) {
		ssize_t n = read(pfd[0], buf + len, sizeof(buf) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = 0;
		if (strstr(buf, " fibers listed ("))
			break;
	}
	buf[len] = 0;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(pfd[0]);
	assert_non_null(strstr(buf, "libfiber: deadlock? all 2 fibers have been blocked"));
	assert_true(line_has(buf, "mx-a", " sync ", NULL));
	assert_true(line_has(buf, "mx-b", " sync ", NULL));
}

static void test_dump_no_runtime(void **state)
{
	int fd = memfd_create("dump", 0);
	char *out;

	fiber_dump(fd);
	out = memfd_text(fd);
	close(fd);
	assert_non_null(out);
	assert_non_null(strstr(out, "no runtime"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dump_wait_reasons),
		cmocka_unit_test(test_dump_backtrace_of_parked_fiber),
		cmocka_unit_test(test_dump_totals),
		cmocka_unit_test(test_dump_runqueue_by_class),
		cmocka_unit_test(test_dump_on_config_signal),
		cmocka_unit_test(test_dump_on_env_signal),
		cmocka_unit_test(test_dump_signal_none_by_default),
		cmocka_unit_test(test_dump_signal_bad_values),
		cmocka_unit_test(test_dump_deadlock_reported_once),
		cmocka_unit_test(test_dump_deadlock_not_with_a_timer),
		cmocka_unit_test(test_dump_deadlock_report_off),
		cmocka_unit_test(test_dump_deadlock_bad_values),
		cmocka_unit_test(test_dump_deadlock_on_mutexes_reported),
		cmocka_unit_test(test_dump_no_runtime),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
