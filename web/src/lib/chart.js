// lib/chart.js — a time-series chart (uPlot, canvas) as a Preact component. Axes and the legend
// are formatted in the dashboard's language and in Asia/Ho_Chi_Minh time; the chart follows its
// container's width. The figure has a text summary for screen readers.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { html } from './html.js';
import { fmtAxisDay, fmtAxisHour, fmtDateTime, fmtDec, fmtInt, fmtPct, getLang, t, TIME_ZONE } from './i18n.js';

const COLORS = ['#1d5fa6', '#b3261e', '#6a3d9a'];

/* How a value of each kind of series is shown. */
const formatters = { count: fmtInt, pct: fmtPct, ms: fmtDec };

/* props: x (epoch seconds), series [{label, values, kind: 'count'|'pct'|'ms'}], daily (x ticks
 * as days), summary (text for screen readers), height. */
export function TimeChart({ x, series, daily = false, summary, height = 260 }) {
  const box = useRef(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return undefined;
    const scales = [...new Set(series.map((s) => s.kind))];
    const opts = {
      width: Math.max(el.clientWidth, 300),
      height,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), TIME_ZONE),
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      series: [
        { label: t('chart.time'), value: (u, v) => (v == null ? '' : fmtDateTime(new Date(v * 1e3))) },
        ...series.map((s, i) => ({
          label: s.label,
          scale: s.kind,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          fill: i === 0 ? 'rgba(29,95,166,0.08)' : undefined,
          spanGaps: false,
          value: (u, v) => formatters[s.kind](v),
        })),
      ],
      axes: [
        {
          // ticks a day or more apart show the day; hourly ticks show the time, and the day at
          // midnight (UTC+07:00)
          values: (u, splits, ax, space, incr) => splits.map((v) => {
            const d = new Date(v * 1e3);
            return daily || incr >= 86400 || (v + 7 * 3600) % 86400 === 0 ? fmtAxisDay(d) : fmtAxisHour(d);
          }),
        },
        ...scales.map((k, i) => ({
          scale: k,
          side: i === 0 ? 3 : 1,
          grid: { show: i === 0 },
          size: 64,
          values: (u, splits) => splits.map((v) => formatters[k](v)),
        })),
      ],
    };
    for (const k of scales) opts.scales[k] = { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] };
    const plot = new uPlot(opts, [x, ...series.map((s) => s.values)], el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(el.clientWidth, 300), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [x, series, daily, height, getLang()]);
  return html`<figure class="chart">
    <div ref=${box} class="chart-canvas" role="img" aria-label=${summary}></div>
    <figcaption class="sr-only">${summary}</figcaption>
  </figure>`;
}
