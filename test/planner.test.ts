// The hook planner on real vDSO images: every x86_64 kernel in the corpus and the live kernel
// must get the fast path (trampoline) for all three functions. Pure: no process is touched.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { binding } from './support/binding';
import { readVdso } from './support/vdso';

const corpusDir = path.join(__dirname, '..', '..', 'shared', 'fixtures', 'vdso');
const corpus = existsSync(corpusDir) ? readdirSync(corpusDir).filter((f) => f.endsWith('.so')) : [];
const x86Images: Array<[string, Buffer]> = [
  ...corpus.filter((f) => f.startsWith('x86_64')).map((f): [string, Buffer] => [f, readFileSync(path.join(corpusDir, f))]),
  ['live vDSO of this machine', readVdso('self')],
];

const HOOKED = ['clock_gettime', 'gettimeofday', 'time'];

describe.each(x86Images)('planner on %s', (_name, image) => {
  it('hooks clock_gettime, gettimeofday and time on the trampoline path', () => {
    const plan = binding.planImage(image, false);
    expect(plan.error).toBeUndefined();
    expect(plan.ok).toBe(true);
    expect(plan.functions.map((f) => f.name)).toEqual(HOOKED);
    for (const fn of plan.functions) {
      expect(fn.mode, `${fn.name}: ${fn.reason}`).toBe('trampoline');
      expect(fn.displacedLength).toBeGreaterThanOrEqual(5);
    }
    expect(plan.neededBytes).toBeLessThanOrEqual(plan.freeBytes);
  });

  it('keeps an endbr64 landing pad in place', () => {
    const plan = binding.planImage(image, false);
    for (const fn of plan.functions) {
      const startsWithEndbr = image.subarray(fn.offset, fn.offset + 4).equals(Buffer.from([0xf3, 0x0f, 0x1e, 0xfa]));
      expect(fn.patchOffset).toBe(startsWithEndbr ? 4 : 0);
    }
  });

  it('re-targets RIP-relative operands in displaced code (time reads the vvar page)', () => {
    const plan = binding.planImage(image, false);
    const time = plan.functions.find((f) => f.name === 'time')!;
    expect(time.relocations).toBeGreaterThan(0);
  });

  it('copies time() whole into its fake, so that the fake makes no call', () => {
    const plan = binding.planImage(image, false);
    const time = plan.functions.find((f) => f.name === 'time')!;
    expect(time.inlineReason).toBeUndefined();
    expect(time.inlined).toBe(true);
    for (const fn of plan.functions.filter((f) => f.name !== 'time')) expect(fn.inlined).toBe(false);
  });

  it('falls back to a syscall stub only when asked', () => {
    const plan = binding.planImage(image, true);
    expect(plan.ok).toBe(true);
    for (const fn of plan.functions) expect(fn.mode).toBe('syscall');
    expect(plan.functions.find((f) => f.name === 'time')!.inlined).toBe(false);
  });
});

describe('copying time() whole', () => {
  // The live image with time()'s code (after its landing pad) replaced by the given bytes.
  function withTime(code: number[]): Buffer {
    const image = Buffer.from(readVdso('self'));
    const time = binding.planImage(image, false).functions.find((f) => f.name === 'time')!;
    Buffer.from(code).copy(image, time.offset + time.patchOffset);
    return image;
  }
  const time = (image: Buffer) => binding.planImage(image, false).functions.find((f) => f.name === 'time')!;

  it('turns a ret in the middle into a jump to the end of the region, and drops the last one', () => {
    // xor %rax,%rax; test %rdi,%rdi; je +1; ret; ret
    const fn = time(withTime([0x48, 0x31, 0xc0, 0x48, 0x85, 0xff, 0x74, 0x01, 0xc3, 0xc3]));
    expect(fn.inlineReason).toBeUndefined();
    expect(fn.inlined).toBe(true);
    const code = fn.inlineCode!;
    // Right-aligned: 8 bytes of code plus a 2-byte jump to the region's end.
    const tail = code.subarray(code.length - 10);
    expect([...tail]).toEqual([0x48, 0x31, 0xc0, 0x48, 0x85, 0xff, 0x74, 0x02, 0xeb, 0x00]);
  });

  it('keeps the call to the trampoline when the function calls out', () => {
    // xor %rax,%rax; test %rdi,%rdi; call +0; ret
    const fn = time(withTime([0x48, 0x31, 0xc0, 0x48, 0x85, 0xff, 0xe8, 0, 0, 0, 0, 0xc3]));
    expect(fn.mode).toBe('trampoline');
    expect(fn.inlined).toBe(false);
    expect(fn.inlineReason).toMatch(/calls/);
  });

  it('keeps the call to the trampoline when a branch leaves the function', () => {
    // xor %rax,%rax; test %rdi,%rdi; je -0x40 (before the function)
    const fn = time(withTime([0x48, 0x31, 0xc0, 0x48, 0x85, 0xff, 0x74, 0xc0, 0xc3]));
    expect(fn.inlined).toBe(false);
    expect(fn.inlineReason).toMatch(/leaves/);
  });
});

describe('planner refuses what it cannot hook', () => {
  it('refuses arm64 images (not yet supported)', () => {
    // The corpus's arm64 images when present; else the live image relabelled as EM_AARCH64.
    const relabelled = Buffer.from(readVdso('self'));
    relabelled.writeUInt16LE(183, 18);
    const arm = [
      ...corpus.filter((f) => f.startsWith('aarch64')).map((f) => readFileSync(path.join(corpusDir, f))),
      relabelled,
    ];
    for (const image of arm) {
      const plan = binding.planImage(image, false);
      expect(plan.ok).toBe(false);
      expect(plan.error).toMatch(/x86_64/);
    }
  });

  it('refuses bytes that are not an ELF image', () => {
    const plan = binding.planImage(Buffer.alloc(8192), false);
    expect(plan.ok).toBe(false);
  });

  it('refuses an image whose padding is too small for the hook', () => {
    const live = readVdso('self');
    const plan = binding.planImage(live.subarray(0, live.length - 1024), false);
    expect(plan.ok).toBe(false);
  });
});
