/*
 * boost_context_bench.cpp - Boost.Context's lowest layer, jump_fcontext (the assembly that its continuation and
 * fiber classes are built on): ping-pong and ring-16, the same shapes as ../bench_switch.c. jump_fcontext saves
 * the six callee-saved registers, MXCSR and the x87 control word, and passes a transfer_t (context, pointer) to
 * the resumed side.
 */
#include "bench.h"

#include <boost/context/detail/fcontext.hpp>

using boost::context::detail::fcontext_t;
using boost::context::detail::jump_fcontext;
using boost::context::detail::make_fcontext;
using boost::context::detail::transfer_t;

enum { RING = 16, STACK_SIZE = 64 * 1024 };

static fcontext_t pp_peer;		/* the ping-pong partner, as last suspended */
static fcontext_t ring_ctx[RING];	/* [k]: context k as last suspended; [0] = the benchmark's stack */
static unsigned ring_start;

static void pp_entry(transfer_t t)
{
	for (;;)
		t = jump_fcontext(t.fctx, nullptr);
}

static void ring_entry(transfer_t t)
{
	unsigned me = ring_start;
	unsigned prev = (me + RING - 1) % RING, next = (me + 1) % RING;

	/* Started: back to the set-up loop. Then on every resume, record where the sender is suspended. */
	t = jump_fcontext(t.fctx, nullptr);
	for (;;) {
		ring_ctx[prev] = t.fctx;
		t = jump_fcontext(ring_ctx[next], nullptr);
	}
}

static fcontext_t make(void (*fn)(transfer_t))
{
	void *top = bench_stack(STACK_SIZE);

	if (!top)
		bench_die("stack", ENOMEM);
	return make_fcontext(top, STACK_SIZE - 4096, fn);
}

static uint64_t pingpong(void *, uint64_t iters)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < iters; i++)
		pp_peer = jump_fcontext(pp_peer, nullptr).fctx;
	return bench_now_ns() - t0;
}

static uint64_t ring(void *, uint64_t iters)
{
	uint64_t t0 = bench_now_ns();

	for (uint64_t i = 0; i < iters; i++)
		ring_ctx[RING - 1] = jump_fcontext(ring_ctx[1], nullptr).fctx;
	return bench_now_ns() - t0;
}

int main(int argc, char **argv)
{
	bench_init(argc, argv);
	pp_peer = make(pp_entry);
	for (unsigned i = 1; i < RING; i++) {
		ring_start = i;
		ring_ctx[i] = jump_fcontext(make(ring_entry), nullptr).fctx;
	}
	bench_run("switch_pingpong", "boost_context", "ns/switch", pingpong, nullptr, 2);
	bench_run("switch_ring16", "boost_context", "ns/switch", ring, nullptr, RING);
	return 0;
}
