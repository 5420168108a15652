/*
 * resp.c: the RESP2 request parser and reply builders (see resp.h). What it owns: the grammar of requests and the
 * limits that keep a client from making the server allocate without bound. What it promises: a malformed request
 * is an error with a message, never a read past the buffer, and a request is taken only when complete.
 */
#include "resp.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void resp_cmd_free(struct resp_cmd *cmd)
{
	free(cmd->argv);
	free(cmd->argl);
	cmd->argv = NULL;
	cmd->argl = NULL;
	cmd->argc = cmd->cap = 0;
}

static int cmd_reserve(struct resp_cmd *cmd, size_t n)
{
	const char **argv;
	size_t *argl;
	size_t cap;

	if (n <= cmd->cap)
		return 0;
	cap = cmd->cap ? cmd->cap : 8;
	while (cap < n)
		cap *= 2;
	argv = realloc(cmd->argv, cap * sizeof(*argv));
	if (!argv)
		return -1;
	cmd->argv = argv;
	argl = realloc(cmd->argl, cap * sizeof(*argl));
	if (!argl)
		return -1;
	cmd->argl = argl;
	cmd->cap = cap;
	return 0;
}

/*
 * A "<prefix><integer>\r\n" line at buf[0..len): 1 with *v and *end (the byte after \n), 0 if the line is not
 * complete, -1 if it is malformed (no digits, junk, no \n after \r, too long).
 */
static int parse_line_int(const char *buf, size_t len, size_t max_line, long long *v, size_t *end)
{
	const char *cr = memchr(buf, '\r', len < max_line + 2 ? len : max_line + 2);
	const char *p = buf + 1;
	unsigned long long u = 0;
	int neg = 0;

	if (!cr)
		return len > max_line ? -1 : 0;
	if ((size_t)(cr - buf) + 1 >= len)
		return 0; /* \r is the last byte: wait for \n */
	if (cr[1] != '\n')
		return -1;
	if (p < cr && *p == '-') {
		neg = 1;
		p++;
	}
	if (p == cr || cr - p > 18)
		return -1;
	for (; p < cr; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		u = u * 10 + (unsigned)(*p - '0');
	}
	*v = neg ? -(long long)u : (long long)u;
	*end = (size_t)(cr - buf) + 2;
	return 1;
}

static long parse_inline(const char *buf, size_t len, const struct resp_limits *lim, struct resp_cmd *cmd,
			 const char **err)
{
	const char *nl = memchr(buf, '\n', len < lim->max_inline + 1 ? len : lim->max_inline + 1);
	const char *p, *end;

	if (!nl) {
		if (len > lim->max_inline) {
			*err = "too big inline request";
			return -1;
		}
		return 0;
	}
	end = nl;
	if (end > buf && end[-1] == '\r')
		end--;
	cmd->argc = 0;
	for (p = buf; p < end;) {
		const char *q;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			break;
		for (q = p; q < end && *q != ' ' && *q != '\t'; q++)
			;
		if (cmd->argc >= lim->max_args) {
			*err = "too many arguments in inline request";
			return -1;
		}
		if (cmd_reserve(cmd, cmd->argc + 1)) {
			*err = "out of memory";
			return -1;
		}
		cmd->argv[cmd->argc] = p;
		cmd->argl[cmd->argc] = (size_t)(q - p);
		cmd->argc++;
		p = q;
	}
	return (long)(nl - buf) + 1;
}

long resp_parse(const char *buf, size_t len, const struct resp_limits *lim, struct resp_cmd *cmd, const char **err,
		size_t *need)
{
	size_t pos, end;
	long long n;
	int r;

	cmd->argc = 0;
	if (need)
		*need = 0;
	if (len == 0)
		return 0;
	if (buf[0] != '*')
		return parse_inline(buf, len, lim, cmd, err);

	r = parse_line_int(buf, len, lim->max_inline, &n, &end);
	if (r <= 0) {
		if (r < 0)
			*err = "invalid multibulk length";
		return r;
	}
	if (n > (long long)lim->max_args) {
		*err = "invalid multibulk length";
		return -1;
	}
	if (n <= 0) /* "*0" and "*-1" are empty requests: skipped, as Redis does */
		return (long)end;
	if (cmd_reserve(cmd, (size_t)n)) {
		*err = "out of memory";
		return -1;
	}
	pos = end;
	for (long long i = 0; i < n; i++) {
		long long bl;

		if (pos >= len)
			return 0;
		if (buf[pos] != '$') {
			*err = "expected '$'";
			return -1;
		}
		r = parse_line_int(buf + pos, len - pos, lim->max_inline, &bl, &end);
		if (r < 0 || (r > 0 && (bl < 0 || (unsigned long long)bl > lim->max_bulk))) {
			*err = "invalid bulk length";
			return -1;
		}
		if (r == 0)
			return 0;
		pos += end;
		if (len - pos < (size_t)bl + 2) {
			if (need)
				*need = pos + (size_t)bl + 2;
			return 0;
		}
		if (buf[pos + (size_t)bl] != '\r' || buf[pos + (size_t)bl + 1] != '\n') {
			*err = "bulk string not terminated by CRLF";
			return -1;
		}
		cmd->argv[i] = buf + pos;
		cmd->argl[i] = (size_t)bl;
		pos += (size_t)bl + 2;
	}
	cmd->argc = (size_t)n;
	return (long)pos;
}

int resp_simple(struct sbuf *out, const char *s)
{
	size_t n = strlen(s);

	if (sbuf_reserve(out, n + 3))
		return -1;
	out->data[out->len++] = '+';
	memcpy(out->data + out->len, s, n);
	out->len += n;
	memcpy(out->data + out->len, "\r\n", 2);
	out->len += 2;
	return 0;
}

int resp_error(struct sbuf *out, const char *s)
{
	if (sbuf_append(out, "-", 1) || sbuf_puts(out, s))
		return -1;
	return sbuf_append(out, "\r\n", 2);
}

int resp_errorf(struct sbuf *out, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* an error line must stay one line: a client's argument echoed into it cannot break the framing */
	for (char *p = msg; *p; p++)
		if (*p == '\r' || *p == '\n')
			*p = ' ';
	return resp_error(out, msg);
}

int resp_int(struct sbuf *out, int64_t v)
{
	if (sbuf_append(out, ":", 1) || sbuf_put_i64(out, v))
		return -1;
	return sbuf_append(out, "\r\n", 2);
}

int resp_bulk(struct sbuf *out, const void *p, size_t n)
{
	if (sbuf_reserve(out, n + 32))
		return -1;
	out->data[out->len++] = '$';
	sbuf_put_i64(out, (int64_t)n);
	memcpy(out->data + out->len, "\r\n", 2);
	out->len += 2;
	memcpy(out->data + out->len, p, n);
	out->len += n;
	memcpy(out->data + out->len, "\r\n", 2);
	out->len += 2;
	return 0;
}

int resp_bulk_str(struct sbuf *out, const char *s)
{
	return resp_bulk(out, s, strlen(s));
}

int resp_null(struct sbuf *out)
{
	return sbuf_append(out, "$-1\r\n", 5);
}

int resp_array(struct sbuf *out, int64_t n)
{
	if (sbuf_append(out, "*", 1) || sbuf_put_i64(out, n))
		return -1;
	return sbuf_append(out, "\r\n", 2);
}
