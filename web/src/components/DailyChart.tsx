import { money } from '../lib/format';
import type { DailyUsage } from '../lib/types';

/** The last `days` UTC dates, oldest first, as `YYYY-MM-DD`. */
export function lastDays(days: number, now = new Date()): string[] {
  const out: string[] = [];
  for (let i = days - 1; i >= 0; i--) {
    const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - i));
    out.push(d.toISOString().slice(0, 10));
  }
  return out;
}

/** Sums rows per day over the given days (days without rows count zero). */
export function totalsByDay(rows: DailyUsage[], days: string[]): number[] {
  const sums = new Map<string, number>();
  for (const r of rows) sums.set(r.day.slice(0, 10), (sums.get(r.day.slice(0, 10)) ?? 0) + r.cost);
  return days.map((d) => sums.get(d) ?? 0);
}

/** A bar chart of daily spend, drawn as SVG (no chart library). */
export function DailyChart({ rows, days = 30, label }: { rows: DailyUsage[]; days?: number; label: string }) {
  const dates = lastDays(days);
  const values = totalsByDay(rows, dates);
  const max = Math.max(...values, 1);
  const w = 600;
  const h = 160;
  const bar = w / dates.length;
  return (
    <figure>
      <svg viewBox={`0 0 ${w} ${h}`} preserveAspectRatio="none" className="h-40 w-full" role="img" aria-label={label}>
        <line x1="0" y1={h} x2={w} y2={h} className="stroke-border" vectorEffect="non-scaling-stroke" />
        {values.map((v, i) => {
          const bh = (v / max) * (h - 8);
          return (
            <rect key={dates[i]} x={i * bar + 2} y={h - bh} width={Math.max(bar - 4, 1)} height={bh} className="fill-primary/80">
              <title>{`${dates[i]}: ${money(v)}`}</title>
            </rect>
          );
        })}
      </svg>
      <figcaption className="mt-1 flex justify-between text-[11px] text-muted-fg">
        <span>{dates[0].slice(5)}</span>
        <span>{dates[Math.floor(dates.length / 2)].slice(5)}</span>
        <span>{dates[dates.length - 1].slice(5)}</span>
        <span className="sr-only">{label}</span>
      </figcaption>
    </figure>
  );
}
