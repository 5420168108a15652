/*
 * examples/kv_store.c on its own: each command kv_server answers, its replies and errors in Redis's words, expiry,
 * and the table growing. Commands run on the test's thread (the shard locks are fiber rwlocks, which a plain
 * thread may take uncontended); no sockets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kv_store.h"

static struct kv_store *kv;
static char reply[1 << 16];

static const struct resp_limits lim = { .max_bulk = 1 << 20, .max_args = 1024, .max_inline = 1 << 16 };

/* Run an inline command ("SET k v EX 10") and return its reply, NUL-terminated. */
static const char *run(const char *line)
{
	struct resp_cmd cmd = { 0 };
	struct sbuf in = { 0 }, out = { 0 };
	const char *err = NULL;
	int r;

	sbuf_puts(&in, line);
	sbuf_puts(&in, "\r\n");
	if (resp_parse(in.data, in.len, &lim, &cmd, &err, NULL) <= 0 || cmd.argc == 0)
		return "(parse error)";
	r = kv_exec(kv, &cmd, &out);
	snprintf(reply, sizeof(reply), "%s%.*s", r == KV_EXEC_QUIT ? "(quit)" : "", (int)out.len, out.data);
	sbuf_free(&in);
	sbuf_free(&out);
	resp_cmd_free(&cmd);
	return reply;
}

static int setup(void **state)
{
	return kv_store_create(&kv, 16);
}

static int teardown(void **state)
{
	kv_store_destroy(kv);
	kv = NULL;
	return 0;
}

static void test_kv_store_ping_echo(void **state)
{
	assert_string_equal(run("PING"), "+PONG\r\n");
	assert_string_equal(run("ping hi"), "$2\r\nhi\r\n");
	assert_string_equal(run("ECHO hello"), "$5\r\nhello\r\n");
	assert_string_equal(run("PING a b"), "-ERR wrong number of arguments for 'ping' command\r\n");
}

static void test_kv_store_set_get_del(void **state)
{
	assert_string_equal(run("GET k"), "$-1\r\n");
	assert_string_equal(run("SET k v1"), "+OK\r\n");
	assert_string_equal(run("GET k"), "$2\r\nv1\r\n");
	assert_string_equal(run("set k v2"), "+OK\r\n");
	assert_string_equal(run("get k"), "$2\r\nv2\r\n");
	assert_string_equal(run("DEL k nope"), ":1\r\n");
	assert_string_equal(run("GET k"), "$-1\r\n");
	assert_string_equal(run("DEL k"), ":0\r\n");
}

static void test_kv_store_set_nx_xx_get(void **state)
{
	assert_string_equal(run("SET k a XX"), "$-1\r\n");
	assert_string_equal(run("GET k"), "$-1\r\n");
	assert_string_equal(run("SET k a NX"), "+OK\r\n");
	assert_string_equal(run("SET k b NX"), "$-1\r\n");
	assert_string_equal(run("SET k c XX GET"), "$1\r\na\r\n");
	assert_string_equal(run("GET k"), "$1\r\nc\r\n");
	assert_string_equal(run("SET k d NX XX"), "-ERR syntax error\r\n");
	assert_string_equal(run("SET k d BOGUS"), "-ERR syntax error\r\n");
	assert_string_equal(run("SET k d EX"), "-ERR syntax error\r\n");
	assert_string_equal(run("SET k d EX abc"), "-ERR value is not an integer or out of range\r\n");
	assert_string_equal(run("SET k d EX 0"), "-ERR invalid expire time in 'set' command\r\n");
	assert_string_equal(run("SET k d EX 10 PX 100"), "-ERR syntax error\r\n");
}

static void test_kv_store_expiry(void **state)
{
	assert_string_equal(run("SET k v PX 400"), "+OK\r\n");
	assert_string_equal(run("EXISTS k"), ":1\r\n");
	usleep(800000);
	assert_string_equal(run("GET k"), "$-1\r\n");
	assert_string_equal(run("TTL k"), ":-2\r\n");
	assert_string_equal(run("EXISTS k"), ":0\r\n");
	assert_string_equal(run("DBSIZE"), ":0\r\n");
	assert_string_equal(run("SET k v EX 100"), "+OK\r\n");
	assert_string_equal(run("TTL k"), ":100\r\n");
	assert_string_equal(run("SET k w KEEPTTL"), "+OK\r\n");
	assert_string_equal(run("TTL k"), ":100\r\n");
	assert_string_equal(run("SET k w"), "+OK\r\n"); /* a plain SET clears the time to live */
	assert_string_equal(run("TTL k"), ":-1\r\n");
	assert_string_equal(run("EXPIRE k 50"), ":1\r\n");
	assert_string_equal(run("TTL k"), ":50\r\n");
	assert_string_equal(run("EXPIRE k 10 GT"), ":0\r\n");
	assert_string_equal(run("PERSIST k"), ":1\r\n");
	assert_string_equal(run("TTL k"), ":-1\r\n");
	assert_string_equal(run("EXPIRE nope 10"), ":0\r\n");
	assert_string_equal(run("EXPIRE k -1"), ":1\r\n"); /* a time in the past deletes */
	assert_string_equal(run("GET k"), "$-1\r\n");
	assert_string_equal(run("EXPIRE k x"), "-ERR value is not an integer or out of range\r\n");
}

static void test_kv_store_expire_cycle_removes(void **state)
{
	char cmd[64];

	for (int i = 0; i < 100; i++) {
		snprintf(cmd, sizeof(cmd), "SET k%d v PX 20", i);
		assert_string_equal(run(cmd), "+OK\r\n");
	}
	assert_string_equal(run("SET keep v"), "+OK\r\n");
	usleep(60000);
	size_t removed = 0;
	for (int i = 0; i < 4; i++) /* 16 shards per call: every shard once */
		removed += kv_store_expire_cycle(kv);
	assert_int_equal(removed, 100);
	assert_string_equal(run("DBSIZE"), ":1\r\n");
}

static void test_kv_store_incr_family(void **state)
{
	assert_string_equal(run("INCR n"), ":1\r\n");
	assert_string_equal(run("INCR n"), ":2\r\n");
	assert_string_equal(run("DECR n"), ":1\r\n");
	assert_string_equal(run("INCRBY n 100"), ":101\r\n");
	assert_string_equal(run("DECRBY n 1"), ":100\r\n");
	assert_string_equal(run("INCRBY n x"), "-ERR value is not an integer or out of range\r\n");
	assert_string_equal(run("SET s abc"), "+OK\r\n");
	assert_string_equal(run("INCR s"), "-ERR value is not an integer or out of range\r\n");
	assert_string_equal(run("SET big 9223372036854775807"), "+OK\r\n");
	assert_string_equal(run("INCR big"), "-ERR increment or decrement would overflow\r\n");
	assert_string_equal(run("SET z 007"), "+OK\r\n");
	assert_string_equal(run("INCR z"), "-ERR value is not an integer or out of range\r\n");
	assert_string_equal(run("SET t 5 EX 100"), "+OK\r\n");
	assert_string_equal(run("INCR t"), ":6\r\n");
	assert_string_equal(run("TTL t"), ":100\r\n"); /* INCR keeps the time to live */
}

static void test_kv_store_mget_mset_exists(void **state)
{
	assert_string_equal(run("MSET a 1 b 2 c 3"), "+OK\r\n");
	assert_string_equal(run("MGET a b nope c"), "*4\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n$1\r\n3\r\n");
	assert_string_equal(run("EXISTS a b nope a"), ":3\r\n");
	assert_string_equal(run("MSET a 1 b"), "-ERR wrong number of arguments for 'mset' command\r\n");
}

static void test_kv_store_dbsize_flushall(void **state)
{
	assert_string_equal(run("MSET a 1 b 2 c 3"), "+OK\r\n");
	assert_string_equal(run("DBSIZE"), ":3\r\n");
	assert_string_equal(run("FLUSHALL"), "+OK\r\n");
	assert_string_equal(run("DBSIZE"), ":0\r\n");
	assert_string_equal(run("FLUSHALL BOGUS"), "-ERR syntax error\r\n");
}

static void test_kv_store_errors(void **state)
{
	assert_string_equal(run("NOSUCH a b"), "-ERR unknown command 'NOSUCH', with args beginning with: 'a' 'b' \r\n");
	assert_string_equal(run("GET"), "-ERR wrong number of arguments for 'get' command\r\n");
	assert_string_equal(run("GET a b"), "-ERR wrong number of arguments for 'get' command\r\n");
	assert_string_equal(run("SET a"), "-ERR wrong number of arguments for 'set' command\r\n");
	assert_string_equal(run("SELECT 1"), "-ERR DB index is out of range\r\n");
	assert_string_equal(run("SELECT 0"), "+OK\r\n");
	assert_string_equal(run("QUIT"), "(quit)+OK\r\n");
}

static void test_kv_store_command_and_config(void **state)
{
	assert_string_equal(run("COMMAND COUNT"), ":25\r\n");
	assert_string_equal(run("COMMAND INFO get"),
			    "*1\r\n*6\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n");
	assert_string_equal(run("COMMAND DOCS"), "*0\r\n");
	assert_non_null(strstr(run("COMMAND"), "$4\r\nmset\r\n:-3\r\n"));
	assert_string_equal(run("CONFIG GET appendonly"), "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
	assert_string_equal(run("CONFIG GET nothing"), "*0\r\n");
}

static void test_kv_store_many_keys(void **state)
{
	char cmd[64], want[64];

	for (int i = 0; i < 20000; i++) {
		snprintf(cmd, sizeof(cmd), "SET key:%d value:%d", i, i);
		assert_string_equal(run(cmd), "+OK\r\n");
	}
	assert_string_equal(run("DBSIZE"), ":20000\r\n");
	for (int i = 0; i < 20000; i += 7) {
		snprintf(cmd, sizeof(cmd), "GET key:%d", i);
		snprintf(want, sizeof(want), "$%zu\r\nvalue:%d\r\n",
			 strlen("value:") + (size_t)snprintf(NULL, 0, "%d", i), i);
		assert_string_equal(run(cmd), want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kv_store_ping_echo, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_store_set_get_del, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_store_set_nx_xx_get, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_store_expiry, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_store_expire_cycle_removes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_store_incr_family, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_store_mget_mset_exists, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_store_dbsize_flushall, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_store_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_store_command_and_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_store_many_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
