// Lighthouse-style timings of the chat page from Chromium's own performance API, against the
// real binary and the mock upstream: first contentful paint and largest contentful paint of a
// conversation opened cold (a new browser context, so nothing is cached), and interaction
// latency (the Event Timing API's duration — input to the next paint — of typing in the
// composer, opening the model picker and switching conversations; the worst is what INP
// reports), and how much of it was the page's own work (input delay and handlers, React
// rendering included: the event's processingEnd). Desktop (1440 px) and a phone (390 px, 4× CPU slowdown as Lighthouse's mobile
// preset). Prints a table and writes target/bench/web-perf.json.
//
// Environment: SKEIN_BIN, MOCK_BIN, CHROMIUM (see harness.mjs); PERF_RUNS (default 5).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL, apiScenario, check, launchBrowser, loginState, logger, repo, requireBuilt, run, VIEWPORTS } from './harness.mjs';

const log = logger('perf');
const RUNS = Number(process.env.PERF_RUNS ?? 5);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const p = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

/** Collects paint and event timings from page start (registered before any script runs). */
function observe() {
  window.__perf = { lcp: 0, events: [] };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__perf.lcp = Math.max(window.__perf.lcp, e.startTime);
  }).observe({ type: 'largest-contentful-paint', buffered: true });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.interactionId) window.__perf.events.push({ name: e.name, duration: e.duration, handled: e.processingEnd - e.startTime });
  }).observe({ type: 'event', durationThreshold: 16, buffered: true });
}

async function main() {
  requireBuilt({ mock: true });
  const { base, mockUrl, call, root, ada, adaProfile } = await apiScenario('perf');
  await call('POST', 'channels', root, { type: 'openai', name: 'mock', base_url: mockUrl, keys: ['sk-upstream'], models: [MODEL], priority: 10 });
  await call('PUT', `admin/pricing/${MODEL}`, root, { input_per_mtok: 1000, output_per_mtok: 2000, cache_read_per_mtok: 0, cache_write_per_mtok: 0, per_call: 0 });
  await call('POST', `admin/billing/users/${adaProfile.id}/adjust`, root, { amount: 10_000_000, memo: 'perf' });
  // Two conversations of ten turns each, with code and a table: a typical page to open.
  const conversations = [];
  for (let c = 0; c < 2; c++) {
    const conv = await call('POST', 'chat/conversations', ada, { model: MODEL });
    conversations.push(conv.id);
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${base}/api/v1/chat/conversations/${conv.id}/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ada}` },
        body: JSON.stringify({ content: `Question ${i}: explain with code.\n\n| a | b |\n|---|---|\n| ${i} | ${i * 2} |\n\n\`\`\`python\nprint(${i})\n\`\`\`` }),
      });
      await r.text();
    }
  }

  const browser = await launchBrowser();
  const results = {};
  try {
    for (const [look, opts, slowdown] of [
      ['desktop-1440', VIEWPORTS.desktop, 1],
      ['phone-390-4x-cpu', VIEWPORTS.phone, 4],
    ]) {
      const samples = { fcp: [], lcp: [], ttfb: [], domContentLoaded: [], interactions: [], handled: [] };
      for (let i = 0; i < RUNS; i++) {
        const ctx = await browser.newContext({ ...opts, locale: 'en-US', colorScheme: 'light', storageState: await loginState(base, 'ada') });
        await ctx.addInitScript(observe);
        const page = await ctx.newPage();
        page.setDefaultTimeout(30_000);
        const cdp = await ctx.newCDPSession(page);
        await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
        if (slowdown > 1) await cdp.send('Emulation.setCPUThrottlingRate', { rate: slowdown });
        await page.goto(`${base}/chat/${conversations[0]}`);
        await page.getByTestId('assistant-message').last().waitFor();
        await page.waitForTimeout(500);
        const load = await page.evaluate(() => {
          const nav = performance.getEntriesByType('navigation')[0];
          const fcp = performance.getEntriesByName('first-contentful-paint')[0];
          return { fcp: fcp?.startTime ?? null, lcp: window.__perf.lcp, ttfb: nav.responseStart, domContentLoaded: nav.domContentLoadedEventEnd };
        });
        check(load.fcp !== null, 'Chromium reported a first contentful paint');
        for (const k of ['fcp', 'lcp', 'ttfb', 'domContentLoaded']) samples[k].push(load[k]);
        // Interactions: type a sentence, open and close the model picker, open the other
        // conversation from the list (desktop) and come back.
        const composer = page.getByLabel('Send', { exact: true });
        await composer.click();
        await page.keyboard.type('How long does this take to show up?', { delay: 30 });
        await page.getByTestId('model-picker').click();
        await page.getByTestId('model-option').first().waitFor();
        await page.keyboard.press('Escape');
        if (look.startsWith('desktop')) {
          await page.locator('aside').getByTestId('conversation').nth(1).click();
          await page.getByTestId('assistant-message').last().waitFor();
          await page.locator('aside').getByTestId('conversation').nth(0).click();
          await page.getByTestId('assistant-message').last().waitFor();
        }
        await page.waitForTimeout(500);
        const events = await page.evaluate(() => window.__perf.events);
        samples.interactions.push(...events.map((e) => e.duration));
        samples.handled.push(...events.map((e) => e.handled));
        await ctx.close();
      }
      const inter = samples.interactions.length ? samples.interactions : [0];
      const handled = samples.handled.length ? samples.handled : [0];
      results[look] = {
        runs: RUNS,
        cpu_slowdown: slowdown,
        fcp_ms: { median: median(samples.fcp), max: Math.max(...samples.fcp) },
        lcp_ms: { median: median(samples.lcp), max: Math.max(...samples.lcp) },
        ttfb_ms: { median: median(samples.ttfb) },
        dom_content_loaded_ms: { median: median(samples.domContentLoaded) },
        interaction_ms: { count: samples.interactions.length, median: median(inter), p98: p(inter, 0.98), max: Math.max(...inter) },
        // Input delay plus the page's own handling (React rendering included), to the end of
        // the event's processing: the part of an interaction the app controls.
        handled_ms: { median: Math.round(median(handled) * 10) / 10, p98: Math.round(p(handled, 0.98) * 10) / 10, max: Math.round(Math.max(...handled) * 10) / 10 },
      };
      const r = results[look];
      log(`${look}: FCP ${r.fcp_ms.median.toFixed(0)} ms (max ${r.fcp_ms.max.toFixed(0)}), LCP ${r.lcp_ms.median.toFixed(0)} ms, TTFB ${r.ttfb_ms.median.toFixed(0)} ms; interactions n=${r.interaction_ms.count} median ${r.interaction_ms.median} ms, p98 ${r.interaction_ms.p98} ms, max ${r.interaction_ms.max} ms; handled by the page in median ${r.handled_ms.median} ms, p98 ${r.handled_ms.p98} ms, max ${r.handled_ms.max} ms`);
    }
  } finally {
    await browser.close();
  }
  const out = join(repo, 'target', 'bench');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'web-perf.json'), JSON.stringify({ page: '/chat/{id} (a 20-message conversation)', chromium: process.env.CHROMIUM ?? '/usr/bin/chromium', results }, null, 2));
  log('written to target/bench/web-perf.json');
}

run(main, log);
