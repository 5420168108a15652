/*
 * uint64_t test_call_with_regs(void (*fn)(void), uint64_t out[6], uint64_t seed);
 * Loads rbx, rbp, r12-r15 with seed-derived patterns, calls fn (which switches fibers), stores the six registers
 * as fn left them into out[0..5] (rbx, rbp, r12, r13, r14, r15) and restores the caller's registers.
 */
	.text
	.globl	test_call_with_regs
	.type	test_call_with_regs, @function
test_call_with_regs:
	.cfi_startproc
	pushq	%rbx
	pushq	%rbp
	pushq	%r12
	pushq	%r13
	pushq	%r14
	pushq	%r15
	pushq	%rsi			/* 7 pushes: rsp is 16-byte aligned for the call */
	movabsq	$0x0101010101010101, %rax
	movq	%rdx, %rbx
	leaq	(%rdx,%rax,1), %rbp
	leaq	(%rbp,%rax,1), %r12
	leaq	(%r12,%rax,1), %r13
	leaq	(%r13,%rax,1), %r14
	leaq	(%r14,%rax,1), %r15
	call	*%rdi
	popq	%rsi
	movq	%rbx, 0(%rsi)
	movq	%rbp, 8(%rsi)
	movq	%r12, 16(%rsi)
	movq	%r13, 24(%rsi)
	movq	%r14, 32(%rsi)
	movq	%r15, 40(%rsi)
	popq	%r15
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbp
	popq	%rbx
	ret
	.cfi_endproc
	.size	test_call_with_regs, .-test_call_with_regs

/* uintptr_t test_entry_rsp(void *arg): a fiber function that returns its rsp at entry + 8 (the call-site rsp). */
	.globl	test_entry_rsp
	.type	test_entry_rsp, @function
test_entry_rsp:
	.cfi_startproc
	leaq	8(%rsp), %rax
	ret
	.cfi_endproc
	.size	test_entry_rsp, .-test_entry_rsp

	.section .note.GNU-stack,"",@progbits
