// End-to-end steps for knowledge bases in real headless Chromium: a user creates a base on the
// Knowledge page, uploads a Chinese and an English document by the file input, watches them
// become ready, opens a document's chunks, and asks hit testing in both languages, seeing each
// hit with its BM25, vector and fused ranks and the "no answer" line for a question the base
// cannot answer. Screenshots (1440 light, 390 dark, en and zh) go to
// target/screenshots/knowledge-*.png.
//
// Environment: SKEIN_BIN, MOCK_BIN (default: the debug builds in CARGO_TARGET_DIR or target/),
// CHROMIUM (default /usr/bin/chromium). Needs web/dist (npm run build).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiScenario, check, launchBrowser, loginState, logger, requireBuilt, run, screenshot, sidewaysOverflow, stepper } from './harness.mjs';

const log = logger('e2e knowledge');
const step = stepper(log);

const ENGLISH = `# Travel policy

Hotels are booked through the travel portal. The nightly limit is 150 euros in Europe and
180 dollars in North America.

## Expenses

Expense reports are filed within sixty days of the trip, with every receipt attached.
`;
const CHINESE = `# 年假制度

员工每年享有十五天带薪年假，入职满十年后增加到二十天。

## 病假

病假需要在当天上午十点前通知直属主管，超过三天须提供医院证明。
`;

async function main() {
  requireBuilt();
  const { base, call, ada } = await apiScenario('knowledge', { env: { SKEIN_KNOWLEDGE__POLL_INTERVAL_MS: '100' } });
  const dir = mkdtempSync(join(tmpdir(), 'skein-e2e-knowledge-'));
  const files = [['travel-policy.md', ENGLISH], ['年假制度.md', CHINESE]].map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });

  const browser = await launchBrowser();
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US', colorScheme: 'light', storageState: await loginState(base, 'ada') });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  let baseUrl = '';
  try {
    await step('create a base on the Knowledge page', async () => {
      await page.goto(`${base}/knowledge`);
      await page.getByTestId('new-base').click();
      await page.getByLabel('Name', { exact: true }).fill('Handbook 员工手册');
      await page.getByRole('dialog').getByRole('button', { name: 'New knowledge base' }).click();
      await page.waitForURL(/\/knowledge\/[^/]+$/);
      baseUrl = page.url();
      const bases = await call('GET', 'knowledge/bases', ada);
      check(bases.items.some((b) => b.name === 'Handbook 员工手册'), `the base exists: ${JSON.stringify(bases.items.map((b) => b.name))}`);
    });

    await step('upload two documents and see them become ready', async () => {
      await page.getByTestId('document-input').setInputFiles(files);
      const rows = page.getByTestId('document-row');
      await rows.nth(1).waitFor();
      await page.locator('[data-testid="document-row"][data-status="ready"]').nth(1).waitFor({ timeout: 60_000 });
      const text = await page.getByTestId('documents').textContent();
      check(text.includes('travel-policy.md') && text.includes('年假制度.md'), `both documents are listed: ${text}`);
      await screenshot(page, 'knowledge-base-1440-light');
      await page.getByTestId('document-row').filter({ hasText: 'travel-policy.md' }).getByRole('button', { name: 'Chunks' }).click();
      const chunks = page.getByTestId('chunk-list');
      await chunks.waitFor();
      check((await chunks.textContent()).includes('sixty days'), `the chunks show the document's text: ${await chunks.textContent()}`);
      await page.keyboard.press('Escape');
      await chunks.waitFor({ state: 'detached' }).catch(() => undefined);
    });

    await step('hit testing finds the English passage with its ranks', async () => {
      await page.getByRole('tab', { name: 'Hit testing' }).click();
      await page.getByLabel('Query').fill('how many days to file expense reports');
      await page.getByTestId('run-search').click();
      const hit = page.getByTestId('hit').first();
      await hit.waitFor();
      check((await hit.textContent()).includes('sixty days'), `the top hit answers: ${await hit.textContent()}`);
      check((await hit.getByTestId('hit-ranks').textContent()).length > 0, 'the hit shows its ranks');
      await screenshot(page, 'knowledge-hit-testing-1440-light');
    });

    await step('hit testing finds the Chinese passage, and says when nothing answers', async () => {
      await page.getByLabel('Query').fill('病假需要通知直属主管吗');
      await page.getByTestId('run-search').click();
      await page.getByTestId('hit').filter({ hasText: '直属主管' }).first().waitFor();
      await page.getByLabel('Query').fill('quantum chromodynamics lattice gauge');
      await page.getByTestId('run-search').click();
      await page.getByTestId('no-answer').waitFor();
    });

    await step('390 px dark in Chinese: the base and hit testing fit the screen', async () => {
      const phone = await browser.newContext({
        viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, colorScheme: 'dark', locale: 'zh-CN',
        storageState: await loginState(base, 'ada', { extra: [{ name: 'skein.lang', value: 'zh-CN' }] }),
      });
      const p = await phone.newPage();
      p.setDefaultTimeout(20_000);
      await p.goto(baseUrl);
      await p.locator('[data-testid="document-row"][data-status="ready"]').nth(1).waitFor();
      check((await sidewaysOverflow(p)) <= 0, 'the base page does not scroll sideways at 390 px');
      await screenshot(p, 'knowledge-base-zh-390-dark');
      await p.getByRole('tab', { name: '命中测试' }).click();
      await p.getByLabel('查询').fill('员工每年的带薪年假');
      await p.getByTestId('run-search').click();
      await p.getByTestId('hit').filter({ hasText: '十五天' }).first().waitFor();
      check((await sidewaysOverflow(p)) <= 0, 'hit testing does not scroll sideways at 390 px');
      await screenshot(p, 'knowledge-hit-testing-zh-390-dark');
      await phone.close();
    });
    check(errors.length === 0, `no page errors: ${errors.join('\n')}`);
    log('all knowledge steps passed');
  } catch (e) {
    await screenshot(page, 'knowledge-failure', { fullPage: true }).catch(() => undefined);
    throw e;
  } finally {
    await browser.close();
  }
}

run(main, log);
