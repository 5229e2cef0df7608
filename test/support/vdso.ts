// Reads a process's [vdso] mapping as bytes, to compare a restored process with a fresh one and to
// feed the live image to the hook planner.
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

export interface VdsoMapping {
  start: number;
  end: number;
}

export function vdsoMapping(pid: number | 'self'): VdsoMapping {
  const line = readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .find((l) => l.endsWith('[vdso]'));
  if (!line) throw new Error(`process ${pid} has no [vdso] mapping`);
  const [start, end] = line.split(' ')[0].split('-').map((hex) => parseInt(hex, 16));
  return { start, end };
}

export function readVdso(pid: number | 'self'): Buffer {
  const { start, end } = vdsoMapping(pid);
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    const bytes = Buffer.alloc(end - start);
    // Addresses are below 2^47, so a JS number holds them exactly.
    const n = readSync(fd, bytes, 0, bytes.length, start);
    if (n !== bytes.length) throw new Error(`short read of the vDSO of ${pid}`);
    return bytes;
  } finally {
    closeSync(fd);
  }
}
