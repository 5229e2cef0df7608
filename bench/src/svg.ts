// A small grouped bar chart on a logarithmic axis, written as plain SVG (no dependency).

export interface Series {
  name: string;
  color: string;
}

export interface Group {
  label: string;
  /** One value per series (same order); NaN or undefined draws no bar. */
  values: Array<number | undefined>;
  /** Text above each bar. */
  labels: Array<string | undefined>;
  /** Optional target drawn as a dashed line across the group. */
  target?: { value: number; label: string };
}

export interface ChartSpec {
  title: string;
  subtitle?: string;
  yLabel: string;
  series: Series[];
  groups: Group[];
  /** Tick values (in data units) and how to print them. */
  ticks: number[];
  tickLabel: (v: number) => string;
  /** A horizontal reference line over the whole chart (e.g. 1x = native). */
  baseline?: { value: number; label: string };
  /** Write the value labels vertically (many narrow bars). */
  rotateLabels?: boolean;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function barChart(spec: ChartSpec): string {
  const bars = spec.groups.length * spec.series.length;
  const width = Math.max(920, 90 + bars * (spec.rotateLabels ? 24 : 34));
  const top = spec.rotateLabels ? 95 : 70;
  const left = 70;
  const right = 20;
  const plotH = 300;
  const bottom = 84;
  const legendH = 26;
  const height = top + plotH + bottom + legendH;
  const lo = Math.log10(Math.min(...spec.ticks));
  const hi = Math.log10(Math.max(...spec.ticks));
  const y = (v: number): number => top + plotH - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / (hi - lo)) * plotH;
  const plotW = width - left - right;
  const groupW = plotW / spec.groups.length;
  const barW = Math.min(46, (groupW * 0.8) / spec.series.length);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(spec.title)}</text>`,
  );
  if (spec.subtitle) {
    out.push(`<text x="${width / 2}" y="44" text-anchor="middle" fill="#555">${esc(spec.subtitle)}</text>`);
  }
  for (const t of spec.ticks) {
    const ty = y(t);
    out.push(
      `<line x1="${left}" y1="${ty}" x2="${width - right}" y2="${ty}" stroke="#e3e3e3"/>`,
      `<text x="${left - 6}" y="${ty + 4}" text-anchor="end" fill="#444">${esc(spec.tickLabel(t))}</text>`,
    );
  }
  out.push(
    `<text transform="translate(18 ${top + plotH / 2}) rotate(-90)" text-anchor="middle" fill="#444">${esc(spec.yLabel)}</text>`,
    `<line x1="${left}" y1="${top + plotH}" x2="${width - right}" y2="${top + plotH}" stroke="#888"/>`,
  );
  if (spec.baseline) {
    const by = y(spec.baseline.value);
    out.push(
      `<line x1="${left}" y1="${by}" x2="${width - right}" y2="${by}" stroke="#222" stroke-width="1.5"/>`,
      `<text x="${left + 4}" y="${by - 4}" fill="#222" font-size="10">${esc(spec.baseline.label)}</text>`,
    );
  }
  spec.groups.forEach((group, gi) => {
    const gx = left + gi * groupW;
    const start = gx + (groupW - barW * spec.series.length) / 2;
    group.values.forEach((v, si) => {
      if (v === undefined || !Number.isFinite(v)) {
        // Not measured: say why when there is a label (a hung or crashed run), else leave it blank.
        const why = group.labels[si];
        if (why) {
          const x = start + si * barW + barW / 2;
          const y0 = top + plotH - 6;
          out.push(
            spec.rotateLabels
              ? `<text transform="translate(${x + 3} ${y0}) rotate(-90)" fill="#c62828" font-size="9">${esc(why)}</text>`
              : `<text x="${x}" y="${y0}" text-anchor="middle" fill="#c62828" font-size="9">${esc(why)}</text>`,
          );
        }
        return;
      }
      const by = y(v);
      const base = top + plotH;
      out.push(
        `<rect x="${start + si * barW + 2}" y="${Math.min(by, base - 1)}" width="${barW - 4}" height="${Math.max(1, base - by)}" fill="${spec.series[si]!.color}"/>`,
      );
      const label = group.labels[si];
      if (label) {
        const x = start + si * barW + barW / 2;
        const y0 = Math.min(by, base - 1) - 4;
        out.push(
          spec.rotateLabels
            ? `<text transform="translate(${x + 3} ${y0}) rotate(-90)" font-size="9" fill="#222">${esc(label)}</text>`
            : `<text x="${x}" y="${y0}" text-anchor="middle" font-size="10" fill="#222">${esc(label)}</text>`,
        );
      }
    });
    if (group.target) {
      const ty = y(group.target.value);
      out.push(
        `<line x1="${start - 4}" y1="${ty}" x2="${start + barW * spec.series.length + 4}" y2="${ty}" stroke="#c62828" stroke-width="1.5" stroke-dasharray="5 3"/>`,
      );
    }
    const lines = group.label.split('\n');
    lines.forEach((line, li) => {
      out.push(`<text x="${gx + groupW / 2}" y="${top + plotH + 18 + li * 14}" text-anchor="middle" fill="#222">${esc(line)}</text>`);
    });
    if (group.target) {
      out.push(
        `<text x="${gx + groupW / 2}" y="${top + plotH + 18 + lines.length * 14}" text-anchor="middle" fill="#c62828" font-size="11">target ${esc(group.target.label)}</text>`,
      );
    }
  });
  let lx = left;
  const ly = height - 14;
  for (const s of spec.series) {
    out.push(
      `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${s.color}"/>`,
      `<text x="${lx + 17}" y="${ly}" fill="#222">${esc(s.name)}</text>`,
    );
    lx += 30 + s.name.length * 6.6;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
