// Scenarios built on live updates: strobe (the clock flips between real and real + delta, as
// Jepsen's strobe-time does) and jump (the clock leaps by a duration from wherever it is). Both
// install once and then only rewrite the table in the target: the target is never stopped again
// until restore().

import { performance } from 'node:perf_hooks';
import type { ClockId } from './clocks';
import { TimeSkewError, invalid } from './errors';
import { SkewHandle } from './handle';
import * as native from './native';
import { skewClock } from './skew';
import { type DurationInput, describe, durationFromValue, resolveClockIds, resolveSkew, validatePid } from './options';

export interface StrobeOptions {
  /** The offset of the skewed state: the clock flips between real and real + delta. */
  delta: DurationInput;
  /** Time between two flips ('100ms'); at least 1 ms. */
  period: DurationInput;
  /** How long to strobe; then the clock is restored. Default: until restore(). */
  duration?: DurationInput;
  /** Clocks to strobe. Default ['CLOCK_REALTIME']. */
  clockIds?: ClockId[];
  /** Replace a skew that is already installed instead of failing with EBUSY. */
  replace?: boolean;
  forceSyscall?: boolean;
}

export interface JumpOptions {
  /** How far to move the clock: '10m' forward, '-1h' back, or bigint nanoseconds. */
  by: DurationInput;
  /**
   * Clocks to move. Default: the clocks already skewed in the process, or ['CLOCK_REALTIME'] when
   * it has no skew yet.
   */
  clockIds?: ClockId[];
  forceSyscall?: boolean;
}

const STROBE_KEYS: readonly string[] = ['delta', 'period', 'duration', 'clockIds', 'replace', 'forceSyscall'];
const JUMP_KEYS: readonly string[] = ['by', 'clockIds', 'forceSyscall'];
const NS_PER_MS = 1_000_000n;
const MIN_PERIOD_NS = NS_PER_MS;

const isGone = (err: unknown): boolean => err instanceof TimeSkewError && err.code === 'ESRCH';

/**
 * Flips the clock of `pid` between real + delta and real every `period`, for `duration` (or until
 * restore()). It starts in the skewed state; every flip is an update of the installed table, never
 * a re-injection. When the strobe ends, the skew is removed.
 */
export async function strobe(pid: number, options: StrobeOptions): Promise<StrobeHandle> {
  const target = validatePid(pid);
  const o = fields(target, options, STROBE_KEYS, 'strobe');
  if (!('delta' in o) || !('period' in o)) {
    throw invalid(target, `strobe needs ${'delta' in o ? 'period' : 'delta'}`, "e.g. strobe(pid, { delta: '200ms', period: '50ms', duration: '10s' })");
  }
  const deltaNs = durationFromValue(target, o.delta, 'delta');
  const periodNs = durationFromValue(target, o.period, 'period');
  if (periodNs < MIN_PERIOD_NS) throw invalid(target, `period ${periodNs} ns is too short`, "the period must be at least '1ms'");
  let durationNs: bigint | undefined;
  if ('duration' in o) {
    durationNs = durationFromValue(target, o.duration, 'duration');
    if (durationNs < 0n) throw invalid(target, 'duration is negative', "e.g. duration: '10s', or leave it out to strobe until restore()");
  }
  // Everything about the skew itself is checked by the same rules as skewClock, before installing.
  const skewOptions = { offset: deltaNs, clockIds: o.clockIds as ClockId[] | undefined, replace: o.replace as boolean | undefined, forceSyscall: o.forceSyscall as boolean | undefined };
  resolveSkew(target, skewOptions);
  const skew = await skewClock(target, skewOptions);
  return new StrobeHandle(skew, deltaNs, periodNs, durationNs);
}

/**
 * Moves the clock of `pid` by `by` from wherever it is now. When the process has no skew, this
 * installs one with offset `by`; when it has one (installed by anyone), the skewed clocks jump by
 * `by` and keep their rate. Resolves with a handle for the skew in the process: its restore()
 * removes the whole skew. If you already hold the process's handle, handle.jump(by) is the same
 * and keeps that handle's model up to date.
 */
export async function jump(pid: number, options: JumpOptions): Promise<SkewHandle> {
  const target = validatePid(pid);
  const o = fields(target, options, JUMP_KEYS, 'jump');
  if (!('by' in o)) throw invalid(target, 'jump needs by', "e.g. jump(pid, { by: '10m' }) or { by: '-1h' }");
  const by = durationFromValue(target, o.by, 'by');
  const clockIds = resolveClockIds(target, o.clockIds);
  const status = await native.inspect(target);
  if (status === null || !status.active) {
    return skewClock(target, { offset: by, clockIds, forceSyscall: o.forceSyscall as boolean | undefined });
  }
  const handle = SkewHandle.adopt(target, status);
  await handle.jump(by, clockIds);
  return handle;
}

/** A running strobe: restore() stops it and restores the clock. */
export class StrobeHandle {
  readonly pid: number;
  /** The skew the strobe drives. Leave it to the strobe: restore the strobe, not this handle. */
  readonly skew: SkewHandle;
  readonly deltaNs: bigint;
  readonly periodNs: bigint;
  /** undefined: until restore(). */
  readonly durationNs: bigint | undefined;
  /**
   * Settles when the strobe has ended and the clock is restored: after `duration`, after restore(),
   * or when the target exited (resolves); rejects when a flip or the final restore failed.
   */
  readonly finished: Promise<void>;

  #flips = 0;
  #skewed = true;
  #startedAt: number;
  #timer: NodeJS.Timeout | undefined;
  #flipping: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  #settle!: { resolve(): void; reject(err: unknown): void };

  /** @internal Created by strobe() once the skew is installed. */
  constructor(skew: SkewHandle, deltaNs: bigint, periodNs: bigint, durationNs: bigint | undefined) {
    this.pid = skew.pid;
    this.skew = skew;
    this.deltaNs = deltaNs;
    this.periodNs = periodNs;
    this.durationNs = durationNs;
    this.finished = new Promise<void>((resolve, reject) => (this.#settle = { resolve, reject }));
    // Nobody has to listen: a failure is also what restore() rejects with.
    this.finished.catch(() => undefined);
    this.#startedAt = performance.now();
    this.#schedule();
  }

  /** Flips done so far (the initial skew is not one). */
  get flips(): number {
    return this.#flips;
  }

  /** true until the strobe has ended. */
  get running(): boolean {
    return this.#stopping === undefined;
  }

  /** true while the clock is in the skewed state (real + delta). */
  get skewed(): boolean {
    return this.#skewed && !this.skew.restored;
  }

  /** Stops flipping and restores the clock. Safe to call any number of times. */
  restore(): Promise<void> {
    return this.#stop(undefined);
  }

  /** Stops flipping and restores the clock synchronously, for 'exit' handlers. */
  restoreSync(): void {
    this.#cancelTimer();
    this.#stopping ??= Promise.resolve();
    this.skew.restoreSync();
    this.#settle.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.restore();
  }

  #ms(ns: bigint): number {
    return Number(ns) / 1e6;
  }

  #schedule(): void {
    if (this.#stopping) return;
    // Flip k happens at start + k * period, whatever each flip cost: no drift over a long strobe.
    const nextFlip = this.#startedAt + (this.#flips + 1) * this.#ms(this.periodNs);
    const end = this.durationNs === undefined ? Infinity : this.#startedAt + this.#ms(this.durationNs);
    const now = performance.now();
    if (nextFlip >= end) {
      this.#timer = setTimeout(() => this.#stopQuietly(undefined), Math.max(0, end - now));
      return;
    }
    this.#timer = setTimeout(() => this.#flip(), Math.max(0, nextFlip - now));
  }

  #flip(): void {
    this.#timer = undefined;
    if (this.#stopping) return;
    const skewed = !this.#skewed;
    this.#flipping = this.skew.update({ offset: skewed ? this.deltaNs : 0n }).then(
      () => {
        this.#skewed = skewed;
        this.#flips += 1;
        this.#flipping = undefined;
        this.#schedule();
      },
      (err: unknown) => {
        this.#flipping = undefined;
        // A target that exited ends the strobe quietly; anything else ends it with the error.
        this.#stopQuietly(isGone(err) ? undefined : err);
      },
    );
  }

  #cancelTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  // From timers: the outcome goes to `finished` (and to restore() callers), not to an unhandled rejection.
  #stopQuietly(failure: unknown): void {
    this.#stop(failure).catch(() => undefined);
  }

  #stop(failure: unknown): Promise<void> {
    this.#stopping ??= (async () => {
      this.#cancelTimer();
      await this.#flipping;
      let error = failure;
      try {
        await this.skew.restore();
      } catch (err) {
        error ??= err;
      }
      if (error === undefined) this.#settle.resolve();
      else this.#settle.reject(error);
    })();
    return this.#stopping.then(() => this.finished);
  }
}

function fields(pid: number, options: unknown, allowed: readonly string[], what: string): Record<string, unknown> {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw invalid(pid, `${what} options must be an object, got ${describe(options)}`, `valid options: ${allowed.join(', ')}`);
  }
  const out: Record<string, unknown> = Object.create(null);
  for (const [key, value] of Object.entries(options)) {
    if (!allowed.includes(key)) throw invalid(pid, `unknown ${what} option ${JSON.stringify(key)}`, `valid options: ${allowed.join(', ')}`);
    if (value !== undefined) out[key] = value;
  }
  return out;
}
