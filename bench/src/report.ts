// Turns results.json into bench/RESULTS.md, the charts, and bench/README-section.md.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { explain } from './analysis';
import type { Results } from './main';
import type { PauseConfigResult } from './pause';
import { COST_FNS, COST_LABELS, type CostFn, type SkewedMode } from './percall';
import { fmtNs, fmtRatio } from './stats';
import { barChart } from './svg';
import { PLACEMENT_LABELS } from './victim';

export interface Verdict {
  id: string;
  target: string;
  measured: string;
  met: boolean | undefined;
  /** How far from the target, in the target's own unit. */
  margin: string;
}

const RATIO_TARGETS: Array<{ fn: CostFn; limit: number; id: string; text: string }> = [
  { fn: 'realtime', limit: 1.05, id: 'cost-realtime', text: 'skewed clock_gettime(CLOCK_REALTIME) ≤ 1.05x native' },
  { fn: 'gettimeofday', limit: 1.05, id: 'cost-gettimeofday', text: 'skewed gettimeofday ≤ 1.05x native' },
  { fn: 'time', limit: 1.5, id: 'cost-time', text: 'skewed time() ≤ 1.5x native' },
  { fn: 'monotonic', limit: 1.05, id: 'cost-unselected', text: 'unselected clock (MONOTONIC) in a skewed process ≤ 1.05x' },
];

const PAUSE_TARGETS: Array<{ id: string; text: string; limitNs: number; pick: (c: PauseConfigResult) => boolean }> = [
  { id: 'pause-1', text: 'pause ≤ 100 µs, 1-thread target', limitNs: 100e3, pick: (c) => c.threads === 1 },
  { id: 'pause-1000-sleep', text: 'pause ≤ 10 ms, 1,000 sleeping threads', limitNs: 10e6, pick: (c) => c.threads === 1000 && c.mode === 'sleep' },
  { id: 'pause-1000-spin', text: 'pause ≤ 50 ms, 1,000 threads spinning on 2 cores', limitNs: 50e6, pick: (c) => c.threads === 1000 && c.mode === 'spin' },
];

/** 118µs, 2.15ms, 67.4s: short enough to sit on a narrow bar. */
function compactNs(ns: number): string {
  const [value, unit] = ns < 1e3 ? [ns, 'ns'] : ns < 1e6 ? [ns / 1e3, 'µs'] : ns < 1e9 ? [ns / 1e6, 'ms'] : [ns / 1e9, 's'];
  return `${Number(value.toPrecision(3))}${unit}`;
}

const percent = (over: number, limit: number): string => `${Math.round((over / limit - 1) * 100)}%`;

export function verdicts(results: Results): Verdict[] {
  const out: Verdict[] = [];
  const pc = results.perCall;
  if (pc?.ratio.fast && pc.ns.native && pc.ns.fast) {
    for (const t of RATIO_TARGETS) {
      const ratio = pc.ratio.fast[t.fn];
      const r = ratio.median;
      const native = pc.ns.native[t.fn].median;
      const fast = pc.ns.fast[t.fn].median;
      const met = r <= t.limit;
      out.push({
        id: t.id,
        target: t.text,
        measured: `${r.toFixed(3)}x (rounds ${ratio.p10.toFixed(2)}–${ratio.p90.toFixed(2)}; ${fmtNs(fast)} vs ${fmtNs(native)})`,
        met,
        margin: met
          ? `${(t.limit - r).toFixed(3)}x to spare`
          : `over by ${(r - t.limit).toFixed(3)}x, ≈${((r - t.limit) * native).toFixed(1)} ns/call`,
      });
    }
  }
  if (results.pause?.length) {
    for (const t of PAUSE_TARGETS) {
      const rows: Array<{ ns: number; what: string }> = [];
      const broken = results.pause.filter(t.pick).filter((c) => c.error);
      for (const c of results.pause.filter(t.pick)) {
        for (const op of ['skew', 'restore'] as const) {
          const ns = c.summary[op].pauseNs.median;
          if (Number.isFinite(ns)) rows.push({ ns, what: `${op}, ${c.mode === 'spin' ? 'spinning' : 'sleeping'}, ${PLACEMENT_LABELS[c.placement]}` });
        }
      }
      const brokenNote = broken.length
        ? `; ${broken.length} configuration(s) could not finish (${broken.map((c) => `${c.mode}, ${PLACEMENT_LABELS[c.placement]}: ${c.hung ? 'engine deadlocked' : c.targetDied ? 'target died' : c.timedOut ? 'timed out' : c.error?.startsWith('EBUSY') ? 'EBUSY for 10 s of retries' : 'error'}`).join('; ')})`
        : '';
      if (!rows.length) {
        out.push({ id: t.id, target: t.text, measured: `no figure${brokenNote}`, met: false, margin: 'not measurable' });
        continue;
      }
      rows.sort((a, b) => b.ns - a.ns);
      const worst = rows[0]!;
      const best = rows[rows.length - 1]!;
      const misses = rows.filter((r) => r.ns > t.limitNs).length;
      out.push({
        id: t.id,
        target: t.text,
        measured: `worst ${fmtNs(worst.ns)} (${worst.what}); best ${fmtNs(best.ns)} (${best.what})${brokenNote}`,
        met: misses === 0 && broken.length === 0,
        margin: misses === 0 && broken.length === 0
          ? `${fmtNs(t.limitNs - worst.ns)} to spare in the worst case`
          : misses === 0
            ? 'every figure within the target, but not every configuration finished'
          : `${misses} of ${rows.length} cases over; worst over by ${fmtNs(worst.ns - t.limitNs)} (${percent(worst.ns, t.limitNs)})`,
      });
    }
  }
  const updateSwitches =
    (results.pause ?? []).reduce((a, c) => a + c.summary.update.switchesTotal, 0) +
    (results.update ?? []).reduce((a, u) => a + u.switchesDuringUpdates, 0);
  const updateCount =
    (results.pause ?? []).reduce((a, c) => a + c.updateWallNs.length, 0) + (results.update ?? []).reduce((a, u) => a + u.updates, 0);
  if (updateCount > 0) {
    out.push({
      id: 'update-stop',
      target: 'update() never stops the target',
      measured: `${updateSwitches} voluntary context switches of the targets' threads over ${updateCount.toLocaleString('en-US')} updates`,
      met: updateSwitches === 0,
      margin: updateSwitches === 0 ? 'never stopped' : 'stopped at least once',
    });
  }
  if (results.update?.length) {
    const worst = results.update.reduce((a, u) => (u.latencyNs.median > a.latencyNs.median ? u : a));
    const met = worst.latencyNs.median <= 50e3;
    out.push({
      id: 'update-latency',
      target: 'update() completes in ≤ 50 µs',
      measured: `${fmtNs(worst.latencyNs.median)} median (${worst.path === 'helper' ? 'child target' : 'non-child target'}); the empty thread-pool round trip alone is ${fmtNs(worst.threadPoolRoundTripNs.median)}`,
      met,
      margin: met ? `${fmtNs(50e3 - worst.latencyNs.median)} to spare` : `over by ${fmtNs(worst.latencyNs.median - 50e3)} (${percent(worst.latencyNs.median, 50e3)})`,
    });
  }
  for (const s of results.scale ?? []) {
    for (const mode of ['sequential', 'concurrent'] as const) {
      const skew = s.summary[mode].skewNs.median;
      const restore = s.summary[mode].restoreNs.median;
      const worst = Math.max(skew, restore);
      const met = worst <= 1e9;
      out.push({
        id: `scale-${s.path}-${mode}`,
        target: `${s.processes.toLocaleString('en-US')} processes in ≤ 1 s (${s.path === 'helper' ? 'children, helper' : 'not children, in-process'}, ${mode})`,
        measured: `skew ${fmtNs(skew)}, restore ${fmtNs(restore)}`,
        met,
        margin: met ? `${fmtNs(1e9 - worst)} to spare` : `over by ${fmtNs(worst - 1e9)} (${percent(worst, 1e9)})`,
      });
    }
  }
  return out;
}

function mdTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

const verdictMark = (v: boolean | undefined): string => (v === undefined ? '—' : v ? '**met**' : '**missed**');

function perCallSection(results: Results, lines: string[]): void {
  const pc = results.perCall;
  if (!pc?.ns.native) return;
  const modes: SkewedMode[] = ['fast', 'syscall', 'libfaketime'];
  const cell = (mode: SkewedMode, fn: CostFn): string => {
    const ns = pc.ns[mode]?.[fn];
    const r = pc.ratio[mode]?.[fn];
    if (!ns || !r) return mode === 'libfaketime' && !pc.libfaketime.present ? 'absent' : 'n/a';
    return `${fmtNs(ns.median)} (**${fmtRatio(r.median)}**)`;
  };
  lines.push(
    '## 1. Per-call cost',
    '',
    `One C victim (\`bench/victim.c\`) times its own calls: a loop bracketed by raw \`syscall\` instructions reading CLOCK_THREAD_CPUTIME_ID (invisible to the vDSO patch and to LD_PRELOAD). Cost is the thread's CPU time per call, so time the victim spends preempted by other tenants of this shared machine does not count (the wall-clock figures are in results.json). The same process is measured native, skewed through the fast path, and skewed with \`forceSyscall: true\` (restored in between); a second victim runs under libfaketime (\`FAKETIME="-10m"\`, \`FAKETIME_DONT_FAKE_MONOTONIC=1\`). ${pc.options.rounds} rounds, the order of the modes rotating each round; in each round every cell is the median of ${pc.options.reps} repetitions of a loop calibrated to ~${pc.options.repMs} ms. Table: median over rounds of ns/call, and (bold) the median over rounds of the ratio to native measured in the same round. Skew: CLOCK_REALTIME -10 min only.`,
    '',
    mdTable(
      ['Call', 'native', 'timeskew fast path', 'timeskew forceSyscall', 'libfaketime'],
      COST_FNS.map((fn) => [COST_LABELS[fn], fmtNs(pc.ns.native![fn].median), ...modes.map((m) => cell(m, fn))]),
    ),
    '',
    '![Per-call cost relative to native](chart-percall.svg)',
    '',
  );
  const v = pc.verification;
  const check = (k: keyof typeof v): string =>
    v[k] ? `${k}: ${v[k]!.ok ? 'ok' : 'WRONG'} (realtime ${v[k]!.realtimeSec.toFixed(3)} s, gettimeofday ${v[k]!.gettimeofdaySec.toFixed(3)} s, time ${v[k]!.timeSec.toFixed(1)} s, monotonic ${v[k]!.monotonicSec.toFixed(3)} s)` : `${k}: not run`;
  lines.push(
    `Each mode was checked to do what it claims before it was timed (offset the victim read, against raw syscalls): ${(['native', 'fast', 'syscall', 'libfaketime'] as const).map(check).join('; ')}.`,
    `Hook modes reported by the engine: fast path ${JSON.stringify(pc.hookModes.fast ?? {})}, forced ${JSON.stringify(pc.hookModes.syscall ?? {})}. Calls per repetition: ${JSON.stringify(pc.callsPerRep)}. libfaketime: ${pc.libfaketime.present ? `${pc.libfaketime.path} (${pc.libfaketime.version ?? 'version unknown'})` : 'not installed (the bench installs nothing; `apt-get install libfaketime` to compare)'}. Target path: ${pc.path}.${pc.busyRetries ? ` skewClock() answered EBUSY ${pc.busyRetries} time(s) and was retried.` : ''}`,
    '',
  );
}

function pauseSection(results: Results, lines: string[]): void {
  const pause = results.pause;
  if (!pause?.length) return;
  lines.push(
    '## 2. Pause',
    '',
    'How long the target is stopped, as the engine reports it: **pause** = first thread stopped → last thread released; **longest thread** = the longest any one thread was stopped (from the moment it was interrupted). Medians over repetitions of skew → updates → restore on one target. **Call** = the whole call as the caller awaits it (checks, stop, patch, release, promise). *Moved* = threads found inside rewritten bytes (median per operation). *Switches/thread* = voluntary context switches per sampled target thread caused by the operation (a ptrace stop costs at least one). Targets: `bench/victim.c threads N sleep|spin` (N threads in all; spinning ones loop on clock_gettime).',
    '',
    `Placement: *helper* = the target is a child of the bench, so the engine runs install and restore in its helper process (one per Node process, forked on first use); *in-process* = not a child, the engine runs on a libuv worker thread. *Same session* vs *own session*: with \`CONFIG_SCHED_AUTOGROUP\` (enabled here: ${results.environment.autogroup ?? 'unknown'}), a target in its own session competes for the CPU as one group, like a server in another session or cgroup; in the same session each of its spinning threads competes with the injector on its own.`,
    '',
  );
  const rows: string[][] = [];
  for (const c of pause) {
    const what = `${c.threads.toLocaleString('en-US')} ${c.mode === 'spin' ? 'spinning' : 'sleeping'}`;
    for (const op of ['skew', 'restore'] as const) {
      const s = c.summary[op];
      rows.push([
        what,
        PLACEMENT_LABELS[c.placement],
        op,
        `**${fmtNs(s.pauseNs.median)}**`,
        fmtNs(s.maxThreadPauseNs.median),
        fmtNs(s.wallNs.median),
        Number.isFinite(s.movedThreads) ? String(s.movedThreads) : 'n/a',
        Number.isFinite(s.switchesPerThread) ? s.switchesPerThread.toFixed(1) : 'n/a',
        `${c.reps}${c.busyRetries ? `, ${c.busyRetries} EBUSY` : ''}${op === 'restore' && c.codeRetained ? `, ${c.codeRetained} retained` : ''}${c.error ? ` — **stopped: ${c.error}**` : ''}`,
      ]);
    }
    const u = c.summary.update;
    rows.push([
      what,
      PLACEMENT_LABELS[c.placement],
      'update',
      u.stopped ? `**stopped** (${u.switchesTotal} switches)` : '**0** (never stopped)',
      '—',
      fmtNs(u.wallNs.median),
      '—',
      (u.switchesTotal / Math.max(1, c.sampledThreads)).toFixed(1),
      `${c.updateWallNs.length} updates`,
    ]);
  }
  lines.push(
    mdTable(['Threads', 'Path', 'Operation', 'Pause', 'Longest thread', 'Call', 'Moved', 'Switches/thread', 'Reps (EBUSY retries, restores that retained code)'], rows),
    '',
    '![Pause per operation](chart-pause.svg)',
    '',
  );
  const retries = pause.reduce((a, c) => a + c.busyRetries, 0);
  const retained = pause.reduce((a, c) => a + c.codeRetained, 0);
  const restores = pause.reduce((a, c) => a + c.restore.length, 0);
  if (retries || retained) {
    lines.push(
      `Restores that had to leave their (inactive) code in the target because a thread was judged still inside it: ${retained} of ${restores}. skewClock() calls refused with EBUSY ("try again: a thread was inside the old hook") and retried by the bench: ${retries}. By configuration: ${pause
        .filter((c) => c.busyRetries || c.codeRetained)
        .map((c) => `${c.threads} ${c.mode}/${c.placement}: ${c.codeRetained} retained, ${c.busyRetries} EBUSY`)
        .join('; ')}.`,
      '',
    );
  }
}

function updateSection(results: Results, lines: string[]): void {
  const up = results.update;
  if (!up?.length) return;
  lines.push(
    '## 3. Live update',
    '',
    'A target with one thread spinning on the clock (and its main thread waiting for commands) is skewed once and updated repeatedly (alternating -10 m / -11 m). *Latency* is `await handle.update()` as the caller sees it; next to it, an empty round trip through the same libuv thread pool (`fs.promises.access`), the floor under any asynchronous native call. *Stopped?* comes from the target\'s own threads: the voluntary context switches they made across all the updates (a ptrace stop would add at least one per thread), compared with one restore + skew. *Max gap* = the longest time between two consecutive clock reads of the spinning thread within a window: idle, during updates, and around a restore + skew (medians over windows; a noisy machine shows gaps of its own).',
    '',
    mdTable(
      ['Target', 'Updates', 'Latency median (p90)', 'Thread-pool round trip', 'Stopped?', 'Max gap: idle / updates / restore+skew', 'Offset read after'],
      up.map((u) => [
        u.path === 'helper' ? 'child of the caller' : 'not a child',
        u.updates.toLocaleString('en-US'),
        `**${fmtNs(u.latencyNs.median)}** (${fmtNs(u.latencyNs.p90)})`,
        fmtNs(u.threadPoolRoundTripNs.median),
        u.switchesDuringUpdates === 0
          ? `**no**: 0 switches (restore + skew: ${u.switchesDuringStop})`
          : `**yes**: ${u.switchesDuringUpdates} switches`,
        `${fmtNs(u.gapNs.idle.median)} / ${fmtNs(u.gapNs.updates.median)} / ${fmtNs(u.gapNs.restoreAndSkew.median)}`,
        `${u.offsetAfterSec.toFixed(3)} s (expected ${u.expectedOffsetSec})`,
      ]),
    ),
    '',
  );
  const big = (results.pause ?? []).filter((c) => c.threads >= 100 && c.updateWallNs.length);
  if (big.length) {
    lines.push(
      `update() latency against larger targets (from section 2): ${big
        .map((c) => `${c.threads} ${c.mode}, ${c.placement}: ${fmtNs(c.summary.update.wallNs.median)}`)
        .join('; ')}.`,
      '',
    );
  }
}

function scaleSection(results: Results, lines: string[]): void {
  const sc = results.scale;
  if (!sc?.length) return;
  lines.push(
    '## 4. Scale',
    '',
    `Wall time to skew, then restore, ${sc[0]!.processes.toLocaleString('en-US')} idle processes (\`victim idle\`/\`farm\`, one thread each, all asleep). *Sequential*: each call awaited before the next; *concurrent*: all calls at once with \`Promise.all\` (the engine then runs as many at a time as libuv's thread pool has threads: ${sc[0]!.threadPoolSize}). Medians over ${sc[0]!.sequential.length} runs.`,
    '',
    mdTable(
      ['Targets', 'Mode', `Skew all`, 'Restore all', 'Per process (skew + restore)', 'Engine pause per skew'],
      sc.flatMap((s) =>
        (['sequential', 'concurrent'] as const).map((mode) => [
          s.path === 'helper' ? 'children (through the helper process)' : 'not children (in-process)',
          mode,
          `**${fmtNs(s.summary[mode].skewNs.median)}**`,
          `**${fmtNs(s.summary[mode].restoreNs.median)}**`,
          fmtNs(s.summary[mode].totalNs.median / s.processes),
          mode === 'sequential' ? fmtNs(s.pauseNs.median) : '—',
        ]),
      ),
    ),
    '',
  );
  for (const s of sc) {
    for (const stall of s.stalls) {
      lines.push(
        `**Stall** (${s.path}, ${stall.mode} ${stall.operation}): ${stall.settled} of ${stall.total} operations had settled after 60 s; ${stall.helpersKilled} helper process(es) were blocked (${stall.helperState.join('; ') || 'none found'}) and were killed to unblock the bench. That mode was not repeated.`,
        '',
      );
    }
    if (Object.keys(s.failures).length) lines.push(`Failed operations (${s.path}): ${JSON.stringify(s.failures)}.`, '');
  }
}

function charts(results: Results, dir: string): string[] {
  const written: string[] = [];
  const pc = results.perCall;
  if (pc?.ratio.fast) {
    const series = [
      { name: 'timeskew fast path', color: '#2e7d32' },
      { name: 'timeskew forceSyscall', color: '#ef6c00' },
      { name: 'libfaketime (LD_PRELOAD)', color: '#1565c0' },
    ];
    const modes: SkewedMode[] = ['fast', 'syscall', 'libfaketime'];
    const svg = barChart({
      title: 'Per-call cost, skewed ÷ native (same process, same round)',
      subtitle: `${results.environment.cpu}, ${results.environment.cpus} CPUs, Linux ${results.environment.kernel}; native clock_gettime ${fmtNs(pc.ns.native!.realtime.median)}; dashed red: target`,
      yLabel: 'times native (log scale)',
      series,
      ticks: [1, 2, 5, 10, 20, 50, 100],
      tickLabel: (v) => `${v}x`,
      baseline: { value: 1, label: 'native' },
      groups: COST_FNS.map((fn) => {
        const limit = RATIO_TARGETS.find((t) => t.fn === fn)!.limit;
        return {
          label: { realtime: 'clock_gettime\nREALTIME', monotonic: 'clock_gettime MONOTONIC\n(not skewed)', gettimeofday: 'gettimeofday', time: 'time' }[fn],
          values: modes.map((m) => pc.ratio[m]?.[fn].median),
          labels: modes.map((m) => (pc.ratio[m] ? fmtRatio(pc.ratio[m]![fn].median) : undefined)),
          target: { value: limit, label: `≤ ${limit}x` },
        };
      }),
    });
    const path = join(dir, 'chart-percall.svg');
    writeFileSync(path, svg);
    written.push(path);
  }
  const pause = results.pause;
  if (pause?.length) {
    const placements = ['grandchild', 'child', 'own-session'] as const;
    const colors = { grandchild: '#2e7d32', child: '#6a1b9a', 'own-session': '#00838f' };
    const groups = [];
    for (const threads of [1, 100, 1000]) {
      for (const mode of ['sleep', 'spin'] as const) {
        for (const op of ['skew', 'restore'] as const) {
          const configs = placements.map((p) => pause.find((c) => c.threads === threads && c.mode === mode && c.placement === p));
          if (!configs.some(Boolean)) continue;
          groups.push({
            label: `${threads.toLocaleString('en-US')} ${mode === 'spin' ? 'spin' : 'sleep'}\n${op}`,
            values: configs.map((c) => c?.summary[op].pauseNs.median),
            labels: configs.map((c) => {
              if (!c) return undefined;
              const ns = c.summary[op].pauseNs.median;
              const note = c.hung ? 'engine deadlocked' : c.targetDied ? 'target died' : c.timedOut ? 'timed out' : undefined;
              if (!Number.isFinite(ns)) return note ?? 'n/a';
              return `${compactNs(ns)}${note ? ` (${note})` : ''}`;
            }),
            target:
              threads === 1
                ? { value: 100e3, label: '≤ 100 µs' }
                : threads === 1000
                  ? mode === 'sleep'
                    ? { value: 10e6, label: '≤ 10 ms' }
                    : { value: 50e6, label: '≤ 50 ms' }
                  : undefined,
          });
        }
      }
    }
    const svg = barChart({
      title: 'Pause: first thread stopped → last released (median)',
      subtitle: 'threads in the target, what they do, operation; dashed red: target',
      yLabel: 'pause (log scale)',
      series: placements.map((p) => ({ name: PLACEMENT_LABELS[p], color: colors[p] })),
      ticks: [1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11],
      tickLabel: (v) => ({ 1e4: '10 µs', 1e5: '100 µs', 1e6: '1 ms', 1e7: '10 ms', 1e8: '100 ms', 1e9: '1 s', 1e10: '10 s', 1e11: '100 s' })[v] ?? String(v),
      rotateLabels: true,
      groups,
    });
    const path = join(dir, 'chart-pause.svg');
    writeFileSync(path, svg);
    written.push(path);
  }
  return written;
}

export function renderAll(results: Results, dir: string): string[] {
  const env = results.environment;
  const all = verdicts(results);
  const lines: string[] = [
    '# timeskew benchmark results',
    '',
    `Generated by \`npm run bench\` (\`bench/src/\`) on ${env.date}${env.quick ? ' with **--quick** (few repetitions: not for publishing)' : ''}, in ${env.durationSec} s. Raw figures: [results.json](results.json).`,
    '',
    `Machine: ${env.cpu}, ${env.cpus} CPUs, Linux ${env.kernel}, clocksource ${env.clocksource}, Node ${env.node}, glibc ${env.glibc}, uid ${env.uid}. Load average at start ${env.loadavgBefore.map((l) => l.toFixed(1)).join(' / ')}, at end ${env.loadavgAfter.map((l) => l.toFixed(1)).join(' / ')} (a shared, noisy VM: every figure is a median over repeated runs, every ratio compares two figures of the same round). The harness's JavaScript thread runs at nice ${env.harnessNice ?? 0} so that it keeps answering beside 1,000 spinning threads; the engine's threads (libuv pool, helper processes) run at nice ${(env.engineNice ?? [0]).join('/')}, as in any Node process.`,
    '',
    '## Targets',
    '',
    mdTable(
      ['Target', 'Measured', 'Verdict', 'Margin'],
      all.map((v) => [v.target, v.measured, verdictMark(v.met), v.margin]),
    ),
    '',
  ];
  perCallSection(results, lines);
  pauseSection(results, lines);
  updateSection(results, lines);
  scaleSection(results, lines);
  if (Object.keys(results.errors ?? {}).length) {
    lines.push('## Sections that failed', '', ...Object.entries(results.errors).map(([k, e]) => `- ${k}: ${e}`), '');
  }
  const missed = all.filter((v) => v.met === false);
  lines.push('## Missed targets: by how much, why, and what would close them', '');
  if (!missed.length) lines.push('None in this run.', '');
  const explained = new Set<string>();
  for (const v of missed) {
    const e = explain(v, results);
    if (explained.has(e.key)) continue;
    explained.add(e.key);
    lines.push(`### ${e.title}`, '', `**By how much:** ${e.byHowMuch}`, '', `**Why:** ${e.why}`, '', `**What would close it:** ${e.close}`, '');
  }
  const written = charts(results, dir);
  const md = join(dir, 'RESULTS.md');
  writeFileSync(md, `${lines.join('\n')}\n`);
  const section = join(dir, 'README-section.md');
  writeFileSync(section, readmeSection(results, all));
  return [md, section, ...written];
}

function readmeSection(results: Results, all: Verdict[]): string {
  const pc = results.perCall;
  const env = results.environment;
  const lines = ['## Performance', ''];
  lines.push(
    `Measured by \`npm run bench\` on ${env.cpu} (${env.cpus} CPUs, Linux ${env.kernel}, a shared VM); full tables, method and analysis in [bench/RESULTS.md](bench/RESULTS.md). Every figure is a median over repeated runs; every ratio compares two figures measured in the same round on the same machine.`,
    '',
    '![Per-call cost relative to native](bench/chart-percall.svg)',
    '',
  );
  if (pc?.ns.native && pc.ns.fast) {
    lines.push(
      mdTable(
        ['Per call', 'native', 'timeskew', 'timeskew forceSyscall', 'libfaketime'],
        COST_FNS.map((fn) => [
          COST_LABELS[fn],
          fmtNs(pc.ns.native![fn].median),
          `${fmtNs(pc.ns.fast![fn].median)} (${fmtRatio(pc.ratio.fast![fn].median)})`,
          pc.ns.syscall ? `${fmtNs(pc.ns.syscall[fn].median)} (${fmtRatio(pc.ratio.syscall![fn].median)})` : 'n/a',
          pc.ns.libfaketime ? `${fmtNs(pc.ns.libfaketime[fn].median)} (${fmtRatio(pc.ratio.libfaketime![fn].median)})` : 'not installed',
        ]),
      ),
      '',
    );
  }
  lines.push(mdTable(['Target', 'Measured', 'Verdict'], all.map((v) => [v.target, v.measured, verdictMark(v.met)])), '');
  lines.push(
    'Run it yourself: `npm run bench` (root, Linux x86_64, a C compiler; 5–10 minutes on 2 cores). It compares with libfaketime when it is installed (`apt-get install libfaketime`) and says so when it is not; it installs nothing.',
    '',
  );
  return `${lines.join('\n')}\n`;
}
