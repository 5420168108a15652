/*
 * tests/test_io.c - the I/O calls (io.c, uring.c) against pipes, socketpairs, loopback TCP and a temporary file.
 * Registered twice: once on io_uring, once with FIBER_IO=poll (the readiness path). Results are recorded in the
 * fibers and asserted on the test's thread after the runtime stops.
 */
#include "test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "internal.h"
#include "io.h"

/* ---- helpers ---- */

static int tcp_listener(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 1024) ||
	    getsockname(fd, (struct sockaddr *)&a, &al)) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static struct sockaddr_in loopback(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	return a;
}

/* ---- pipes: data, short reads, EOF, EPIPE ---- */

static int pipefd[2];
static ssize_t p_short, p_rest, p_eof, p_w1, p_w2;
static char p_buf[64];
static atomic_int p_first_done;

static void *pipe_reader(void *arg)
{
	p_short = fiber_read(pipefd[0], p_buf, sizeof(p_buf)); /* parks until the writer writes 5 bytes */
	atomic_store(&p_first_done, 1);
	p_rest = fiber_read(pipefd[0], p_buf + 5, sizeof(p_buf) - 5);
	p_eof = fiber_read(pipefd[0], p_buf, sizeof(p_buf)); /* the writer closed: 0 */
	return NULL;
}

static void pipe_main(void *arg)
{
	fiber_t *r;

	atomic_store(&p_first_done, 0);
	fiber_spawn(&r, NULL, pipe_reader, NULL);
	fiber_sleep(5 * MS);
	p_w1 = fiber_write(pipefd[1], "hello", 5);
	/* The second write only after the first read returned: a loaded machine may take longer than any sleep. */
	for (int i = 0; i < 5000 && !atomic_load(&p_first_done); i++)
		fiber_sleep(MS);
	p_w2 = fiber_write(pipefd[1], " world", 6);
	fiber_sleep(5 * MS);
	fiber_close(pipefd[1]);
	fiber_join(r, NULL);
	fiber_close(pipefd[0]);
}

static void test_io_pipe_short_reads_and_eof(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(fiber_run(&c, pipe_main, NULL), 0);
	assert_int_equal(p_w1, 5);
	assert_int_equal(p_w2, 6);
	assert_int_equal(p_short, 5); /* a read returns what is there, as read(2) does */
	assert_int_equal(p_rest, 6);
	assert_int_equal(p_eof, 0);
	assert_memory_equal(p_buf, "hello world", 11);
}

static ssize_t pw_ret;

static void pipe_epipe_main(void *arg)
{
	int fds[2];

	if (pipe(fds))
		return;
	fiber_close(fds[0]);
	pw_ret = fiber_write(fds[1], "x", 1);
	fiber_close(fds[1]);
}

static void test_io_write_to_closed_pipe_is_epipe(void **state)
{
	struct fiber_config c = test_cfg(1);
	struct sigaction ign = { .sa_handler = SIG_IGN }, old;

	sigaction(SIGPIPE, &ign, &old); /* fiber_write raises SIGPIPE as write(2) does */
	assert_int_equal(fiber_run(&c, pipe_epipe_main, NULL), 0);
	sigaction(SIGPIPE, &old, NULL);
	assert_int_equal(pw_ret, -EPIPE);
}

/* ---- socketpairs: send/recv, vectors, messages, peer close ---- */

static ssize_t sp_send, sp_recv, sp_wv, sp_rv, sp_sm, sp_rm, sp_after_close, sp_epipe;
static char sp_buf[64], sp_v1[4], sp_v2[8], sp_m[16];

static void sp_main(void *arg)
{
	int sv[2];
	struct iovec wv[2] = { { "abcd", 4 }, { "efghijkl", 8 } };
	struct iovec rv[2] = { { sp_v1, sizeof(sp_v1) }, { sp_v2, sizeof(sp_v2) } };
	struct iovec mv = { "message", 7 }, rmv = { sp_m, sizeof(sp_m) };
	struct msghdr wm = { .msg_iov = &mv, .msg_iovlen = 1 }, rm = { .msg_iov = &rmv, .msg_iovlen = 1 };

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return;
	sp_send = fiber_send(sv[0], "ping", 4, 0);
	sp_recv = fiber_recv(sv[1], sp_buf, sizeof(sp_buf), 0);
	sp_wv = fiber_writev(sv[0], wv, 2);
	sp_rv = fiber_readv(sv[1], rv, 2);
	sp_sm = fiber_sendmsg(sv[0], &wm, 0);
	sp_rm = fiber_recvmsg(sv[1], &rm, 0);
	fiber_close(sv[0]);
	sp_after_close = fiber_recv(sv[1], sp_buf + 4, sizeof(sp_buf) - 4, 0); /* peer gone: 0 */
	sp_epipe = fiber_send(sv[1], "x", 1, 0);			       /* MSG_NOSIGNAL: -EPIPE, no signal */
	fiber_close(sv[1]);
}

static void test_io_socketpair_send_recv_vectors_messages(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, sp_main, NULL), 0);
	assert_int_equal(sp_send, 4);
	assert_int_equal(sp_recv, 4);
	assert_memory_equal(sp_buf, "ping", 4);
	assert_int_equal(sp_wv, 12);
	assert_int_equal(sp_rv, 12);
	assert_memory_equal(sp_v1, "abcd", 4);
	assert_memory_equal(sp_v2, "efghijkl", 8);
	assert_int_equal(sp_sm, 7);
	assert_int_equal(sp_rm, 7);
	assert_memory_equal(sp_m, "message", 7);
	assert_int_equal(sp_after_close, 0);
	assert_int_equal(sp_epipe, -EPIPE);
}

/* ---- loopback TCP: accept, connect, a reset peer ---- */

static uint16_t tcp_port;
static int tcp_lfd;
static ssize_t tcp_acc, tcp_conn, tcp_got, tcp_reset;
static char tcp_buf[8192];
static size_t tcp_total;

static void *tcp_server(void *arg)
{
	int c = fiber_accept(tcp_lfd, NULL, NULL, SOCK_CLOEXEC);
	ssize_t n;

	tcp_acc = c;
	if (c < 0)
		return NULL;
	/* Echo until EOF: every byte back. */
	while ((n = fiber_recv(c, tcp_buf, sizeof(tcp_buf), 0)) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = fiber_send(c, tcp_buf + off, (size_t)(n - off), 0);

			if (w <= 0)
				return NULL;
			off += w;
		}
	}
	fiber_close(c);
	return NULL;
}

static void tcp_main(void *arg)
{
	struct sockaddr_in a = loopback(tcp_port);
	static char out[256 * 1024], in[256 * 1024];
	fiber_t *s;
	int fd;

	fiber_spawn(&s, NULL, tcp_server, NULL);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	tcp_conn = fiber_connect(fd, (struct sockaddr *)&a, sizeof(a));
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (char)(i * 7 + 3);
	/* Write everything from one fiber while this one reads it back: large transfers, short writes and reads. */
	tcp_total = 0;
	{
		size_t sent = 0;

		while (tcp_total < sizeof(in)) {
			if (sent < sizeof(out)) {
				ssize_t w = fiber_send(fd, out + sent,
						       sizeof(out) - sent > 65536 ? 65536 : sizeof(out) - sent, 0);
				if (w <= 0)
					break;
				sent += (size_t)w;
			}
			ssize_t r = fiber_recv(fd, in + tcp_total, sizeof(in) - tcp_total, 0);

			if (r <= 0)
				break;
			tcp_total += (size_t)r;
		}
	}
	tcp_got = memcmp(in, out, sizeof(in)) == 0;
	fiber_close(fd);
	fiber_join(s, NULL);
}

static void test_io_tcp_accept_connect_echo_every_byte(void **state)
{
	struct fiber_config c = test_cfg(2);

	tcp_lfd = tcp_listener(&tcp_port);
	assert_true(tcp_lfd >= 0);
	assert_int_equal(fiber_run(&c, tcp_main, NULL), 0);
	close(tcp_lfd);
	assert_true(tcp_acc >= 0);
	assert_int_equal(tcp_conn, 0);
	assert_int_equal(tcp_total, 256 * 1024);
	assert_true(tcp_got);
}

static void *reset_server(void *arg)
{
	int c = fiber_accept(tcp_lfd, NULL, NULL, 0);
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	if (c < 0)
		return NULL;
	setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	fiber_sleep(5 * MS);
	fiber_close(c); /* linger 0: a reset */
	return NULL;
}

static void reset_main(void *arg)
{
	struct sockaddr_in a = loopback(tcp_port);
	char b[16];
	fiber_t *s;
	int fd;

	fiber_spawn(&s, NULL, reset_server, NULL);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	fiber_connect(fd, (struct sockaddr *)&a, sizeof(a));
	tcp_reset = fiber_recv(fd, b, sizeof(b), 0);
	fiber_close(fd);
	fiber_join(s, NULL);
}

static void test_io_tcp_reset_peer_is_econnreset(void **state)
{
	struct fiber_config c = test_cfg(2);

	tcp_lfd = tcp_listener(&tcp_port);
	assert_true(tcp_lfd >= 0);
	assert_int_equal(fiber_run(&c, reset_main, NULL), 0);
	close(tcp_lfd);
	assert_int_equal(tcp_reset, -ECONNRESET);
}

static int refused_ret;

static void refused_main(void *arg)
{
	uint16_t port;
	int l = tcp_listener(&port), fd;
	struct sockaddr_in a;

	close(l); /* nobody listens there now */
	a = loopback(port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	refused_ret = fiber_connect(fd, (struct sockaddr *)&a, sizeof(a));
	fiber_close(fd);
}

static void test_io_connect_refused(void **state)
{
	struct fiber_config c = test_cfg(1);

	assert_int_equal(fiber_run(&c, refused_main, NULL), 0);
	assert_int_equal(refused_ret, -ECONNREFUSED);
}

/* ---- a temporary file: openat, pwrite, pread, fsync, close ---- */

static char f_path[64];
static int f_fd, f_fsync, f_close;
static ssize_t f_pw, f_pr, f_pr_eof, f_neg, f_spipe;
static char f_buf[32];

static void file_main(void *arg)
{
	int fds[2];

	f_fd = fiber_openat(AT_FDCWD, f_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (f_fd < 0)
		return;
	f_pw = fiber_pwrite(f_fd, "0123456789", 10, 100);
	f_fsync = fiber_fsync(f_fd);
	f_pr = fiber_pread(f_fd, f_buf, sizeof(f_buf), 102);
	f_pr_eof = fiber_pread(f_fd, f_buf + 16, 4, 4096);
	f_neg = fiber_pread(f_fd, f_buf, 1, -1);
	f_close = fiber_close(f_fd);
	if (!pipe(fds)) {
		f_spipe = fiber_pread(fds[0], f_buf, 1, 0);
		fiber_close(fds[0]);
		fiber_close(fds[1]);
	}
}

static void test_io_file_openat_pwrite_pread_fsync_close(void **state)
{
	struct fiber_config c = test_cfg(2);
	struct stat st;

	snprintf(f_path, sizeof(f_path), "/tmp/test_io.%d", (int)getpid());
	assert_int_equal(fiber_run(&c, file_main, NULL), 0);
	assert_true(f_fd >= 0);
	assert_int_equal(f_pw, 10);
	assert_int_equal(f_fsync, 0);
	assert_int_equal(f_pr, 8);
	assert_memory_equal(f_buf, "23456789", 8);
	assert_int_equal(f_pr_eof, 0);
	assert_int_equal(f_neg, -EINVAL);
	assert_int_equal(f_close, 0);
	assert_int_equal(f_spipe, -ESPIPE);
	assert_int_equal(stat(f_path, &st), 0);
	assert_int_equal(st.st_size, 110);
	unlink(f_path);
}

/* ---- bad input ---- */

static ssize_t bad[12];

static void bad_main(void *arg)
{
	char b[4];
	int n = 0;

	bad[n++] = fiber_read(-1, b, 1);
	bad[n++] = fiber_write(12345, b, 1);
	bad[n++] = fiber_close(-1);
	bad[n++] = fiber_close(12345);
	bad[n++] = fiber_poll(12345, POLLIN, 0);
	bad[n++] = fiber_recv(0 <= 1 ? 12345 : 0, b, 1, 0);
	bad[n++] = fiber_readv(0, NULL, 1);
	bad[n++] = fiber_readv(0, NULL, -1);
	bad[n++] = fiber_accept(0, NULL, (socklen_t *)b, 0);
	bad[n++] = fiber_connect(0, NULL, 0);
	bad[n++] = fiber_openat(AT_FDCWD, NULL, O_RDONLY, 0);
	bad[n++] = fiber_openat(AT_FDCWD, "/nonexistent/x", O_RDONLY, 0);
}

static void test_io_bad_input_is_an_errno(void **state)
{
	struct fiber_config c = test_cfg(1);

	assert_int_equal(fiber_run(&c, bad_main, NULL), 0);
	assert_int_equal(bad[0], -EBADF);
	assert_int_equal(bad[1], -EBADF);
	assert_int_equal(bad[2], -EBADF);
	assert_int_equal(bad[3], -EBADF);
	assert_true(bad[4] == POLLNVAL || bad[4] == -EBADF);
	assert_int_equal(bad[5], -EBADF);
	assert_int_equal(bad[6], -EINVAL);
	assert_int_equal(bad[7], -EINVAL);
	assert_int_equal(bad[8], -EINVAL);
	assert_int_equal(bad[9], -EINVAL);
	assert_int_equal(bad[10], -EINVAL);
	assert_int_equal(bad[11], -ENOENT);
}

/* Outside a fiber the calls are the plain system calls; errno stays as it was. */
static void test_io_outside_a_fiber_is_the_system_call(void **state)
{
	int fds[2];
	char b[8];

	assert_int_equal(pipe(fds), 0);
	errno = 1234;
	assert_int_equal(fiber_write(fds[1], "abc", 3), 3);
	assert_int_equal(fiber_read(fds[0], b, sizeof(b)), 3);
	assert_int_equal(fiber_poll(fds[0], POLLIN, 0), -ETIMEDOUT);
	assert_int_equal(fiber_read(-1, b, 1), -EBADF);
	assert_int_equal(fiber_io_timeout(MS), -EPERM);
	assert_int_equal(fiber_close(fds[0]), 0);
	assert_int_equal(fiber_close(fds[1]), 0);
	assert_int_equal(errno, 1234);
}

/* ---- timeouts and cancellation while parked in accept and recv; the fd stays usable ---- */

static ssize_t to_recv, to_accept, to_after, to_poll, to_poll_ready;
static uint64_t to_recv_ns;

static void timeout_main(void *arg)
{
	uint16_t port;
	int l = tcp_listener(&port), sv[2];
	char b[8];
	uint64_t t0;

	if (l < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return;
	fiber_io_timeout(20 * MS);
	t0 = now_ns();
	to_recv = fiber_recv(sv[0], b, sizeof(b), 0);
	to_recv_ns = now_ns() - t0;
	to_accept = fiber_accept(l, NULL, NULL, 0);
	to_poll = fiber_poll(sv[0], POLLIN, 5 * MS);
	fiber_io_timeout(0);
	/* The fd works afterwards: nothing of the timed-out receive is left behind. */
	fiber_send(sv[1], "ok", 2, 0);
	to_poll_ready = fiber_poll(sv[0], POLLIN, -1);
	to_after = fiber_recv(sv[0], b, sizeof(b), 0);
	fiber_close(sv[0]);
	fiber_close(sv[1]);
	fiber_close(l);
}

static void test_io_timeout_in_recv_accept_poll(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, timeout_main, NULL), 0);
	assert_int_equal(to_recv, -ETIMEDOUT);
	assert_true(to_recv_ns >= 19 * MS);
	assert_int_equal(to_accept, -ETIMEDOUT);
	assert_int_equal(to_poll, -ETIMEDOUT);
	assert_true(to_poll_ready & POLLIN);
	assert_int_equal(to_after, 2);
}

static int cx_lfd, cx_sv[2];
static ssize_t cx_recv, cx_accept, cx_again, cx_other;
static char cx_buf[8];

static void *cx_recv_fn(void *arg)
{
	cx_recv = fiber_recv(cx_sv[0], cx_buf, sizeof(cx_buf), 0);
	cx_again = fiber_recv(cx_sv[0], cx_buf, sizeof(cx_buf), 0); /* still cancelled: a cancellation point */
	return NULL;
}

static void *cx_accept_fn(void *arg)
{
	cx_accept = fiber_accept(cx_lfd, NULL, NULL, 0);
	return NULL;
}

static void *cx_other_fn(void *arg)
{
	cx_other = fiber_recv(cx_sv[0], cx_buf, sizeof(cx_buf), 0);
	return NULL;
}

static void cancel_main(void *arg)
{
	uint16_t port;
	fiber_t *r, *a, *o;

	cx_lfd = tcp_listener(&port);
	if (cx_lfd < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cx_sv))
		return;
	fiber_spawn(&r, NULL, cx_recv_fn, NULL);
	fiber_spawn(&a, NULL, cx_accept_fn, NULL);
	fiber_sleep(10 * MS); /* both parked in the kernel */
	fiber_cancel(r);
	fiber_cancel(a);
	fiber_join(r, NULL);
	fiber_join(a, NULL);
	/* The socket is usable afterwards: another fiber receives what is sent next, all of it. */
	fiber_spawn(&o, NULL, cx_other_fn, NULL);
	fiber_sleep(2 * MS);
	fiber_send(cx_sv[1], "fine", 4, 0);
	fiber_join(o, NULL);
	fiber_close(cx_sv[0]);
	fiber_close(cx_sv[1]);
	fiber_close(cx_lfd);
}

static void test_io_cancel_parked_recv_and_accept(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, cancel_main, NULL), 0);
	assert_int_equal(cx_recv, -ECANCELED);
	assert_int_equal(cx_again, -ECANCELED);
	assert_int_equal(cx_accept, -ECANCELED);
	assert_int_equal(cx_other, 4);
}

/* ---- an O_NONBLOCK fd behaves like a blocking one in a fiber ---- */

static ssize_t nb_ret;
static int nb_fds[2];

static void *nb_reader(void *arg)
{
	char b[8];

	nb_ret = fiber_read(nb_fds[0], b, sizeof(b));
	return NULL;
}

static void nb_main(void *arg)
{
	fiber_t *r;

	if (pipe2(nb_fds, O_NONBLOCK | O_CLOEXEC))
		return;
	fiber_spawn(&r, NULL, nb_reader, NULL);
	fiber_sleep(5 * MS);
	fiber_write(nb_fds[1], "abc", 3);
	fiber_join(r, NULL);
	fiber_close(nb_fds[0]);
	fiber_close(nb_fds[1]);
}

static void test_io_nonblocking_fd_waits_instead_of_eagain(void **state)
{
	struct fiber_config c = test_cfg(2);

	assert_int_equal(fiber_run(&c, nb_main, NULL), 0);
	assert_int_equal(nb_ret, 3);
}

/*
 * ---- operations complete while their fibers migrate: nothing completes twice or is lost ----
 * Pairs of fibers ping-pong sequence numbers over socketpairs; between messages every fiber moves itself to
 * another worker and a shuffler moves the parked ones, so completions reaped on one worker wake fibers placed on
 * another. Every number must arrive once, in order.
 */
#define MIG_PAIRS 8
static unsigned mig_rounds, mig_workers;
static atomic_int mig_errors, mig_done_msgs;

static void move_somewhere(fiber_t *f, unsigned salt)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(salt % mig_workers, &s);
	fiber_setaffinity(f, &s);
}

static void *mig_ping(void *arg)
{
	int fd = (int)(intptr_t)arg;

	for (unsigned i = 0; i < mig_rounds; i++) {
		unsigned v = i, got = 0;

		if (fiber_send(fd, &v, sizeof(v), 0) != sizeof(v) ||
		    fiber_recv(fd, &got, sizeof(got), MSG_WAITALL) != sizeof(got) || got != i + 1000000)
			atomic_fetch_add(&mig_errors, 1);
		move_somewhere(NULL, i * 7 + (unsigned)fd);
	}
	return NULL;
}

static void *mig_pong(void *arg)
{
	int fd = (int)(intptr_t)arg;

	for (unsigned i = 0; i < mig_rounds; i++) {
		unsigned v = 0, r;

		if (fiber_recv(fd, &v, sizeof(v), MSG_WAITALL) != sizeof(v) || v != i)
			atomic_fetch_add(&mig_errors, 1);
		r = v + 1000000;
		move_somewhere(NULL, i * 3 + (unsigned)fd);
		if (fiber_send(fd, &r, sizeof(r), 0) != sizeof(r))
			atomic_fetch_add(&mig_errors, 1);
		atomic_fetch_add(&mig_done_msgs, 1);
	}
	return NULL;
}

static atomic_int mig_stop;
static fiber_t *mig_fibers[2 * MIG_PAIRS];

static void *mig_shuffler(void *arg)
{
	unsigned k = 0;

	while (!atomic_load(&mig_stop)) {
		move_somewhere(mig_fibers[k % (2 * MIG_PAIRS)], k * 5);
		k++;
		fiber_sleep(50 * US);
	}
	return NULL;
}

static void mig_main(void *arg)
{
	int sv[MIG_PAIRS][2];
	fiber_t *sh;

	for (int i = 0; i < MIG_PAIRS; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]))
			return;
		fiber_spawn(&mig_fibers[2 * i], NULL, mig_ping, (void *)(intptr_t)sv[i][0]);
		fiber_spawn(&mig_fibers[2 * i + 1], NULL, mig_pong, (void *)(intptr_t)sv[i][1]);
	}
	fiber_spawn(&sh, NULL, mig_shuffler, NULL);
	for (int i = 0; i < 2 * MIG_PAIRS; i++)
		fiber_join(mig_fibers[i], NULL);
	atomic_store(&mig_stop, 1);
	fiber_join(sh, NULL);
	for (int i = 0; i < MIG_PAIRS; i++) {
		fiber_close(sv[i][0]);
		fiber_close(sv[i][1]);
	}
}

static void test_io_completes_once_while_fibers_migrate(void **state)
{
	struct fiber_config c = test_cfg(4); /* more workers than cores */
	const char *e = getenv("TEST_IO_ROUNDS");

	mig_rounds = e ? (unsigned)atoi(e) : 300;
	mig_workers = 4;
	for (int rep = 0; rep < 3; rep++) {
		atomic_store(&mig_errors, 0);
		atomic_store(&mig_done_msgs, 0);
		atomic_store(&mig_stop, 0);
		assert_int_equal(fiber_run(&c, mig_main, NULL), 0);
		assert_int_equal(atomic_load(&mig_errors), 0);
		assert_int_equal(atomic_load(&mig_done_msgs), (int)(MIG_PAIRS * mig_rounds));
	}
}

/* ---- an idle runtime with 1,000 fibers parked in recv uses (almost) no CPU ---- */

#define PARKED 1000
static int parked_sv[PARKED][2];
static uint64_t parked_cpu, parked_wall;
static atomic_int parked_ok;

static void *parked_fn(void *arg)
{
	int i = (int)(intptr_t)arg;
	char b;

	if (fiber_recv(parked_sv[i][0], &b, 1, 0) == 1 && b == 'x')
		atomic_fetch_add(&parked_ok, 1);
	return NULL;
}

static void parked_main(void *arg)
{
	static fiber_t *f[PARKED];
	uint64_t c0, t0;

	for (int i = 0; i < PARKED; i++)
		fiber_spawn(&f[i], NULL, parked_fn, (void *)(intptr_t)i);
	fiber_sleep(50 * MS); /* everyone parked */
	c0 = cpu_ns();
	t0 = now_ns();
	fiber_sleep(300 * MS);
	parked_cpu = cpu_ns() - c0;
	parked_wall = now_ns() - t0;
	for (int i = 0; i < PARKED; i++)
		fiber_send(parked_sv[i][1], "x", 1, 0);
	for (int i = 0; i < PARKED; i++)
		fiber_join(f[i], NULL);
}

static void test_io_idle_with_1000_parked_in_recv(void **state)
{
	struct fiber_config c = test_cfg(2);
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < 2 * PARKED + 64) {
		rl.rlim_cur = rl.rlim_max < 2 * PARKED + 64 ? rl.rlim_max : 2 * PARKED + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (int i = 0; i < PARKED; i++)
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, parked_sv[i])) {
			print_message("cannot open %d socketpairs (RLIMIT_NOFILE)\n", PARKED);
			skip();
		}
	assert_int_equal(fiber_run(&c, parked_main, NULL), 0);
	for (int i = 0; i < PARKED; i++) {
		close(parked_sv[i][0]);
		close(parked_sv[i][1]);
	}
	print_message("1000 fibers parked in recv: %.2f%% of a CPU over %.0f ms\n",
		      100.0 * (double)parked_cpu / (double)parked_wall, parked_wall / 1e6);
	assert_int_equal(atomic_load(&parked_ok), PARKED);
	/* The goal is under 1%; the bound leaves room for a loaded machine and sanitizers. */
	assert_true(parked_cpu * 100 < parked_wall * 5);
}

/*
 * ---- completion work is not charged to the fiber in whose time it is done ----
 * RC_FIBERS fibers wait in reads of eventfds; a plain thread makes them all readable while the main fiber (fair,
 * on the only worker) runs without a preemption point, so at its next one the worker enters the ring, which runs
 * the deferred completions (the kernel runs a few dozen per entry), and reaps them: each reaped CQE is a wake-up.
 * That is the worker's completion work (irq time), which it excludes from what fibers are charged (rq->excl_ns).
 * Each wake-up's enqueue charged the running fiber up to its rq clock before that time was excluded, so the reaper
 * was charged for all of it (before the fix 1.1-1.2 times the time excluded; http_server's reaping connection
 * fibers then waited out that lag behind all the others). The wakees are SCHED_BATCH, which never wakeup-preempts:
 * nothing else runs, and reaps, between the two looks. Asserted: the reaper is charged under half of it (now
 * 0.04-0.24, under ASan 0.19-0.24).
 */
#define RC_FIBERS 400
static uint64_t rc_batched, rc_batches; /* the reap's fibers woken in a batch (struct ttwu_batch), and batches */
static int rc_efd[RC_FIBERS];
static atomic_int rc_go, rc_written, rc_woken;
static uint64_t rc_excluded, rc_debt, rc_reaped;
static int64_t rc_charged; /* less the look at the debts, which may make it negative */
static int rc_indebted;

static void *rc_waiter(void *arg)
{
	uint64_t v;

	if (fiber_read(rc_efd[(intptr_t)arg], &v, sizeof(v)) == sizeof(v))
		atomic_fetch_add(&rc_woken, 1);
	return NULL;
}

static void *rc_writer(void *arg)
{
	uint64_t one = 1;

	(void)arg;
	while (!atomic_load(&rc_go))
		usleep(1000);
	for (int i = 0; i < RC_FIBERS; i++)
		if (write(rc_efd[i], &one, sizeof(one)) != sizeof(one))
			break;
	atomic_store(&rc_written, 1);
	return NULL;
}

static void rc_main(void *arg)
{
	static fiber_t *f[RC_FIBERS];
	struct fiber_stats s0, s1;
	struct fiber_worker_stats w0, w1;
	struct rq *rq = &fiber__rt.workers[0].rq;
	uint64_t e0, e1, t0, look, b0, r0;
	struct fiber_attr attr;

	(void)arg;
	fiber_attr_init(&attr);
	attr.sched.policy = FIBER_SCHED_BATCH;
	for (int i = 0; i < RC_FIBERS; i++)
		fiber_spawn(&f[i], &attr, rc_waiter, (void *)(intptr_t)i);
	fiber_sleep(50 * MS); /* every read submitted and waiting */
	atomic_store(&rc_go, 1);
	while (!atomic_load(&rc_written)) /* no preemption point: the completions wait for us */
		;
	for (uint64_t t0 = now_ns(); now_ns() - t0 < 2 * MS;) /* the kernel's part of the last ones */
		;
	/* Host steal is excluded too: counted apart, so that only the completion work is compared. */
	e0 = fiber__rq_excluded(rq) - rq->steal;
	fiber_worker_stats(0, &w0);
	b0 = fiber__rt.workers[0].io->nr_batched;
	r0 = fiber__rt.workers[0].io->nr_wake_batches;
	fiber_stats(NULL, &s0); /* charges us up to here; its preemption point then enters the ring, reaps, wakes */
	e1 = fiber__rq_excluded(rq) - rq->steal;
	fiber_worker_stats(0, &w1);
	rc_reaped = w1.io_completed - w0.io_completed;
	rc_batched = fiber__rt.workers[0].io->nr_batched - b0;
	rc_batches = fiber__rt.workers[0].io->nr_wake_batches - r0;
	/*
	 * What the woken are to be charged for it when they next run: they have not (BATCH, and no preemption point
	 * until the next fiber_stats). The look is ours to pay, so it is timed and taken off our charge below.
	 */
	t0 = now_ns();
	rc_debt = 0;
	rc_indebted = 0;
	for (int i = 0; i < RC_FIBERS; i++) {
		uint64_t d = atomic_load(&f[i]->irq_debt);

		rc_debt += d;
		rc_indebted += d > 0;
	}
	look = now_ns() - t0;
	fiber_stats(NULL, &s1); /* what that cost us */
	rc_charged = (int64_t)(s1.sum_exec_ns - s0.sum_exec_ns) - (int64_t)look;
	rc_excluded = e1 - e0;
	for (int i = 0; i < RC_FIBERS; i++)
		fiber_join(f[i], NULL);
}

/* The scenario above; false where there is no ring (FIBER_IO=poll: the poller thread does the wake-ups). */
static bool rc_run(void)
{
	const char *mode = getenv("FIBER_IO");
	struct fiber_config c = test_cfg(1);
	pthread_t th;

	if (mode && !strcmp(mode, "poll"))
		return false;
	for (int i = 0; i < RC_FIBERS; i++)
		assert_true((rc_efd[i] = eventfd(0, EFD_CLOEXEC)) >= 0);
	atomic_store(&rc_go, 0);
	atomic_store(&rc_written, 0);
	atomic_store(&rc_woken, 0);
	assert_int_equal(pthread_create(&th, NULL, rc_writer, NULL), 0);
	assert_int_equal(fiber_run(&c, rc_main, NULL), 0);
	pthread_join(th, NULL);
	for (int i = 0; i < RC_FIBERS; i++)
		close(rc_efd[i]);
	print_message(
	    "  completion work in one fiber's time: %llu CQEs, %.1f us excluded, the fiber was charged %.1f us, "
	    "%d woken fibers are to be charged %.1f us\n",
	    (unsigned long long)rc_reaped, rc_excluded / 1e3, rc_charged / 1e3, rc_indebted, rc_debt / 1e3);
	assert_int_equal(atomic_load(&rc_woken), RC_FIBERS);
	return true;
}

static void test_io_reap_not_charged_to_running_fiber(void **state)
{
	(void)state;
	if (!rc_run())
		skip();
	assert_true(rc_excluded > 0);
	/* Half: each wake-up is charged from its exclusion to its own clock read, more of it under ASan. */
	assert_true(rc_charged * 2 < (int64_t)rc_excluded);
}

/*
 * The same completion work is charged to the fibers it was for (io_irq_charge): each woken fiber owes its CQE's
 * reap and wake-up and its share of the io_uring_enter that ran the completions (irq_debt, taken at its next
 * charge), and together they owe no more than was excluded. Before, it was charged to nobody: the fibers paid only
 * their own few microseconds per request, V moved at a fraction of the wall clock's pace, and with 500 connections
 * a fiber that owed a little waited up to a second. Not all of the excluded time is owed: the reap's end is
 * nobody's, nor is a thread's lost CPU inside the system call beyond the bounds in uring.c.
 */
/*
 * The reap's wake-ups are one batch per io_reap (struct ttwu_batch): every fiber it woke was activated at the
 * batch's flush, under one rq lock and one clock read, not each under its own (a clock read and a lock round trip
 * per CQE were a tenth of the runtime's time in an echo server).
 */
static void test_io_reap_wakes_its_fibers_in_one_batch(void **state)
{
	(void)state;
	if (!rc_run())
		skip();
	print_message("  %llu CQEs reaped: %llu fibers woken in %llu batches\n", (unsigned long long)rc_reaped,
		      (unsigned long long)rc_batched, (unsigned long long)rc_batches);
	assert_true(rc_reaped > 0);
	assert_int_equal(rc_batched, rc_reaped);
	assert_true(rc_batches >= 1 && rc_batches * 8 <= rc_reaped); /* a reap takes what the CQ holds */
}

static void test_io_completion_work_charged_to_woken_fibers(void **state)
{
	(void)state;
	if (!rc_run())
		skip();
	assert_true(rc_excluded > 0);
	assert_true(rc_reaped > 0);
	/* Every fiber whose CQE that reap took (the kernel runs a few dozen completions per entry, the rest come later). */
	assert_int_equal(rc_indebted, rc_reaped);
	assert_true(rc_debt <= rc_excluded);
}

/* ---- submissions are batched: one io_uring_enter carries many SQEs ---- */

#define BATCH_FIBERS 64
static int batch_fds[BATCH_FIBERS][2];
static struct fiber_worker_stats batch_before, batch_after;
static atomic_int batch_ok;

static void *batch_fn(void *arg)
{
	int i = (int)(intptr_t)arg;
	char b[4];

	for (int k = 0; k < 20; k++) {
		if (fiber_write(batch_fds[i][1], "abc", 3) == 3 && fiber_read(batch_fds[i][0], b, 3) == 3)
			atomic_fetch_add(&batch_ok, 1);
	}
	return NULL;
}

static void batch_main(void *arg)
{
	static fiber_t *f[BATCH_FIBERS];

	fiber_worker_stats(0, &batch_before);
	for (int i = 0; i < BATCH_FIBERS; i++)
		fiber_spawn(&f[i], NULL, batch_fn, (void *)(intptr_t)i);
	for (int i = 0; i < BATCH_FIBERS; i++)
		fiber_join(f[i], NULL);
	fiber_worker_stats(0, &batch_after);
}

/*
 * One run of batch_main on one worker with an SQ of @io_entries (0: the default), its pipes made and closed around
 * it; every write+read pair succeeded.
 */
static void batch_run(unsigned io_entries)
{
	struct fiber_config c = test_cfg(1);

	if (io_entries)
		c.io_entries = io_entries;
	atomic_store(&batch_ok, 0);
	for (int i = 0; i < BATCH_FIBERS; i++)
		assert_int_equal(pipe(batch_fds[i]), 0);
	assert_int_equal(fiber_run(&c, batch_main, NULL), 0);
	for (int i = 0; i < BATCH_FIBERS; i++) {
		close(batch_fds[i][0]);
		close(batch_fds[i][1]);
	}
	assert_int_equal(atomic_load(&batch_ok), BATCH_FIBERS * 20);
}

static void test_io_submissions_are_batched(void **state)
{
	const char *mode = getenv("FIBER_IO");
	uint64_t sub, comp, enter;

	batch_run(0);
	sub = batch_after.io_submitted - batch_before.io_submitted;
	comp = batch_after.io_completed - batch_before.io_completed;
	enter = batch_after.io_enter_calls - batch_before.io_enter_calls;
	print_message("%d fibers x 20 write+read: %llu SQEs submitted, %llu completed, %llu io_uring_enter calls\n",
		      BATCH_FIBERS, (unsigned long long)sub, (unsigned long long)comp, (unsigned long long)enter);
	if (mode && !strcmp(mode, "poll"))
		return; /* no ring: the counters stay 0 */
	assert_true(comp >= BATCH_FIBERS * 40);
	assert_true(sub >= comp);
	/* Submitting per call would make enter >= sub; the time bound (50 us) lowers the ratio on a slow build. */
#if defined(__SANITIZE_THREAD__)
	/* ThreadSanitizer makes every scheduling decision slower than the batch's time bound allows: no ratio. */
	(void)enter;
#else
	assert_true(enter * 2 <= sub);
#endif
}

/*
 * ---- a batch ends at switches, not at preemption points ----
 * Every I/O call returns through a preemption point; counting those as scheduling decisions ended a batch after a
 * quarter of the switches it may wait (14-15 SQEs per io_uring_enter here, 50-55 when only switches count).
 */
static void test_io_batch_is_not_cut_by_preemption_points(void **state)
{
	const char *mode = getenv("FIBER_IO");
	uint64_t sub, enter;

	batch_run(0);
	sub = batch_after.io_submitted - batch_before.io_submitted;
	enter = batch_after.io_enter_calls - batch_before.io_enter_calls;
	print_message("%llu SQEs in %llu io_uring_enter calls: %.1f per call\n", (unsigned long long)sub,
		      (unsigned long long)enter, enter ? (double)sub / (double)enter : 0.0);
	if (mode && !strcmp(mode, "poll"))
		return; /* no ring */
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
	assert_true(enter * 24 <= sub);
#else
	(void)enter; /* unoptimized or sanitized, the batch's time bound (50 us) ends a batch before its switches do */
#endif
}

/*
 * ---- a completion wakes its fiber on the worker that reaped it ----
 * F (free to run anywhere) alternates write and read on pipes answered by a plain thread, on worker 0 which a
 * pinned spinner keeps busy, while worker 1 has nothing to do and sleeps. Each completion is reaped on worker 0 in
 * the spinner's time; it must resume F there, not push it to the sleeping worker with a kick (that cost an eventfd
 * write per request and moved connection fibers between rings). The monitor is off: no tick, no periodic balance
 * that could move F legitimately meanwhile.
 */
#define AFF_ROUNDS 100
static int aff_req[2], aff_resp[2];
static atomic_int aff_stop, aff_moved, aff_calls, aff_errors;

static void pin_self_to(int worker)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	if (worker < 0) {
		for (unsigned i = 0; i < fiber_worker_count(); i++)
			CPU_SET(i, &set);
	} else {
		CPU_SET(worker, &set);
	}
	fiber_setaffinity(NULL, &set);
	fiber_cond_resched(); /* moves at a preemption point */
}

static void *aff_spinner(void *arg)
{
	pin_self_to(0);
	while (!atomic_load(&aff_stop))
		fiber_yield();
	return NULL;
}

/* A call that started on worker @w0 returned @r: was it the one byte, and is the fiber still on w0? */
static void aff_note(int w0, ssize_t r)
{
	if (r != 1)
		atomic_fetch_add(&aff_errors, 1);
	if (fiber_worker_id() != w0)
		atomic_fetch_add(&aff_moved, 1);
	atomic_fetch_add(&aff_calls, 1);
}

static void *aff_fiber(void *arg)
{
	char b = 'x';
	int w0;

	for (int k = 0; k < AFF_ROUNDS + 5; k++) {
		pin_self_to(0); /* back on the spinner's worker */
		pin_self_to(-1);
		if (k < 5) { /* settle: worker 1 goes to sleep */
			fiber_write(aff_req[1], &b, 1);
			fiber_read(aff_resp[0], &b, 1);
			fiber_sleep(MS);
			continue;
		}
		w0 = fiber_worker_id();
		aff_note(w0, fiber_write(aff_req[1], &b, 1));
		w0 = fiber_worker_id();
		aff_note(w0, fiber_read(aff_resp[0], &b, 1));
	}
	b = 0;
	fiber_write(aff_req[1], &b, 1); /* the thread's end */
	return NULL;
}

static void *aff_thread(void *arg)
{
	char b;

	while (read(aff_req[0], &b, 1) == 1 && b)
		if (write(aff_resp[1], &b, 1) != 1)
			break;
	return NULL;
}

static void aff_main(void *arg)
{
	fiber_t *s, *f;

	fiber_spawn(&s, NULL, aff_spinner, NULL);
	fiber_spawn(&f, NULL, aff_fiber, NULL);
	fiber_join(f, NULL);
	atomic_store(&aff_stop, 1);
	fiber_join(s, NULL);
}

static void test_io_completion_wakes_on_the_reaping_worker(void **state)
{
	struct fiber_config c = test_cfg(2);
	const char *mode = getenv("FIBER_IO");
	pthread_t t;

	if (mode && !strcmp(mode, "poll"))
		return; /* no ring: readiness wake-ups come from the poller thread */
	assert_int_equal(pipe(aff_req), 0);
	assert_int_equal(pipe(aff_resp), 0);
	assert_int_equal(pthread_create(&t, NULL, aff_thread, NULL), 0);
	setenv("FIBER_MONITOR", "0", 1);
	assert_int_equal(fiber_run(&c, aff_main, NULL), 0);
	unsetenv("FIBER_MONITOR");
	pthread_join(t, NULL);
	close(aff_req[0]);
	close(aff_req[1]);
	close(aff_resp[0]);
	close(aff_resp[1]);
	print_message("%d calls, %d resumed on another worker\n", atomic_load(&aff_calls), atomic_load(&aff_moved));
	assert_int_equal(atomic_load(&aff_errors), 0);
	assert_int_equal(atomic_load(&aff_calls), 2 * AFF_ROUNDS);
	/* Pushed to the idle worker, nearly every call moved; a rare pull by a worker that was awake is allowed. */
	assert_true(atomic_load(&aff_moved) <= AFF_ROUNDS / 10);
}

/*
 * ---- a worker that runs out of work with I/O in flight submits and sleeps in one io_uring_enter, without polling ----
 * One fiber on one worker alternates write and read on pipes answered by a plain thread after 500 us, so the worker
 * goes idle at every call with its SQE prepared. It used to enter the ring to submit, poll for IDLE_POLL_NS (20 us,
 * what makes a wake-up from another worker cheap) and enter again to wait: three io_uring_enter per round (the
 * write completes at submission) and 31-33 us of worker CPU. With I/O in flight the next work comes with a
 * completion, which ends the wait in the ring anyway: the wait submits, returns at once if a completion is there,
 * and there is no poll. Two io_uring_enter per round; the worker's CPU per round is printed, not checked (it
 * depends on the build and the machine's load).
 */
#define ONE_ROUNDS 100
static uint64_t one_cpu_ns;
static struct fiber_worker_stats one_before, one_after;

static void *one_fiber(void *arg)
{
	char b = 'x';
	uint64_t c0 = thread_cpu_ns(); /* one worker: this is its thread, throughout */

	fiber_worker_stats(0, &one_before);
	for (int k = 0; k < ONE_ROUNDS; k++)
		if (fiber_write(aff_req[1], &b, 1) != 1 || fiber_read(aff_resp[0], &b, 1) != 1)
			atomic_fetch_add(&aff_errors, 1);
	one_cpu_ns = thread_cpu_ns() - c0;
	fiber_worker_stats(0, &one_after);
	b = 0;
	fiber_write(aff_req[1], &b, 1); /* the thread's end */
	return NULL;
}

static void *one_thread(void *arg)
{
	char b;

	while (read(aff_req[0], &b, 1) == 1 && b) {
		usleep(500);
		if (write(aff_resp[1], &b, 1) != 1)
			break;
	}
	return NULL;
}

static void one_main(void *arg)
{
	fiber_t *f;

	fiber_spawn(&f, NULL, one_fiber, NULL);
	fiber_join(f, NULL);
}

static void test_io_idle_worker_with_io_in_flight_does_not_poll(void **state)
{
	struct fiber_config c = test_cfg(1);
	const char *mode = getenv("FIBER_IO");
	uint64_t enter;
	pthread_t t;

	atomic_store(&aff_errors, 0);
	assert_int_equal(pipe(aff_req), 0);
	assert_int_equal(pipe(aff_resp), 0);
	assert_int_equal(pthread_create(&t, NULL, one_thread, NULL), 0);
	assert_int_equal(fiber_run(&c, one_main, NULL), 0);
	pthread_join(t, NULL);
	close(aff_req[0]);
	close(aff_req[1]);
	close(aff_resp[0]);
	close(aff_resp[1]);
	assert_int_equal(atomic_load(&aff_errors), 0);
	enter = one_after.io_enter_calls - one_before.io_enter_calls;
	print_message("%d rounds: %.2f io_uring_enter and %.1f us of worker CPU per round\n", ONE_ROUNDS,
		      (double)enter / ONE_ROUNDS, (double)one_cpu_ns / ONE_ROUNDS / 1e3);
	if (mode && !strcmp(mode, "poll"))
		return; /* no ring: the readiness path's worker polls as without I/O */
	/* Two per round; a few more allowed for a wait that something else ended early. */
	assert_true(enter <= 2 * ONE_ROUNDS + ONE_ROUNDS / 4);
}

/* ---- a full submission queue is flushed and the call retried, never dropped ---- */

static void test_io_full_sq_is_flushed_not_dropped(void **state)
{
	batch_run(4); /* 64 fibers with SQEs to queue: the SQ fills over and over */
}

/* ---- the dump names the I/O a fiber waits for ---- */

static int dump_fds[2];

static void *dump_reader(void *arg)
{
	char b;

	fiber_read(dump_fds[0], &b, 1);
	return NULL;
}

static void dump_main(void *arg)
{
	int *out = arg;
	fiber_t *r;

	fiber_spawn(&r, NULL, dump_reader, NULL);
	fiber_sleep(5 * MS);
	fiber_dump(out[1]);
	fiber_write(dump_fds[1], "x", 1);
	fiber_join(r, NULL);
}

static void test_io_dump_shows_the_io_wait(void **state)
{
	struct fiber_config c = test_cfg(2);
	static char buf[65536];
	int out[2];

	assert_int_equal(pipe(dump_fds), 0);
	assert_int_equal(pipe2(out, O_NONBLOCK), 0);
	fcntl(out[1], F_SETPIPE_SZ, 1 << 20);
	assert_int_equal(fiber_run(&c, dump_main, out), 0);
	close(out[1]);
	read_all(out[0], buf, sizeof(buf));
	close(out[0]);
	close(dump_fds[0]);
	close(dump_fds[1]);
	assert_non_null(strstr(buf, "io:read"));
	if (!getenv("FIBER_IO") || strcmp(getenv("FIBER_IO"), "poll"))
		assert_non_null(strstr(buf, "io_uring: setup flags"));
}

/* ---- the readiness path when the kernel refuses io_uring (a seccomp filter, as in containers) ---- */

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static int deny_io_uring(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = (unsigned short)(sizeof(f) / sizeof(f[0])), .filter = f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void test_io_without_io_uring_falls_back_and_says_so(void **state)
{
	int out[2];
	char buf[1024];
	pid_t pid;
	int st;

	assert_int_equal(pipe(out), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		dup2(out[1], 2);
		close(out[0]);
		unsetenv("FIBER_IO");
		if (deny_io_uring())
			_exit(3);
		{
			struct fiber_config c = test_cfg(2);

			/* The pipe test, through the readiness path. */
			if (pipe(pipefd) || fiber_run(&c, pipe_main, NULL))
				_exit(1);
			_exit(p_short == 5 && p_rest == 6 && p_eof == 0 && !memcmp(p_buf, "hello world", 11) ? 0 : 2);
		}
	}
	close(out[1]);
	read_all(out[0], buf, sizeof(buf));
	close(out[0]);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	print_message("child said: %s", buf);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_non_null(strstr(buf, "io_uring is unavailable"));
	assert_non_null(strstr(buf, "poll readiness path"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_io_pipe_short_reads_and_eof),
		cmocka_unit_test(test_io_write_to_closed_pipe_is_epipe),
		cmocka_unit_test(test_io_socketpair_send_recv_vectors_messages),
		cmocka_unit_test(test_io_tcp_accept_connect_echo_every_byte),
		cmocka_unit_test(test_io_tcp_reset_peer_is_econnreset),
		cmocka_unit_test(test_io_connect_refused),
		cmocka_unit_test(test_io_file_openat_pwrite_pread_fsync_close),
		cmocka_unit_test(test_io_bad_input_is_an_errno),
		cmocka_unit_test(test_io_outside_a_fiber_is_the_system_call),
		cmocka_unit_test(test_io_timeout_in_recv_accept_poll),
		cmocka_unit_test(test_io_cancel_parked_recv_and_accept),
		cmocka_unit_test(test_io_nonblocking_fd_waits_instead_of_eagain),
		cmocka_unit_test(test_io_completes_once_while_fibers_migrate),
		cmocka_unit_test(test_io_idle_with_1000_parked_in_recv),
		cmocka_unit_test(test_io_submissions_are_batched),
		cmocka_unit_test(test_io_full_sq_is_flushed_not_dropped),
		cmocka_unit_test(test_io_batch_is_not_cut_by_preemption_points),
		cmocka_unit_test(test_io_completion_wakes_on_the_reaping_worker),
		cmocka_unit_test(test_io_idle_worker_with_io_in_flight_does_not_poll),
		cmocka_unit_test(test_io_reap_not_charged_to_running_fiber),
		cmocka_unit_test(test_io_completion_work_charged_to_woken_fibers),
		cmocka_unit_test(test_io_reap_wakes_its_fibers_in_one_batch),
		cmocka_unit_test(test_io_dump_shows_the_io_wait),
		cmocka_unit_test(test_io_without_io_uring_falls_back_and_says_so),
	};

	/* TEST_FILTER='*cancel*' runs only the matching tests (cmocka_set_test_filter). */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
