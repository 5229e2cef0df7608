// Clock names are the public vocabulary; the native engine only sees a bit mask and a table indexed
// by the kernel's numeric clock ids, so this file is the single place where the two meet.

/** Linux clock ids (include/uapi/linux/time.h). 10 is the long-gone CLOCK_SGI_CYCLE, hence the gap. */
export const CLOCK_IDS = Object.freeze({
  CLOCK_REALTIME: 0,
  CLOCK_MONOTONIC: 1,
  CLOCK_PROCESS_CPUTIME_ID: 2,
  CLOCK_THREAD_CPUTIME_ID: 3,
  CLOCK_MONOTONIC_RAW: 4,
  CLOCK_REALTIME_COARSE: 5,
  CLOCK_MONOTONIC_COARSE: 6,
  CLOCK_BOOTTIME: 7,
  CLOCK_REALTIME_ALARM: 8,
  CLOCK_BOOTTIME_ALARM: 9,
  CLOCK_TAI: 11,
} as const);

export type ClockId = keyof typeof CLOCK_IDS;

/** Entries in the native offset table: one per clock id 0..11, so CLOCK_TAI fits. */
export const CLOCK_TABLE_SIZE = 12;

// Ordered by numeric id so every list derived from a mask comes out in one canonical order.
const NAMES_BY_ID: readonly ClockId[] = (Object.keys(CLOCK_IDS) as ClockId[]).sort(
  (a, b) => CLOCK_IDS[a] - CLOCK_IDS[b],
);

/** True for the names in CLOCK_IDS, and not for inherited keys such as "toString". */
export function isClockId(name: unknown): name is ClockId {
  return typeof name === 'string' && Object.hasOwn(CLOCK_IDS, name);
}

export function clockIdsToMask(clockIds: readonly ClockId[]): number {
  let mask = 0;
  for (const name of clockIds) mask |= 1 << CLOCK_IDS[name];
  return mask;
}

/** The named clocks whose bit is set, in id order; bits without a name (10, >= 12) are ignored. */
export function maskToClockIds(mask: number): ClockId[] {
  return NAMES_BY_ID.filter((name) => (mask & (1 << CLOCK_IDS[name])) !== 0);
}
