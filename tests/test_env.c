/*
 * test_env: what fiber_runtime_start() accepts from struct fiber_config and the environment (runtime/env.c), and
 * that every failure comes with one line on stderr. Numbers are decimal digits only; nothing wraps; only
 * FIBER_STACK_SIZE takes a suffix.
 */
#include "test_util.h"

#include <errno.h>
#include <sys/wait.h>

#include "internal.h"

static char err_out[4096];

/* fiber_runtime_start(@cfg) with stderr captured into err_out; a runtime that started is stopped again. */
static int start_captured(const struct fiber_config *cfg)
{
	FILE *tmp = tmpfile();
	int saved, ret;
	ssize_t n;

	err_out[0] = 0;
	if (!tmp)
		return -999;
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	dup2(fileno(tmp), STDERR_FILENO);
	ret = fiber_runtime_start(cfg);
	if (ret == 0)
		fiber_runtime_stop();
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	lseek(fileno(tmp), 0, SEEK_SET);
	n = read(fileno(tmp), err_out, sizeof(err_out) - 1);
	err_out[n > 0 ? n : 0] = 0;
	fclose(tmp);
	return ret;
}

static int lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void clear_env(void)
{
	unsetenv("FIBER_WORKERS");
	unsetenv("FIBER_STACK_SIZE");
	unsetenv("FIBER_TICK_HZ");
	unsetenv("FIBER_RR_TIMESLICE_MS");
	unsetenv("FIBER_PIN");
	unsetenv("FIBER_WORKER_SCHED");
}

/* With @name=@value, start is refused with -EINVAL and exactly one "libfiber: NAME=..." line. */
static void assert_env_refused(const char *name, const char *value)
{
	char want[128];
	int ret;

	clear_env();
	setenv(name, value, 1);
	ret = start_captured(NULL);
	clear_env();
	snprintf(want, sizeof(want), "libfiber: %s=\"%s\" is not", name, value);
	assert_int_equal(ret, -EINVAL);
	assert_non_null(strstr(err_out, want));
	assert_int_equal(lines(err_out), 1);
	assert_non_null(strstr(err_out, "fix or unset it"));
}

#define REFUSED(fn, name, value)                                                                                       \
	static void test_env_##fn(void **state)                                                                        \
	{                                                                                                              \
		assert_env_refused(name, value);                                                                       \
	}

REFUSED(stack_size_wrapping_suffix_refused, "FIBER_STACK_SIZE", "18014398509482240K")
REFUSED(stack_size_wrapping_digits_refused, "FIBER_STACK_SIZE", "18446744073709551617")
REFUSED(stack_size_leading_blank_refused, "FIBER_STACK_SIZE", " 64K")
REFUSED(stack_size_plus_refused, "FIBER_STACK_SIZE", "+64K")
REFUSED(stack_size_minus_refused, "FIBER_STACK_SIZE", "-64K")
REFUSED(stack_size_two_suffixes_refused, "FIBER_STACK_SIZE", "64KK")
REFUSED(stack_size_too_small_refused, "FIBER_STACK_SIZE", "4K")
REFUSED(workers_suffix_refused, "FIBER_WORKERS", "1K")
REFUSED(workers_leading_blank_refused, "FIBER_WORKERS", " 2")
REFUSED(workers_trailing_blank_refused, "FIBER_WORKERS", "2 ")
REFUSED(workers_plus_refused, "FIBER_WORKERS", "+2")
REFUSED(workers_minus_refused, "FIBER_WORKERS", "-1")
REFUSED(workers_hex_refused, "FIBER_WORKERS", "0x2")
REFUSED(workers_zero_refused, "FIBER_WORKERS", "0")
REFUSED(workers_too_many_refused, "FIBER_WORKERS", "1025")
REFUSED(workers_wrapping_refused, "FIBER_WORKERS", "4294967298")
REFUSED(tick_hz_suffix_refused, "FIBER_TICK_HZ", "1K")
REFUSED(rr_timeslice_blank_refused, "FIBER_RR_TIMESLICE_MS", " 10")
REFUSED(pin_word_refused, "FIBER_PIN", "yes")
REFUSED(worker_sched_bad_policy_refused, "FIBER_WORKER_SCHED", "deadline:10")
REFUSED(worker_sched_no_priority_refused, "FIBER_WORKER_SCHED", "fifo")
REFUSED(worker_sched_priority_too_high_refused, "FIBER_WORKER_SCHED", "fifo:100")
REFUSED(worker_sched_priority_plus_refused, "FIBER_WORKER_SCHED", "rr:+5")

static void test_env_parse_number_limits(void **state)
{
	unsigned long long v = 0;

	assert_int_equal(fiber__parse_number("18446744073709551615", false, &v), 0);
	assert_true(v == ULLONG_MAX);
	assert_int_equal(fiber__parse_number("18446744073709551616", false, &v), -1);
	assert_int_equal(fiber__parse_number("17179869183G", true, &v), 0);
	assert_true(v == 17179869183ull << 30);
	assert_int_equal(fiber__parse_number("17179869184G", true, &v), -1);
	assert_int_equal(fiber__parse_number("64K", false, &v), -1);
	assert_int_equal(fiber__parse_number("", true, &v), -1);
}

static void test_env_stack_size_suffix_accepted(void **state)
{
	size_t got;

	clear_env();
	setenv("FIBER_STACK_SIZE", "64K", 1);
	assert_int_equal(fiber_runtime_start(NULL), 0);
	got = fiber__rt.stack_size;
	assert_int_equal(fiber_runtime_stop(), 0);
	clear_env();
	assert_int_equal(got, 64 * 1024);
}

static void test_env_workers_accepted(void **state)
{
	unsigned n;

	clear_env();
	setenv("FIBER_WORKERS", "3", 1);
	assert_int_equal(fiber_runtime_start(NULL), 0);
	n = fiber_worker_count();
	assert_int_equal(fiber_runtime_stop(), 0);
	clear_env();
	assert_int_equal(n, 3);
}

static void test_env_empty_is_unset(void **state)
{
	clear_env();
	setenv("FIBER_WORKERS", "", 1);
	assert_int_equal(start_captured(NULL), 0);
	clear_env();
	assert_string_equal(err_out, "");
}

static void test_env_config_field_message(void **state)
{
	struct fiber_config c = test_cfg(FIBER_MAX_WORKERS + 1);

	clear_env();
	assert_int_equal(start_captured(&c), -EINVAL);
	assert_non_null(strstr(err_out, "libfiber: fiber_config.workers = 1025"));
	assert_int_equal(lines(err_out), 1);
}

static void test_env_unknown_flag_message(void **state)
{
	struct fiber_config c = test_cfg(1);

	c.flags = 0x80;
	assert_int_equal(start_captured(&c), -EINVAL);
	assert_non_null(strstr(err_out, "libfiber: fiber_config.flags 0x80"));
	assert_int_equal(lines(err_out), 1);
}

static void test_env_busy_message(void **state)
{
	struct fiber_config c = test_cfg(1);
	int ret;

	assert_int_equal(fiber_runtime_start(&c), 0);
	ret = start_captured(&c);
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_int_equal(ret, -EBUSY);
	assert_non_null(strstr(err_out, "libfiber: a runtime is already running"));
	assert_int_equal(lines(err_out), 1);
}

/*
 * Out of memory at start: in a child with a small address-space limit, 1024 workers cannot be had. Whatever runs
 * out first (the worker array, a thread stack), start fails and says so in one line.
 */
static void test_env_out_of_memory_message(void **state)
{
	int pfd[2], status = -1;
	char buf[1024];
	pid_t pid;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	skip(); /* ASan and TSan reserve terabytes of shadow: an RLIMIT_AS child cannot even start */
#endif
	assert_int_equal(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct fiber_config c = test_cfg(FIBER_MAX_WORKERS);
		long vm_pages = 0;
		FILE *f = fopen("/proc/self/statm", "r");
		struct rlimit as;
		int ret;

		close(pfd[0]);
		dup2(pfd[1], STDERR_FILENO);
		if (!f || fscanf(f, "%ld", &vm_pages) != 1)
			_exit(2);
		fclose(f);
		/*
		 * 1 MiB more than mapped now: not the 3 MiB array of 1024 workers, so start fails before it creates a
		 * thread. (With room for a few worker threads, one of them could die inside jemalloc's own
		 * out-of-memory handling - in pthread_getattr_np's realloc - one run in six: a SIGSEGV, not our message.)
		 */
		as.rlim_cur = as.rlim_max = (rlim_t)vm_pages * (rlim_t)sysconf(_SC_PAGESIZE) + (1u << 20);
		if (setrlimit(RLIMIT_AS, &as))
			_exit(2);
		ret = fiber_runtime_start(&c);
		_exit(ret == -ENOMEM || ret == -EAGAIN ? 0 : 1);
	}
	close(pfd[1]);
	read_all(pfd[0], buf, sizeof(buf));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status))
		print_message("  child: signal %d, stderr: %s\n", WTERMSIG(status), buf);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 2)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_non_null(strstr(buf, "libfiber: "));
	assert_int_equal(lines(buf), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_env_stack_size_wrapping_suffix_refused),
		cmocka_unit_test(test_env_stack_size_wrapping_digits_refused),
		cmocka_unit_test(test_env_stack_size_leading_blank_refused),
		cmocka_unit_test(test_env_stack_size_plus_refused),
		cmocka_unit_test(test_env_stack_size_minus_refused),
		cmocka_unit_test(test_env_stack_size_two_suffixes_refused),
		cmocka_unit_test(test_env_stack_size_too_small_refused),
		cmocka_unit_test(test_env_workers_suffix_refused),
		cmocka_unit_test(test_env_workers_leading_blank_refused),
		cmocka_unit_test(test_env_workers_trailing_blank_refused),
		cmocka_unit_test(test_env_workers_plus_refused),
		cmocka_unit_test(test_env_workers_minus_refused),
		cmocka_unit_test(test_env_workers_hex_refused),
		cmocka_unit_test(test_env_workers_zero_refused),
		cmocka_unit_test(test_env_workers_too_many_refused),
		cmocka_unit_test(test_env_workers_wrapping_refused),
		cmocka_unit_test(test_env_tick_hz_suffix_refused),
		cmocka_unit_test(test_env_rr_timeslice_blank_refused),
		cmocka_unit_test(test_env_pin_word_refused),
		cmocka_unit_test(test_env_worker_sched_bad_policy_refused),
		cmocka_unit_test(test_env_worker_sched_no_priority_refused),
		cmocka_unit_test(test_env_worker_sched_priority_too_high_refused),
		cmocka_unit_test(test_env_worker_sched_priority_plus_refused),
		cmocka_unit_test(test_env_parse_number_limits),
		cmocka_unit_test(test_env_stack_size_suffix_accepted),
		cmocka_unit_test(test_env_workers_accepted),
		cmocka_unit_test(test_env_empty_is_unset),
		cmocka_unit_test(test_env_config_field_message),
		cmocka_unit_test(test_env_unknown_flag_message),
		cmocka_unit_test(test_env_busy_message),
		cmocka_unit_test(test_env_out_of_memory_message),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
