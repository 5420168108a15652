/*
 * resp: the Redis serialization protocol, version 2 (RESP2), as kv_server speaks it. No runtime calls: the parser
 * works on bytes already read, so tests/test_resp.c checks it without sockets.
 *
 * Requests are arrays of bulk strings ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", what redis-cli and redis-benchmark send)
 * or inline commands ("PING\r\n", what a person types into nc). The parser never copies: argv[i] points into the
 * caller's buffer and is valid until the buffer is consumed or grown.
 */
#ifndef EXAMPLES_RESP_H
#define EXAMPLES_RESP_H

#include <stddef.h>
#include <stdint.h>

#include "sbuf.h"

struct resp_limits {
	size_t max_bulk;   /* largest bulk string accepted ("proto-max-bulk-len"); larger is a protocol error */
	size_t max_args;   /* most elements in one request array */
	size_t max_inline; /* longest inline command or header line without its end of line */
};

#define RESP_DEFAULT_MAX_BULK (64u << 20)
#define RESP_DEFAULT_MAX_ARGS (1u << 20)
#define RESP_DEFAULT_MAX_INLINE (64u << 10)

/* One parsed command. The arrays are owned by the command and grow as needed; free them with resp_cmd_free. */
struct resp_cmd {
	size_t argc;
	const char **argv; /* into the parsed buffer, not NUL-terminated */
	size_t *argl;
	size_t cap;
};

void resp_cmd_free(struct resp_cmd *cmd);

/*
 * resp_parse - parse one command from buf[0..len).
 * Returns the bytes it takes (> 0; cmd->argc may be 0 for an empty line or "*0"), 0 when the command is not
 * complete yet (read more and call again with the same start), or -1 for a protocol error with *err pointing at
 * the message for the "-ERR Protocol error: ..." reply; after an error the connection cannot be resynchronised.
 * *need (when not NULL) gets a lower bound of the total bytes the command needs when it returns 0, so the caller
 * can size its buffer for a large bulk string in one step.
 */
long resp_parse(const char *buf, size_t len, const struct resp_limits *lim, struct resp_cmd *cmd, const char **err,
		size_t *need);

/* Reply builders. Each returns 0, or -1 when out of memory. */
int resp_simple(struct sbuf *out, const char *s); /* +s */
int resp_error(struct sbuf *out, const char *s);  /* -s */
int resp_errorf(struct sbuf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int resp_int(struct sbuf *out, int64_t v);		  /* :v */
int resp_bulk(struct sbuf *out, const void *p, size_t n); /* $n p */
int resp_bulk_str(struct sbuf *out, const char *s);
int resp_null(struct sbuf *out);	     /* $-1 */
int resp_array(struct sbuf *out, int64_t n); /* *n, then n replies */

#endif
