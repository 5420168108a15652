/*
 * runtime/io.c - the public I/O calls (API.md "I/O").
 *
 * In a fiber each call puts one SQE (two with FIBER_IO_TIMEOUT=linked: the op and its IORING_OP_LINK_TIMEOUT) on
 * the ring of the worker it runs on, sleeps TASK_INTERRUPTIBLE, and is woken by that worker when the CQE is reaped
 * (uring.c); it may resume on another worker. fiber_cancel wakes it: it then asks the ring that took the op to
 * cancel it and waits, uninterruptibly, for both the op's CQE and the cancel's, so the kernel is done with the
 * caller's buffer and with the op before the call returns. An op that completed before the cancel took keeps its
 * result (no byte read or written is lost); one that was cancelled returns -ECANCELED. A file descriptor the
 * caller made O_NONBLOCK makes io_uring fail with -EAGAIN instead of waiting: the call then waits for readiness
 * (IORING_OP_POLL_ADD) and tries again, so every fd behaves like a blocking one inside a fiber.
 *
 * Without io_uring (FIBER_IO=poll, or a kernel that refuses it) the same calls make the nonblocking system call
 * and wait for readiness through netpoll.c. Outside a fiber they make the plain blocking system call.
 * Every call returns -errno and leaves errno alone.
 */
#include "io.h"
#include "netpoll.h"

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

enum io_kind {
	K_READ,
	K_WRITE,
	K_PREAD,
	K_PWRITE,
	K_READV,
	K_WRITEV,
	K_RECV,
	K_SEND,
	K_RECVMSG,
	K_SENDMSG,
	K_ACCEPT,
	K_CONNECT,
	K_OPENAT,
	K_CLOSE,
	K_FSYNC,
	K_POLL,
};

struct io_req {
	enum io_kind kind;
	int fd;
	void *buf;  /* buf, iov, msghdr, sockaddr or path */
	size_t len; /* len, iovcnt or socklen */
	off_t off;
	int flags;	    /* MSG_*, accept4 flags, open flags, poll events */
	socklen_t *addrlen; /* accept */
	mode_t mode;	    /* openat */
};

static const char *const io_names[] = {
	[K_READ] = "io:read",	    [K_WRITE] = "io:write",	[K_PREAD] = "io:pread",	  [K_PWRITE] = "io:pwrite",
	[K_READV] = "io:readv",	    [K_WRITEV] = "io:writev",	[K_RECV] = "io:recv",	  [K_SEND] = "io:send",
	[K_RECVMSG] = "io:recvmsg", [K_SENDMSG] = "io:sendmsg", [K_ACCEPT] = "io:accept", [K_CONNECT] = "io:connect",
	[K_OPENAT] = "io:openat",   [K_CLOSE] = "io:close",	[K_FSYNC] = "io:fsync",	  [K_POLL] = "io:poll",
};

/* The readiness a call waits for when its fd is nonblocking (0: not a readiness call). */
static short io_direction(enum io_kind k)
{
	switch (k) {
	case K_READ:
	case K_READV:
	case K_RECV:
	case K_RECVMSG:
	case K_ACCEPT: return POLLIN;
	case K_WRITE:
	case K_WRITEV:
	case K_SEND:
	case K_SENDMSG:
	case K_CONNECT: return POLLOUT;
	default: return 0;
	}
}

static inline ssize_t neg_errno(ssize_t r)
{
	return r < 0 ? -errno : r;
}

/* The plain system call (outside a fiber, and the poll path's attempt with @nonblock). */
static ssize_t io_syscall(const struct io_req *r, bool nonblock)
{
	int dw = nonblock ? MSG_DONTWAIT : 0;

	switch (r->kind) {
	case K_READ: return neg_errno(read(r->fd, r->buf, r->len));
	case K_WRITE: return neg_errno(write(r->fd, r->buf, r->len));
	case K_PREAD: return neg_errno(pread(r->fd, r->buf, r->len, r->off));
	case K_PWRITE: return neg_errno(pwrite(r->fd, r->buf, r->len, r->off));
	case K_READV: return neg_errno(readv(r->fd, r->buf, (int)r->len));
	case K_WRITEV: return neg_errno(writev(r->fd, r->buf, (int)r->len));
	case K_RECV: return neg_errno(recv(r->fd, r->buf, r->len, r->flags | dw));
	case K_SEND: return neg_errno(send(r->fd, r->buf, r->len, r->flags | dw));
	case K_RECVMSG: return neg_errno(recvmsg(r->fd, r->buf, r->flags | dw));
	case K_SENDMSG: return neg_errno(sendmsg(r->fd, r->buf, r->flags | dw));
	case K_ACCEPT: return neg_errno(accept4(r->fd, r->buf, r->addrlen, r->flags));
	case K_CONNECT: return neg_errno(connect(r->fd, r->buf, (socklen_t)r->len));
	case K_OPENAT: return neg_errno(openat(r->fd, r->buf, r->flags, r->mode));
	case K_CLOSE: return neg_errno(close(r->fd));
	case K_FSYNC: return neg_errno(fsync(r->fd));
	case K_POLL: {
		struct pollfd pfd = { .fd = r->fd, .events = (short)r->flags };
		int n = poll(&pfd, 1, r->off < 0 ? -1 : (int)((r->off + 999999) / 1000000));

		return n < 0 ? -errno : n == 0 ? -ETIMEDOUT : pfd.revents;
	}
	}
	return -EINVAL;
}

static void io_prep(struct io_uring_sqe *sqe, const struct io_req *r)
{
	switch (r->kind) {
	case K_READ: io_uring_prep_read(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)-1); break;
	case K_WRITE: io_uring_prep_write(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)-1); break;
	case K_PREAD: io_uring_prep_read(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)r->off); break;
	case K_PWRITE: io_uring_prep_write(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)r->off); break;
	case K_READV: io_uring_prep_readv(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)-1); break;
	case K_WRITEV: io_uring_prep_writev(sqe, r->fd, r->buf, (unsigned)r->len, (uint64_t)-1); break;
	case K_RECV: io_uring_prep_recv(sqe, r->fd, r->buf, r->len, r->flags); break;
	case K_SEND: io_uring_prep_send(sqe, r->fd, r->buf, r->len, r->flags); break;
	case K_RECVMSG: io_uring_prep_recvmsg(sqe, r->fd, r->buf, (unsigned)r->flags); break;
	case K_SENDMSG: io_uring_prep_sendmsg(sqe, r->fd, r->buf, (unsigned)r->flags); break;
	case K_ACCEPT: io_uring_prep_accept(sqe, r->fd, r->buf, r->addrlen, r->flags); break;
	case K_CONNECT: io_uring_prep_connect(sqe, r->fd, r->buf, (socklen_t)r->len); break;
	case K_OPENAT: io_uring_prep_openat(sqe, r->fd, r->buf, r->flags, r->mode); break;
	case K_CLOSE: io_uring_prep_close(sqe, r->fd); break;
	case K_FSYNC: io_uring_prep_fsync(sqe, r->fd, 0); break;
	case K_POLL: io_uring_prep_poll_add(sqe, r->fd, (unsigned)(unsigned short)r->flags); break;
	}
}

static struct fiber *io_fiber(void)
{
	struct worker *w = this_worker();

	return w && !is_idle_task(w->current) ? w->current : NULL;
}

/* The deadline of this call from fiber_io_timeout (or fiber_poll's own), 0 for none. */
static uint64_t io_deadline(uint64_t ns)
{
	uint64_t now;

	if (!ns)
		return 0;
	now = fiber__sched_clock();
	return now + ns < now ? UINT64_MAX : now + ns;
}

/*
 * Every CQE the op asked for is in: its own and those of the cancels sent after it. The acquire loads pair with
 * io_complete's release stores (uring.c): res is valid once done is seen.
 */
static inline bool io_op_finished(struct io_op *op)
{
	return atomic_load_explicit(&op->done, memory_order_acquire) &&
	       atomic_load_explicit(&op->cancel_done, memory_order_acquire) ==
		   atomic_load_explicit(&op->cancels, memory_order_relaxed);
}

/* Sleep until the op's CQEs are all in; fiber_cancel turns into a cancellation sent to the ring that took it. */
static void io_wait(struct fiber *p, struct io_op *op, bool cancellable)
{
	for (;;) {
		fiber__set_current_state(op->cancel_requested || !cancellable ? TASK_UNINTERRUPTIBLE
									      : TASK_INTERRUPTIBLE);
		if (io_op_finished(op))
			break;
		if (cancellable && !op->cancel_requested && fiber__signal_pending(p)) {
			atomic_store_explicit(&p->state, TASK_RUNNING, memory_order_relaxed);
			op->cancel_requested = true;
			fiber__io_cancel(op);
			continue;
		}
		fiber__schedule();
	}
	atomic_store_explicit(&p->state, TASK_RUNNING, memory_order_relaxed);
}

/* IO_TIMEOUT_TIMER: the op's time is up; cancel it where it was submitted (no lock held, any thread). */
static void io_timeout_fire(struct fiber_timer *t)
{
	struct io_op *op = container_of(t, struct io_op, timer);

	fiber__io_cancel(op);
}

/*
 * One operation through the ring: prepare, sleep, result. @deadline (0: none) becomes a per-worker timer that
 * cancels the op, or a linked timeout (FIBER_IO_TIMEOUT=linked); either way the op completes with -ECANCELED,
 * which we report as -ETIMEDOUT.
 */
static ssize_t io_uring_op(struct fiber *p, const struct io_req *r, uint64_t deadline, bool cancellable)
{
	struct io_op op = { .f = p };
	struct io_uring_sqe *sqe;
	struct io_ring *io;
	unsigned nr = 1;

	if (deadline) {
		uint64_t now = fiber__sched_clock();

		if (now >= deadline)
			return -ETIMEDOUT;
		op.ts.tv_sec = (long long)((deadline - now) / 1000000000ull);
		op.ts.tv_nsec = (long long)((deadline - now) % 1000000000ull);
		op.timed = true;
		if (fiber__io_timeout_mode == IO_TIMEOUT_LINKED)
			nr = 2;
	}
	for (;;) {
		preempt_disable();
		io = fiber__io_bind(p);
		sqe = fiber__io_get_sqe(io, nr);
		if (sqe)
			break;
		/* The kernel takes no more for now (CQ overflow): let the completions be consumed, then retry. */
		preempt_enable_no_resched();
		fiber_yield();
	}
	op.ring = io;
	io_prep(sqe, r);
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)&op);
	if (op.timed && nr == 2) {
		sqe->flags |= IOSQE_IO_LINK;
		sqe = io_uring_get_sqe(&io->ring); /* fiber__io_get_sqe made room for both */
		io_uring_prep_link_timeout(sqe, &op.ts, 0);
		io_uring_sqe_set_data64(sqe, IO_UD_IGNORE);
	} else if (op.timed) {
		fiber__timer_init(&op.timer, io_timeout_fire, p);
		fiber__timer_add(&this_worker()->timers, &op.timer, deadline, p);
	}
	fiber__io_queued(io, nr);
	fiber__set_wait(p, io_names[r->kind], (const void *)(intptr_t)r->fd);
	preempt_enable_no_resched(); /* no preemption point until schedule(): the SQE stays on this worker's ring */
	io_wait(p, &op, cancellable);
	if (op.timed && nr == 1) {
		/* After timer_del the callback is not running; if it ran, wait for the cancel it sent. */
		fiber__timer_del(&op.timer);
		if (!io_op_finished(&op))
			io_wait(p, &op, false);
	}
	fiber__set_wait(p, NULL, NULL);
	if (op.res == -ECANCELED && op.cancel_requested)
		return -ECANCELED;
	if (op.res == -ECANCELED && op.timed)
		return -ETIMEDOUT; /* the linked timeout fired, or the timer's cancel */
	return op.res;
}

/* The readiness path (no io_uring): the nonblocking attempt, then a wait in netpoll.c, until done. */
static ssize_t io_poll_path(struct fiber *p, const struct io_req *r, uint64_t deadline)
{
	short dir = io_direction(r->kind);
	ssize_t ret;

	if (r->kind == K_POLL) {
		ret = io_syscall(&(struct io_req){ .kind = K_POLL, .fd = r->fd, .flags = r->flags, .off = 0 }, true);
		if (ret != -ETIMEDOUT)
			return ret;
		return fiber__netpoll_wait(r->fd, (short)r->flags, deadline);
	}
	if (!dir) {
		/* Files, open, close, fsync: no readiness to wait for; the worker blocks, the region hands it off. */
		fiber_blocking_begin();
		ret = io_syscall(r, false);
		fiber_blocking_end();
		return ret;
	}
	for (;;) {
		bool sock = r->kind == K_RECV || r->kind == K_SEND || r->kind == K_RECVMSG || r->kind == K_SENDMSG;
		int fl = sock ? 0 : fcntl(r->fd, F_GETFL);

		if (fl < 0)
			return -errno;
		/* A blocking fd that is not a socket: wait first, so that the call does not block the worker. */
		if (!sock && !(fl & O_NONBLOCK)) {
			ret = fiber__netpoll_wait(r->fd, dir, deadline);
			if (ret < 0)
				return ret == -EPERM ? io_syscall(r, false) : ret;
		}
		ret = io_syscall(r, true);
		if (ret != -EAGAIN && ret != -EWOULDBLOCK && !(r->kind == K_CONNECT && ret == -EINPROGRESS))
			return ret;
		if (r->kind == K_CONNECT && ret == -EINPROGRESS) {
			int err = 0;
			socklen_t el = sizeof(err);

			ret = fiber__netpoll_wait(r->fd, POLLOUT, deadline);
			if (ret < 0)
				return ret;
			if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &el))
				return -errno;
			return err ? -err : 0;
		}
		if (fiber__signal_pending(p))
			return -ECANCELED;
		ret = fiber__netpoll_wait(r->fd, dir, deadline);
		if (ret < 0)
			return ret;
	}
}

static ssize_t io_do(struct io_req *r)
{
	struct fiber *p = io_fiber();
	uint64_t deadline;
	bool cancellable = r->kind != K_CLOSE;
	ssize_t ret;

	if (!p || (fiber__io_mode == IO_MODE_URING && !this_worker()->io)) {
		/* Outside a fiber, or in a blocking region on a spare thread (no ring there): the system call. */
		int saved = errno;

		ret = io_syscall(r, false);
		errno = saved;
		return ret;
	}
	if (cancellable && fiber__signal_pending(p))
		return -ECANCELED;
	if (r->kind == K_PREAD || r->kind == K_PWRITE) {
		/* io_uring ignores the offset of a pipe or socket (and would wait); pread(2) says -ESPIPE. */
		int saved = errno;

		ret = lseek(r->fd, 0, SEEK_CUR) < 0 ? -errno : 0;
		errno = saved;
		if (ret == -ESPIPE || ret == -EBADF)
			return ret;
	}
	deadline = r->kind == K_CLOSE ? 0 : io_deadline(p->io_timeout_ns);
	if (r->kind == K_POLL && r->off == 0)
		return io_syscall(r, true); /* a zero timeout only looks */
	if (r->kind == K_POLL && r->off > 0)
		deadline = io_deadline((uint64_t)r->off);
	if (r->kind == K_SEND || r->kind == K_SENDMSG)
		r->flags |= MSG_NOSIGNAL; /* a closed peer is -EPIPE, not a signal that kills the process (Go's net) */
	if (fiber__io_mode == IO_MODE_POLL) {
		int saved = errno;

		if (r->kind == K_CLOSE)
			fiber__netpoll_forget(r->fd);
		/* netpoll.c keeps a reason its caller set: fiber_dump names the call, as on the io_uring path. */
		fiber__set_wait(p, io_names[r->kind], (const void *)(intptr_t)r->fd);
		ret = io_poll_path(p, r, deadline);
		fiber__set_wait(p, NULL, NULL);
		/* We may be on another worker's thread now: a fresh errno location, not the one read above. */
		*this_worker()->errno_loc = saved;
		fiber__preempt_point();
		return ret;
	}
	for (;;) {
		short dir;

		ret = io_uring_op(p, r, deadline, cancellable);
		if (ret != -EAGAIN || !(dir = io_direction(r->kind)))
			break;
		/* An O_NONBLOCK fd: wait for readiness, then try again (a blocking fd never gets here). */
		ret = io_uring_op(p, &(struct io_req){ .kind = K_POLL, .fd = r->fd, .flags = dir }, deadline, true);
		if (ret < 0)
			break;
		if (fiber__signal_pending(p)) {
			ret = -ECANCELED;
			break;
		}
	}
	fiber__preempt_point();
	return ret;
}

ssize_t fiber_read(int fd, void *buf, size_t len)
{
	return io_do(&(struct io_req){ .kind = K_READ, .fd = fd, .buf = buf, .len = len });
}

ssize_t fiber_write(int fd, const void *buf, size_t len)
{
	return io_do(&(struct io_req){ .kind = K_WRITE, .fd = fd, .buf = (void *)buf, .len = len });
}

ssize_t fiber_pread(int fd, void *buf, size_t len, off_t off)
{
	if (off < 0)
		return -EINVAL;
	return io_do(&(struct io_req){ .kind = K_PREAD, .fd = fd, .buf = buf, .len = len, .off = off });
}

ssize_t fiber_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	if (off < 0)
		return -EINVAL;
	return io_do(&(struct io_req){ .kind = K_PWRITE, .fd = fd, .buf = (void *)buf, .len = len, .off = off });
}

ssize_t fiber_readv(int fd, const struct iovec *iov, int iovcnt)
{
	if (iovcnt < 0 || (iovcnt && !iov))
		return -EINVAL;
	return io_do(&(struct io_req){ .kind = K_READV, .fd = fd, .buf = (void *)iov, .len = (size_t)iovcnt });
}

ssize_t fiber_writev(int fd, const struct iovec *iov, int iovcnt)
{
	if (iovcnt < 0 || (iovcnt && !iov))
		return -EINVAL;
	return io_do(&(struct io_req){ .kind = K_WRITEV, .fd = fd, .buf = (void *)iov, .len = (size_t)iovcnt });
}

ssize_t fiber_recv(int fd, void *buf, size_t len, int flags)
{
	return io_do(&(struct io_req){ .kind = K_RECV, .fd = fd, .buf = buf, .len = len, .flags = flags });
}

ssize_t fiber_send(int fd, const void *buf, size_t len, int flags)
{
	return io_do(&(struct io_req){ .kind = K_SEND, .fd = fd, .buf = (void *)buf, .len = len, .flags = flags });
}

ssize_t fiber_recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (!msg)
		return -EINVAL;
	return io_do(&(struct io_req){ .kind = K_RECVMSG, .fd = fd, .buf = msg, .flags = flags });
}

ssize_t fiber_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	if (!msg)
		return -EINVAL;
	return io_do(&(struct io_req){ .kind = K_SENDMSG, .fd = fd, .buf = (void *)msg, .flags = flags });
}

int fiber_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags)
{
	if (!addr != !addrlen || (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)))
		return -EINVAL;
	return (int)io_do(
	    &(struct io_req){ .kind = K_ACCEPT, .fd = fd, .buf = addr, .addrlen = addrlen, .flags = flags });
}

int fiber_connect(int fd, const struct sockaddr *addr, socklen_t addrlen)
{
	if (!addr)
		return -EINVAL;
	return (int)io_do(&(struct io_req){ .kind = K_CONNECT, .fd = fd, .buf = (void *)addr, .len = addrlen });
}

int fiber_openat(int dfd, const char *path, int flags, mode_t mode)
{
	if (!path)
		return -EINVAL;
	return (int)io_do(
	    &(struct io_req){ .kind = K_OPENAT, .fd = dfd, .buf = (void *)path, .flags = flags, .mode = mode });
}

int fiber_close(int fd)
{
	if (fd < 0)
		return -EBADF;
	return (int)io_do(&(struct io_req){ .kind = K_CLOSE, .fd = fd });
}

int fiber_fsync(int fd)
{
	return (int)io_do(&(struct io_req){ .kind = K_FSYNC, .fd = fd });
}

int fiber_poll(int fd, short events, int64_t timeout_ns)
{
	if (fd < 0)
		return -EBADF;
	return (int)io_do(&(struct io_req){
	    .kind = K_POLL, .fd = fd, .flags = events, .off = timeout_ns < 0 ? -1 : (off_t)timeout_ns });
}

int fiber_io_timeout(uint64_t ns)
{
	struct fiber *p = io_fiber();

	if (!p)
		return -EPERM;
	p->io_timeout_ns = ns;
	return 0;
}
