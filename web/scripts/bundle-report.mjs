// Prints the size of every built JS/CSS file (raw and gzipped) and fails when the JavaScript
// loaded on first paint (the entry and what index.html preloads) exceeds the budget.
import { readFileSync, readdirSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';

const BUDGET_KB = Number(process.env.SKEIN_WEB_BUDGET_KB ?? 300);
const dist = new URL('../dist/', import.meta.url).pathname;
const html = readFileSync(join(dist, 'index.html'), 'utf8');
const initial = new Set(
  [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]),
);
const kb = (n) => (n / 1024).toFixed(1).padStart(8);
let initialGz = 0;
const rows = [];
for (const name of readdirSync(join(dist, 'assets'))) {
  if (!/\.(js|css)$/.test(name)) continue;
  const data = readFileSync(join(dist, 'assets', name));
  const gz = gzipSync(data, { level: 9 }).length;
  const isInitial = initial.has(`assets/${name}`);
  if (isInitial && name.endsWith('.js')) initialGz += gz;
  rows.push({ name, raw: data.length, gz, isInitial });
}
rows.sort((a, b) => Number(b.isInitial) - Number(a.isInitial) || b.gz - a.gz);
console.log('\nBundle report (KB)       raw     gzip  file');
for (const r of rows) {
  console.log(`  ${r.isInitial ? 'initial' : 'lazy   '}   ${kb(r.raw)} ${kb(r.gz)}  ${r.name}`);
}
console.log(`\nInitial JS: ${(initialGz / 1024).toFixed(1)} KB gzipped (budget ${BUDGET_KB} KB)`);
if (initialGz / 1024 > BUDGET_KB) {
  console.error(`error: initial JS is over the ${BUDGET_KB} KB budget`);
  process.exit(1);
}
