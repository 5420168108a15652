/*
 * Helpers for the tests that drive the example servers (test_http_server.c, test_kv_server.c) from outside: start
 * a server binary on a free loopback port, talk to it over plain blocking sockets with timeouts, stop it with a
 * signal and collect its exit status and log, and drive a shutdown under load (srv_load_run). Nothing here asserts;
 * every wait is bounded.
 */
#ifndef TEST_SERVER_UTIL_H
#define TEST_SERVER_UTIL_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SRV_IO_TIMEOUT_MS 20000 /* generous: the ASan and TSan suites run on a loaded machine */

extern char **environ;

struct server_proc {
	pid_t pid;
	int port;
	char log_path[64]; /* the server's stderr */
};

static inline uint64_t srv_test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Raise the descriptor limit (the 1,000-connection tests need ~1,000 here and as many in the server). */
static inline void srv_test_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * Start @bin with --port 0 --bind 127.0.0.1 and @args (NULL-terminated) and wait for its "listening on ... port N"
 * line. 0, or -1 (it did not start within the timeout; it is killed).
 */
static inline int server_start(struct server_proc *sp, const char *bin, const char *const *args)
{
	const char *argv[32];
	posix_spawn_file_actions_t fa;
	int out[2], n = 0, logfd;
	char line[512];
	size_t len = 0;
	uint64_t end;

	memset(sp, 0, sizeof(*sp));
	strcpy(sp->log_path, "/tmp/srvtest.XXXXXX");
	logfd = mkstemp(sp->log_path);
	if (logfd < 0 || pipe2(out, O_CLOEXEC))
		return -1;
	argv[n++] = bin;
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--bind";
	argv[n++] = "127.0.0.1";
	for (; args && *args && n < 30; args++)
		argv[n++] = *args;
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, logfd, 2);
	if (posix_spawn(&sp->pid, bin, &fa, NULL, (char **)argv, environ)) {
		posix_spawn_file_actions_destroy(&fa);
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(logfd);
	end = srv_test_now_ms() + SRV_IO_TIMEOUT_MS;
	while (srv_test_now_ms() < end && len < sizeof(line) - 1) {
		struct pollfd p = { out[0], POLLIN, 0 };
		ssize_t r;
		char *port;

		if (poll(&p, 1, 100) <= 0)
			continue;
		r = read(out[0], line + len, sizeof(line) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		line[len] = '\0';
		port = strstr(line, " port ");
		if (port && strchr(port, ',')) {
			sp->port = atoi(port + 6);
			close(out[0]);
			return sp->port > 0 ? 0 : -1;
		}
	}
	close(out[0]);
	kill(sp->pid, SIGKILL);
	waitpid(sp->pid, NULL, 0);
	sp->pid = 0;
	return -1;
}

/* Send @sig and wait for the exit: the exit status (0..255), 128 + signal if it died of one, -1 on timeout (then
 * it is killed). */
static inline int server_stop(struct server_proc *sp, int sig, int timeout_ms)
{
	uint64_t end = srv_test_now_ms() + (uint64_t)timeout_ms;
	int st;

	if (sp->pid <= 0)
		return -1;
	kill(sp->pid, sig);
	while (srv_test_now_ms() < end) {
		pid_t r = waitpid(sp->pid, &st, WNOHANG);

		if (r == sp->pid) {
			sp->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		usleep(10000);
	}
	kill(sp->pid, SIGKILL);
	waitpid(sp->pid, &st, 0);
	sp->pid = 0;
	return -1;
}

/* The server's stderr so far, NUL-terminated, in a malloc'd buffer (caller frees); unlinks it when @last. */
static inline char *server_log(struct server_proc *sp, bool last)
{
	FILE *f = fopen(sp->log_path, "r");
	char *buf = calloc(1, 1 << 16);
	size_t n = 0;

	if (f && buf) {
		n = fread(buf, 1, (1 << 16) - 1, f);
		buf[n] = '\0';
	}
	if (f)
		fclose(f);
	if (last)
		unlink(sp->log_path);
	return buf;
}

/* A blocking loopback connection with send/receive timeouts; -1 on failure. */
static inline int tcp_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { SRV_IO_TIMEOUT_MS / 1000, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static inline int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static inline int send_str(int fd, const char *s)
{
	return send_all(fd, s, strlen(s));
}

/* Read exactly @len bytes. 0, or -1 (end of file, timeout, error). */
static inline int recv_exact(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = recv(fd, p, len, 0);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read until @delim has been seen (inclusive) or @cap - 1 bytes; NUL-terminates. Bytes, or -1. */
static inline ssize_t recv_until(int fd, char *buf, size_t cap, const char *delim)
{
	size_t len = 0;

	while (len < cap - 1) {
		ssize_t n = recv(fd, buf + len, 1, 0); /* byte by byte: never read past the reply */

		if (n <= 0)
			return -1;
		len++;
		buf[len] = '\0';
		if (strstr(buf, delim))
			return (ssize_t)len;
	}
	return -1;
}

/* True if the peer closes (end of file or reset) within the timeout, with no more bytes before it. */
static inline bool peer_closes(int fd, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	char ch;

	if (poll(&p, 1, timeout_ms) <= 0)
		return false;
	return recv(fd, &ch, 1, MSG_DONTWAIT) <= 0;
}

/*
 * One HTTP response: the head into @head (NUL-terminated), the body (Content-Length bytes, none for 304 and for
 * @head_req) into @body. The status, or -1.
 */
static inline int http_read(int fd, char *head, size_t head_cap, char *body, size_t body_cap, size_t *body_len,
			    bool head_req)
{
	const char *cl;
	size_t n = 0;
	int status;

	if (recv_until(fd, head, head_cap, "\r\n\r\n") < 0)
		return -1;
	if (sscanf(head, "HTTP/1.1 %d", &status) != 1)
		return -1;
	cl = strcasestr(head, "\r\ncontent-length:");
	if (cl)
		n = strtoul(cl + 17, NULL, 10);
	if (head_req || status == 304 || status / 100 == 1)
		n = 0;
	if (n >= body_cap)
		return -1;
	if (n && recv_exact(fd, body, n))
		return -1;
	body[n] = '\0';
	if (body_len)
		*body_len = n;
	return status;
}

/* ---- shutdown under load ---------------------------------------------------------------------------------- */

/* One client thread of srv_load_run: the test's client function reads its fields and fills in its counts. */
struct srv_load_client {
	int port;		    /* the server's */
	int id;			    /* 0 .. nr - 1 */
	_Atomic bool *stop_sending; /* set once the server has stopped; a client may also just run until it closes */
	long complete;		    /* replies read and checked */
	long bad;		    /* a wrong reply, or one cut short */
};

struct srv_load_result {
	int status;    /* server_stop's: the exit status, or -1 */
	long complete; /* summed over the clients */
	long bad;
	char *log; /* the server's log (server_log), for the caller to free */
};

/*
 * A shutdown under load: start @bin with @args, run @nr client threads of @fn (each given its srv_load_client)
 * for @run_us, stop the server with SIGTERM (waiting up to @stop_ms), tell the clients to stop sending, join them
 * and add up their counts into @res. 0, or -1 when the server or a client thread did not start (nothing left
 * running then, res->log NULL).
 */
static inline int srv_load_run(const char *bin, const char *const *args, int nr, void *(*fn)(void *), int run_us,
			       int stop_ms, struct srv_load_result *res)
{
	struct srv_load_client *lc = calloc((size_t)nr, sizeof(*lc));
	pthread_t *th = calloc((size_t)nr, sizeof(*th));
	_Atomic bool stop = false;
	struct server_proc s;
	int started = 0;

	memset(res, 0, sizeof(*res));
	if (!lc || !th || server_start(&s, bin, args)) {
		free(lc);
		free(th);
		return -1;
	}
	for (; started < nr; started++) {
		lc[started] = (struct srv_load_client){ .port = s.port, .id = started, .stop_sending = &stop };
		if (pthread_create(&th[started], NULL, fn, &lc[started]))
			break;
	}
	if (started == nr)
		usleep((useconds_t)run_us);
	res->status = server_stop(&s, SIGTERM, stop_ms);
	atomic_store(&stop, true);
	for (int i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		res->complete += lc[i].complete;
		res->bad += lc[i].bad;
	}
	res->log = server_log(&s, true);
	free(lc);
	free(th);
	if (started < nr) {
		free(res->log);
		res->log = NULL;
		return -1;
	}
	return 0;
}

#endif
