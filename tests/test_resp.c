/*
 * examples/resp.c on its own: the RESP2 request parser (complete, partial and malformed requests, the limits) and
 * the reply builders. No runtime, no sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "resp.h"

static const struct resp_limits lim = { .max_bulk = 1024, .max_args = 16, .max_inline = 64 };

static long parse(const char *s, struct resp_cmd *cmd, const char **err)
{
	return resp_parse(s, strlen(s), &lim, cmd, err, NULL);
}

static void test_resp_array_of_bulk_strings(void **state)
{
	const char *req = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n";
	struct resp_cmd cmd = { 0 };
	const char *err = NULL;

	assert_int_equal(parse(req, &cmd, &err), (long)strlen(req));
	assert_int_equal(cmd.argc, 3);
	assert_int_equal(cmd.argl[0], 3);
	assert_memory_equal(cmd.argv[0], "SET", 3);
	assert_memory_equal(cmd.argv[1], "key", 3);
	assert_int_equal(cmd.argl[2], 5);
	assert_memory_equal(cmd.argv[2], "va\r\nl", 5); /* binary safe */
	resp_cmd_free(&cmd);
}

static void test_resp_every_prefix_is_incomplete(void **state)
{
	const char *req = "*2\r\n$4\r\nECHO\r\n$11\r\nhello world\r\n";
	struct resp_cmd cmd = { 0 };
	const char *err = NULL;
	size_t len = strlen(req);

	for (size_t n = 0; n < len; n++)
		assert_int_equal(resp_parse(req, n, &lim, &cmd, &err, NULL), 0);
	assert_int_equal(resp_parse(req, len, &lim, &cmd, &err, NULL), (long)len);
	assert_int_equal(cmd.argc, 2);
	resp_cmd_free(&cmd);
}

static void test_resp_pipelined_requests_one_at_a_time(void **state)
{
	const char *req = "*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n";
	struct resp_cmd cmd = { 0 };
	const char *err = NULL, *p = req;
	long n;

	n = parse(p, &cmd, &err);
	assert_int_equal(n, 14);
	assert_int_equal(cmd.argc, 1);
	p += n;
	n = parse(p, &cmd, &err);
	assert_int_equal(n, 20);
	assert_int_equal(cmd.argc, 2);
	p += n;
	n = parse(p, &cmd, &err);
	assert_int_equal(n, 6);
	assert_int_equal(cmd.argc, 1);
	assert_memory_equal(cmd.argv[0], "PING", 4);
	resp_cmd_free(&cmd);
}

static void test_resp_inline_command(void **state)
{
	struct resp_cmd cmd = { 0 };
	const char *err = NULL;

	assert_int_equal(parse("  set  a\tb \r\n", &cmd, &err), 13);
	assert_int_equal(cmd.argc, 3);
	assert_memory_equal(cmd.argv[0], "set", 3);
	assert_memory_equal(cmd.argv[1], "a", 1);
	assert_memory_equal(cmd.argv[2], "b", 1);
	assert_int_equal(parse("PING\n", &cmd, &err), 5); /* a bare \n is accepted, as Redis does */
	assert_int_equal(cmd.argc, 1);
	assert_int_equal(parse("\r\n", &cmd, &err), 2); /* an empty line: no command */
	assert_int_equal(cmd.argc, 0);
	assert_int_equal(parse("PING", &cmd, &err), 0);
	resp_cmd_free(&cmd);
}

static void test_resp_empty_array_is_skipped(void **state)
{
	struct resp_cmd cmd = { 0 };
	const char *err = NULL;

	assert_int_equal(parse("*0\r\n", &cmd, &err), 4);
	assert_int_equal(cmd.argc, 0);
	assert_int_equal(parse("*-1\r\n", &cmd, &err), 5);
	assert_int_equal(cmd.argc, 0);
	resp_cmd_free(&cmd);
}

static void test_resp_malformed_requests_are_errors(void **state)
{
	static const char *const bad[] = {
		"*x\r\n",		     /* count not a number */
		"*1\r\n+PING\r\n",	     /* not a bulk string */
		"*1\r\n$-2\r\n",	     /* negative length */
		"*1\r\n$4\r\nPINGxx",	     /* no CRLF after the bulk */
		"*1\r\n$4x\r\nPING\r\n",     /* junk in the length */
		"*1\r\n$\r\n",		     /* no digits */
		"*1\r\n$4\rxPING\r\n",	     /* \r without \n */
		"*99999999999999999999\r\n", /* overflow */
	};
	struct resp_cmd cmd = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *err = NULL;

		assert_int_equal(parse(bad[i], &cmd, &err), -1);
		assert_non_null(err);
	}
	resp_cmd_free(&cmd);
}

static void test_resp_limits_are_enforced(void **state)
{
	struct resp_cmd cmd = { 0 };
	const char *err = NULL;
	char line[200];

	/* a bulk length over max_bulk is refused before any of it is read */
	assert_int_equal(parse("*1\r\n$1025\r\n", &cmd, &err), -1);
	assert_string_equal(err, "invalid bulk length");
	assert_int_equal(parse("*1\r\n$1024\r\n", &cmd, &err), 0);
	/* more elements than max_args */
	assert_int_equal(parse("*17\r\n", &cmd, &err), -1);
	assert_string_equal(err, "invalid multibulk length");
	/* an inline command longer than max_inline without its end of line */
	memset(line, 'a', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	assert_int_equal(parse(line, &cmd, &err), -1);
	assert_string_equal(err, "too big inline request");
	/* a length line that never ends */
	line[0] = '*';
	memset(line + 1, '1', sizeof(line) - 2);
	assert_int_equal(parse(line, &cmd, &err), -1);
	resp_cmd_free(&cmd);
}

static void test_resp_need_hint_for_large_bulk(void **state)
{
	struct resp_cmd cmd = { 0 };
	const char *err = NULL, *req = "*1\r\n$1000\r\nabc";
	size_t need = 0;

	assert_int_equal(resp_parse(req, strlen(req), &lim, &cmd, &err, &need), 0);
	assert_int_equal(need, 4 + 7 + 1000 + 2);
	resp_cmd_free(&cmd);
}

static void test_resp_reply_builders(void **state)
{
	struct sbuf out = { 0 };

	assert_int_equal(resp_simple(&out, "OK"), 0);
	assert_int_equal(resp_error(&out, "ERR x"), 0);
	assert_int_equal(resp_int(&out, -42), 0);
	assert_int_equal(resp_bulk(&out, "a\r\nb", 4), 0);
	assert_int_equal(resp_null(&out), 0);
	assert_int_equal(resp_array(&out, 2), 0);
	assert_int_equal(resp_errorf(&out, "ERR bad '%s'", "x\r\ny"), 0); /* stays one line */
	assert_int_equal(sbuf_append(&out, "", 1), 0);
	assert_string_equal(out.data, "+OK\r\n-ERR x\r\n:-42\r\n$4\r\na\r\nb\r\n$-1\r\n*2\r\n-ERR bad 'x  y'\r\n");
	sbuf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resp_array_of_bulk_strings),
		cmocka_unit_test(test_resp_every_prefix_is_incomplete),
		cmocka_unit_test(test_resp_pipelined_requests_one_at_a_time),
		cmocka_unit_test(test_resp_inline_command),
		cmocka_unit_test(test_resp_empty_array_is_skipped),
		cmocka_unit_test(test_resp_malformed_requests_are_errors),
		cmocka_unit_test(test_resp_limits_are_enforced),
		cmocka_unit_test(test_resp_need_hint_for_large_bulk),
		cmocka_unit_test(test_resp_reply_builders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
