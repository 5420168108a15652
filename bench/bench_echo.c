/*
 * bench_echo.c - echo throughput and server CPU time per request: libfiber's echo_server against a minimal epoll
 * loop and a minimal raw io_uring loop (bench/baselines/echo_epoll.c, echo_uring.c), 1 and 2 workers each, in one
 * run, driven by one client.
 *
 *	bench_echo [--quick] [--reps N] [--seconds S] [--warmup-ms M] [--connections C] [--size B]
 *		   [--client-threads T] [--only SERVER] [--out DIR] [--bin DIR]
 *
 * For every repetition, every server configuration in turn (interleaved, so that drift of a shared machine hits
 * them all alike): start the server as a child process on a fresh port, connect C client connections, let them run
 * for the warm-up, then measure for S seconds: requests completed (one request = one message of B bytes sent and
 * all of it received back, every byte checked), the server's CPU time over exactly that window (user + system,
 * all its threads, from the child's process CPU clock, clock_getcpuclockid), and the latency of each request
 * (send to last byte back). Then the connections are closed and the server is stopped with SIGTERM.
 *
 * The client is the same for every server and is not libfiber: T threads (default 1), each an epoll loop over its
 * share of the connections, one request in flight per connection (closed loop). It is written for low overhead,
 * not to flatter anyone: whatever it costs, it costs every server alike.
 *
 * The headline figure is requests per server CPU-second: on a shared machine throughput is bounded by whatever else
 * runs, CPU time per request much less so. Per row the table gives the median over the repetitions of: requests/s,
 * server CPU us/request, requests per server CPU-second, p50/p99 latency, and the ratios of the per-CPU-second
 * figure to the raw io_uring and epoll loops with the same number of workers. The goal of issue 11: libfiber at
 * least 0.95x the raw io_uring loop and above the epoll loop, per CPU-second.
 *
 * Programs: <bin>/bench_echo_server (examples/echo_server.c built in bench/), <bin>/baseline_echo_epoll,
 * <bin>/baseline_echo_uring; <bin> defaults to the directory of this program. A server that is not there, does not
 * start or fails a check is shown as "not available (why)", never dropped.
 * --out DIR writes DIR/echo.md (the table) and DIR/echo.csv (every repetition). The exit status is non-zero if any
 * byte came back wrong or a connection failed.
 */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPS 51
#define MAX_CLIENT_THREADS 16
#define HIST_SUB 64 /* sub-buckets per power of two: latency resolution ~1.5% */
#define HIST_BUCKETS (64 * HIST_SUB)

/* ---- options ---- */

static int reps = 3;
static double seconds = 1.0;
static int warmup_ms = 200;
static int nconn = 64;
static size_t msg_size = 64;
static int client_threads = 1;
static const char *only;
static const char *out_dir;
static char bin_dir[PATH_MAX];
static int port_base;

/* ---- server configurations ---- */

struct server {
	const char *name; /* shown in the table */
	const char *prog; /* file in bin_dir */
	const char *flag; /* how the program takes its worker count */
	int workers;
	/* results, one per repetition */
	int n;
	double rps[MAX_REPS], cpu_us[MAX_REPS], per_cpu_s[MAX_REPS], p50[MAX_REPS], p99[MAX_REPS];
	char why[160]; /* not empty: not available, and why */
};

static struct server servers[] = {
	{ .name = "libfiber echo_server", .prog = "bench_echo_server", .flag = "--workers", .workers = 1 },
	{ .name = "raw io_uring loop", .prog = "baseline_echo_uring", .flag = "--threads", .workers = 1 },
	{ .name = "epoll loop", .prog = "baseline_echo_epoll", .flag = "--threads", .workers = 1 },
	{ .name = "libfiber echo_server", .prog = "bench_echo_server", .flag = "--workers", .workers = 2 },
	{ .name = "raw io_uring loop", .prog = "baseline_echo_uring", .flag = "--threads", .workers = 2 },
	{ .name = "epoll loop", .prog = "baseline_echo_epoll", .flag = "--threads", .workers = 2 },
};
#define NSERVERS (sizeof(servers) / sizeof(servers[0]))

/* ---- client ---- */

struct conn {
	int fd;
	int id;
	uint64_t seq;	  /* message number: selects the byte pattern */
	size_t sent, got; /* of the current message */
	uint64_t t_send;  /* ns, when the current message's first byte went */
	char *rbuf;
};

struct client {
	pthread_t thread;
	int ep;
	struct conn *conns;
	int n;
	uint64_t done; /* requests completed while measuring */
	uint64_t hist[HIST_BUCKETS];
	int error; /* errno of the first failure, or -1: a byte came back wrong */
	char *sbuf;
};

static struct client clients[MAX_CLIENT_THREADS];
static atomic_int phase; /* 0 warm-up, 1 measuring, 2 stop; written by main, read by the client threads */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static unsigned char pattern(int id, uint64_t seq, size_t i)
{
	return (unsigned char)((unsigned)id * 131u + (unsigned)seq * 7u + (unsigned)i);
}

static unsigned hist_index(uint64_t ns)
{
	unsigned msb, shift;

	if (ns < HIST_SUB)
		return (unsigned)ns;
	msb = 63u - (unsigned)__builtin_clzll(ns);
	shift = msb - 5; /* keep 6 significant bits: HIST_SUB values per power of two */
	return (shift + 1) * HIST_SUB + (unsigned)((ns >> shift) - HIST_SUB);
}

static uint64_t hist_value(unsigned idx)
{
	unsigned shift;

	if (idx < HIST_SUB)
		return idx;
	shift = idx / HIST_SUB - 1;
	return ((uint64_t)(idx % HIST_SUB + HIST_SUB) << shift) + ((1ull << shift) >> 1);
}

static uint64_t hist_quantile(const uint64_t *h, uint64_t total, double q)
{
	uint64_t want = (uint64_t)ceil(q * (double)total), seen = 0;

	if (!total)
		return 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h[i];
		if (seen >= want && h[i])
			return hist_value(i);
	}
	return 0;
}

static void fill_send(struct client *cl, struct conn *c)
{
	for (size_t i = 0; i < msg_size; i++)
		cl->sbuf[i] = (char)pattern(c->id, c->seq, i);
}

/* Send (the rest of) the current message; false on a failure. A full socket waits for EPOLLOUT. */
static bool conn_send(struct client *cl, struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

	if (c->sent == 0)
		c->t_send = now_ns();
	fill_send(cl, c);
	while (c->sent < msg_size) {
		ssize_t n = send(c->fd, cl->sbuf + c->sent, msg_size - c->sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			ev.events = EPOLLIN | EPOLLOUT;
			epoll_ctl(cl->ep, EPOLL_CTL_MOD, c->fd, &ev);
			return true;
		}
		if (n < 0) {
			cl->error = errno;
			return false;
		}
		c->sent += (size_t)n;
	}
	return true;
}

static bool conn_recv(struct client *cl, struct conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->rbuf, msg_size - c->got, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		if (n <= 0) {
			cl->error = n == 0 ? ECONNRESET : errno; /* the server closed on us */
			return false;
		}
		for (ssize_t i = 0; i < n; i++) {
			if ((unsigned char)c->rbuf[i] != pattern(c->id, c->seq, c->got + (size_t)i)) {
				cl->error = -1;
				return false;
			}
		}
		c->got += (size_t)n;
		if (c->got < msg_size)
			continue;
		if (atomic_load_explicit(&phase, memory_order_relaxed) == 1) {
			cl->done++;
			cl->hist[hist_index(now_ns() - c->t_send)]++;
		}
		if (c->sent < msg_size)
			return true; /* cannot happen with an echo server; wait for EPOLLOUT to finish */
		c->seq++;
		c->sent = c->got = 0;
		return conn_send(cl, c);
	}
}

static void *client_loop(void *arg)
{
	struct client *cl = arg;
	struct epoll_event evs[256];

	for (int i = 0; i < cl->n; i++) {
		if (!conn_send(cl, &cl->conns[i]))
			return NULL;
	}
	while (atomic_load_explicit(&phase, memory_order_relaxed) < 2 && !cl->error) {
		int n = epoll_wait(cl->ep, evs, 256, 50);

		for (int i = 0; i < n && !cl->error; i++) {
			struct conn *c = evs[i].data.ptr;

			if (evs[i].events & EPOLLOUT) {
				struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

				epoll_ctl(cl->ep, EPOLL_CTL_MOD, c->fd, &ev);
				if (!conn_send(cl, c))
					break;
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				conn_recv(cl, c);
		}
	}
	return NULL;
}

static int connect_to(int p)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)p),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* ---- one measurement ---- */

struct sample {
	double rps, cpu_us, per_cpu_s, p50_us, p99_us;
};

static uint64_t cpu_clock_ns(clockid_t clk)
{
	struct timespec ts;

	if (clock_gettime(clk, &ts) < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static pid_t start_server(struct server *s, int p)
{
	char path[PATH_MAX + 64], ports[16], workers[16];
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", bin_dir, s->prog);
	snprintf(ports, sizeof(ports), "%d", p);
	snprintf(workers, sizeof(workers), "%d", s->workers);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		if (null >= 0)
			dup2(null, STDOUT_FILENO); /* stderr stays: a server's complaint is worth seeing */
		execl(path, path, "--port", ports, s->flag, workers, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Stop the server: SIGTERM, then SIGKILL if it has not gone after 5 s. Its exit status, or -1 if it had to be
 * killed. */
static int stop_server(pid_t pid)
{
	int status = 0;

	kill(pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		sleep_ns(10000000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	return -1;
}

static bool measure(struct server *s, struct sample *out, char *why, size_t whylen)
{
	static struct conn *conns;
	static char *rbufs;
	int p = port_base++, fd = -ECONNREFUSED, status;
	uint64_t t0, t1, c0, c1, done = 0, errors = 0;
	static uint64_t hist[HIST_BUCKETS];
	char path[PATH_MAX + 64];
	clockid_t clk;
	pid_t pid;
	bool ok = false;

	snprintf(path, sizeof(path), "%s/%s", bin_dir, s->prog);
	if (access(path, X_OK) < 0) {
		snprintf(why, whylen, "%s not built", s->prog);
		return false;
	}
	if (!conns) {
		conns = calloc((size_t)nconn, sizeof(*conns));
		rbufs = malloc((size_t)nconn * msg_size);
		if (!conns || !rbufs) {
			snprintf(why, whylen, "out of memory");
			return false;
		}
	}
	pid = start_server(s, p);
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		return false;
	}
	/* Up when it accepts a connection; the probe connection is closed again (the server sees an EOF). */
	for (int i = 0; i < 500 && fd < 0; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			snprintf(why, whylen, "%s exited with status %d at start", s->prog, WEXITSTATUS(status));
			return false;
		}
		fd = connect_to(p);
		if (fd < 0)
			sleep_ns(10000000);
	}
	if (fd < 0) {
		snprintf(why, whylen, "%s does not accept connections on port %d", s->prog, p);
		goto out;
	}
	close(fd);
	if (clock_getcpuclockid(pid, &clk) != 0) {
		snprintf(why, whylen, "clock_getcpuclockid failed");
		goto out;
	}

	/* Connections, dealt round-robin to the client threads. */
	memset(clients, 0, sizeof(clients));
	for (int t = 0; t < client_threads; t++) {
		clients[t].ep = epoll_create1(EPOLL_CLOEXEC);
		clients[t].conns = conns + (size_t)nconn * (size_t)t / (size_t)client_threads;
		clients[t].n = (int)((size_t)nconn * (size_t)(t + 1) / (size_t)client_threads -
				     (size_t)nconn * (size_t)t / (size_t)client_threads);
		clients[t].sbuf = malloc(msg_size);
	}
	for (int i = 0; i < nconn; i++) {
		struct client *cl = &clients[(size_t)i * (size_t)client_threads / (size_t)nconn];
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &conns[i] };
		int cfd = connect_to(p);

		if (cfd < 0) {
			snprintf(why, whylen, "connect: %s", strerror(-cfd));
			for (int j = 0; j < i; j++)
				close(conns[j].fd);
			goto out_clients;
		}
		fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) | O_NONBLOCK);
		conns[i] = (struct conn){ .fd = cfd, .id = i, .rbuf = rbufs + (size_t)i * msg_size };
		epoll_ctl(cl->ep, EPOLL_CTL_ADD, cfd, &ev);
	}

	atomic_store(&phase, 0);
	for (int t = 0; t < client_threads; t++)
		pthread_create(&clients[t].thread, NULL, client_loop, &clients[t]);
	sleep_ns((uint64_t)warmup_ms * 1000000ull);
	c0 = cpu_clock_ns(clk);
	t0 = now_ns();
	atomic_store(&phase, 1);
	sleep_ns((uint64_t)(seconds * 1e9));
	atomic_store(&phase, 2);
	t1 = now_ns();
	c1 = cpu_clock_ns(clk);
	memset(hist, 0, sizeof(hist));
	for (int t = 0; t < client_threads; t++) {
		pthread_join(clients[t].thread, NULL);
		done += clients[t].done;
		for (unsigned b = 0; b < HIST_BUCKETS; b++)
			hist[b] += clients[t].hist[b];
		if (clients[t].error && !errors++)
			snprintf(why, whylen, "%s",
				 clients[t].error < 0 ? "a byte came back wrong" : strerror(clients[t].error));
	}
	for (int i = 0; i < nconn; i++)
		close(conns[i].fd);
	if (!errors && done == 0)
		snprintf(why, whylen, "no request completed");
	if (!errors && done) {
		out->rps = (double)done / ((double)(t1 - t0) / 1e9);
		out->cpu_us = (double)(c1 - c0) / 1e3 / (double)done;
		out->per_cpu_s = c1 > c0 ? (double)done / ((double)(c1 - c0) / 1e9) : 0;
		out->p50_us = (double)hist_quantile(hist, done, 0.50) / 1e3;
		out->p99_us = (double)hist_quantile(hist, done, 0.99) / 1e3;
		ok = true;
	}
out_clients:
	for (int t = 0; t < client_threads; t++) {
		close(clients[t].ep);
		free(clients[t].sbuf);
	}
out:
	status = stop_server(pid);
	if (ok && status != 0 && !strcmp(s->prog, "bench_echo_server")) {
		/* libfiber's server promises a clean exit on SIGTERM: hold it to that. */
		snprintf(why, whylen, "echo_server did not exit 0 on SIGTERM (status %#x)", (unsigned)status);
		ok = false;
	}
	return ok;
}

/* ---- report ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
	double t[MAX_REPS];

	if (n <= 0)
		return NAN;
	memcpy(t, v, sizeof(double) * (size_t)n);
	qsort(t, (size_t)n, sizeof(double), cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static struct server *find(const char *prog, int workers)
{
	for (size_t i = 0; i < NSERVERS; i++) {
		if (!strcmp(servers[i].prog, prog) && servers[i].workers == workers)
			return &servers[i];
	}
	return NULL;
}

static double per_cpu(const struct server *s)
{
	return s && s->n ? median(s->per_cpu_s, s->n) : NAN;
}

static void ratio_cell(char *buf, size_t len, double a, double b)
{
	if (isnan(a) || isnan(b) || b == 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2fx", a / b);
}

static void print_table(FILE *f)
{
	fprintf(f,
		"Echo, %d connections x 1 request in flight, %zu-byte messages, %d client thread(s) (epoll, not "
		"libfiber); %d repetition(s) of %.1f s after %d ms of warm-up, medians; server CPU = user + system "
		"of all its threads over the measured window.\n\n",
		nconn, msg_size, client_threads, reps, seconds, warmup_ms);
	fprintf(f, "| server | workers | requests/s | server CPU us/req | req per server CPU-s | vs io_uring loop "
		   "(per CPU-s) | vs epoll loop (per CPU-s) | p50 us | p99 us |\n");
	fprintf(f, "|---|---|---|---|---|---|---|---|---|\n");
	for (size_t i = 0; i < NSERVERS; i++) {
		struct server *s = &servers[i];
		char r1[32], r2[32];

		if (!s->n) {
			fprintf(f, "| %s | %d | not available (%s) | | | | | | |\n", s->name, s->workers,
				s->why[0] ? s->why : "not run");
			continue;
		}
		ratio_cell(r1, sizeof(r1), per_cpu(s), per_cpu(find("baseline_echo_uring", s->workers)));
		ratio_cell(r2, sizeof(r2), per_cpu(s), per_cpu(find("baseline_echo_epoll", s->workers)));
		fprintf(f, "| %s | %d | %.0f | %.2f | %.0f | %s | %s | %.1f | %.1f |\n", s->name, s->workers,
			median(s->rps, s->n), median(s->cpu_us, s->n), median(s->per_cpu_s, s->n), r1, r2,
			median(s->p50, s->n), median(s->p99, s->n));
	}
	fprintf(f, "\nGoal (issue 11), requests per server CPU-second:\n\n");
	for (int w = 1; w <= 2; w++) {
		double lf = per_cpu(find("bench_echo_server", w));
		double ur = per_cpu(find("baseline_echo_uring", w));
		double ep = per_cpu(find("baseline_echo_epoll", w));

		if (isnan(lf) || isnan(ur) || isnan(ep)) {
			fprintf(f, "- %d worker(s): not all three measured\n", w);
			continue;
		}
		fprintf(f,
			"- %d worker(s): libfiber %.2fx the raw io_uring loop (goal >= 0.95x: %s), %.2fx the epoll "
			"loop (goal > 1.00x: %s)\n",
			w, lf / ur, lf / ur >= 0.95 ? "met" : "NOT met", lf / ep, lf / ep > 1.0 ? "met" : "NOT met");
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_echo [--quick] [--reps N] [--seconds S] [--warmup-ms M] [--connections C] "
			"[--size B] [--client-threads T] [--only PROGRAM] [--out DIR] [--bin DIR]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	FILE *csv = NULL;
	int failed = 0;
	char *slash;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--quick")) {
			reps = 1;
			seconds = 0.2;
			warmup_ms = 50;
			nconn = 16;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--reps"))
			reps = atoi(v);
		else if (!strcmp(a, "--seconds"))
			seconds = atof(v);
		else if (!strcmp(a, "--warmup-ms"))
			warmup_ms = atoi(v);
		else if (!strcmp(a, "--connections"))
			nconn = atoi(v);
		else if (!strcmp(a, "--size"))
			msg_size = (size_t)atol(v);
		else if (!strcmp(a, "--client-threads"))
			client_threads = atoi(v);
		else if (!strcmp(a, "--only"))
			only = v;
		else if (!strcmp(a, "--out"))
			out_dir = v;
		else if (!strcmp(a, "--bin"))
			snprintf(bin_dir, sizeof(bin_dir), "%s", v);
		else
			usage();
	}
	if (reps < 1 || reps > MAX_REPS || seconds <= 0 || warmup_ms < 0 || nconn < 1 || msg_size < 1 ||
	    client_threads < 1 || client_threads > MAX_CLIENT_THREADS || client_threads > nconn)
		usage();
	if (!bin_dir[0]) {
		ssize_t n = readlink("/proc/self/exe", bin_dir, sizeof(bin_dir) - 1);

		bin_dir[n > 0 ? n : 0] = 0;
		slash = strrchr(bin_dir, '/');
		if (slash)
			*slash = 0;
		else
			snprintf(bin_dir, sizeof(bin_dir), ".");
	}
	/* Enough descriptors for the connections (the servers raise their own if they need to). */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)nconn + 64) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	/* Ports: a block above the usual ephemeral range's start, different for every run of this program. */
	port_base = 20000 + (int)(getpid() % 5000) * 2;
	if (out_dir) {
		char path[PATH_MAX + 16];

		mkdir(out_dir, 0755);
		snprintf(path, sizeof(path), "%s/echo.csv", out_dir);
		csv = fopen(path, "w");
		if (csv)
			fprintf(csv, "server,program,workers,rep,requests_per_s,server_cpu_us_per_req,"
				     "req_per_server_cpu_s,p50_us,p99_us\n");
	}

	for (int r = 0; r < reps; r++) {
		for (size_t i = 0; i < NSERVERS; i++) {
			struct server *s = &servers[i];
			struct sample sm;

			if (only && !strstr(s->prog, only))
				continue;
			if (!measure(s, &sm, s->why, sizeof(s->why))) {
				fprintf(stderr, "bench_echo: %s, %d worker(s): %s\n", s->name, s->workers, s->why);
				if (strstr(s->why, "wrong") || strstr(s->why, "SIGTERM") || strstr(s->why, "connect") ||
				    strstr(s->why, "reset"))
					failed = 1;
				continue;
			}
			s->rps[s->n] = sm.rps;
			s->cpu_us[s->n] = sm.cpu_us;
			s->per_cpu_s[s->n] = sm.per_cpu_s;
			s->p50[s->n] = sm.p50_us;
			s->p99[s->n] = sm.p99_us;
			s->n++;
			s->why[0] = 0;
			printf("RESULT echo_%s_%dw %s %.0f req/s, %.2f us CPU/req, %.0f req/CPU-s, p50 %.1f us, "
			       "p99 %.1f us\n",
			       s->prog, s->workers, s->name, sm.rps, sm.cpu_us, sm.per_cpu_s, sm.p50_us, sm.p99_us);
			fflush(stdout);
			if (csv)
				fprintf(csv, "%s,%s,%d,%d,%.0f,%.3f,%.0f,%.2f,%.2f\n", s->name, s->prog, s->workers, r,
					sm.rps, sm.cpu_us, sm.per_cpu_s, sm.p50_us, sm.p99_us);
		}
	}
	printf("\n");
	print_table(stdout);
	if (csv)
		fclose(csv);
	if (out_dir) {
		char path[PATH_MAX + 16];
		FILE *md;

		snprintf(path, sizeof(path), "%s/echo.md", out_dir);
		md = fopen(path, "w");
		if (md) {
			print_table(md);
			fclose(md);
		}
	}
	return failed;
}
