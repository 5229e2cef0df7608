// The DWARF call frame interpreter (native/frame_table.cc) against binutils' own interpretation:
// for every x86_64 image of the corpus, the live vDSO and a hand-written .eh_frame that uses every
// opcode we handle, each code offset that readelf describes must get the same CFA, return address
// and frame pointer rule from us. Pure: no process is touched.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { NativeFrameRow } from '../types/native';
import { binding } from './support/binding';
import { readVdso } from './support/vdso';

const corpusDir = path.join(__dirname, '..', '..', 'shared', 'fixtures', 'vdso');
const corpus = existsSync(corpusDir) ? readdirSync(corpusDir).filter((f) => f.startsWith('x86_64') && f.endsWith('.so')) : [];

// readelf needs a file: the live image goes to a temporary one.
const scratch = mkdtempSync(path.join(os.tmpdir(), 'timeskew-frames-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
const liveFile = path.join(scratch, 'live-vdso.so');
writeFileSync(liveFile, readVdso('self'));

const vdsoImages: Array<[string, string]> = [
  ...corpus.map((f): [string, string] => [f, path.join(corpusDir, f)]),
  ['live vDSO of this machine', liveFile],
];

// Real vDSOs use a handful of opcodes; fixtures/cfi-ops.S holds all of them.
const syntheticFile = path.join(scratch, 'cfi-ops.so');
try {
  execFileSync('cc', ['-nostdlib', '-shared', '-Wl,--eh-frame-hdr', '-Wl,-z,noseparate-code', '-o', syntheticFile,
    path.join(__dirname, 'fixtures', 'cfi-ops.S')], { stdio: 'pipe' });
} catch (err) {
  throw new Error(`building test/fixtures/cfi-ops.S needs \`cc\` on PATH (Debian: gcc): ${String(err)}`);
}

// x86_64 DWARF register numbers by readelf's names (System V psABI).
const DWARF_REGISTER: Record<string, number> = {
  rax: 0, rdx: 1, rcx: 2, rbx: 3, rsi: 4, rdi: 5, rbp: 6, rsp: 7,
  r8: 8, r9: 9, r10: 10, r11: 11, r12: 12, r13: 13, r14: 14, r15: 15, rip: 16,
};

interface ReadelfRow {
  loc: number;
  columns: Record<string, string>;
}
interface ReadelfFde {
  cie: number;
  pcBegin: number;
  pcEnd: number;
  rows: ReadelfRow[];
}

// Parses `readelf --debug-dump=frames-interp`: a table per CIE and FDE, one line per location.
function readelfFrames(file: string): ReadelfFde[] {
  const text = execFileSync('readelf', ['--debug-dump=frames-interp', file], { encoding: 'utf8' });
  const cieRows = new Map<number, ReadelfRow[]>();
  const fdes: ReadelfFde[] = [];
  let current: ReadelfRow[] | undefined;
  let header: string[] = [];
  for (const line of text.split('\n')) {
    let match = /^([0-9a-f]+) [0-9a-f]+ [0-9a-f]+ CIE/.exec(line);
    if (match) {
      current = [];
      cieRows.set(parseInt(match[1], 16), current);
      continue;
    }
    match = /^[0-9a-f]+ [0-9a-f]+ [0-9a-f]+ FDE cie=([0-9a-f]+) pc=([0-9a-f]+)\.\.([0-9a-f]+)/.exec(line);
    if (match) {
      const fde = { cie: parseInt(match[1], 16), pcBegin: parseInt(match[2], 16), pcEnd: parseInt(match[3], 16), rows: [] };
      fdes.push(fde);
      current = fde.rows;
      continue;
    }
    if (/^\s+LOC\s+CFA/.test(line)) {
      header = line.trim().split(/\s+/);
      continue;
    }
    if (/^[0-9a-f]{16} /.test(line) && current) {
      // "r3 (rbx)": a value moved to another register, the one cell with a space.
      const values = line.trim().replace(/\br\d+ \((\w+)\)/g, 'in-$1').split(/\s+/);
      current.push({ loc: parseInt(values[0], 16), columns: Object.fromEntries(header.map((name, i) => [name, values[i]])) });
    }
  }
  // readelf prints no table for an FDE without instructions: its CIE's initial rule holds throughout.
  for (const fde of fdes) {
    if (fde.rows.length === 0) {
      const initial = cieRows.get(fde.cie)?.[0];
      if (initial) fde.rows.push({ loc: fde.pcBegin, columns: initial.columns });
    }
  }
  return fdes;
}

interface Rule {
  known: boolean;
  cfaRegister?: number;
  cfaOffset?: number;
  returnOffset?: number;
  framePointerOffset?: number;
}

function ruleOf(row: NativeFrameRow | undefined): Rule {
  if (!row?.known) return { known: false };
  return {
    known: true,
    cfaRegister: row.cfaRegister,
    cfaOffset: row.cfaOffset,
    returnOffset: row.returnOffset,
    framePointerOffset: row.framePointerOffset,
  };
}

// readelf's notation: "rsp+8" for the CFA; "c-16" saved at CFA-16, "u" undefined, "s" same value,
// absent never mentioned; "v±n", a register name or "exp" for rules we do not interpret.
function expectedRule(columns: Record<string, string>): Rule {
  const cfa = /^([a-z0-9]+)([+-]\d+)$/.exec(columns.CFA);
  if (!cfa || !(cfa[1] in DWARF_REGISTER)) return { known: false };
  const onStack = (value: string | undefined) => (value ? /^c([+-]\d+)$/.exec(value) : null);
  const ra = columns.ra;
  const returnSaved = onStack(ra);
  // A return address still in place is fine; an undefined one means there is no caller.
  if (!returnSaved && ra !== undefined && ra !== 's') return { known: false };
  const rbp = columns.rbp;
  const framePointerSaved = onStack(rbp);
  // readelf prints "u" for a register the FDE only mentions later: at that point it is in place.
  if (!framePointerSaved && rbp !== undefined && rbp !== 'u' && rbp !== 's') return { known: false };
  return {
    known: true,
    cfaRegister: DWARF_REGISTER[cfa[1]],
    cfaOffset: Number(cfa[2]),
    returnOffset: returnSaved ? Number(returnSaved[1]) : undefined,
    framePointerOffset: framePointerSaved ? Number(framePointerSaved[1]) : undefined,
  };
}

// Our row for every byte offset of the image, to look rules up the way FrameTable::lookup does.
function rowAt(rows: NativeFrameRow[], size: number): Array<NativeFrameRow | undefined> {
  const at = new Array<NativeFrameRow | undefined>(size).fill(undefined);
  for (const row of rows) for (let offset = row.start; offset < row.end; ++offset) at[offset] = row;
  return at;
}

function expectWellFormed(rows: NativeFrameRow[], size: number): void {
  for (let i = 0; i < rows.length; ++i) {
    expect(rows[i].start).toBeLessThan(rows[i].end);
    expect(rows[i].end).toBeLessThanOrEqual(size);
    if (i > 0) expect(rows[i].start).toBeGreaterThanOrEqual(rows[i - 1].end);
  }
}

// Compares every described offset and returns the rules seen, so callers can check the coverage.
function compareWithReadelf(file: string): Rule[] {
  const image = readFileSync(file);
  const rows = binding.frameRows(image);
  expectWellFormed(rows, image.length);
  const at = rowAt(rows, image.length);
  const fdes = readelfFrames(file);
  expect(fdes.length).toBeGreaterThan(0);
  const mismatches: string[] = [];
  const seen: Rule[] = [];
  const described = new Array<boolean>(image.length).fill(false);
  for (const fde of fdes) {
    fde.rows.forEach((row, i) => {
      const end = i + 1 < fde.rows.length ? fde.rows[i + 1].loc : fde.pcEnd;
      const expected = expectedRule(row.columns);
      seen.push(expected);
      for (let offset = row.loc; offset < end; ++offset) {
        described[offset] = true;
        const actual = ruleOf(at[offset]);
        if (JSON.stringify(actual) !== JSON.stringify(expected)) {
          mismatches.push(`0x${offset.toString(16)}: ours ${JSON.stringify(actual)}, readelf ${JSON.stringify(row.columns)}`);
        }
      }
    });
  }
  // Nothing beyond what readelf describes.
  for (const row of rows) {
    for (let offset = row.start; offset < row.end; ++offset) {
      if (!described[offset]) mismatches.push(`0x${offset.toString(16)}: a row readelf does not have`);
    }
  }
  expect(mismatches).toEqual([]);
  expect(seen.length).toBeGreaterThan(0);
  return seen;
}

describe('frame table of a hand-written .eh_frame with every opcode', () => {
  it('agrees with readelf at every location of every FDE', () => {
    const seen = compareWithReadelf(syntheticFile);
    // Rules we interpret and rules we refuse both occur.
    expect(seen.some((r) => r.known && r.cfaRegister === 6)).toBe(true);
    expect(seen.some((r) => r.known && r.framePointerOffset === 16)).toBe(true);
    expect(seen.filter((r) => !r.known).length).toBeGreaterThanOrEqual(6);
  });
});

describe.each(vdsoImages)('frame table of %s', (_name, file) => {
  const image = readFileSync(file);

  it('agrees with readelf at every location of every FDE', () => {
    compareWithReadelf(file);
  });

  it('covers every hooked function with known rules over its whole body', () => {
    const at = rowAt(binding.frameRows(image), image.length);
    const plan = binding.planImage(image, false);
    expect(plan.functions.map((f) => f.symbol)).toEqual(['__vdso_clock_gettime', '__vdso_gettimeofday', '__vdso_time']);
    for (const fn of plan.functions) {
      expect(fn.size).toBeGreaterThan(0);
      for (let offset = fn.offset; offset < fn.offset + fn.size; ++offset) {
        const rule = ruleOf(at[offset]);
        expect(rule.known, `${fn.symbol}+0x${(offset - fn.offset).toString(16)}`).toBe(true);
        expect(rule.returnOffset).toBeDefined();
      }
      // At the entry the return address sits right at the stack pointer.
      expect(ruleOf(at[fn.offset])).toEqual({ known: true, cfaRegister: 7, cfaOffset: 8, returnOffset: -8, framePointerOffset: undefined });
    }
  });
});

// Where .eh_frame is, and where its size is recorded, from the section headers.
function ehFrameSection(image: Buffer): { offset: number; size: number; sizeField: number } {
  const shoff = Number(image.readBigUInt64LE(0x28));
  const entrySize = image.readUInt16LE(0x3a);
  const count = image.readUInt16LE(0x3c);
  const names = shoff + image.readUInt16LE(0x3e) * entrySize;
  const namesOffset = Number(image.readBigUInt64LE(names + 0x18));
  for (let i = 0; i < count; ++i) {
    const header = shoff + i * entrySize;
    const nameAt = namesOffset + image.readUInt32LE(header);
    if (image.toString('latin1', nameAt, nameAt + 10) !== '.eh_frame\0') continue;
    return { offset: Number(image.readBigUInt64LE(header + 0x18)), size: Number(image.readBigUInt64LE(header + 0x20)), sizeField: header + 0x20 };
  }
  throw new Error('no .eh_frame section');
}

// A small deterministic generator, so that a failure can be replayed.
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function parsesOrFailsCleanly(image: Buffer): 'rows' | 'error' {
  let rows: NativeFrameRow[];
  try {
    rows = binding.frameRows(image);
  } catch (err) {
    expect(err).toBeInstanceOf(Error);
    expect((err as { code?: string }).code).toBe('EINVAL');
    expect((err as Error).message).toMatch(/eh_frame/);
    return 'error';
  }
  expect(Array.isArray(rows)).toBe(true);
  expectWellFormed(rows, image.length);
  return 'rows';
}

describe('frame table on damaged images', () => {
  const original = corpus.length > 0 ? readFileSync(path.join(corpusDir, corpus[0])) : readVdso('self');
  const section = ehFrameSection(original);

  it('rejects what is not a Uint8Array with a TypeError', () => {
    expect(() => binding.frameRows('vdso' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => binding.frameRows(new Float64Array(16) as unknown as Uint8Array)).toThrow(TypeError);
  });

  it('rejects bytes that are not an ELF image', () => {
    expect(() => binding.frameRows(Buffer.alloc(8192))).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('reports a truncated .eh_frame as malformed, at every cut', () => {
    const outcomes = new Set<string>();
    for (let size = 1; size < section.size; ++size) {
      const image = Buffer.from(original);
      image.writeBigUInt64LE(BigInt(size), section.sizeField);
      outcomes.add(parsesOrFailsCleanly(image));
    }
    // Cuts between records leave a shorter, valid table; cuts inside one are errors.
    expect(outcomes).toEqual(new Set(['rows', 'error']));
  });

  it('survives random byte flips inside .eh_frame', () => {
    const random = mulberry32(0x7157);
    const outcomes = { rows: 0, error: 0 };
    for (let round = 0; round < 400; ++round) {
      const image = Buffer.from(original);
      const flips = 1 + Math.floor(random() * 4);
      for (let i = 0; i < flips; ++i) {
        const at = section.offset + Math.floor(random() * section.size);
        image[at] ^= 1 + Math.floor(random() * 255);
      }
      ++outcomes[parsesOrFailsCleanly(image)];
    }
    expect(outcomes.rows + outcomes.error).toBe(400);
    expect(outcomes.error).toBeGreaterThan(0);
  });
});
