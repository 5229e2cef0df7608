#if defined(__x86_64__)
#include "x86_64/payload.h"

#define TS_STR2(x) #x
#define TS_STR(x) TS_STR2(x)

// Assembled into our own read-only data: it is never run here, only copied into targets. Every
// reference inside it is RIP-relative to another part of the same blob, so it works wherever the
// blob lands.
//
// Hot paths fall through: out-of-line blocks (retry, carry, drift, store) sit after each fake's
// single `ret` and jump back. Every fake reads the control word BEFORE it reads the real time and
// checks it after reading the slot: a thread preempted between the two would otherwise pair an
// old reading with a new rate and go backwards.
__asm__(
    ".pushsection .rodata.timeskew_payload, \"a\"\n"
    ".balign 64\n"
    ".globl timeskew_x64_payload_start\n"
    ".hidden timeskew_x64_payload_start\n"
    "timeskew_x64_payload_start:\n"
    "  .skip " TS_STR(TS_QUICK_MASK_OFFSET) "\n"
    ".Lquick_mask: .long 0\n"
    ".Lcontrol: .quad 0\n"
    ".Lslots: .skip 2 * " TS_STR(TS_SLOT_SIZE) "\n"

    // %r8 = the slot that the control word (its low byte in \ctl) makes active, without a branch.
    ".macro TS_SELECT_SLOT ctl, scratch\n"
    "  leaq .Lslots(%rip), %r8\n"
    "  leaq .Lslots + " TS_STR(TS_SLOT_SIZE) "(%rip), %\\scratch\n"
    "  testb $1, %\\ctl\n"
    "  cmovneq %\\scratch, %r8\n"
    ".endm\n"

    // The common case inline: no rate and a base of whole seconds (an offset like -10m) adds to
    // the seconds only, so the sub-second word the original stored is left alone. Anything
    // else goes to .Lslow (%ecx = units per second), which comes back to .Lslow_done_*.
    ".macro TS_ADD_WHOLE_SECONDS\n"
    "  movq %rsi, %rdx\n"
    "  orq %r10, %rdx\n"
    "  jnz .Lslow\n"
    "  addq %r9, (%rbx)\n"
    ".endm\n"


    // time_t time(time_t *t /*rdi*/). First in the code, so that what differs per kernel sits
    // before TS_CODE_OFFSET. The real seconds come from the original time() copied whole into
    // .Lcopy_time by the planner (relocated, its `ret` falling through to .Lreturn_time): no call,
    // no trampoline on the way. When it cannot be copied, the region ends in a call to the
    // trampoline instead, returning to .Lreturn_time all the same. Either way the original is
    // asked for the value only (t = NULL), so that *t is written once, already skewed. No quick
    // mask test: with the copy, the whole fake costs about what a pass-through would, and an
    // unselected time() finds bit 0 clear in the slot. In the fallback the trampoline is entered
    // with %rsp 8 bytes off the ABI's 16-byte alignment; the kernel builds the vDSO with
    // -mpreferred-stack-boundary=3 and time() uses no stack, so that is harmless.
    ".Lfake_time:\n"
    "  pushq %rdi\n"
    "0:\n"
    "  pushq .Lcontrol(%rip)\n"
    "  xorl %edi, %edi\n"
    ".Lcopy_time:\n"
    "  jmp 1f\n"
    "  .fill " TS_STR(TS_CODE_OFFSET) " - 5 - (. - timeskew_x64_payload_start), 1, 0xcc\n"
    "1:\n"
    "  call .Ltramp_time\n"
    ".Lreturn_time:\n"
    "  popq %rcx\n"
    "  TS_SELECT_SLOT cl, rdx\n"
    "  movl " TS_STR(TS_SLOT_MASK) "(%r8), %r11d\n"
    "  movq " TS_STR(TS_SLOT_RATE) "(%r8), %rsi\n"
    "  movq " TS_STR(TS_SLOT_SEC) "(%r8), %r9\n"
    "  cmpq .Lcontrol(%rip), %rcx\n"
    "  jne 0b\n"
    "  testb $1, %r11b\n"
    "  jz 2f\n"  // deselected meanwhile: the real time is a correct answer
    "  testq %rsi, %rsi\n"
    "  jnz 3f\n"
    "  addq %r9, %rax\n"
    "2:\n"
    "  popq %rdi\n"
    "  testq %rdi, %rdi\n"
    "  jnz 4f\n"
    ".Lexit_time:\n"
    "  ret\n"
    "3:\n"  // drift in seconds
    "  movq %rax, %rdi\n"
    "  imulq %rsi\n"
    "  shrdq $32, %rdx, %rax\n"
    "  addq %rdi, %rax\n"
    "  addq %r9, %rax\n"
    "  jmp 2b\n"
    "4:\n"
    "  movq %rax, (%rdi)\n"
    "  jmp .Lexit_time\n"
    ".Ltail_end_time:\n"
    ".Ltramp_time: .skip " TS_STR(TS_TRAMPOLINE_SIZE) "\n"

    // int clock_gettime(clockid_t id /*edi*/, struct timespec *ts /*rsi*/)
    // Each trampoline sits just before its fake, in reach of a short jump. %rbx keeps the
    // caller's struct and %r12 the other argument across the call, %r13 the control word.
    ".Ltramp_clock_gettime: .skip " TS_STR(TS_TRAMPOLINE_SIZE) "\n"
    ".Lfake_clock_gettime:\n"
    "  cmpl $" TS_STR(TS_CLOCK_COUNT) ", %edi\n"  // unsigned: dynamic (negative) ids pass too
    "  jae .Ltramp_clock_gettime\n"
    "  movl .Lquick_mask(%rip), %eax\n"
    "  btl %edi, %eax\n"
    "  jnc .Ltramp_clock_gettime\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"  // three pushes keep the ABI's 16-byte alignment at the call
    "  movq %rsi, %rbx\n"
    "  movl %edi, %r12d\n"
    "0:\n"
    "  movq .Lcontrol(%rip), %r13\n"
    "  call .Ltramp_clock_gettime\n"
    ".Lreturn_clock_gettime:\n"
    "  testl %eax, %eax\n"
    "  jnz 9f\n"
    "  TS_SELECT_SLOT r13b, rcx\n"
    "  movl " TS_STR(TS_SLOT_MASK) "(%r8), %r11d\n"
    "  movq " TS_STR(TS_SLOT_RATE) "(%r8), %rsi\n"
    "  movq " TS_STR(TS_SLOT_SEC) "(%r8,%r12,8), %r9\n"
    "  movl " TS_STR(TS_SLOT_NSEC) "(%r8,%r12,4), %r10d\n"
    "  cmpq .Lcontrol(%rip), %r13\n"
    "  jne 1f\n"
    "  btl %r12d, %r11d\n"
    "  jnc 9f\n"  // deselected meanwhile: the real time is a correct answer
    "  movl $1000000000, %ecx\n"
    "  TS_ADD_WHOLE_SECONDS\n"
    "9:\n"  // %eax is the original's return value on every path here
    ".Lslow_done_clock_gettime:\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    ".Lexit_clock_gettime:\n"
    "  ret\n"
    "1:\n"  // the table changed under us: read the clock again
    "  movl %r12d, %edi\n"
    "  movq %rbx, %rsi\n"
    "  jmp 0b\n"
    ".Ltail_end_clock_gettime:\n"

    // int gettimeofday(struct timeval *tv /*rdi*/, struct timezone *tz /*rsi*/)
    ".Ltramp_gettimeofday: .skip " TS_STR(TS_TRAMPOLINE_SIZE) "\n"
    ".Lfake_gettimeofday:\n"
    "  testq %rdi, %rdi\n"
    "  jz .Ltramp_gettimeofday\n"
    "  testb $1, .Lquick_mask(%rip)\n"
    "  jz .Ltramp_gettimeofday\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  movq %rdi, %rbx\n"
    "  movq %rsi, %r12\n"
    "0:\n"
    "  movq .Lcontrol(%rip), %r13\n"
    "  call .Ltramp_gettimeofday\n"
    ".Lreturn_gettimeofday:\n"
    "  testl %eax, %eax\n"
    "  jnz 9f\n"
    "  TS_SELECT_SLOT r13b, rcx\n"
    "  movl " TS_STR(TS_SLOT_MASK) "(%r8), %r11d\n"
    "  movq " TS_STR(TS_SLOT_RATE) "(%r8), %rsi\n"
    "  movq " TS_STR(TS_SLOT_SEC) "(%r8), %r9\n"
    "  movl " TS_STR(TS_SLOT_USEC) "(%r8), %r10d\n"
    "  cmpq .Lcontrol(%rip), %r13\n"
    "  jne 1f\n"
    "  testb $1, %r11b\n"
    "  jz 9f\n"
    "  movl $1000000, %ecx\n"
    "  TS_ADD_WHOLE_SECONDS\n"
    "9:\n"
    ".Lslow_done_gettimeofday:\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    ".Lexit_gettimeofday:\n"
    "  ret\n"
    "1:\n"
    "  movq %rbx, %rdi\n"
    "  movq %r12, %rsi\n"
    "  jmp 0b\n"

    // The rest, shared by clock_gettime and gettimeofday, out of line: %rcx = units per second
    // (1e9 or 1e6), %rbx = the struct the original filled, %rsi = rate, %r9/%r10 = base.
    ".Lslow:\n"
    "  movl %ecx, %r8d\n"  // which fake to go back to
    "  testq %rsi, %rsi\n"
    "  jz 3f\n"
    // Drift: base += floor(t * rate / 2^32), t the real reading in those units, split by %rcx
    // (floor) and normalised once, so that adding the reading below carries once at most.
    "  movq (%rbx), %rax\n"
    "  imulq %rcx, %rax\n"
    "  addq 8(%rbx), %rax\n"
    "  imulq %rsi\n"
    "  shrdq $32, %rdx, %rax\n"
    "  cqto\n"
    "  idivq %rcx\n"
    "  testq %rdx, %rdx\n"
    "  jns 1f\n"
    "  addq %rcx, %rdx\n"
    "  decq %rax\n"
    "1:\n"
    "  addq %rax, %r9\n"
    "  addq %rdx, %r10\n"
    "  cmpq %rcx, %r10\n"
    "  jb 2f\n"
    "  subq %rcx, %r10\n"
    "  incq %r9\n"
    "2:\n"
    "  xorl %eax, %eax\n"  // the return value, used as scratch above
    "3:\n"
    // Adds the base (%r10 in [0, %rcx)) to the reading: the original stored it a moment ago, so
    // each load waits for store forwarding (and the next call of a loop, at its rdtscp, for our
    // stores): the work after the loads is kept short. The carry test compares the reading
    // itself with units - %r10 (precomputed), both candidate sums are formed at once and one is
    // picked, and the seconds take the carry with one sbb: each store is two operations after
    // its load, with no branch that a random sub-second base would make unpredictable.
    "  movq %r10, %rdx\n"
    "  subq %rcx, %rdx\n"   // base - units
    "  subl %r10d, %ecx\n"  // the reading's sub-units from which a carry happens
    "  notq %r9\n"          // -(base + 1), for the sbb
    "  movq 8(%rbx), %rdi\n"
    "  movq (%rbx), %rsi\n"
    "  leaq (%rdi,%r10), %r11\n"  // no carry
    "  leaq (%rdi,%rdx), %rdx\n"  // carry
    "  cmpq %rcx, %rdi\n"         // CF: no carry
    "  cmovbq %r11, %rdx\n"
    "  sbbq %r9, %rsi\n"          // + base + 1 - CF
    "  movq %rsi, (%rbx)\n"
    "  movq %rdx, 8(%rbx)\n"
    "  cmpl $1000000, %r8d\n"
    "  je .Lslow_done_gettimeofday\n"
    "  jmp .Lslow_done_clock_gettime\n"
    ".Lpayload_end:\n"

    ".purgem TS_SELECT_SLOT\n"
    ".purgem TS_ADD_WHOLE_SECONDS\n"
    ".balign 4\n"
    ".globl timeskew_x64_payload_offsets\n"
    ".hidden timeskew_x64_payload_offsets\n"
    "timeskew_x64_payload_offsets:\n"
    "  .long .Lpayload_end - timeskew_x64_payload_start\n"
    "  .long .Lfake_clock_gettime - timeskew_x64_payload_start\n"
    "  .long .Lfake_gettimeofday - timeskew_x64_payload_start\n"
    "  .long .Lfake_time - timeskew_x64_payload_start\n"
    "  .long .Ltramp_clock_gettime - timeskew_x64_payload_start\n"
    "  .long .Ltramp_gettimeofday - timeskew_x64_payload_start\n"
    "  .long .Ltramp_time - timeskew_x64_payload_start\n"
    "  .long .Lcontrol - timeskew_x64_payload_start\n"
    "  .long .Lslots - timeskew_x64_payload_start\n"
    "  .long .Lquick_mask - timeskew_x64_payload_start\n"
    "  .long .Lreturn_clock_gettime - timeskew_x64_payload_start\n"
    "  .long .Lreturn_gettimeofday - timeskew_x64_payload_start\n"
    "  .long .Lreturn_time - timeskew_x64_payload_start\n"
    "  .long .Lexit_clock_gettime - timeskew_x64_payload_start\n"
    "  .long .Lexit_gettimeofday - timeskew_x64_payload_start\n"
    "  .long .Lexit_time - timeskew_x64_payload_start\n"
    "  .long .Lcopy_time - timeskew_x64_payload_start\n"
    "  .long .Ltail_end_clock_gettime - timeskew_x64_payload_start\n"
    "  .long .Lpayload_end - timeskew_x64_payload_start\n"  // gettimeofday's tail ends the code
    "  .long .Ltail_end_time - timeskew_x64_payload_start\n"
    ".popsection\n");

extern "C" const uint8_t timeskew_x64_payload_start[];
extern "C" const uint32_t timeskew_x64_payload_offsets[20];

namespace timeskew::x86_64 {

const PayloadLayout& payloadLayout() {
  static const PayloadLayout layout = [] {
    const uint32_t* offsets = timeskew_x64_payload_offsets;
    PayloadLayout result{};
    result.bytes = timeskew_x64_payload_start;
    result.size = offsets[0];
    for (int i = 0; i < kHookCount; ++i) {
      result.fakeOffset[i] = offsets[1 + i];
      result.trampolineOffset[i] = offsets[4 + i];
      result.returnOffset[i] = offsets[10 + i];
      result.exitOffset[i] = offsets[13 + i];
    }
    for (int i = 0; i < kHookCount; ++i) result.tailEnd[i] = offsets[17 + i];
    result.inlineOffset[kTime] = offsets[16];
    result.inlineSize[kTime] = offsets[10 + kTime] - offsets[16];
    return result;
  }();
  return layout;
}

// The C++ layout and the assembly must agree; checked once when the addon loads.
bool payloadLayoutIsConsistent() {
  const uint32_t* offsets = timeskew_x64_payload_offsets;
  if (!(offsets[7] == TS_CONTROL_OFFSET && offsets[8] == TS_SLOTS_OFFSET &&
        offsets[9] == TS_QUICK_MASK_OFFSET && offsets[12] == TS_CODE_OFFSET)) {
    return false;
  }
  const PayloadLayout& layout = payloadLayout();
  for (int i = 0; i < kHookCount; ++i) {
    // Per-kernel bytes (trampolines) lie in the compared code; the inline region before it.
    if (layout.trampolineOffset[i] < TS_CODE_OFFSET) return false;
    if (layout.inlineSize[i] != 0 &&
        layout.inlineOffset[i] + layout.inlineSize[i] != layout.returnOffset[i]) {
      return false;
    }
    if (!(layout.returnOffset[i] < layout.exitOffset[i] &&
          layout.exitOffset[i] < layout.tailEnd[i] && layout.tailEnd[i] <= layout.size)) {
      return false;
    }
  }
  return true;
}

}  // namespace timeskew::x86_64
#endif
