/*
 * http_server: an HTTP/1.1 server (RFC 9112) on libfiber, one fiber per connection, parsed by Joyent/Node's
 * http_parser (Debian's libhttp-parser-dev).
 *
 *   http_server [--port N] [--workers N] [--root DIR] [--bind ADDR] [--max-conns N] [--idle-timeout SEC]
 *               [--header-timeout SEC] [--max-body BYTES]
 *
 * Default port 8080 on 127.0.0.1.
 *   GET|HEAD /       "Hello, World!" (text/plain, 13 bytes: the TechEmpower plaintext shape)
 *   POST /echo       the request body back (Content-Length or chunked), up to --max-body (default 1 MiB)
 *   GET|HEAD /path   the file under --root (no "..", no escape above the root; Content-Type by extension,
 *                    Last-Modified, If-Modified-Since answered with 304), 404 without --root
 * Keep-alive and pipelining: requests on a connection are answered in order, replies batched into one write per
 * read where they fit. Errors: 400 malformed (then close), 404, 405 (with Allow), 408 a request not complete
 * within --header-timeout, 413 body over --max-body, 414 URI over 8 KiB, 431 header section over 16 KiB, 501
 * a transfer coding other than chunked, 505 a version other than HTTP/1.x; after 400, 408, 413, 414, 431, 501
 * and 505 the connection is closed (its framing cannot be trusted), after 404 and 405 it stays open.
 * Timeouts (fiber_io_timeout): a connection idle for --idle-timeout (default 60 s) is closed; a request's header
 * section must arrive within --header-timeout (default 10 s) however slowly it trickles in (slowloris). 0 turns
 * either off (then reads and writes carry no timeout: bench/servers.sh measures what the timeouts cost).
 * SIGINT/SIGTERM shut down cleanly (server.h) and print a summary line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fiber.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sbuf.h"
#include "server.h"

#define MAX_URL (8u << 10)     /* longer: 414 */
#define MAX_HEADER (16u << 10) /* request line and header fields together; more: 431 */
#define IN_CHUNK (16u << 10)   /* bytes offered to each read */
#define OUT_FLUSH (64u << 10)  /* write queued replies out once this much is queued */
#define FILE_CHUNK (64u << 10) /* a file larger than this is sent in pieces of this size */
#define LINGER_NS 1000000000u  /* after an error reply: how long the rest of the client's data is drained */

/* Replies counted per worker (slot = worker id mod HTTP_COUNT_SLOTS), so that no cache line is written by every
 * request on every worker; the summary adds them up. Relaxed atomics: a fiber may migrate mid-update. */
#define HTTP_COUNT_SLOTS 64
struct http_count {
	_Atomic uint64_t by_class[6]; /* [0] all replies, [2..5] 2xx..5xx */
} __attribute__((aligned(64)));

struct http_server {
	int root_fd; /* -1 without --root */
	uint64_t idle_ns, header_ns;
	size_t max_body;
	struct http_count count[HTTP_COUNT_SLOTS];
};

enum hdr { H_OTHER, H_IMS, H_TE, H_EXPECT };

struct conn {
	http_parser parser;
	struct srv_conn *sc;
	struct http_server *hs;
	struct sbuf in, out;
	/* the request being parsed */
	bool in_message; /* between on_message_begin and on_message_complete */
	bool in_headers; /* between on_message_begin and on_headers_complete */
	uint64_t header_deadline;
	size_t header_bytes;
	char url[MAX_URL];
	size_t url_len;
	char field[32];
	size_t field_len;
	bool field_done; /* a value followed the current field name */
	enum hdr cur;
	char ims[64], te[128];
	size_t ims_len, te_len;
	bool te_seen, expect_continue;
	bool head; /* a HEAD request: replies carry no body */
	struct sbuf body;
	/* the connection */
	int error_status; /* set by a callback that stops the parser */
	bool closing;	  /* reply with Connection: close and stop after this request */
	time_t date_sec;
	char date[40];
	/* The whole "GET / HTTP/1.1" reply, rebuilt when the Date changes: the hot path of the plaintext benchmark
	 * is one memcpy instead of four formatted prints. */
	time_t hello_sec;
	size_t hello_len;
	char hello[256];
};

static void date_now(struct conn *c)
{
	time_t t = time(NULL);
	struct tm tm;

	if (t == c->date_sec)
		return;
	c->date_sec = t;
	gmtime_r(&t, &tm);
	strftime(c->date, sizeof(c->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

static void count_status(struct http_server *hs, int status)
{
	int w = fiber_worker_id();
	struct http_count *c = &hs->count[(unsigned)(w < 0 ? 0 : w) % HTTP_COUNT_SLOTS];
	int cls = status / 100;

	atomic_fetch_add_explicit(&c->by_class[0], 1, memory_order_relaxed);
	if (cls >= 2 && cls <= 5)
		atomic_fetch_add_explicit(&c->by_class[cls], 1, memory_order_relaxed);
}

static uint64_t count_sum(struct http_server *hs, int cls)
{
	uint64_t n = 0;

	for (unsigned i = 0; i < HTTP_COUNT_SLOTS; i++)
		n += atomic_load_explicit(&hs->count[i].by_class[cls], memory_order_relaxed);
	return n;
}

/* The status line and the headers every reply has; the caller adds its own and the blank line. */
static int reply_head(struct conn *c, int status, const char *type, uint64_t length)
{
	const http_parser *p = &c->parser;

	date_now(c);
	count_status(c->hs, status);
	if (sbuf_printf(&c->out, "HTTP/1.1 %d %s\r\nServer: libfiber\r\nDate: %s\r\n", status, reason(status), c->date))
		return -1;
	if (type && sbuf_printf(&c->out, "Content-Type: %s\r\n", type))
		return -1;
	if (status != 304 && sbuf_printf(&c->out, "Content-Length: %llu\r\n", (unsigned long long)length))
		return -1;
	if (c->closing)
		return sbuf_puts(&c->out, "Connection: close\r\n");
	if (p->http_major == 1 && p->http_minor == 0) /* keep-alive is not HTTP/1.0's default: say it (ab -k) */
		return sbuf_puts(&c->out, "Connection: keep-alive\r\n");
	return 0;
}

/* A short text reply for an error status; @allow for 405. */
static int reply_error(struct conn *c, int status, const char *allow)
{
	char body[64];
	int n = snprintf(body, sizeof(body), "%d %s\n", status, reason(status));

	if (reply_head(c, status, "text/plain", (uint64_t)n))
		return -1;
	if (allow && sbuf_printf(&c->out, "Allow: %s\r\n", allow))
		return -1;
	if (sbuf_puts(&c->out, "\r\n"))
		return -1;
	if (c->head)
		return 0;
	return sbuf_append(&c->out, body, (size_t)n);
}

static int flush_out(struct conn *c)
{
	int ret;

	if (!c->out.len)
		return 0;
	fiber_io_timeout(c->hs->idle_ns);
	ret = srv_send_all(c->sc->fd, c->out.data, c->out.len);
	sbuf_reset(&c->out);
	return ret;
}

static const char *content_type(const char *path)
{
	static const char *const types[][2] = {
		{ "html", "text/html; charset=utf-8" },
		{ "htm", "text/html; charset=utf-8" },
		{ "txt", "text/plain; charset=utf-8" },
		{ "css", "text/css" },
		{ "js", "text/javascript" },
		{ "json", "application/json" },
		{ "xml", "application/xml" },
		{ "svg", "image/svg+xml" },
		{ "png", "image/png" },
		{ "jpg", "image/jpeg" },
		{ "jpeg", "image/jpeg" },
		{ "gif", "image/gif" },
		{ "webp", "image/webp" },
		{ "ico", "image/x-icon" },
		{ "pdf", "application/pdf" },
		{ "wasm", "application/wasm" },
	};
	const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');

	if (dot && (!slash || dot > slash))
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (!strcasecmp(dot + 1, types[i][0]))
				return types[i][1];
	return "application/octet-stream";
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * The request path, percent-decoded and normalised into @rel, relative to the root ("" for "/"): "." segments
 * and empty ones dropped, ".." removes the segment before it. 0, or -1 for a path that climbs above the root,
 * has a bad %-escape or a NUL.
 */
static int normalise_path(const char *path, size_t len, char *rel, size_t cap)
{
	size_t n = 0, seg_start;
	size_t i = 0;

	while (i < len) {
		char seg[256];
		size_t sl = 0;

		while (i < len && path[i] == '/')
			i++;
		while (i < len && path[i] != '/') {
			char ch = path[i++];

			if (ch == '%') {
				int hi = i < len ? hexval(path[i]) : -1;
				int lo = i + 1 < len ? hexval(path[i + 1]) : -1;

				if (hi < 0 || lo < 0)
					return -1;
				ch = (char)(hi * 16 + lo);
				i += 2;
			}
			if (ch == '\0' || ch == '/' || sl + 1 >= sizeof(seg))
				return -1; /* an encoded '/' would make a segment that "..": refused */
			seg[sl++] = ch;
		}
		if (sl == 0 || (sl == 1 && seg[0] == '.'))
			continue;
		if (sl == 2 && seg[0] == '.' && seg[1] == '.') {
			if (n == 0)
				return -1;
			while (n > 0 && rel[n - 1] != '/')
				n--;
			if (n > 0)
				n--; /* the '/' before the removed segment */
			continue;
		}
		seg_start = n ? n + 1 : 0;
		if (seg_start + sl + 1 > cap)
			return -1;
		if (n)
			rel[n] = '/';
		memcpy(rel + seg_start, seg, sl);
		n = seg_start + sl;
	}
	rel[n] = '\0';
	return 0;
}

static void http_date(time_t t, char *buf, size_t n)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* GET or HEAD of a file under the root. 0, or -1 when the connection must close (write error, out of memory). */
static int serve_file(struct conn *c, const char *path, size_t len)
{
	struct http_server *hs = c->hs;
	bool head = c->head;
	char rel[1024], lm[40];
	struct stat st;
	off_t off = 0;
	int fd;

	if (hs->root_fd < 0)
		return reply_error(c, 404, NULL);
	if (normalise_path(path, len, rel, sizeof(rel) - sizeof("/index.html")))
		return reply_error(c, 400, NULL);
	if (c->parser.method != HTTP_GET && !head)
		return reply_error(c, 405, "GET, HEAD");
	/* O_NONBLOCK: opening a FIFO someone left under the root must not hang the connection */
	fd = fiber_openat(hs->root_fd, rel, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0);
	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		fiber_close(fd);
		strcat(rel, rel[0] ? "/index.html" : "index.html");
		fd = fiber_openat(hs->root_fd, rel, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0);
	}
	if (fd < 0)
		return reply_error(c, fd == -EACCES ? 403 : 404, NULL);
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		fiber_close(fd);
		return reply_error(c, 404, NULL);
	}
	http_date(st.st_mtime, lm, sizeof(lm));
	if (c->ims_len) {
		struct tm tm = { 0 };
		const char *end = strptime(c->ims, "%a, %d %b %Y %H:%M:%S GMT", &tm);

		if (end && *end == '\0' && st.st_mtime <= timegm(&tm)) {
			fiber_close(fd);
			if (reply_head(c, 304, NULL, 0))
				return -1;
			return sbuf_printf(&c->out, "Last-Modified: %s\r\n\r\n", lm);
		}
	}
	if (reply_head(c, 200, content_type(rel), (uint64_t)st.st_size) ||
	    sbuf_printf(&c->out, "Last-Modified: %s\r\n\r\n", lm)) {
		fiber_close(fd);
		return -1;
	}
	while (!head && off < st.st_size) {
		size_t want = (size_t)(st.st_size - off) < FILE_CHUNK ? (size_t)(st.st_size - off) : FILE_CHUNK;
		ssize_t n;

		if (sbuf_reserve(&c->out, want)) {
			fiber_close(fd);
			return -1;
		}
		n = fiber_pread(fd, c->out.data + c->out.len, want, off);
		if (n <= 0) {
			/* the file shrank under us: the length is promised, so the connection must end */
			fiber_close(fd);
			c->closing = true;
			return -1;
		}
		c->out.len += (size_t)n;
		off += n;
		if (c->out.len >= OUT_FLUSH && flush_out(c)) {
			fiber_close(fd);
			return -1;
		}
	}
	fiber_close(fd);
	return 0;
}

/* GET / on a kept-alive HTTP/1.1 connection: the cached reply, rebuilt once a second by the general path. */
static int reply_hello(struct conn *c)
{
	date_now(c);
	if (c->hello_sec != c->date_sec) {
		size_t start = c->out.len;

		/* build it in place with the general code, then keep a copy */
		if (reply_head(c, 200, "text/plain", 13) || sbuf_puts(&c->out, "\r\nHello, World!"))
			return -1;
		if (c->out.len - start <= sizeof(c->hello)) {
			c->hello_len = c->out.len - start;
			memcpy(c->hello, c->out.data + start, c->hello_len);
			c->hello_sec = c->date_sec;
		}
		return 0;
	}
	count_status(c->hs, 200);
	return sbuf_append(&c->out, c->hello, c->hello_len);
}

static int handle_request(struct conn *c)
{
	const http_parser *p = &c->parser;
	struct http_parser_url u;
	const char *path;
	size_t len;

	http_parser_url_init(&u);
	if (http_parser_parse_url(c->url, c->url_len, p->method == HTTP_CONNECT, &u) || !(u.field_set & (1 << UF_PATH)))
		return reply_error(c, 400, NULL);
	path = c->url + u.field_data[UF_PATH].off;
	len = u.field_data[UF_PATH].len;
	if (len == 1 && path[0] == '/') {
		if (p->method != HTTP_GET && p->method != HTTP_HEAD)
			return reply_error(c, 405, "GET, HEAD");
		if (p->method == HTTP_GET && !c->closing && p->http_minor == 1)
			return reply_hello(c);
		if (reply_head(c, 200, "text/plain", 13) || sbuf_puts(&c->out, "\r\n"))
			return -1;
		return p->method == HTTP_HEAD ? 0 : sbuf_puts(&c->out, "Hello, World!");
	}
	if (len == 5 && !memcmp(path, "/echo", 5)) {
		if (p->method != HTTP_POST)
			return reply_error(c, 405, "POST");
		if (reply_head(c, 200, "application/octet-stream", c->body.len) || sbuf_puts(&c->out, "\r\n"))
			return -1;
		return sbuf_append(&c->out, c->body.data, c->body.len);
	}
	return serve_file(c, path, len);
}

/* ---- http_parser callbacks: they run inside http_parser_execute, on the connection's fiber ----------------- */

static int on_message_begin(http_parser *p)
{
	struct conn *c = p->data;

	c->in_message = c->in_headers = true;
	c->header_deadline = srv_now_ns() + c->hs->header_ns;
	c->header_bytes = 0;
	c->url_len = c->field_len = c->ims_len = c->te_len = 0;
	c->field_done = false;
	c->cur = H_OTHER;
	c->te_seen = c->expect_continue = c->head = false;
	sbuf_reset(&c->body);
	return 0;
}

static int count_header(struct conn *c, size_t len)
{
	c->header_bytes += len;
	if (c->header_bytes > MAX_HEADER) {
		c->error_status = 431;
		return 1;
	}
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (c->url_len + len >= MAX_URL) {
		c->error_status = 414;
		return 1;
	}
	memcpy(c->url + c->url_len, at, len);
	c->url_len += len;
	return count_header(c, len);
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (c->field_done) { /* a new field starts */
		c->field_len = 0;
		c->field_done = false;
	}
	for (size_t i = 0; i < len && c->field_len < sizeof(c->field) - 1; i++)
		c->field[c->field_len++] = (char)(at[i] | 0x20); /* ASCII lower case; names are tokens */
	return count_header(c, len);
}

static void append_value(char *dst, size_t *dlen, size_t cap, const char *at, size_t len)
{
	size_t n = len < cap - 1 - *dlen ? len : cap - 1 - *dlen;

	memcpy(dst + *dlen, at, n);
	*dlen += n;
	dst[*dlen] = '\0';
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (!c->field_done) {
		c->field_done = true;
		c->field[c->field_len] = '\0';
		if (!strcmp(c->field, "if-modified-since")) {
			c->cur = H_IMS;
			c->ims_len = 0;
		} else if (!strcmp(c->field, "transfer-encoding")) {
			c->cur = H_TE;
			if (c->te_seen) /* several fields are one comma-separated list */
				append_value(c->te, &c->te_len, sizeof(c->te), ",", 1);
			c->te_seen = true;
		} else if (!strcmp(c->field, "expect")) {
			c->cur = H_EXPECT;
		} else {
			c->cur = H_OTHER;
		}
	}
	if (c->cur == H_IMS)
		append_value(c->ims, &c->ims_len, sizeof(c->ims), at, len);
	else if (c->cur == H_TE)
		append_value(c->te, &c->te_len, sizeof(c->te), at, len);
	else if (c->cur == H_EXPECT && len >= 12 && !strncasecmp(at, "100-continue", 12))
		c->expect_continue = true;
	return count_header(c, len);
}

/* Transfer-Encoding is exactly "chunked" (any case, optional whitespace): the one coding implemented. */
static bool te_is_chunked(const char *te)
{
	while (*te == ' ' || *te == '\t')
		te++;
	if (strncasecmp(te, "chunked", 7))
		return false;
	te += 7;
	while (*te == ' ' || *te == '\t')
		te++;
	return *te == '\0';
}

static int on_headers_complete(http_parser *p)
{
	struct conn *c = p->data;

	c->in_headers = false;
	c->head = p->method == HTTP_HEAD;
	if (p->http_major != 1) {
		c->error_status = 505;
		return 3; /* anything but 0, 1, 2 stops the parser */
	}
	if (c->te_seen && !te_is_chunked(c->te)) {
		c->error_status = 501;
		return 3;
	}
	if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->hs->max_body) {
		c->error_status = 413;
		return 3;
	}
	if (!http_should_keep_alive(p))
		c->closing = true;
	if (c->expect_continue && p->http_minor >= 1 && (p->content_length > 0 || (p->flags & F_CHUNKED)))
		sbuf_puts(&c->out, "HTTP/1.1 100 Continue\r\n\r\n"); /* flushed before the next read */
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct conn *c = p->data;

	if (c->body.len + len > c->hs->max_body) { /* chunked: the total is learnt as it comes */
		c->error_status = 413;
		return 1;
	}
	if (p->method != HTTP_POST)
		return 0; /* only /echo uses a body; others are read and dropped */
	if (sbuf_append(&c->body, at, len)) {
		c->error_status = 500;
		return 1;
	}
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct conn *c = p->data;

	c->in_message = false;
	if (handle_request(c)) {
		c->error_status = -1; /* the connection is broken: no reply, just close */
		return 1;
	}
	if (c->body.cap > IN_CHUNK * 4)
		sbuf_free(&c->body);
	if (c->closing)
		return 1; /* the last request on this connection: ignore whatever follows */
	if (c->out.len >= OUT_FLUSH && flush_out(c)) {
		c->error_status = -1;
		return 1;
	}
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* The status for a parser error: the callbacks' choice, else 431 for the library's own header limit, else 400. */
static int error_status(struct conn *c)
{
	enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);

	if (c->error_status)
		return c->error_status;
	if (e == HPE_HEADER_OVERFLOW)
		return 431;
	if (e == HPE_INVALID_TRANSFER_ENCODING && c->te_seen)
		return 501;
	if (e == HPE_INVALID_VERSION)
		return 505;
	return 400;
}

/*
 * After an error reply: stop sending, then read and drop what the client still sends for a while. Closing with
 * unread data would reset the connection, and the reset can destroy the reply before the client reads it.
 */
static void lingering_close(struct conn *c)
{
	uint64_t end = srv_now_ns() + LINGER_NS;
	char buf[4096];

	shutdown(c->sc->fd, SHUT_WR);
	for (int i = 0; i < 256; i++) {
		uint64_t now = srv_now_ns();

		if (now >= end)
			break;
		fiber_io_timeout(end - now);
		if (fiber_recv(c->sc->fd, buf, sizeof(buf), 0) <= 0)
			break;
	}
}

static void *http_conn(void *arg)
{
	struct srv_conn *sc = arg;
	struct conn *c = calloc(1, sizeof(*c));
	bool linger = false;

	if (!c) {
		srv_conn_done(sc);
		return NULL;
	}
	c->sc = sc;
	c->hs = sc->srv->priv;
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	for (;;) {
		uint64_t timeout = c->hs->idle_ns;
		ssize_t n;
		size_t used;

		if (flush_out(c))
			break;
		if (c->closing)
			break;
		if (c->in_headers && c->hs->header_ns) {
			uint64_t now = srv_now_ns();

			if (now >= c->header_deadline) {
				c->closing = true;
				reply_error(c, 408, NULL);
				flush_out(c);
				linger = true;
				break;
			}
			if (c->header_deadline - now < timeout || !timeout)
				timeout = c->header_deadline - now;
		}
		if (sbuf_reserve(&c->in, IN_CHUNK))
			break;
		fiber_io_timeout(timeout);
		n = fiber_recv(sc->fd, c->in.data, IN_CHUNK, 0);
		if (n == -ETIMEDOUT && c->in_headers && c->hs->header_ns)
			continue; /* the header deadline: answered 408 at the top */
		if (n <= 0) {
			/* end of file, idle timeout, reset, cancelled; a request cut short gets nothing */
			break;
		}
		used = http_parser_execute(&c->parser, &settings, c->in.data, (size_t)n);
		if (HTTP_PARSER_ERRNO(&c->parser) != HPE_OK) {
			int status;

			if (c->error_status == -1)
				break;
			if (c->closing && HTTP_PARSER_ERRNO(&c->parser) == HPE_CB_message_complete)
				continue; /* flushed and closed at the top */
			status = error_status(c);
			c->closing = true;
			reply_error(c, status, NULL);
			flush_out(c);
			linger = true;
			break;
		}
		if (c->parser.upgrade || used != (size_t)n) {
			/* an Upgrade or CONNECT request: answered as plain HTTP, and nothing after it is ours */
			c->closing = true;
		}
	}
	if (linger)
		lingering_close(c);
	sbuf_free(&c->in);
	sbuf_free(&c->out);
	sbuf_free(&c->body);
	free(c);
	srv_conn_done(sc);
	return NULL;
}

static void http_refuse(int fd)
{
	static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
				  "Connection: close\r\n\r\n";

	if (send(fd, msg, sizeof(msg) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
		/* best effort: the client sees the connection close either way */
	}
}

static void http_summary(struct srv *s, char *buf, size_t n)
{
	struct http_server *hs = s->priv;

	snprintf(buf, n, ", %llu request(s): %llu 2xx, %llu 3xx, %llu 4xx, %llu 5xx",
		 (unsigned long long)count_sum(hs, 0), (unsigned long long)count_sum(hs, 2),
		 (unsigned long long)count_sum(hs, 3), (unsigned long long)count_sum(hs, 4),
		 (unsigned long long)count_sum(hs, 5));
}

static void usage(FILE *f)
{
	fprintf(f, "usage: http_server [--port N] [--workers N] [--root DIR] [--bind ADDR] [--max-conns N]\n"
		   "                   [--idle-timeout SEC] [--header-timeout SEC] [--max-body BYTES]\n"
		   "An HTTP/1.1 server on libfiber. Default: 127.0.0.1 port 8080.\n");
}

int main(int argc, char **argv)
{
	struct http_server hs = {
		.root_fd = -1, .idle_ns = 60000000000ull, .header_ns = 10000000000ull, .max_body = 1u << 20
	};
	const char *root = NULL;
	struct srv s;
	int ret;

	srv_init(&s, "http_server");
	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		int r = srv_parse_opt(&s, argc, argv, &i);
		char *end = (char *)"";
		double sec;

		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
		if (v && !strcmp(argv[i], "--root")) {
			root = v;
		} else if (v && (!strcmp(argv[i], "--idle-timeout") || !strcmp(argv[i], "--header-timeout"))) {
			sec = strtod(v, &end);
			if (sec < 0 || sec > 86400) {
				fprintf(stderr, "%s: 0 <= seconds <= 86400 (0: none)\n", argv[i]);
				return 2;
			}
			*(argv[i][2] == 'i' ? &hs.idle_ns : &hs.header_ns) = (uint64_t)(sec * 1e9);
		} else if (v && !strcmp(argv[i], "--max-body")) {
			hs.max_body = strtoull(v, &end, 10);
		} else {
			usage(stderr);
			return 2;
		}
		if (*end) {
			fprintf(stderr, "%s: bad value '%s'\n", argv[i], v);
			return 2;
		}
		i++;
	}
	if (s.port < 0)
		s.port = 8080;
	if (root) {
		hs.root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (hs.root_fd < 0) {
			fprintf(stderr, "http_server: --root %s: %s\n", root, strerror(errno));
			return 2;
		}
	}
	s.priv = &hs;
	s.conn_fn = http_conn;
	s.refuse = http_refuse;
	s.summary = http_summary;
	ret = srv_run(&s);
	if (hs.root_fd >= 0)
		close(hs.root_fd);
	return ret;
}
