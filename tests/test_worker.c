/*
 * test_worker: the worker threads as the host sees them. The default count is the number of CPUs the process may
 * use; workers are not pinned unless asked (FIBER_CFG_PIN, FIBER_PIN=1), and then within the allowed set; a host
 * policy (fiber_config.host_policy, FIBER_WORKER_SCHED) is given to every worker, or start fails with -EPERM.
 */
#include "test_util.h"

#include <errno.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void clear_env(void)
{
	unsetenv("FIBER_WORKERS");
	unsetenv("FIBER_PIN");
	unsetenv("FIBER_WORKER_SCHED");
}

static cpu_set_t allowed_set(void)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	sched_getaffinity(0, sizeof(s), &s);
	return s;
}

/* ---- the default count ---- */

static void test_worker_count_is_allowed_cpus(void **state)
{
	cpu_set_t allowed = allowed_set();
	unsigned n;

	clear_env();
	assert_int_equal(fiber_runtime_start(NULL), 0);
	n = fiber_worker_count();
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_int_equal(n, (unsigned)CPU_COUNT(&allowed));
}

static void test_worker_count_follows_affinity(void **state)
{
	cpu_set_t allowed = allowed_set(), one;
	unsigned n;
	int cpu = 0;

	while (!CPU_ISSET(cpu, &allowed))
		cpu++;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	clear_env();
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	assert_int_equal(fiber_runtime_start(NULL), 0);
	n = fiber_worker_count();
	assert_int_equal(fiber_runtime_stop(), 0);
	assert_int_equal(sched_setaffinity(0, sizeof(allowed), &allowed), 0);
	assert_int_equal(n, 1);
}

/* ---- pinning ---- */

#define NW 2
static cpu_set_t seen[NW];
static atomic_int seen_err;

static void *read_affinity(void *arg)
{
	int w = (int)(intptr_t)arg;

	if (fiber_worker_id() != w || pthread_getaffinity_np(pthread_self(), sizeof(seen[w]), &seen[w]))
		atomic_store(&seen_err, 1);
	return NULL;
}

/* One fiber on each worker reads that worker thread's host affinity. */
static void affinity_main(void *arg)
{
	fiber_t *f[NW];

	for (int i = 0; i < NW; i++) {
		struct fiber_attr a;

		fiber_attr_init(&a);
		CPU_SET(i, &a.affinity);
		if (fiber_spawn(&f[i], &a, read_affinity, (void *)(intptr_t)i))
			f[i] = NULL;
	}
	for (int i = 0; i < NW; i++)
		if (f[i])
			fiber_join(f[i], NULL);
}

static int run_and_read(unsigned flags)
{
	struct fiber_config c = test_cfg(NW);

	c.flags = flags;
	atomic_store(&seen_err, 0);
	memset(seen, 0, sizeof(seen));
	return fiber_run(&c, affinity_main, NULL);
}

static void skip_unless_two_cpus(void)
{
	cpu_set_t allowed = allowed_set();

	if (CPU_COUNT(&allowed) < 2)
		skip();
}

static void test_worker_unpinned_by_default(void **state)
{
	cpu_set_t allowed = allowed_set();

	skip_unless_two_cpus();
	clear_env();
	assert_int_equal(run_and_read(0), 0);
	assert_int_equal(atomic_load(&seen_err), 0);
	for (int i = 0; i < NW; i++)
		assert_true(CPU_EQUAL(&seen[i], &allowed));
}

static void assert_pinned_within_allowed(void)
{
	cpu_set_t allowed = allowed_set(), both;

	assert_int_equal(atomic_load(&seen_err), 0);
	for (int i = 0; i < NW; i++) {
		cpu_set_t in;

		assert_int_equal(CPU_COUNT(&seen[i]), 1);
		CPU_AND(&in, &seen[i], &allowed);
		assert_int_equal(CPU_COUNT(&in), 1);
	}
	CPU_OR(&both, &seen[0], &seen[1]);
	assert_int_equal(CPU_COUNT(&both), 2); /* two workers, two CPUs */
}

static void test_worker_pin_flag(void **state)
{
	skip_unless_two_cpus();
	clear_env();
	assert_int_equal(run_and_read(FIBER_CFG_PIN), 0);
	assert_pinned_within_allowed();
}

static void test_worker_pin_env(void **state)
{
	int ret;

	skip_unless_two_cpus();
	clear_env();
	setenv("FIBER_PIN", "1", 1);
	ret = run_and_read(0);
	clear_env();
	assert_int_equal(ret, 0);
	assert_pinned_within_allowed();
}

static void test_worker_no_pin_flag_overrides_env(void **state)
{
	cpu_set_t allowed = allowed_set();
	int ret;

	skip_unless_two_cpus();
	clear_env();
	setenv("FIBER_PIN", "1", 1);
	ret = run_and_read(FIBER_CFG_NO_PIN);
	clear_env();
	assert_int_equal(ret, 0);
	for (int i = 0; i < NW; i++)
		assert_true(CPU_EQUAL(&seen[i], &allowed));
}

static void test_worker_pin_both_flags_refused(void **state)
{
	struct fiber_config c = test_cfg(1);

	c.flags = FIBER_CFG_PIN | FIBER_CFG_NO_PIN;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
}

/* ---- host policy ---- */

static int seen_policy[NW], seen_prio[NW];

static void *read_sched(void *arg)
{
	int w = (int)(intptr_t)arg;
	struct sched_param sp;

	if (fiber_worker_id() != w || pthread_getschedparam(pthread_self(), &seen_policy[w], &sp))
		atomic_store(&seen_err, 1);
	seen_prio[w] = sp.sched_priority;
	return NULL;
}

static void sched_main(void *arg)
{
	fiber_t *f[NW];

	for (int i = 0; i < NW; i++) {
		struct fiber_attr a;

		fiber_attr_init(&a);
		CPU_SET(i, &a.affinity);
		if (fiber_spawn(&f[i], &a, read_sched, (void *)(intptr_t)i))
			f[i] = NULL;
	}
	for (int i = 0; i < NW; i++)
		if (f[i])
			fiber_join(f[i], NULL);
}

static int run_sched(int policy, int prio)
{
	struct fiber_config c = test_cfg(NW);

	c.host_policy = policy;
	c.host_priority = prio;
	atomic_store(&seen_err, 0);
	memset(seen_policy, 0xff, sizeof(seen_policy));
	return fiber_run(&c, sched_main, NULL);
}

static void test_worker_host_fifo(void **state)
{
	int ret;

	clear_env();
	ret = run_sched(SCHED_FIFO, 50);
	if (ret == -EPERM)
		skip(); /* this process may not use SCHED_FIFO: test_worker_host_eperm covers that path */
	assert_int_equal(ret, 0);
	assert_int_equal(atomic_load(&seen_err), 0);
	for (int i = 0; i < NW; i++) {
		assert_int_equal(seen_policy[i], SCHED_FIFO);
		assert_int_equal(seen_prio[i], 50);
	}
}

static void test_worker_host_env(void **state)
{
	int ret;

	clear_env();
	setenv("FIBER_WORKER_SCHED", "rr:10", 1);
	ret = run_sched(SCHED_OTHER, 0);
	clear_env();
	if (ret == -EPERM)
		skip();
	assert_int_equal(ret, 0);
	assert_int_equal(atomic_load(&seen_err), 0);
	for (int i = 0; i < NW; i++) {
		assert_int_equal(seen_policy[i], SCHED_RR);
		assert_int_equal(seen_prio[i], 10);
	}
}

static void test_worker_host_default_inherits(void **state)
{
	clear_env();
	assert_int_equal(run_sched(SCHED_OTHER, 0), 0);
	assert_int_equal(atomic_load(&seen_err), 0);
	for (int i = 0; i < NW; i++)
		assert_int_equal(seen_policy[i], SCHED_OTHER);
}

static void test_worker_host_invalid_refused(void **state)
{
	struct fiber_config c = test_cfg(1);

	c.host_policy = 7;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	c.host_policy = SCHED_FIFO;
	c.host_priority = 0;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	c.host_priority = 100;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	c.host_policy = SCHED_OTHER;
	c.host_priority = 5;
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
}

/* Without CAP_SYS_NICE and with RLIMIT_RTPRIO 0 (a child process): -EPERM and a line saying what to grant. */
static void test_worker_host_eperm(void **state)
{
	int pfd[2], status = -1;
	char buf[1024];
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
		struct __user_cap_data_struct data[2];
		struct rlimit rt = { 0, 0 };
		struct fiber_config c = test_cfg(1);

		close(pfd[0]);
		dup2(pfd[1], STDERR_FILENO);
		if (syscall(SYS_capget, &hdr, data))
			_exit(2);
		data[CAP_SYS_NICE / 32].effective &= ~(1u << (CAP_SYS_NICE % 32));
		data[CAP_SYS_NICE / 32].permitted &= ~(1u << (CAP_SYS_NICE % 32));
		if (syscall(SYS_capset, &hdr, data) || setrlimit(RLIMIT_RTPRIO, &rt))
			_exit(2);
		c.host_policy = SCHED_FIFO;
		c.host_priority = 50;
		_exit(fiber_runtime_start(&c) == -EPERM ? 0 : 1);
	}
	close(pfd[1]);
	read_all(pfd[0], buf, sizeof(buf));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 2)
		skip();
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_non_null(strstr(buf, "libfiber: cannot give the workers SCHED_FIFO priority 50 (EPERM)"));
	assert_non_null(strstr(buf, "RLIMIT_RTPRIO"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_worker_count_is_allowed_cpus),
		cmocka_unit_test(test_worker_count_follows_affinity),
		cmocka_unit_test(test_worker_unpinned_by_default),
		cmocka_unit_test(test_worker_pin_flag),
		cmocka_unit_test(test_worker_pin_env),
		cmocka_unit_test(test_worker_no_pin_flag_overrides_env),
		cmocka_unit_test(test_worker_pin_both_flags_refused),
		cmocka_unit_test(test_worker_host_fifo),
		cmocka_unit_test(test_worker_host_env),
		cmocka_unit_test(test_worker_host_default_inherits),
		cmocka_unit_test(test_worker_host_invalid_refused),
		cmocka_unit_test(test_worker_host_eperm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
