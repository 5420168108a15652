/*
 * fiber__switch and the new-fiber trampoline: x86_64, System V ABI, ELF.
 *
 * struct fiber *fiber__switch(struct fiber *prev, struct fiber *next);
 *
 * The kernel's switch_to(prev, next, last): save prev's callee-saved state on prev's stack, store rsp in prev,
 * load next's rsp, restore next's state and return in rax the fiber that switched away (prev). Because the return
 * lands in next's frame, next sees in rax the fiber that ran just before it ("last"), which may be a fiber it never
 * heard of. The caller-saved registers need no saving: the compiler treats the call as clobbering them. %fs is
 * never touched: the FS base is the worker's glibc TCB, shared by every fiber on that worker.
 *
 * Frame layout (see runtime/switch_offsets.h; lowest address first, saved sp points at slot 0):
 *   [MXCSR | x87 CW] r15 r14 r13 r12 rbx rbp ret
 */
#include "switch_offsets.h"

	.text

	.globl	fiber__switch
	.hidden	fiber__switch
	.type	fiber__switch, @function
	.p2align 4
fiber__switch:
	.cfi_startproc
	endbr64				/* may be reached through a function pointer */
	pushq	%rbp			/* callee-saved GPRs, in the order the frame table gives */
	.cfi_adjust_cfa_offset 8
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	subq	$8, %rsp		/* one slot for the FP control words */
	.cfi_adjust_cfa_offset 8
	stmxcsr	FRAME_FPCTL(%rsp)	/* MXCSR control bits are callee-saved (SysV ABI 3.2.1) */
	fnstcw	FRAME_FPCTL+4(%rsp)	/* and so is the x87 control word */

	movq	%rsp, FIBER_SP_OFFSET(%rdi)	/* prev->sp = rsp: prev is now fully saved */
	movq	FIBER_SP_OFFSET(%rsi), %rsp	/* rsp = next->sp: from here on we run on next's stack */

	ldmxcsr	FRAME_FPCTL(%rsp)	/* next's FP control state */
	fldcw	FRAME_FPCTL+4(%rsp)
	addq	$8, %rsp
	popq	%r15			/* next's callee-saved GPRs */
	popq	%r14
	popq	%r13
	popq	%r12
	popq	%rbx
	popq	%rbp
	movq	%rdi, %rax		/* return "last": the fiber that switched to next */
	ret				/* into next's frame: its fiber__switch call site, or the trampoline */
	.cfi_endproc
	.size	fiber__switch, .-fiber__switch

/*
 * fiber__trampoline: where the first switch into a new fiber returns (the kernel's ret_from_fork).
 * On entry: rax = last (from fiber__switch), rbx = fn, r12 = arg, rsp 16-byte aligned.
 * It calls fiber__schedule_tail(last), then fn(arg), then fiber_exit(fn's return value), which never returns.
 */
	.globl	fiber__trampoline
	.hidden	fiber__trampoline
	.type	fiber__trampoline, @function
	.p2align 4
fiber__trampoline:
	.cfi_startproc
	.cfi_undefined rip		/* outermost frame: debuggers and unwinders stop here */
	endbr64				/* entered by ret, but keep every entry point IBT-clean */
	movq	%rax, %rdi		/* finish_task_switch(last) through schedule_tail */
	call	fiber__schedule_tail
	movq	%r12, %rdi		/* fn(arg) */
	call	*%rbx
	movq	%rax, %rdi		/* returning from fn is fiber_exit(retval) */
	call	fiber__exit
	ud2				/* fiber__exit does not return */
	.cfi_endproc
	.size	fiber__trampoline, .-fiber__trampoline

	.section .note.GNU-stack,"",@progbits
