// The accessibility pass: axe-core (the engine behind Lighthouse's and the browsers'
// accessibility audits) run in real headless Chromium on every page of the web app — public,
// user, assistants, knowledge, files, plugins, every admin tab — in light and dark at 1440 and
// 390 px. It fails on any serious or critical violation and writes what it found per page to
// target/bench/a11y.json (moderate and minor ones are listed, not failed).
//
// Environment: SKEIN_BIN, MOCK_BIN, CHROMIUM (see harness.mjs); AXE_PAGES=a,b to run only the
// named pages, AXE_LOOKS=1440-light,390-dark only those looks. Needs web/dist (npm run build) and axe-core (npm ci installs it).
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODEL, PASSWORD, apiScenario, check, launchBrowser, loginState, logger, repo, requireBuilt, run, VIEWPORTS } from './harness.mjs';

const log = logger('a11y');
const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const FAILING = new Set(['serious', 'critical']);

/** Public pages (no sign-in). */
const publicPages = (share) => [
  ['login', '/login'],
  ['register', '/register'],
  ['forgot-password', '/forgot-password'],
  ['share', share],
];

/** The signed-in user's pages. */
const userPages = ({ conversation, agent, base }) => [
  ['chat-empty', '/chat'],
  ['chat', conversation],
  ['agents', '/agents'],
  ['agents-mine', '/agents/mine'],
  ['agent', `/agents/${agent}`],
  ['agent-editor', `/agents/${agent}/edit`],
  ['knowledge', '/knowledge'],
  ['knowledge-base', `/knowledge/${base}`],
  ['files', '/files'],
  ['plugins', '/plugins'],
  ['keys', '/keys'],
  ['usage', '/usage'],
  ['topup', '/billing/topup'],
  ['plans', '/billing/plans'],
  ['statements', '/billing/statements'],
  ['invoices', '/billing/invoices'],
  ['invites', '/invites'],
  ['settings', '/settings'],
  ['not-found', '/no-such-page'],
];

/** Every admin tab. */
const adminPages = ['dashboard', 'users', 'channels', 'requests', 'pricing', 'codes', 'invites', 'orders', 'coupons', 'plans', 'invoices', 'payments', 'audit', 'plugins', 'sign-in', 'system'].map((t) => [`admin-${t}`, `/admin/${t}`]);

const LOOKS = [
  ['1440-light', { ...VIEWPORTS.desktop, colorScheme: 'light' }, 'light'],
  ['1440-dark', { ...VIEWPORTS.desktop, colorScheme: 'dark' }, 'dark'],
  ['390-light', { ...VIEWPORTS.phone, colorScheme: 'light' }, 'light'],
  ['390-dark', { ...VIEWPORTS.phone, colorScheme: 'dark' }, 'dark'],
];

/** A signed-in state; a sign-in refused while the server is busy is tried again. */
async function signedIn(base, who, extra) {
  for (let i = 0; ; i++) {
    try {
      return await loginState(base, who, { password: PASSWORD, extra });
    } catch (e) {
      if (i >= 5) throw e;
      await new Promise((r) => setTimeout(r, 500 * (i + 1)));
    }
  }
}

/** Runs axe on the page as it is now; answers its violations, trimmed to what a report needs. */
async function audit(page) {
  if (!(await page.evaluate(() => 'axe' in window))) await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(async () => {
    // WCAG 2.1 A and AA and best practices: what Lighthouse checks.
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] }, resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 5).map((n) => ({ target: n.target.join(' '), summary: n.failureSummary?.split('\n').slice(0, 3).join(' ') })), count: v.nodes.length }));
  });
  return result;
}

/** Waits until the page has settled: the app has rendered and nothing is loading. */
async function settle(page) {
  await page.waitForLoadState('networkidle').catch(() => undefined);
  // The app itself has rendered into its root (once, under load, the audit ran on a document
  // that was not yet the app's: no lang, no landmarks).
  await page.waitForFunction(() => document.documentElement.lang !== '' && (document.getElementById('root')?.childElementCount ?? 0) > 0).catch(() => undefined);
  await page.waitForFunction(() => !document.body.innerText.includes('Loading…')).catch(() => undefined);
  await page.waitForTimeout(250);
}

async function main() {
  requireBuilt({ mock: true });
  const only = process.env.AXE_PAGES ? new Set(process.env.AXE_PAGES.split(',')) : null;
  const { base, mockUrl, call, root, ada, adaProfile } = await apiScenario('a11y');
  // Something on every page: a served and priced model, a balance, a conversation with code,
  // a list and a table, an assistant, a knowledge base, a shared file, a key, codes.
  await call('POST', 'channels', root, { type: 'openai', name: 'mock', base_url: mockUrl, keys: ['sk-upstream'], models: [MODEL], priority: 10 });
  await call('PUT', `admin/pricing/${MODEL}`, root, { input_per_mtok: 1000, output_per_mtok: 2000, cache_read_per_mtok: 0, cache_write_per_mtok: 0, per_call: 0 });
  await call('POST', `admin/billing/users/${adaProfile.id}/adjust`, root, { amount: 10_000_000, memo: 'welcome' });
  await call('POST', 'keys', ada, { name: 'laptop' });
  await call('POST', 'admin/redemption-codes', root, { name: 'launch', amount: 250_000, count: 2 });
  const conv = await call('POST', 'chat/conversations', ada, { model: MODEL });
  const sent = await fetch(`${base}/api/v1/chat/conversations/${conv.id}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ada}` },
    body: JSON.stringify({ content: 'Show a table and code:\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n```python\nprint("hi")\n```' }),
  });
  await sent.text();
  const agent = await call('POST', 'agents', ada, { name: 'Translator', avatar: '🌐', description: 'Translates between Chinese and English.', tags: ['language'], visibility: 'public', system_prompt: 'You translate.', model: MODEL });
  await call('POST', `agents/${agent.id}/publish`, ada, { changelog: 'first' });
  const kb = await call('POST', 'knowledge/bases', ada, { name: 'Handbook', description: 'Team notes', embedding_model: '' });
  const form = new FormData();
  form.append('purpose', 'chat');
  form.append('file', new Blob(['hello from the accessibility pass\n'], { type: 'text/plain' }), 'notes.txt');
  const up = await fetch(`${base}/api/v1/files`, { method: 'POST', headers: { authorization: `Bearer ${ada}` }, body: form });
  check(up.ok, `upload: ${up.status}`);
  const file = await up.json();
  const share = await call('POST', `files/${file.id}/shares`, ada, {});

  const groups = [
    ['public', null, publicPages(new URL(share.url, base).pathname)],
    ['user', 'ada', userPages({ conversation: `/chat/${conv.id}`, agent: agent.id, base: kb.id })],
    ['admin', 'root', adminPages],
  ];
  const browser = await launchBrowser();
  const report = [];
  try {
    const looks = process.env.AXE_LOOKS ? LOOKS.filter(([look]) => process.env.AXE_LOOKS.split(',').includes(look)) : LOOKS;
    for (const [look, opts, theme] of looks) {
      for (const [group, who, pages] of groups) {
        const extra = [{ name: 'skein.theme', value: theme }];
        const storageState = who ? await signedIn(base, who, extra) : { cookies: [], origins: [{ origin: base, localStorage: extra }] };
        // bypassCSP: axe is injected as an inline script, which the app's CSP (rightly) refuses.
        const ctx = await browser.newContext({ ...opts, locale: 'en-US', storageState, bypassCSP: true });
        const page = await ctx.newPage();
        page.setDefaultTimeout(20_000);
        for (const [name, path] of pages) {
          if (only && !only.has(name)) continue;
          await page.goto(`${base}${path}`);
          await settle(page);
          const violations = await audit(page);
          const failing = violations.filter((v) => FAILING.has(v.impact));
          report.push({ page: name, path, look, group, violations });
          log(`${failing.length ? 'FAIL' : 'ok  '} ${name} ${look}: ${violations.length} violation(s)${failing.length ? ` — ${failing.map((v) => `${v.id} (${v.impact}, ${v.count}): ${v.nodes.map((n) => n.target).join(' | ')}`).join('; ')}` : ''}`);
        }
        await ctx.close();
      }
    }
  } finally {
    await browser.close();
  }
  const failing = report.flatMap((r) => r.violations.filter((v) => FAILING.has(v.impact)).map((v) => ({ page: r.page, look: r.look, ...v })));
  const summary = {
    engine: 'axe-core',
    tags: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'],
    audits: report.length,
    pages: new Set(report.map((r) => r.page)).size,
    serious_or_critical: failing.reduce((n, v) => n + v.count, 0),
    moderate_or_minor: report.reduce((n, r) => n + r.violations.filter((v) => !FAILING.has(v.impact)).reduce((m, v) => m + v.count, 0), 0),
    by_rule: Object.fromEntries(
      [...new Set(report.flatMap((r) => r.violations.map((v) => v.id)))].map((id) => [
        id,
        { impact: report.flatMap((r) => r.violations).find((v) => v.id === id).impact, pages: [...new Set(report.filter((r) => r.violations.some((v) => v.id === id)).map((r) => `${r.page} ${r.look}`))] },
      ]),
    ),
    report,
  };
  const out = join(repo, 'target', 'bench');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'a11y.json'), JSON.stringify(summary, null, 2));
  log(`${summary.audits} audits of ${summary.pages} pages: ${summary.serious_or_critical} serious or critical node(s), ${summary.moderate_or_minor} moderate or minor; report in target/bench/a11y.json`);
  for (const v of failing) log(`  ${v.page} ${v.look}: ${v.id} — ${v.help}: ${v.nodes.map((n) => n.target).join(' | ')}`);
  check(failing.length === 0, `${failing.length} serious or critical violation(s)`);
}

run(main, log);
