import type { SizePoint } from './contenders';
import type { BurstSchedule, TracePoint } from './workloads/workload';

/** Hand-written SVG: small enough to read, no chart library. */

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"';

export const STATE_COLORS: Readonly<Record<string, string>> = {
  normal: '#4caf50',
  elevated: '#fbc02d',
  critical: '#fb8c00',
  blocked: '#e53935',
  draining: '#1e88e5',
};

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function n(value: number): string {
  return Number.isFinite(value) ? String(Math.round(value * 10) / 10) : '0';
}

export interface TracePanel {
  name: string;
  trace: readonly TracePoint[];
}

/**
 * One panel per contender: the area under utilization, coloured by state at each
 * sample, over grey bands where the producer is on; dashed lines at the watermarks.
 */
export function stateTraceSvg(
  panels: readonly TracePanel[],
  schedule: BurstSchedule,
  watermarks: { low: number; high: number },
): string {
  const width = 900;
  const left = 150;
  const right = 20;
  const top = 56;
  const panelHeight = 90;
  const gap = 22;
  const plotWidth = width - left - right;
  const windowMs = schedule.cycles * (schedule.onMs + schedule.offMs);
  const height = top + panels.length * (panelHeight + gap) + 30;
  const x = (t: number): number => left + (Math.min(Math.max(t, 0), windowMs) / windowMs) * plotWidth;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ${FONT} font-size="12">`,
    `<title>Buffer utilization and state over time under the same on/off burst, per strategy</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
  );
  // Legend: states, producer on, watermarks.
  let lx = left;
  for (const [state, color] of Object.entries(STATE_COLORS)) {
    out.push(
      `<rect x="${lx}" y="14" width="14" height="14" fill="${color}"/><text x="${lx + 19}" y="26">${state}</text>`,
    );
    lx += 95;
  }
  out.push(
    `<rect x="${lx}" y="14" width="14" height="14" fill="#e0e0e0"/><text x="${lx + 19}" y="26">producer on</text>`,
    `<line x1="${lx + 120}" y1="21" x2="${lx + 150}" y2="21" stroke="#616161" stroke-dasharray="4 3"/><text x="${lx + 155}" y="26">watermarks</text>`,
  );
  panels.forEach((panel, index) => {
    const y0 = top + index * (panelHeight + gap);
    const y = (u: number): number => y0 + panelHeight - Math.min(Math.max(u, 0), 1) * panelHeight;
    out.push(`<g>`);
    out.push(
      `<text x="${left - 10}" y="${y0 + panelHeight / 2 + 4}" text-anchor="end" font-weight="600">${esc(panel.name)}</text>`,
    );
    out.push(
      `<rect x="${left}" y="${y0}" width="${plotWidth}" height="${panelHeight}" fill="#fafafa" stroke="#bdbdbd"/>`,
    );
    for (let c = 0; c < schedule.cycles; c++) {
      const start = c * (schedule.onMs + schedule.offMs);
      out.push(
        `<rect x="${n(x(start))}" y="${y0}" width="${n(x(start + schedule.onMs) - x(start))}" height="${panelHeight}" fill="#e0e0e0"/>`,
      );
    }
    // The area under utilization, one polygon per run of points with the same state; a point's state is the one
    // that lasted longest since the previous point, so it colours the segment that ends at it.
    const trace = panel.trace.filter((p) => p.t <= windowMs);
    const base = y0 + panelHeight;
    let start = 0;
    for (let i = 1; i <= trace.length; i++) {
      const state = trace[i]?.state;
      if (i < trace.length && state === (trace[start + 1] as TracePoint).state) continue;
      if (i - start >= 1 && start + 1 < trace.length) {
        const run = trace.slice(start, i);
        const color = STATE_COLORS[(trace[start + 1] as TracePoint).state] ?? '#9e9e9e';
        const first = run[0] as TracePoint;
        const last = run[run.length - 1] as TracePoint;
        const points = [
          `${n(x(first.t))},${base}`,
          ...run.map((p) => `${n(x(p.t))},${n(y(p.utilization))}`),
          `${n(x(last.t))},${base}`,
        ];
        out.push(`<polygon points="${points.join(' ')}" fill="${color}"/>`);
      }
      start = i - 1;
    }
    const line = trace.map((p) => `${n(x(p.t))},${n(y(p.utilization))}`);
    out.push(`<polyline points="${line.join(' ')}" fill="none" stroke="#212121" stroke-width="1.2"/>`);
    for (const level of [watermarks.low, watermarks.high]) {
      out.push(
        `<line x1="${left}" y1="${n(y(level))}" x2="${left + plotWidth}" y2="${n(y(level))}" stroke="#616161" stroke-dasharray="4 3"/>`,
      );
    }
    out.push(`<text x="${left - 4}" y="${y0 + 10}" text-anchor="end" font-size="10" fill="#757575">100%</text>`);
    out.push(`<text x="${left - 4}" y="${y0 + panelHeight}" text-anchor="end" font-size="10" fill="#757575">0</text>`);
    out.push(`</g>`);
  });
  const axisY = top + panels.length * (panelHeight + gap) - gap + 16;
  for (let t = 0; t <= windowMs; t += 250) {
    out.push(`<text x="${n(x(t))}" y="${axisY}" text-anchor="middle" font-size="10" fill="#616161">${t} ms</text>`);
  }
  out.push(`</svg>`);
  return `${out.join('\n')}\n`;
}

export interface Bar {
  name: string;
  median: number;
  min: number;
  max: number;
  /** label shown after the bar */
  label: string;
  highlight: 'sluice' | 'baseline' | 'other';
}

const BAR_COLORS = { sluice: '#00897b', baseline: '#616161', other: '#b0bec5' } as const;

/** Horizontal bars (median) with min–max whiskers, one group per workload. */
export function barsSvg(title: string, groups: readonly { title: string; bars: readonly Bar[] }[]): string {
  const width = 900;
  const left = 170;
  const right = 120;
  const barHeight = 18;
  const rowHeight = 26;
  const plotWidth = width - left - right;
  const out: string[] = [];
  let y = 72;
  const body: string[] = [];
  for (const group of groups) {
    const scale = Math.max(...group.bars.map((b) => b.max), 1);
    const x = (value: number): number => left + (value / scale) * plotWidth;
    body.push(`<text x="${left}" y="${y}" font-weight="600" font-size="13">${esc(group.title)}</text>`);
    y += 12;
    for (const bar of group.bars) {
      const color = BAR_COLORS[bar.highlight];
      body.push(
        `<text x="${left - 8}" y="${y + barHeight - 5}" text-anchor="end">${esc(bar.name)}</text>`,
        `<rect x="${left}" y="${y}" width="${n(Math.max(1, x(bar.median) - left))}" height="${barHeight}" fill="${color}"/>`,
        `<line x1="${n(x(bar.min))}" y1="${y + barHeight / 2}" x2="${n(x(bar.max))}" y2="${y + barHeight / 2}" stroke="#212121"/>`,
        `<line x1="${n(x(bar.min))}" y1="${y + 4}" x2="${n(x(bar.min))}" y2="${y + barHeight - 4}" stroke="#212121"/>`,
        `<line x1="${n(x(bar.max))}" y1="${y + 4}" x2="${n(x(bar.max))}" y2="${y + barHeight - 4}" stroke="#212121"/>`,
        `<text x="${n(x(bar.max) + 6)}" y="${y + barHeight - 5}" font-size="11" fill="#424242">${esc(bar.label)}</text>`,
      );
      y += rowHeight;
    }
    y += 24;
  }
  const height = y;
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ${FONT} font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="24" font-size="14" font-weight="600">${esc(title)}</text>`,
    `<rect x="${left}" y="36" width="12" height="12" fill="${BAR_COLORS.sluice}"/><text x="${left + 17}" y="47" font-size="11">sluice</text>`,
    `<rect x="${left + 70}" y="36" width="12" height="12" fill="${BAR_COLORS.baseline}"/><text x="${left + 87}" y="47" font-size="11">baseline (native, or the hand-written loop for SQLite) and the for-loop lower bound</text>`,
    `<rect x="${left + 560}" y="36" width="12" height="12" fill="${BAR_COLORS.other}"/><text x="${left + 577}" y="47" font-size="11">others</text>`,
    ...body,
    `</svg>`,
  );
  return `${out.join('\n')}\n`;
}

/** The batch size over a run (a step line), with dashed reference lines (e.g. the best fixed size). */
export function sizeTraceSvg(
  title: string,
  trace: readonly SizePoint[],
  references: readonly { label: string; size: number }[],
): string {
  const width = 900;
  const height = 320;
  const left = 70;
  const right = 170;
  const top = 40;
  const bottom = 40;
  const plotWidth = width - left - right;
  const plotHeight = height - top - bottom;
  const endMs = Math.max(1, ...trace.map((p) => p.t));
  const maxSize = Math.max(1, ...trace.map((p) => p.size), ...references.map((r) => r.size)) * 1.1;
  const x = (t: number): number => left + (t / endMs) * plotWidth;
  const y = (size: number): number => top + plotHeight - (size / maxSize) * plotHeight;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ${FONT} font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${left}" y="22" font-size="14" font-weight="600">${esc(title)}</text>`,
    `<line x1="${left}" y1="${top + plotHeight}" x2="${left + plotWidth}" y2="${top + plotHeight}" stroke="#999"/>`,
    `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotHeight}" stroke="#999"/>`,
  ];
  for (const fraction of [0, 0.25, 0.5, 0.75, 1]) {
    const size = (maxSize / 1.1) * fraction;
    out.push(`<text x="${left - 6}" y="${n(y(size) + 4)}" text-anchor="end" fill="#555">${Math.round(size)}</text>`);
  }
  out.push(
    `<text x="${left + plotWidth / 2}" y="${height - 8}" text-anchor="middle" fill="#555">ms since the start (${Math.round(endMs)} ms in all)</text>`,
  );
  for (const ref of references) {
    out.push(
      `<line x1="${left}" y1="${n(y(ref.size))}" x2="${left + plotWidth}" y2="${n(y(ref.size))}" stroke="#888" stroke-dasharray="5,4"/>`,
      `<text x="${left + plotWidth + 6}" y="${n(y(ref.size) + 4)}" fill="#555">${esc(ref.label)}</text>`,
    );
  }
  let d = '';
  trace.forEach((p, i) => {
    d += i === 0 ? `M${n(x(p.t))},${n(y(p.size))}` : `H${n(x(p.t))}V${n(y(p.size))}`;
  });
  out.push(`<path d="${d}" fill="none" stroke="#1e88e5" stroke-width="2"/>`, '</svg>');
  return out.join('\n');
}
