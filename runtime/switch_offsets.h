/*
 * Offsets shared by asm/switch_x86_64_sysv_elf.S and the C runtime. One header, included by both; the C side
 * checks them with _Static_assert in internal.h.
 *
 * Frame that fiber__switch leaves on a switched-out fiber's stack (lowest address first, the saved sp points at
 * the first slot):
 *
 *   sp + 0   MXCSR (low 4 bytes) and x87 control word (bytes 4-5)
 *   sp + 8   r15
 *   sp + 16  r14
 *   sp + 24  r13
 *   sp + 32  r12      (new fiber: arg)
 *   sp + 40  rbx      (new fiber: fn)
 *   sp + 48  rbp
 *   sp + 56  return address (new fiber: fiber__trampoline)
 */
#ifndef FIBER_SWITCH_OFFSETS_H
#define FIBER_SWITCH_OFFSETS_H

#define FIBER_SP_OFFSET 0 /* offsetof(struct fiber, sp) */

#define FRAME_FPCTL 0
#define FRAME_R15 8
#define FRAME_R14 16
#define FRAME_R13 24
#define FRAME_R12 32
#define FRAME_RBX 40
#define FRAME_RBP 48
#define FRAME_RET 56
#define FRAME_SIZE 64

#define FIBER_MXCSR_DEFAULT 0x1f80 /* all exceptions masked, round to nearest (SysV ABI initial value) */
#define FIBER_FPUCW_DEFAULT 0x037f /* x87: all exceptions masked, 64-bit precision, round to nearest */

#endif
