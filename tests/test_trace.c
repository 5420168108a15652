/*
 * tests/test_trace.c - the timeline trace (fiber_config.trace_file, FIBER_TRACE): the file is valid JSON in the
 * Chrome trace-event format, with a track per worker, slices named "name #id", wake-up flows (start and finish),
 * block reasons, and migrations.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "test_util.h"

static char path[256];

static char *slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	char *s;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	s = malloc((size_t)n + 1);
	if (s && fread(s, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	if (s)
		s[n] = 0;
	fclose(f);
	return s;
}

/* A small JSON syntax check (RFC 8259 grammar, no semantic checks): true if @s is one valid value. */
static const char *js_value(const char *s);
static const char *js_ws(const char *s)
{
	while (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
		s++;
	return s;
}
static const char *js_string(const char *s)
{
	if (*s++ != '"')
		return NULL;
	while (*s && *s != '"') {
		if ((unsigned char)*s < 0x20)
			return NULL;
		if (*s == '\\') {
			s++;
			if (*s == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", s[i]) || !s[i])
						return NULL;
				s += 4;
			} else if (!*s || !strchr("\"\\/bfnrt", *s)) {
				return NULL;
			}
		}
		s++;
	}
	return *s == '"' ? s + 1 : NULL;
}
static const char *js_number(const char *s)
{
	const char *b = s;

	if (*s == '-')
		s++;
	while (*s >= '0' && *s <= '9')
		s++;
	if (*s == '.')
		for (s++; *s >= '0' && *s <= '9'; s++)
			;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return s > b ? s : NULL;
}
static const char *js_value(const char *s)
{
	s = js_ws(s);
	if (*s == '{' || *s == '[') {
		char close = *s == '{' ? '}' : ']';
		bool obj = *s == '{';

		s = js_ws(s + 1);
		if (*s == close)
			return s + 1;
		for (;;) {
			if (obj) {
				s = js_string(js_ws(s));
				if (!s)
					return NULL;
				s = js_ws(s);
				if (*s++ != ':')
					return NULL;
			}
			s = js_value(s);
			if (!s)
				return NULL;
			s = js_ws(s);
			if (*s == ',') {
				s++;
				continue;
			}
			return *s == close ? s + 1 : NULL;
		}
	}
	if (*s == '"')
		return js_string(s);
	if (!strncmp(s, "true", 4) || !strncmp(s, "null", 4))
		return s + 4;
	if (!strncmp(s, "false", 5))
		return s + 5;
	return js_number(s);
}
static bool json_valid(const char *s)
{
	s = js_value(s);
	return s && !*js_ws(s);
}

/* ---- a workload: a sleeper woken by its timer, a ping-pong through join, yielders on two workers ---- */

static void *napper(void *arg)
{
	for (int i = 0; i < 5; i++)
		fiber_sleep(200000);
	return NULL;
}

static atomic_int yielders_ready;

static void *yielder(void *arg)
{
	/*
	 * Both first: a yielder that started alone would finish its yields before its peer existed (none switches).
	 * Yield while waiting, so that both stay runnable: the peer's arrival makes the next yield switch to it.
	 */
	atomic_fetch_add(&yielders_ready, 1);
	while (atomic_load(&yielders_ready) < 2)
		fiber_yield();
	for (int i = 0; i < 100; i++)
		fiber_yield();
	return NULL;
}

static void *child(void *arg)
{
	fiber_sleep(1000000);
	return NULL;
}

static void *parent(void *arg)
{
	struct fiber_attr a;
	fiber_t *c;

	fiber_attr_init(&a);
	a.name = "tr-child";
	fiber_spawn(&c, &a, child, NULL);
	fiber_join(c, NULL); /* the child's exit wakes us: a flow from tr-child to tr-parent */
	return NULL;
}

static void workload(void *arg)
{
	struct fiber_attr a;
	fiber_t *f[4];

	atomic_store(&yielders_ready, 0);
	fiber_attr_init(&a);
	a.name = "tr-napper";
	fiber_spawn(&f[0], &a, napper, NULL);
	/* Both yielders on worker 0: each yield switches to the other. */
	CPU_SET(0, &a.affinity);
	a.name = "tr-yield-a";
	fiber_spawn(&f[1], &a, yielder, NULL);
	a.name = "tr-yield-b";
	fiber_spawn(&f[2], &a, yielder, NULL);
	CPU_ZERO(&a.affinity);
	a.name = "tr-parent";
	fiber_spawn(&f[3], &a, parent, NULL);
	for (int i = 0; i < 4; i++)
		fiber_join(f[i], NULL);
}

static char *run_traced(bool via_env)
{
	struct fiber_config c = test_cfg(2);

	snprintf(path, sizeof(path), "/tmp/libfiber-test-trace-%d.json", (int)getpid());
	unlink(path);
	if (via_env)
		setenv("FIBER_TRACE", path, 1);
	else
		c.trace_file = path;
	assert_int_equal(fiber_run(&c, workload, NULL), 0);
	unsetenv("FIBER_TRACE");
	char *s = slurp(path);
	unlink(path);
	assert_non_null(s);
	return s;
}

static void test_trace_is_valid_json(void **state)
{
	char *s = run_traced(false);

	assert_true(json_valid(s));
	assert_non_null(strstr(s, "\"traceEvents\":["));
	assert_non_null(strstr(s, "\"dropped\":0"));
	free(s);
}

static void test_trace_has_worker_tracks(void **state)
{
	char *s = run_traced(false);

	assert_non_null(strstr(s, "\"name\":\"thread_name\",\"args\":{\"name\":\"worker 0\"}"));
	assert_non_null(strstr(s, "\"name\":\"thread_name\",\"args\":{\"name\":\"worker 1\"}"));
	free(s);
}

static void test_trace_slices_named_by_fiber(void **state)
{
	char *s = run_traced(false);

	assert_non_null(strstr(s, "\"ph\":\"X\""));
	assert_non_null(strstr(s, "\"name\":\"tr-napper #"));
	assert_non_null(strstr(s, "\"name\":\"tr-yield-a #"));
	assert_non_null(strstr(s, "\"name\":\"tr-parent #"));
	free(s);
}

static void test_trace_block_reasons(void **state)
{
	char *s = run_traced(false);

	assert_non_null(strstr(s, "\"ended\":\"sleep\""));
	assert_non_null(strstr(s, "\"ended\":\"join\""));
	assert_non_null(strstr(s, "\"ended\":\"exit\""));
	assert_non_null(strstr(s, "\"ended\":\"preempted or yielded\""));
	free(s);
}

static void test_trace_wakeup_flows(void **state)
{
	char *s = run_traced(false);
	char *st = strstr(s, "\"ph\":\"s\"");
	char *fi = strstr(s, "\"ph\":\"f\",\"bp\":\"e\"");

	assert_non_null(st);
	assert_non_null(fi);
	assert_non_null(strstr(s, "\"waker\":"));
	free(s);
}

static void test_trace_from_env(void **state)
{
	char *s = run_traced(true);

	assert_true(json_valid(s));
	assert_non_null(strstr(s, "\"name\":\"tr-napper #"));
	free(s);
}

static void test_trace_bad_path(void **state)
{
	struct fiber_config c = test_cfg(1);

	c.trace_file = "/nonexistent-dir/trace.json";
	assert_int_equal(fiber_runtime_start(&c), -EINVAL);
	/* and the runtime still starts afterwards */
	c.trace_file = NULL;
	assert_int_equal(fiber_runtime_start(&c), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
}

static void test_trace_off_by_default(void **state)
{
	struct fiber_config c = test_cfg(1);

	unsetenv("FIBER_TRACE");
	assert_int_equal(fiber_runtime_start(&c), 0);
	assert_int_equal(fiber_runtime_stop(), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trace_is_valid_json),
		cmocka_unit_test(test_trace_has_worker_tracks),
		cmocka_unit_test(test_trace_slices_named_by_fiber),
		cmocka_unit_test(test_trace_block_reasons),
		cmocka_unit_test(test_trace_wakeup_flows),
		cmocka_unit_test(test_trace_from_env),
		cmocka_unit_test(test_trace_bad_path),
		cmocka_unit_test(test_trace_off_by_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
