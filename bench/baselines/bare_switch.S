/*
 * bare_switch.S - the floor a context switch is measured against.
 *
 * void *bench__bare_switch(struct bench_ctx *prev, struct bench_ctx *next);
 *	Push the six callee-saved registers, store rsp in prev->sp (offset 0), load next->sp, pop, ret. Nothing else:
 *	no return value, no MXCSR, no x87 control word. Any switch that keeps the SysV ABI's callee-saved integer
 *	registers does at least this much.
 *
 * void *bench__bare_fpu_switch(struct bench_ctx *prev, struct bench_ctx *next);
 *	The same plus what fiber__switch is specified to do on top (KERNEL_MAP 4.3): MXCSR and the x87 control word
 *	saved in one 8-byte slot, and prev returned in rax ("last"). It shows how much of a gap to the bare floor is
 *	the floating-point control state rather than the switch itself.
 *
 * void *bench__bare_jmp_switch(struct bench_ctx *prev, struct bench_ctx *next);
 *	The bare switch, but it leaves through "pop %rcx; jmp *%rcx" instead of "ret", as Boost.Context's
 *	jump_fcontext does. When the two sides of a switch called it from different places (the ping-pong driver),
 *	a ret is mispredicted every time by the return stack buffer, which predicts the caller's own call site; an
 *	indirect jmp is predicted by the branch target buffer instead. Same frame as bare.
 *
 * Frame left on a switched-out stack (lowest address first, saved sp points at the first entry):
 *
 *	bare:		r15 r14 r13 r12 rbx rbp ret
 *	bare_fpu:	[mxcsr:4 fpucw:2 pad:2] r15 r14 r13 r12 rbx rbp ret
 *
 * bench/common/switch_driver.h builds first frames of both layouts (bare_frame_init, bare_fpu_frame_init).
 */

	.text

	.globl	bench__bare_switch
	.hidden	bench__bare_switch
	.type	bench__bare_switch, @function
	.p2align 4
bench__bare_switch:
	.cfi_startproc
	endbr64				/* a no-op without CET; kept for parity with fiber__switch */
	pushq	%rbp			/* the six callee-saved registers of the SysV ABI */
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)		/* prev->sp = rsp */
	movq	(%rsi), %rsp		/* rsp = next->sp: from here on we are on next's stack */
	popq	%r15			/* next's registers, in the reverse order */
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	ret				/* into next, where it called us (or into its entry function) */
	.cfi_endproc
	.size	bench__bare_switch, .-bench__bare_switch

	.globl	bench__bare_fpu_switch
	.hidden	bench__bare_fpu_switch
	.type	bench__bare_fpu_switch, @function
	.p2align 4
bench__bare_fpu_switch:
	.cfi_startproc
	endbr64				/* a no-op without CET */
	pushq	%rbp			/* the six callee-saved registers */
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	subq	$8, %rsp		/* one slot for the floating-point control state */
	stmxcsr	(%rsp)			/* MXCSR control bits are callee-saved in the SysV ABI */
	fnstcw	4(%rsp)			/* and so is the x87 control word */
	movq	%rsp, (%rdi)		/* prev->sp = rsp */
	movq	(%rsi), %rsp		/* rsp = next->sp */
	ldmxcsr	(%rsp)			/* next's MXCSR */
	fldcw	4(%rsp)			/* next's x87 control word */
	addq	$8, %rsp		/* drop the slot */
	popq	%r15			/* next's registers */
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	movq	%rdi, %rax		/* return "last": the context that switched away */
	ret
	.cfi_endproc
	.size	bench__bare_fpu_switch, .-bench__bare_fpu_switch

	.globl	bench__bare_jmp_switch
	.hidden	bench__bare_jmp_switch
	.type	bench__bare_jmp_switch, @function
	.p2align 4
bench__bare_jmp_switch:
	.cfi_startproc
	endbr64				/* a no-op without CET */
	pushq	%rbp			/* the six callee-saved registers */
	pushq	%rbx
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	movq	%rsp, (%rdi)		/* prev->sp = rsp */
	movq	(%rsi), %rsp		/* rsp = next->sp */
	popq	%r15			/* next's registers */
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	popq	%rcx			/* next's return address (rcx is caller-saved, free here) */
	jmp	*%rcx			/* predicted by the BTB, not the return stack buffer */
	.cfi_endproc
	.size	bench__bare_jmp_switch, .-bench__bare_jmp_switch

	.section .note.GNU-stack, "", @progbits
