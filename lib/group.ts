// Skewing a group of processes: a list of pids, a process tree, or a cgroup v2 group (one
// container). Every member gets its own skew, as skewClock() installs it; the group remembers the
// handles, restores them together, and reports per pid what happened. With `follow`, it polls the
// tree or cgroup and skews processes that appear later, and re-skews members that lost their skew
// by exec().

import { readFile } from 'node:fs/promises';
import type { NativeStatus } from '../types/native';
import { CLOCK_IDS, CLOCK_TABLE_SIZE, type ClockId, maskToClockIds } from './clocks';
import { debug } from './debug';
import { TimeSkewError, invalid } from './errors';
import { SkewHandle } from './handle';
import * as native from './native';
import {
  type ModelState,
  type ResolvedSkew,
  type SkewOptions,
  type UpdateOptions,
  describe,
  resolveSkew,
  resolveUpdate,
  validatePid,
} from './options';
import { installResolved } from './skew';
import { expandCgroup, expandTree } from './targets';

/** Which processes: a list of pids, a process and all its descendants, or every process in a cgroup. */
export type ProcessTarget = readonly number[] | { tree: number } | { cgroup: string };

export interface GroupOptions extends SkewOptions {
  /**
   * Keep watching until restore(): skew processes that appear later in the tree or cgroup, and
   * re-skew members that lost their skew (exec() drops it). Default false.
   */
  follow?: boolean;
  /** How often `follow` looks, in milliseconds. Default 150. */
  pollIntervalMs?: number;
  /** Called for every new or changed per-process result (for logs). Exceptions are ignored. */
  onResult?: (result: ProcessResult) => void;
}

/** What the group did with one process. */
export type ProcessResult =
  | {
      pid: number;
      status: 'skewed';
      handle: SkewHandle;
      /**
       * true when the process already carried a skew installed by this process (typically inherited
       * from a member through fork): the group adopted it instead of installing.
       */
      inherited: boolean;
      /** How often the skew was installed again after the process lost it (exec), with `follow`. */
      reinstalls: number;
    }
  /** The process exited before or while it was skewed, or after: not an error of the group. */
  | { pid: number; status: 'exited' }
  | { pid: number; status: 'failed'; error: TimeSkewError };

const GROUP_KEYS = ['follow', 'pollIntervalMs', 'onResult'] as const;
const DEFAULT_POLL_MS = 150;
const MIN_POLL_MS = 10;
/** Extra passes over a tree or cgroup right after the first batch, for processes forked meanwhile. */
const SETTLE_ROUNDS = 3;
/** The Q32 rate field of a clock running at real speed. */
const REAL_SPEED = 0n;

const isCode = (err: unknown, code: string): boolean => err instanceof TimeSkewError && err.code === code;

interface Member {
  result: ProcessResult;
  /** Field 22 of /proc/PID/stat: tells a reused pid from the process we skewed. */
  startTime: string | undefined;
}

/**
 * Skews every process of `target` with `options` (the options of skewClock(), plus `follow`).
 * Resolves with a group whose `results` say, per pid, what succeeded, what failed and which
 * processes exited meanwhile; it does not reject because some processes failed (check `ok`).
 * Rejects EINVAL for bad options, ESRCH when the root of a tree does not exist, EINVAL/EPERM when
 * the cgroup cannot be read.
 *
 * Clocks stay consistent across the group: with a plain offset every process gets exactly that
 * offset; with a rate, `at` or `freeze`, the first process is skewed as given and every later one
 * (including those `follow` finds) copies the skew that a member shows at that moment, so that all
 * read the same clock (to within (rate - 1) x the fraction of a millisecond between reading a member
 * and writing the newcomer).
 */
export async function skewProcesses(target: ProcessTarget, options: GroupOptions): Promise<SkewGroup> {
  const resolvedTarget = validateTarget(target);
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw invalid(undefined, `skewProcesses options must be an object, got ${describe(options)}`, "e.g. { offset: '-10m', follow: true }");
  }
  const skewOptions: Record<string, unknown> = { ...options };
  for (const key of GROUP_KEYS) delete skewOptions[key];
  const follow = options.follow ?? false;
  if (typeof follow !== 'boolean') throw invalid(undefined, `follow must be a boolean, got ${describe(follow)}`, 'e.g. { follow: true }');
  const pollMs = options.pollIntervalMs ?? DEFAULT_POLL_MS;
  if (typeof pollMs !== 'number' || !Number.isFinite(pollMs) || pollMs < MIN_POLL_MS) {
    throw invalid(undefined, `pollIntervalMs must be a number of milliseconds >= ${MIN_POLL_MS}, got ${describe(pollMs)}`, 'e.g. { follow: true, pollIntervalMs: 200 }');
  }
  if (options.onResult !== undefined && typeof options.onResult !== 'function') {
    throw invalid(undefined, 'onResult must be a function', 'e.g. { onResult: (r) => console.log(r.pid, r.status) }');
  }
  // Validated once for all, before any process is touched.
  const resolved = resolveSkew(undefined, skewOptions);
  const group = new SkewGroup(resolvedTarget, resolved, follow, pollMs, options.onResult);
  await group.start();
  return group;
}

/** The processes skewed by skewProcesses(). restore() stops following and restores them all. */
export class SkewGroup {
  readonly target: ProcessTarget;
  readonly follow: boolean;

  #skew: ResolvedSkew;
  #pollMs: number;
  #onResult: ((result: ProcessResult) => void) | undefined;
  #members = new Map<number, Member>();
  #queue: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #restoring: Promise<void> | undefined;
  #restored = false;

  /** @internal Created by skewProcesses(). */
  constructor(
    target: ProcessTarget,
    skew: ResolvedSkew,
    follow: boolean,
    pollMs: number,
    onResult: ((result: ProcessResult) => void) | undefined,
  ) {
    this.target = target;
    this.follow = follow;
    this.#skew = skew;
    this.#pollMs = pollMs;
    this.#onResult = onResult;
  }

  /** The latest result for every process the group has seen, in the order it first saw them. */
  get results(): readonly ProcessResult[] {
    return [...this.#members.values()].map((m) => m.result);
  }

  /** Pids whose skew is in place (skewed and not restored). */
  get pids(): number[] {
    return this.#skewed().map((r) => r.pid);
  }

  /** The processes that could not be skewed (exited ones are not failures). */
  get failures(): Array<Extract<ProcessResult, { status: 'failed' }>> {
    return this.results.filter((r): r is Extract<ProcessResult, { status: 'failed' }> => r.status === 'failed');
  }

  /** true when no process failed. */
  get ok(): boolean {
    return this.failures.length === 0;
  }

  /** true while the group follows its tree or cgroup (until restore()). */
  get following(): boolean {
    return this.follow && !this.#stopped;
  }

  /** true once restore() or restoreSync() has completed. */
  get restored(): boolean {
    return this.#restored;
  }

  /**
   * Changes the skew of every member in place (see SkewHandle.update). Members that exited are
   * marked so; rejects with a TimeSkewError naming the pids where the update failed.
   */
  update(options: UpdateOptions): Promise<void> {
    try {
      if (this.#stopped) throw invalid(undefined, 'group already restored', 'call skewProcesses() again');
      resolveUpdate(undefined, options, this.#skew); // reject bad options before touching anyone
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#enqueue(async () => {
      const members = this.#skewed();
      const outcomes = await Promise.allSettled(members.map((r) => r.handle.update(options)));
      const failed: Array<[number, unknown]> = [];
      outcomes.forEach((outcome, i) => {
        if (outcome.status === 'fulfilled') return;
        const pid = members[i]!.pid;
        if (isCode(outcome.reason, 'ESRCH')) this.#record(pid, { pid, status: 'exited' });
        else failed.push([pid, outcome.reason]);
      });
      if (failed.length > 0) throw groupError('update', failed, members.length);
      // Later members copy the model from a member; keep the fallback in step for an empty group.
      const next = resolveUpdate(undefined, options, this.#skew);
      this.#skew = { ...next, table: { ...next.table, keepMask: 0 }, replace: this.#skew.replace, forceSyscall: this.#skew.forceSyscall };
    });
  }

  /**
   * Stops following and restores every member. Exited processes are skipped; rejects with a
   * TimeSkewError naming the pids that could not be restored (call again to retry those).
   */
  restore(): Promise<void> {
    if (this.#restored) return Promise.resolve();
    this.#stopped = true;
    this.#cancelTimer();
    this.#restoring ??= this.#enqueue(async () => {
      await this.#dropReusedPids();
      const members = this.#skewed();
      const failed: Array<[number, unknown]> = [];
      // One at a time, like installs (helper processes, see #admitFirst).
      for (const r of members) {
        try {
          await r.handle.restore();
        } catch (err) {
          failed.push([r.pid, err]);
        }
      }
      if (failed.length > 0) throw groupError('restore', failed, members.length);
      this.#restored = true;
    }).catch((err: unknown) => {
      this.#restoring = undefined;
      throw err;
    });
    return this.#restoring;
  }

  /** Restores every member synchronously, for 'exit' handlers. Throws the first failure after trying all. */
  restoreSync(): void {
    this.#stopped = true;
    this.#cancelTimer();
    const failed: Array<[number, unknown]> = [];
    for (const r of this.#skewed()) {
      try {
        r.handle.restoreSync();
      } catch (err) {
        failed.push([r.pid, err]);
      }
    }
    if (failed.length > 0) throw groupError('restoreSync', failed, failed.length);
    this.#restored = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.restore();
  }

  [Symbol.dispose](): void {
    this.restoreSync();
  }

  /** @internal The first batch, then following. */
  async start(): Promise<void> {
    await this.#enqueue(async () => {
      const first = await this.#enumerate(true);
      await this.#admitFirst(first);
      // Processes forked while the first batch was being skewed (before their parent was) would
      // otherwise be missed without `follow`.
      for (let round = 0; round < SETTLE_ROUNDS && !isPidList(this.target); round++) {
        const fresh = await this.#fresh(await this.#enumerate(false));
        if (fresh.length === 0) break;
        for (const pid of fresh) await this.#admit(pid, true);
      }
    });
    if (this.follow) this.#scheduleNext();
  }

  // ---- membership ----------------------------------------------------------------------------

  async #enumerate(first: boolean): Promise<number[]> {
    const target = this.target;
    if (isPidList(target)) return [...target];
    try {
      if ('tree' in target) return await expandTree(target.tree);
      return await expandCgroup(target.cgroup);
    } catch (err) {
      if (first) throw err;
      // The root exited or the cgroup was removed: nothing new to find; members are still tracked.
      debug('group: enumerating %j failed: %s', target, (err as Error).message);
      return [];
    }
  }

  /** Pids not seen before, or whose pid now belongs to another process. */
  async #fresh(pids: number[]): Promise<number[]> {
    const fresh: number[] = [];
    for (const pid of pids) {
      const member = this.#members.get(pid);
      if (member === undefined) {
        fresh.push(pid);
        continue;
      }
      if (member.result.status === 'failed') continue; // not retried every poll
      const now = await startTimeOf(pid);
      if (now !== undefined && now !== member.startTime) fresh.push(pid);
    }
    return fresh;
  }

  // One install at a time: a target that is our own child (or ourselves) is handled by the
  // engine's helper process, which serves one operation after another anyway.
  async #admitFirst(pids: number[]): Promise<void> {
    const model = this.#skew;
    // A plain offset is the same skew whenever it is installed: no need to copy it from a member.
    const plain = model.table.rate === REAL_SPEED && model.table.absoluteMask === 0;
    for (const pid of pids) await this.#admit(pid, !plain);
  }

  /**
   * Skews one process: adopts the group's skew if it already carries it (inherited through fork),
   * else installs, copying the model from a live member when `copy` (see skewProcesses).
   */
  async #admit(pid: number, copy: boolean, reinstalls = 0): Promise<void> {
    const startTime = await startTimeOf(pid);
    if (startTime === undefined) {
      this.#record(pid, { pid, status: 'exited' }, startTime);
      return;
    }
    // A newcomer forked by a member after that member was skewed carries the skew already.
    if (copy && reinstalls === 0 && (await this.#adoptOwn(pid, startTime, reinstalls))) return;
    try {
      const reference = copy ? await this.#reference(pid) : undefined;
      const skew = reference ? fromStatus(reference, this.#skew) : this.#skew;
      const handle = await installResolved(pid, skew);
      if (reference && skew.rateQ32 !== REAL_SPEED) await this.#resync(handle);
      this.#record(pid, { pid, status: 'skewed', handle, inherited: false, reinstalls }, startTime);
      // restoreSync() ran while this install was in flight: undo it rather than leave it behind.
      if (this.#restored) await handle.restore().catch(() => undefined);
    } catch (err) {
      const error = err instanceof TimeSkewError ? err : new TimeSkewError('EUNKNOWN', String(err), { pid, cause: err });
      if (error.code === 'ESRCH' || (await startTimeOf(pid)) !== startTime) {
        this.#record(pid, { pid, status: 'exited' }, startTime);
      } else if (!(error.code === 'EBUSY' && (await this.#adoptOwn(pid, startTime, reinstalls)))) {
        this.#record(pid, { pid, status: 'failed', error }, startTime);
      }
    }
  }

  /** Adopts a skew that this process installed (or that a member's fork inherited); false if there is none. */
  async #adoptOwn(pid: number, startTime: string, reinstalls: number): Promise<boolean> {
    let existing: NativeStatus | null;
    try {
      existing = await native.inspect(pid);
    } catch {
      return false;
    }
    if (!existing || !existing.active || existing.installerPid !== process.pid) return false;
    this.#record(pid, { pid, status: 'skewed', handle: SkewHandle.adopt(pid, existing), inherited: true, reinstalls }, startTime);
    return true;
  }

  /**
   * With a rate, the copied skew was read before the install, which anchors it milliseconds later
   * (after stopping the target): the newcomer is off by (rate - 1) x that gap. An update does not
   * stop the target, so copying the skew again through one brings the gap down to microseconds.
   */
  async #resync(handle: SkewHandle): Promise<void> {
    const h0 = process.hrtime.bigint();
    const reference = await this.#reference(handle.pid);
    const h1 = process.hrtime.bigint();
    if (!reference) return;
    const rate = typeof reference.rate === 'bigint' ? reference.rate : REAL_SPEED;
    // The skews were read somewhere in [h0, h1]; the update anchors somewhere in [h1, h2]. Move
    // them on by the rate over the distance between the two middles (the update's own duration is
    // about that of the inspect before it).
    const gap = h1 - h0;
    const drift = (gap * rate) >> 32n;
    const offsets: Partial<Record<ClockId, bigint>> = {};
    for (const clock of maskToClockIds(reference.mask)) offsets[clock] = (reference.offsetsNs[CLOCK_IDS[clock]] ?? 0n) + drift;
    try {
      await handle.update({ offsets });
    } catch {
      // best effort: the install itself was good to within milliseconds
    }
  }

  /** The skew a live member shows now, to copy into a newcomer; undefined when there is none. */
  async #reference(except: number): Promise<NativeStatus | undefined> {
    for (const r of this.#skewed()) {
      if (r.pid === except) continue;
      try {
        const status = await native.inspect(r.pid);
        if (status && status.active) return status;
      } catch {
        // exited meanwhile: try the next one
      }
    }
    return undefined;
  }

  #record(pid: number, result: ProcessResult, startTime?: string): void {
    const member = this.#members.get(pid);
    // Re-inserting moves nothing: Map keeps the first insertion order.
    this.#members.set(pid, { result, startTime: startTime ?? member?.startTime });
    debug('group: pid %d %s%s', pid, result.status, result.status === 'failed' ? ` (${result.error.code})` : '');
    try {
      this.#onResult?.(result);
    } catch {
      // a logging callback must not break the group
    }
  }

  #skewed(): Array<Extract<ProcessResult, { status: 'skewed' }>> {
    return this.results.filter(
      (r): r is Extract<ProcessResult, { status: 'skewed' }> => r.status === 'skewed' && !r.handle.restored,
    );
  }

  /** Members whose pid is gone or now belongs to another process: never restore a stranger. */
  async #dropReusedPids(): Promise<void> {
    for (const r of this.#skewed()) {
      const now = await startTimeOf(r.pid);
      if (now === undefined || now !== this.#members.get(r.pid)?.startTime) this.#record(r.pid, { pid: r.pid, status: 'exited' });
    }
  }

  // ---- following -----------------------------------------------------------------------------

  #scheduleNext(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#enqueue(() => this.#poll())
        .catch((err: unknown) => debug('group: poll failed: %s', (err as Error).message))
        .finally(() => this.#scheduleNext());
    }, this.#pollMs);
    // Following is background work: it must not keep the process alive on its own.
    this.#timer.unref();
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    await this.#dropReusedPids();
    // Members that lost their skew: exec() replaced their vDSO (or someone restored them).
    for (const r of this.#skewed()) {
      let status: NativeStatus | null;
      try {
        status = await native.inspect(r.pid);
      } catch (err) {
        if (isCode(err, 'ESRCH')) this.#record(r.pid, { pid: r.pid, status: 'exited' });
        continue; // mid-exec, say: look again next time
      }
      if (status === null && !this.#stopped) {
        debug('group: pid %d lost its skew (exec?): skewing it again', r.pid);
        await this.#admit(r.pid, true, r.reinstalls + 1);
      }
    }
    const fresh = await this.#fresh(await this.#enumerate(false));
    for (const pid of fresh) {
      if (this.#stopped) return;
      await this.#admit(pid, true);
    }
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #enqueue(work: () => Promise<void>): Promise<void> {
    const result = this.#queue.then(work);
    this.#queue = result.catch(() => undefined);
    return result;
  }
}

function isPidList(target: ProcessTarget): target is readonly number[] {
  return Array.isArray(target);
}

function validateTarget(target: unknown): ProcessTarget {
  const hint = "pass an array of pids, { tree: pid } or { cgroup: '/sys/fs/cgroup/...' }";
  if (Array.isArray(target)) {
    if (target.length === 0) throw invalid(undefined, 'the list of pids is empty', hint);
    return Object.freeze([...new Set(target.map((pid) => validatePid(pid)))]);
  }
  if (typeof target === 'object' && target !== null) {
    const keys = Object.keys(target);
    if (keys.length === 1 && 'tree' in target) return Object.freeze({ tree: validatePid((target as { tree: unknown }).tree) });
    if (keys.length === 1 && 'cgroup' in target) {
      const path = (target as { cgroup: unknown }).cgroup;
      if (typeof path !== 'string' || path === '') throw invalid(undefined, `cgroup must be a non-empty path, got ${describe(path)}`, hint);
      return Object.freeze({ cgroup: path });
    }
  }
  throw invalid(undefined, `unknown process target ${describe(target)}`, hint);
}

/** The skew `status` shows now, as a table that makes a newcomer read the same clocks. */
function fromStatus(status: NativeStatus, group: ResolvedSkew): ResolvedSkew {
  const clockIds: ClockId[] = maskToClockIds(status.mask);
  const offsets: Partial<Record<ClockId, bigint>> = {};
  const offsetsNs = new Array<bigint>(CLOCK_TABLE_SIZE).fill(0n);
  for (const clock of clockIds) {
    const id = CLOCK_IDS[clock];
    offsets[clock] = offsetsNs[id] = status.offsetsNs[id] ?? 0n;
  }
  const rateQ32 = typeof status.rate === 'bigint' ? status.rate : 0n;
  const state: ModelState = { clockIds, offsets, rateQ32, offsetNs: group.offsetNs };
  return {
    ...state,
    clockIds,
    unknown: [],
    table: { mask: status.mask, offsetsNs, rate: rateQ32, keepMask: 0, absoluteMask: 0 },
    replace: group.replace,
    forceSyscall: group.forceSyscall,
  };
}

async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; start time is field 22.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // a zombie has no clock left to skew
    return fields[19];
  } catch {
    return undefined;
  }
}

function groupError(operation: string, failed: Array<[number, unknown]>, total: number): TimeSkewError {
  const errors = failed.map(([pid, err]) =>
    err instanceof TimeSkewError ? err : new TimeSkewError('EUNKNOWN', String(err), { pid, cause: err }),
  );
  const list = failed.map(([pid], i) => `pid ${pid}: ${errors[i]!.code}`).join(', ');
  return new TimeSkewError(errors[0]!.code, `${operation} failed for ${failed.length} of ${total} process(es): ${list}`, {
    hint: errors[0]!.hint,
    cause: new AggregateError(errors, `${operation} failed`),
  });
}
