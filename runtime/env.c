/*
 * runtime/env.c - what fiber_runtime_start() runs with: the fields of struct fiber_config checked, the environment
 * read (FIBER_WORKERS, FIBER_STACK_SIZE, FIBER_TICK_HZ, FIBER_RR_TIMESLICE_MS, FIBER_SPARE_THREADS, FIBER_PIN,
 * FIBER_WORKER_SCHED), the defaults filled in.
 *
 * Promises: a refused value makes fiber_runtime_start() return -EINVAL with one line on stderr that names the field
 * or variable, the value, what is accepted and what to do. Numbers in the environment are plain decimal digits:
 * no sign, no blanks, no base prefix; a value that does not fit is refused, never wrapped; only sizes
 * (FIBER_STACK_SIZE) take a K/M/G suffix. An empty variable counts as unset.
 */
#include "internal.h"

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

void fiber__start_error(const char *fmt, ...)
{
	static const char prefix[] = "libfiber: ";
	char line[512];
	size_t len = sizeof(prefix) - 1;
	va_list ap;
	int n;

	memcpy(line, prefix, len);
	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	len += (size_t)n < sizeof(line) - len - 1 ? (size_t)n : sizeof(line) - len - 2;
	line[len++] = '\n';
	/* One write: the line stays whole when other threads print at the same time. */
	if (write(STDERR_FILENO, line, len) < 0)
		return;
}

/*
 * Parse @s as a decimal number, with a K/M/G suffix (powers of 1024) when @suffix. 0 and *out on success, -1 for
 * anything else: an empty string, a sign, a blank, a non-digit, an overflow of 64 bits.
 */
int fiber__parse_number(const char *s, bool suffix, unsigned long long *out)
{
	unsigned long long v = 0;
	unsigned shift = 0;

	if (!s || *s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned d = (unsigned)(*s - '0');

		if (v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (suffix) {
		switch (*s) {
		case 'k':
		case 'K':
			shift = 10;
			s++;
			break;
		case 'm':
		case 'M':
			shift = 20;
			s++;
			break;
		case 'g':
		case 'G':
			shift = 30;
			s++;
			break;
		}
	}
	if (*s)
		return -1;
	if (shift && v > (ULLONG_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

/* 0: @name unset or empty; 1: *out holds its value in @min..@max; -1: refused (message printed). */
static int env_number(const char *name, bool suffix, unsigned long long min, unsigned long long max, const char *what,
		      unsigned long long *out)
{
	const char *s = getenv(name);

	if (!s || !*s)
		return 0;
	if (fiber__parse_number(s, suffix, out) || *out < min || *out > max) {
		fiber__start_error("%s=\"%s\" is not %s in %llu..%llu (%s); fix or unset it", name, s, what, min, max,
				   suffix ? "decimal digits, optionally K, M or G" : "decimal digits only, no suffix");
		return -1;
	}
	return 1;
}

/* CPUs the process may run on: its affinity mask (taskset, cgroup cpusets), else the online count. */
static unsigned allowed_cpus(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
		return (unsigned)CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

static const char *host_policy_name(int policy)
{
	return policy == SCHED_FIFO ? "SCHED_FIFO" : policy == SCHED_RR ? "SCHED_RR" : "SCHED_OTHER";
}

/* host_policy / host_priority: SCHED_OTHER with 0 (inherit), or SCHED_FIFO / SCHED_RR with 1..99. */
static bool host_sched_valid(int policy, int prio)
{
	if (policy == SCHED_OTHER)
		return prio == 0;
	if (policy != SCHED_FIFO && policy != SCHED_RR)
		return false;
	return prio >= sched_get_priority_min(policy) && prio <= sched_get_priority_max(policy);
}

/* FIBER_WORKER_SCHED: "other", "fifo:PRIO" or "rr:PRIO". 0 unset, 1 parsed, -1 refused (message printed). */
static int env_host_sched(int *policy, int *prio)
{
	const char *s = getenv("FIBER_WORKER_SCHED");
	unsigned long long v = 0;
	const char *num = NULL;

	if (!s || !*s)
		return 0;
	if (!strcmp(s, "other")) {
		*policy = SCHED_OTHER;
		*prio = 0;
		return 1;
	}
	if (!strncmp(s, "fifo:", 5)) {
		*policy = SCHED_FIFO;
		num = s + 5;
	} else if (!strncmp(s, "rr:", 3)) {
		*policy = SCHED_RR;
		num = s + 3;
	}
	if (num && !fiber__parse_number(num, false, &v) && v <= 99 && host_sched_valid(*policy, (int)v)) {
		*prio = (int)v;
		return 1;
	}
	fiber__start_error("FIBER_WORKER_SCHED=\"%s\" is not \"other\", \"fifo:PRIO\" or \"rr:PRIO\" with PRIO in "
			   "1..99; fix or unset it",
			   s);
	return -1;
}

int fiber__config_resolve(const struct fiber_config *cfg, struct fiber__start_cfg *out)
{
	struct fiber_config c;
	unsigned long long v;
	int r;

	fiber_config_init(&c);
	if (cfg)
		c = *cfg;
	memset(out, 0, sizeof(*out));

	if (c.flags & ~(FIBER_CFG_NO_PIN | FIBER_CFG_PIN | FIBER_CFG_NO_OVERFLOW_REPORT)) {
		fiber__start_error("fiber_config.flags 0x%x has unknown bits (known: FIBER_CFG_PIN, FIBER_CFG_NO_PIN, "
				   "FIBER_CFG_NO_OVERFLOW_REPORT)",
				   c.flags);
		return -EINVAL;
	}
	if ((c.flags & FIBER_CFG_PIN) && (c.flags & FIBER_CFG_NO_PIN)) {
		fiber__start_error("fiber_config.flags has both FIBER_CFG_PIN and FIBER_CFG_NO_PIN; pick one");
		return -EINVAL;
	}
	if (c.workers > FIBER_MAX_WORKERS) {
		fiber__start_error("fiber_config.workers = %u is above FIBER_MAX_WORKERS (%d); 0 means one per CPU",
				   c.workers, FIBER_MAX_WORKERS);
		return -EINVAL;
	}
	if (c.tick_hz > 100000) {
		fiber__start_error("fiber_config.tick_hz = %u is above 100000", c.tick_hz);
		return -EINVAL;
	}
	if (c.io_entries > 32768) {
		fiber__start_error("fiber_config.io_entries = %u is above 32768", c.io_entries);
		return -EINVAL;
	}
	if (c.stack_size && (c.stack_size < FIBER_STACK_MIN || c.stack_size > FIBER_STACK_MAX)) {
		fiber__start_error("fiber_config.stack_size = %zu is outside FIBER_STACK_MIN..FIBER_STACK_MAX "
				   "(%u..%zu); 0 means 256 KiB",
				   c.stack_size, FIBER_STACK_MIN, (size_t)FIBER_STACK_MAX);
		return -EINVAL;
	}
	if (!host_sched_valid(c.host_policy, c.host_priority)) {
		fiber__start_error("fiber_config.host_policy %d with host_priority %d: use SCHED_OTHER with 0, or "
				   "SCHED_FIFO / SCHED_RR with 1..99",
				   c.host_policy, c.host_priority);
		return -EINVAL;
	}

	out->workers = c.workers;
	if (!out->workers) {
		r = env_number("FIBER_WORKERS", false, 1, FIBER_MAX_WORKERS, "a number of workers", &v);
		if (r < 0)
			return -EINVAL;
		if (r > 0) {
			out->workers = (unsigned)v;
		} else {
			out->workers = allowed_cpus();
			if (out->workers > FIBER_MAX_WORKERS)
				out->workers = FIBER_MAX_WORKERS;
		}
	}

	out->stack_size = c.stack_size;
	if (!out->stack_size) {
		r = env_number("FIBER_STACK_SIZE", true, FIBER_STACK_MIN, FIBER_STACK_MAX, "a stack size in bytes", &v);
		if (r < 0)
			return -EINVAL;
		out->stack_size = r > 0 ? (size_t)v : 256 * 1024;
	}

	out->tick_hz = c.tick_hz;
	if (!out->tick_hz) {
		/* FIBER_TICK_HZ=0: no tick at all (profilers such as callgrind). */
		r = env_number("FIBER_TICK_HZ", false, 0, 100000, "a tick rate in Hz", &v);
		if (r < 0)
			return -EINVAL;
		out->tick_hz = r > 0 ? (unsigned)v : 1000;
	}

	r = env_number("FIBER_RR_TIMESLICE_MS", false, 1, 100000, "a SCHED_RR time slice in ms", &v);
	if (r < 0)
		return -EINVAL;
	out->rr_timeslice_ms = r > 0 ? v : 100;

	out->io_entries = c.io_entries;

	/* Spare threads for blocking regions (fiber_blocking_begin): one per worker unless FIBER_SPARE_THREADS says. */
	r = env_number("FIBER_SPARE_THREADS", false, 0, FIBER_MAX_WORKERS, "a thread count", &v);
	if (r < 0)
		return -EINVAL;
	out->spare_threads = r > 0 ? (unsigned)v : out->workers;
	if (out->spare_threads > FIBER_MAX_WORKERS - out->workers)
		out->spare_threads = FIBER_MAX_WORKERS - out->workers;

	/* Pinning: only on request. The flags win over FIBER_PIN. */
	if (c.flags & FIBER_CFG_PIN) {
		out->pin = true;
	} else if (!(c.flags & FIBER_CFG_NO_PIN)) {
		const char *s = getenv("FIBER_PIN");

		if (s && *s) {
			if (strcmp(s, "0") && strcmp(s, "1")) {
				fiber__start_error("FIBER_PIN=\"%s\" is not 0 or 1; fix or unset it", s);
				return -EINVAL;
			}
			out->pin = *s == '1';
		}
	}
	out->flags = c.flags;

	/* The workers' host policy: the config's when it asks for one, else FIBER_WORKER_SCHED. */
	out->host_policy = c.host_policy;
	out->host_priority = c.host_priority;
	if (c.host_policy == SCHED_OTHER && env_host_sched(&out->host_policy, &out->host_priority) < 0)
		return -EINVAL;
	return 0;
}

/* What a failed pthread_create of a worker means, and what to do. */
void fiber__worker_create_error(unsigned id, unsigned n, int err)
{
	int policy = fiber__rt.host_policy, prio = fiber__rt.host_priority;

	if (err == EPERM && policy != SCHED_OTHER)
		fiber__start_error("cannot give the workers %s priority %d (EPERM): the process needs CAP_SYS_NICE or "
				   "RLIMIT_RTPRIO >= %d (ulimit -r); grant it or drop fiber_config.host_policy / "
				   "FIBER_WORKER_SCHED",
				   host_policy_name(policy), prio, prio);
	else if (err == EAGAIN)
		fiber__start_error("cannot create worker thread %u of %u (EAGAIN: RLIMIT_NPROC or memory); lower "
				   "fiber_config.workers or FIBER_WORKERS",
				   id, n);
	else
		fiber__start_error("cannot create worker thread %u of %u (%s)", id, n, strerror(err));
}
