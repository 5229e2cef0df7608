// NODE_DEBUG=timeskew turns on a trace of every step (target expansion, each native call with its
// pid and report, the CLI's timers and signals) on stderr, through Node's own util.debuglog.

import { debuglog } from 'node:util';

/** Logs a printf-style line prefixed with "TIMESKEW <pid>:" when NODE_DEBUG includes timeskew. */
export const debug = debuglog('timeskew');

/** The engine's report of one operation, in one short line. */
export function describeReport(report: {
  threads: number;
  movedThreads: number;
  pauseNs: number;
  maxThreadPauseNs?: number;
}): string {
  const pause = (report.pauseNs / 1000).toFixed(1);
  const max = report.maxThreadPauseNs === undefined ? '' : `, max thread pause ${(report.maxThreadPauseNs / 1000).toFixed(1)}µs`;
  return `threads=${report.threads} movedThreads=${report.movedThreads} pause=${pause}µs${max}`;
}
