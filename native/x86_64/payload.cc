#if defined(__x86_64__)
#include "x86_64/payload.h"

#define TS_STR2(x) #x
#define TS_STR(x) TS_STR2(x)

// Assembled into our own read-only data: it is never run here, only copied into targets. Every
// reference inside it is RIP-relative to another part of the same blob, so it works wherever the
// blob lands. `LOAD_SLOT` leaves the control word in %rcx and the active slot's address in %r8.
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

    // %rcx = the control word, %r8 = its active slot. The fakes read the control word BEFORE
    // calling the original and check it after reading the slot: a thread preempted between the
    // two would otherwise pair an old reading with a new rate and go backwards.
    ".macro TS_LOAD_SLOT\n"
    "  movq %r13, %rcx\n"
    "  leaq .Lslots(%rip), %r8\n"
    "  testb $1, %cl\n"
    "  jz 7f\n"
    "  addq $" TS_STR(TS_SLOT_SIZE) ", %r8\n"
    "7:\n"
    ".endm\n"

    // int clock_gettime(clockid_t id /*edi*/, struct timespec *ts /*rsi*/)
    // Each trampoline sits just before its fake, in reach of a short jump.
    ".Ltramp_clock_gettime: .skip " TS_STR(TS_TRAMPOLINE_SIZE) "\n"
    ".Lfake_clock_gettime:\n"
    "  cmpl $" TS_STR(TS_CLOCK_COUNT) ", %edi\n"  // unsigned: dynamic (negative) ids pass too
    "  jae .Ltramp_clock_gettime\n"
    "  btl %edi, .Lquick_mask(%rip)\n"
    "  jnc .Ltramp_clock_gettime\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"  // three pushes keep the ABI's 16-byte alignment at the call
    "  movl %edi, %ebx\n"
    "  movq %rsi, %r12\n"
    "0:\n"
    "  movq .Lcontrol(%rip), %r13\n"
    "  movl %ebx, %edi\n"
    "  movq %r12, %rsi\n"
    "  call .Ltramp_clock_gettime\n"
    ".Lreturn_clock_gettime:\n"
    "  testl %eax, %eax\n"
    "  jnz 9f\n"
    "  TS_LOAD_SLOT\n"
    "  movl " TS_STR(TS_SLOT_MASK) "(%r8), %r11d\n"
    "  movq " TS_STR(TS_SLOT_RATE) "(%r8), %rsi\n"
    "  movq " TS_STR(TS_SLOT_SEC) "(%r8,%rbx,8), %r9\n"
    "  movl " TS_STR(TS_SLOT_NSEC) "(%r8,%rbx,4), %r10d\n"
    "  cmpq .Lcontrol(%rip), %rcx\n"
    "  jne 0b\n"
    "  btl %ebx, %r11d\n"
    "  jnc 8f\n"  // deselected meanwhile: the real time is a correct answer
    "  testq %rsi, %rsi\n"
    "  jz 3f\n"
    // Drift: base += floor(t * rate / 2^32), t the real reading in ns, split by 1e9 (floor).
    "  imulq $1000000000, (%r12), %rax\n"
    "  addq 8(%r12), %rax\n"
    "  imulq %rsi\n"
    "  shrdq $32, %rdx, %rax\n"
    "  movl $1000000000, %ecx\n"
    "  cqto\n"
    "  idivq %rcx\n"
    "  testq %rdx, %rdx\n"
    "  jns 2f\n"
    "  addq %rcx, %rdx\n"
    "  decq %rax\n"
    "2:\n"
    "  addq %rax, %r9\n"
    "  addq %rdx, %r10\n"
    "  xorl %eax, %eax\n"  // the return value, used as scratch above
    "3:\n"
    "  addq %r9, (%r12)\n"
    "  addq 8(%r12), %r10\n"
    "5:\n"  // up to two carries with a rate, one without
    "  cmpq $1000000000, %r10\n"
    "  jl 4f\n"
    "  subq $1000000000, %r10\n"
    "  incq (%r12)\n"
    "  jmp 5b\n"
    "4:\n"
    "  movq %r10, 8(%r12)\n"
    "8:\n"  // %eax is still the original's 0 on every path here
    "9:\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    ".Lexit_clock_gettime:\n"
    "  ret\n"

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
    "  movq %rbx, %rdi\n"
    "  movq %r12, %rsi\n"
    "  call .Ltramp_gettimeofday\n"
    ".Lreturn_gettimeofday:\n"
    "  testl %eax, %eax\n"
    "  jnz 9f\n"
    "  TS_LOAD_SLOT\n"
    "  movl " TS_STR(TS_SLOT_MASK) "(%r8), %r11d\n"
    "  movq " TS_STR(TS_SLOT_RATE) "(%r8), %rsi\n"
    "  movq " TS_STR(TS_SLOT_SEC) "(%r8), %r9\n"
    "  movl " TS_STR(TS_SLOT_USEC) "(%r8), %r10d\n"
    "  cmpq .Lcontrol(%rip), %rcx\n"
    "  jne 0b\n"
    "  testb $1, %r11b\n"
    "  jz 8f\n"
    "  testq %rsi, %rsi\n"
    "  jz 3f\n"
    // Drift in microseconds: the same clock, one unit coarser.
    "  imulq $1000000, (%rbx), %rax\n"
    "  addq 8(%rbx), %rax\n"
    "  imulq %rsi\n"
    "  shrdq $32, %rdx, %rax\n"
    "  movl $1000000, %ecx\n"
    "  cqto\n"
    "  idivq %rcx\n"
    "  testq %rdx, %rdx\n"
    "  jns 2f\n"
    "  addq %rcx, %rdx\n"
    "  decq %rax\n"
    "2:\n"
    "  addq %rax, %r9\n"
    "  addq %rdx, %r10\n"
    "  xorl %eax, %eax\n"  // the return value, used as scratch above
    "3:\n"
    "  addq %r9, (%rbx)\n"
    "  addq 8(%rbx), %r10\n"
    "5:\n"
    "  cmpq $1000000, %r10\n"
    "  jl 4f\n"
    "  subq $1000000, %r10\n"
    "  incq (%rbx)\n"
    "  jmp 5b\n"
    "4:\n"
    "  movq %r10, 8(%rbx)\n"
    "8:\n"  // %eax is still the original's 0 on every path here
    "9:\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    ".Lexit_gettimeofday:\n"
    "  ret\n"

    // time_t time(time_t *t /*rdi*/): the original is asked for the value only, so that *t is
    // written once, already skewed.
    ".Ltramp_time: .skip " TS_STR(TS_TRAMPOLINE_SIZE) "\n"
    ".Lfake_time:\n"
    "  testb $1, .Lquick_mask(%rip)\n"
    "  jz .Ltramp_time\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  movq %rdi, %rbx\n"
    "0:\n"
    "  movq .Lcontrol(%rip), %r13\n"
    "  xorl %edi, %edi\n"
    "  call .Ltramp_time\n"
    ".Lreturn_time:\n"
    "  movq %rax, %rdi\n"
    "  TS_LOAD_SLOT\n"
    "  movl " TS_STR(TS_SLOT_MASK) "(%r8), %r11d\n"
    "  movq " TS_STR(TS_SLOT_RATE) "(%r8), %rsi\n"
    "  movq " TS_STR(TS_SLOT_SEC) "(%r8), %r9\n"
    "  cmpq .Lcontrol(%rip), %rcx\n"
    "  jne 0b\n"
    "  movq %rdi, %rax\n"
    "  testb $1, %r11b\n"
    "  jz 2f\n"
    "  testq %rsi, %rsi\n"
    "  jz 4f\n"
    "  imulq %rsi\n"  // drift in seconds
    "  shrdq $32, %rdx, %rax\n"
    "  addq %rdi, %rax\n"
    "4:\n"
    "  addq %r9, %rax\n"
    "2:\n"
    "  testq %rbx, %rbx\n"
    "  jz 3f\n"
    "  movq %rax, (%rbx)\n"
    "3:\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    ".Lexit_time:\n"
    "  ret\n"
    ".Lpayload_end:\n"

    ".purgem TS_LOAD_SLOT\n"
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
    ".popsection\n");

extern "C" const uint8_t timeskew_x64_payload_start[];
extern "C" const uint32_t timeskew_x64_payload_offsets[16];

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
    return result;
  }();
  return layout;
}

// The C++ layout and the assembly must agree; checked once when the addon loads.
bool payloadLayoutIsConsistent() {
  const uint32_t* offsets = timeskew_x64_payload_offsets;
  return offsets[7] == TS_CONTROL_OFFSET && offsets[8] == TS_SLOTS_OFFSET &&
         offsets[9] == TS_QUICK_MASK_OFFSET && offsets[4] == TS_CODE_OFFSET;
}

}  // namespace timeskew::x86_64
#endif
