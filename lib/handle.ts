// What skewClock() hands back: the one object that remembers what was installed in the target, so the
// skew can be changed without re-injecting and removed exactly once, however many times (and however
// concurrently) cleanup code asks for it.

import type {
  HookMode,
  HookedFunction,
  NativeInstallResult,
  NativeRestoreResult,
} from '../types/native';
import type { ClockId } from './clocks';
import { TimeSkewError, invalid } from './errors';
import * as native from './native';
import { type ResolvedClocks, type UpdateOptions, resolveUpdate } from './options';

/** What the engine reported for the last install or restore: thread counts and pause times. */
export type OperationReport = Readonly<NativeInstallResult> | Readonly<NativeRestoreResult>;

const isGone = (err: unknown): boolean => err instanceof TimeSkewError && err.code === 'ESRCH';

export class SkewHandle {
  readonly pid: number;
  /** How each hooked function reaches the real clock in this target. */
  readonly mode: Readonly<Record<HookedFunction, HookMode>>;

  #offsetNs: bigint;
  #clockIds: readonly ClockId[];
  #lastReport: OperationReport;
  #restored = false;
  #restoring: Promise<void> | undefined;
  // Tail of the update queue. Updates run one at a time so that "keep the current offset/clocks"
  // means the state left by the update before, and restore() runs only after queued updates.
  #queue: Promise<void> = Promise.resolve();

  /** @internal Created by skewClock() once the engine has installed the skew. */
  constructor(pid: number, installed: ResolvedClocks, result: NativeInstallResult) {
    this.pid = pid;
    this.mode = Object.freeze({ ...result.modes });
    this.#offsetNs = installed.offsetNs;
    this.#clockIds = Object.freeze([...installed.clockIds]);
    this.#lastReport = result;
  }

  /** The offset currently in force, in nanoseconds. */
  get offsetNs(): bigint {
    return this.#offsetNs;
  }

  /** The clocks currently skewed, in clock id order. */
  get clockIds(): readonly ClockId[] {
    return this.#clockIds;
  }

  /** True once the skew is gone: removed by restore()/restoreSync(), or the target has exited. */
  get restored(): boolean {
    return this.#restored;
  }

  get lastReport(): OperationReport {
    return this.#lastReport;
  }

  /**
   * Changes the offset and/or the clocks in place: the engine rewrites the table in the target
   * without stopping or re-injecting it, so the target never pauses for an update.
   */
  update(options: UpdateOptions): Promise<void> {
    try {
      this.#assertUsable();
      // Validate now, against the current state, so a bad argument rejects without queueing.
      resolveUpdate(this.pid, options, this.#state());
    } catch (err) {
      return Promise.reject(err);
    }
    const run = async (): Promise<void> => {
      // restoreSync() may have run while this update waited its turn. (A restore() queued behind
      // this update is no reason to stop: it waits for us.)
      if (this.#restored) this.#assertUsable();
      const next = resolveUpdate(this.pid, options, this.#state());
      try {
        await native.update(this.pid, next.table);
      } catch (err) {
        // The skew died with the process: nothing is left to restore.
        if (isGone(err)) this.#restored = true;
        throw err;
      }
      this.#offsetNs = next.offsetNs;
      this.#clockIds = Object.freeze(next.clockIds);
    };
    const result = this.#queue.then(run);
    this.#queue = result.catch(() => undefined);
    return result;
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

  #state(): { offsetNs: bigint; clockIds: readonly ClockId[] } {
    return { offsetNs: this.#offsetNs, clockIds: this.#clockIds };
  }

  #assertUsable(): void {
    if (this.#restored || this.#restoring) {
      const state = this.#restored ? 'already restored' : 'being restored';
      throw invalid(this.pid, `handle ${state}`, 'call skewClock() again to install a new skew');
    }
  }
}
