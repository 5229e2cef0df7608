// What skewClock() hands back: the one object that remembers what was installed in the target, so the
// skew can be changed without re-injecting and removed exactly once, however many times (and however
// concurrently) cleanup code asks for it.

import type {
  HookMode,
  HookedFunction,
  NativeBlobLocation,
  NativeInstallResult,
  NativeRestoreResult,
  NativeStatus,
} from '../types/native';
import { CLOCK_IDS, type ClockId, maskToClockIds } from './clocks';
import { TimeSkewError, invalid } from './errors';
import { RATE_FROZEN, q32ToDriftPpm, q32ToRate } from './models';
import * as native from './native';
import {
  type ClockOffsets,
  type DurationInput,
  type ModelState,
  type ResolvedClocks,
  type UpdateOptions,
  durationFromValue,
  resolveClockIds,
  resolveUpdate,
} from './options';
import { type ClockStatus, inspectPid } from './status';

/** What the engine reported for the last install or restore: thread counts and pause times. */
export type OperationReport = Readonly<NativeInstallResult> | Readonly<NativeRestoreResult>;

/** The clock model in force in a target, as a SkewHandle knows it. */
export interface ClockModel {
  /** The skewed clocks, in clock id order. */
  readonly clockIds: readonly ClockId[];
  /**
   * The skew (fake - real, ns) of each clock when it was last set (by skewClock() or an update). With
   * a rate other than 1 it changes from there by (rate - 1) ns per real ns: inspect() reads it now.
   * A clock anchored by `at` or kept across a rate change has the skew read right after the change.
   */
  readonly offsets: Readonly<Partial<Record<ClockId, bigint>>>;
  /** Speed of the skewed clocks relative to the real ones: 1 real speed, 0 frozen. */
  readonly rate: number;
  /** The same as `rate`, in parts per million. */
  readonly driftPpm: number;
  /** The rate as the fake holds it: Q32 fixed point, 0n real speed, -(2n ** 32n) frozen. */
  readonly rateQ32: bigint;
  /** true when the skewed clocks stand still. */
  readonly frozen: boolean;
}

const isGone = (err: unknown): boolean => err instanceof TimeSkewError && err.code === 'ESRCH';

export class SkewHandle {
  readonly pid: number;
  /** How each hooked function reaches the real clock in this target. */
  readonly mode: Readonly<Record<HookedFunction, HookMode>>;

  #state: ModelState;
  #lastReport: OperationReport;
  #restored = false;
  #restoring: Promise<void> | undefined;
  // Tail of the update queue. Updates run one at a time so that "keep the current offset/clocks"
  // means the state left by the update before, and restore() runs only after queued updates.
  #queue: Promise<void> = Promise.resolve();
  // Operations queued and not finished. While none is, an update runs at once, synchronously.
  #pending = 0;
  // Where the skew sits in the target (from the install, or located on first use): an update then
  // goes straight to it, on this thread, without re-reading the target's maps and vDSO.
  #location: NativeBlobLocation | undefined;

  /** @internal Created by skewClock() once the engine has installed the skew. */
  constructor(pid: number, installed: ModelState, result: NativeInstallResult) {
    this.pid = pid;
    this.mode = Object.freeze({ ...result.modes });
    this.#state = freezeState(installed);
    this.#lastReport = result;
    this.#location = result.location;
  }

  /**
   * @internal A handle for a skew found in `pid` (installed by someone else, or inherited through
   * fork), so that it can be changed and restored like one of ours.
   */
  static adopt(pid: number, status: NativeStatus): SkewHandle {
    const clockIds = maskToClockIds(status.mask);
    const offsets: Partial<Record<ClockId, bigint>> = {};
    for (const clock of clockIds) offsets[clock] = status.offsetsNs[CLOCK_IDS[clock]] ?? 0n;
    const first = clockIds[0];
    const report: NativeInstallResult = { threads: 0, movedThreads: 0, pauseNs: 0, maxThreadPauseNs: 0, modes: { ...status.modes } };
    return new SkewHandle(
      pid,
      { clockIds, offsets, rateQ32: typeof status.rate === 'bigint' ? status.rate : 0n, offsetNs: first ? offsets[first]! : 0n },
      report,
    );
  }

  /**
   * The last single offset given (by `offset`, `sec`/`nsec`, or the first clock of `offsets`): what
   * update({ clockIds }) gives to the clocks it adds. Per-clock skews are in `offsets`.
   */
  get offsetNs(): bigint {
    return this.#state.offsetNs;
  }

  /** The clocks currently skewed, in clock id order. */
  get clockIds(): readonly ClockId[] {
    return this.#state.clockIds;
  }

  /** The skew of each clock when it was last set; see ClockModel.offsets. */
  get offsets(): Readonly<Partial<Record<ClockId, bigint>>> {
    return this.#state.offsets;
  }

  /** Speed of the skewed clocks relative to the real ones: 1 real speed, 0 frozen. */
  get rate(): number {
    return q32ToRate(this.#state.rateQ32);
  }

  /** true when the skewed clocks stand still. */
  get frozen(): boolean {
    return this.#state.rateQ32 === RATE_FROZEN;
  }

  /** The whole model in force, as one snapshot. */
  get model(): ClockModel {
    const { clockIds, offsets, rateQ32 } = this.#state;
    return Object.freeze({
      clockIds,
      offsets,
      rate: q32ToRate(rateQ32),
      driftPpm: q32ToDriftPpm(rateQ32),
      rateQ32,
      frozen: rateQ32 === RATE_FROZEN,
    });
  }

  /** True once the skew is gone: removed by restore()/restoreSync(), or the target has exited. */
  get restored(): boolean {
    return this.#restored;
  }

  get lastReport(): OperationReport {
    return this.#lastReport;
  }

  /** @internal Whether update() could still run (neither restored nor being restored). */
  get usable(): boolean {
    return !this.#restored && !this.#restoring;
  }

  /**
   * Changes the model in place: the engine rewrites the table in the target without stopping or
   * re-injecting it, so the target never pauses for an update. Clocks given an offset (or `at`)
   * jump to it; the others keep reading on from where they are, so a change of rate, or
   * freeze/unfreeze, never makes a clock jump.
   */
  update(options: UpdateOptions): Promise<void> {
    try {
      this.#assertUsable();
      if (this.#pending === 0 && native.canUpdateSync()) {
        // Nothing queued before it: done now (a few system calls), the promise already settled.
        this.#applySync(options);
        return Promise.resolve();
      }
      // Validate now, against the current state, so a bad argument rejects without queueing.
      resolveUpdate(this.pid, options, this.#state);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#enqueue(() => this.#apply(options));
  }

  /**
   * update(), synchronously: returns once the new model is live in the target, or throws. Throws
   * EBUSY while an update(), jump() or restore() of this handle is still pending (await it first),
   * since running ahead of it would reorder the changes.
   */
  updateSync(options: UpdateOptions): void {
    this.#assertUsable();
    if (this.#pending > 0) {
      throw new TimeSkewError('EBUSY', 'an update(), jump() or restore() of this handle is pending', {
        pid: this.pid,
        hint: 'await it before calling updateSync(), or call update()',
      });
    }
    if (!native.canUpdateSync()) {
      throw new TimeSkewError('ENOTSUP', 'this engine cannot update synchronously', { pid: this.pid, hint: 'call update()' });
    }
    this.#applySync(options);
  }

  /**
   * Moves the skewed clocks (or `clockIds`, adding any not skewed yet) forward by `by` (backward
   * when negative) from where they are now, keeping the rate. Exact at rate 1; with another rate
   * the current skew is read from the target first, so the jump is exact to within the
   * microseconds that the read and the write are apart, times (rate - 1).
   */
  jump(by: DurationInput, clockIds?: ClockId[]): Promise<void> {
    let delta: bigint;
    let clocks: ClockId[] | undefined;
    try {
      this.#assertUsable();
      delta = durationFromValue(this.pid, by, 'by');
      clocks = resolveClockIds(this.pid, clockIds);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#enqueue(async () => {
      const targets = clocks ?? [...this.#state.clockIds];
      let current: Partial<Record<ClockId, bigint>> = this.#state.offsets;
      const known = this.#state.rateQ32 === 0n && targets.every((c) => !this.#state.clockIds.includes(c) || current[c] !== undefined);
      if (!known) {
        const status = await this.#inspectOrGone();
        current = status?.clocks ?? {};
      }
      const offsets: ClockOffsets = {};
      for (const clock of targets) offsets[clock] = (this.#state.clockIds.includes(clock) ? current[clock] ?? 0n : 0n) + delta;
      await this.#apply({ offsets });
    });
  }

  /** Reads the skew in the target now (inspectClock(handle.pid)). */
  inspect(): Promise<ClockStatus | null> {
    return inspectPid(this.pid);
  }

  /**
   * Removes the skew. Safe to call any number of times, concurrently, or after the target exited:
   * every call shares one attempt, and a vanished target counts as restored. A failed attempt is
   * not cached, so it can be retried.
   */
  restore(): Promise<void> {
    if (this.#restored) return Promise.resolve();
    this.#restoring ??= this.#queue
      .then(async () => {
        if (this.#restored) return; // restoreSync() won the race
        try {
          this.#lastReport = await native.restore(this.pid);
        } catch (err) {
          if (!isGone(err)) throw err;
        }
        this.#restored = true;
      })
      .catch((err: unknown) => {
        this.#restoring = undefined;
        throw err;
      });
    return this.#restoring;
  }

  /**
   * Removes the skew synchronously, for process 'exit' handlers where no promise will ever settle.
   * Same idempotence as restore(); throws EBUSY if an asynchronous restore is still running, since
   * the two would race to detach the same threads.
   */
  restoreSync(): void {
    if (this.#restored) return;
    if (this.#restoring) {
      throw new TimeSkewError('EBUSY', 'an asynchronous restore() of this handle is in progress', {
        pid: this.pid,
        hint: 'await handle.restore() instead of calling restoreSync() while it runs',
      });
    }
    try {
      this.#lastReport = native.restoreSync(this.pid);
    } catch (err) {
      if (!isGone(err)) throw err;
    }
    this.#restored = true;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.restore();
  }

  [Symbol.dispose](): void {
    this.restoreSync();
  }

  /** @internal Fills in the skews only the target knows (after `at`, or a clock kept while drifting). */
  async refresh(unknown: readonly ClockId[]): Promise<void> {
    if (unknown.length === 0) return;
    let status: ClockStatus | null;
    try {
      status = await inspectPid(this.pid);
    } catch {
      return; // best effort: the model keeps what it knew
    }
    if (status === null) return;
    const offsets = { ...this.#state.offsets };
    for (const clock of unknown) {
      const skew = status.clocks[clock];
      if (skew !== undefined) offsets[clock] = skew;
    }
    this.#state = freezeState({ ...this.#state, offsets });
  }

  #enqueue(work: () => Promise<void>): Promise<void> {
    const run = async (): Promise<void> => {
      // restoreSync() may have run while this update waited its turn. (A restore() queued behind
      // this update is no reason to stop: it waits for us.)
      if (this.#restored) this.#assertUsable();
      await work();
    };
    this.#pending++;
    const result = this.#queue.then(run).finally(() => {
      this.#pending--;
    });
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #apply(options: UpdateOptions): Promise<void> {
    if (native.canUpdateSync()) {
      this.#applySync(options);
      return;
    }
    const next: ResolvedClocks = resolveUpdate(this.pid, options, this.#state);
    try {
      await native.update(this.pid, next.table);
    } catch (err) {
      // The skew died with the process: nothing is left to restore.
      if (isGone(err)) this.#restored = true;
      throw err;
    }
    this.#state = freezeState(next);
    await this.refresh(next.unknown);
  }

  #applySync(options: UpdateOptions): void {
    const next: ResolvedClocks = resolveUpdate(this.pid, options, this.#state);
    let skews: bigint[] | undefined;
    try {
      this.#location ??= native.locate(this.pid);
      skews = native.updateSync(this.pid, this.#location, next.table);
    } catch (err) {
      // The skew died with the process (or was removed): nothing is left to restore.
      if (isGone(err)) this.#restored = true;
      throw err;
    }
    if (next.unknown.length === 0 || skews === undefined) {
      this.#state = freezeState(next);
      return;
    }
    // Clocks anchored by `at` or kept while drifting: the engine read their skew right after the change.
    const offsets = { ...next.offsets };
    for (const clock of next.unknown) offsets[clock] = skews[CLOCK_IDS[clock]] ?? 0n;
    this.#state = freezeState({ ...next, offsets });
  }

  async #inspectOrGone(): Promise<ClockStatus | null> {
    try {
      return await inspectPid(this.pid);
    } catch (err) {
      if (isGone(err)) this.#restored = true;
      throw err;
    }
  }

  #assertUsable(): void {
    if (this.#restored || this.#restoring) {
      const state = this.#restored ? 'already restored' : 'being restored';
      throw invalid(this.pid, `handle ${state}`, 'call skewClock() again to install a new skew');
    }
  }
}

function freezeState(state: ModelState): ModelState {
  return Object.freeze({
    clockIds: Object.freeze([...state.clockIds]),
    offsets: Object.freeze({ ...state.offsets }),
    rateQ32: state.rateQ32,
    offsetNs: state.offsetNs,
  });
}
