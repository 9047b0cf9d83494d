// End-to-end steps for a tool call that needs the user's approval, in real headless Chromium:
// an admin publishes an OpenAPI plugin (a small local weather service), prices it per call and
// makes its calls ask first; a user enables it and asks in a chat; the mock model calls the
// tool; the thread shows Approve / Deny; Approve runs it (the service is called, the call is
// charged once, shown in usage), and at 390 px dark a second call is denied (it does not
// run). Before that, an admin sets the sampling model for MCP servers on the Chinese admin
// page at 390 px dark, and the user's plugin market is shown in both languages. Screenshots go to target/screenshots/tools-*.png.
//
// Environment: SKEIN_BIN, MOCK_BIN (default: the debug builds in CARGO_TARGET_DIR or target/),
// CHROMIUM (default /usr/bin/chromium). Needs web/dist (npm run build).
import { createServer as createHttpServer } from 'node:http';
import { MODEL, apiScenario, check, launchBrowser, loginState, logger, requireBuilt, run, screenshot, sidewaysOverflow, stepper, VIEWPORTS } from './harness.mjs';

const log = logger('e2e tools');
const step = stepper(log);

async function main() {
  requireBuilt({ mock: true });
  // The weather service the plugin calls; it records the cities it was asked about.
  const asked = [];
  const weather = createHttpServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    asked.push(url.searchParams.get('city'));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ city: url.searchParams.get('city'), sky: 'sunny', celsius: 21 }));
  });
  await new Promise((r) => weather.listen(0, '127.0.0.1', r));
  process.on('exit', () => weather.close());
  const weatherUrl = `http://127.0.0.1:${weather.address().port}`;

  const { base, mockUrl, call, root, ada, adaProfile: me } = await apiScenario('tools');
  await call('POST', 'channels', root, { type: 'openai', name: 'mock', base_url: mockUrl, keys: ['sk-upstream'], models: [MODEL], priority: 10 });
  await call('PUT', `admin/pricing/${MODEL}`, root, { input_per_mtok: 1000, output_per_mtok: 2000, cache_read_per_mtok: 0, cache_write_per_mtok: 0, per_call: 0 });
  await call('POST', `admin/billing/users/${me.id}/adjust`, root, { amount: 10_000_000, memo: 'e2e' });
  await call('PUT', 'admin/plugins/settings', root, { search: null, allow_private_addresses: true });
  const document = {
    openapi: '3.0.3',
    info: { title: 'Weather', version: '1' },
    servers: [{ url: weatherUrl }],
    paths: { '/weather': { get: { operationId: 'get_weather', summary: "Today's weather in a city", parameters: [{ name: 'city', in: 'query', required: true, schema: { type: 'string' } }] } } },
  };
  const plugin = await call('POST', 'admin/plugins', root, { name: 'Weather', kind: 'openapi', category: 'tools', openapi: document });
  await call('PATCH', `admin/plugins/${plugin.id}`, root, { price_per_call: 25, requires_approval: true });
  await call('PUT', `plugins/${plugin.id}/preferences`, ada, { enabled: true });

  const login = (extra = []) => loginState(base, 'ada', { extra });

  const browser = await launchBrowser();
  const ctx = await browser.newContext({ ...VIEWPORTS.desktop, locale: 'en-US', colorScheme: 'light', storageState: await login() });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const zh = [{ name: 'skein.lang', value: 'zh-CN' }];
  /** A page at 390 px, dark, in `locale`, signed in with `storageState`; its errors collected. */
  const phonePage = async (storageState, locale) => {
    const c = await browser.newContext({ ...VIEWPORTS.phone, colorScheme: 'dark', locale, storageState });
    const p = await c.newPage();
    p.setDefaultTimeout(20_000);
    p.on('pageerror', (e) => errors.push(String(e)));
    return p;
  };
  let conversationPath = '';
  try {
    await step('an admin sets the model that answers MCP sampling, in Chinese at 390 px dark', async () => {
      const p = await phonePage(await loginState(base, 'root', { extra: zh }), 'zh-CN');
      await p.goto(`${base}/admin/plugins`);
      const form = p.getByTestId('plugin-settings');
      await form.getByLabel('采样模型').fill(MODEL);
      await form.getByRole('button', { name: '保存' }).click();
      let saved = null;
      for (let i = 0; i < 100 && saved !== MODEL; i++) {
        saved = (await call('GET', 'admin/plugins/settings', root)).sampling_model;
        if (saved !== MODEL) await new Promise((r) => setTimeout(r, 100));
      }
      check(saved === MODEL, `the sampling model was saved: ${saved}`);
      await p.reload();
      const field = p.getByTestId('plugin-settings').getByLabel('采样模型');
      let shown = '';
      for (let i = 0; i < 100 && shown !== MODEL; i++) {
        shown = await field.inputValue();
        if (shown !== MODEL) await p.waitForTimeout(100);
      }
      check(shown === MODEL, `the saved sampling model is shown again once the settings load: ${shown}`);
      const overflow = await sidewaysOverflow(p);
      check(overflow <= 0, `the settings at 390 px do not scroll sideways (${overflow} px)`);
      await field.scrollIntoViewIfNeeded();
      await screenshot(p, 'tools-admin-sampling-zh-390-dark');
      await p.context().close();
    });

    await step('the plugin market shows the published plugin, its tool and that it is on', async () => {
      await page.goto(`${base}/plugins`);
      const card = page.getByTestId('plugin-card').filter({ hasText: 'Weather' });
      await card.waitFor();
      const text = await card.innerText();
      check(text.includes('get_weather') && text.includes('Enabled'), `the Weather card names its tool and is on: ${text}`);
      await screenshot(page, 'tools-market-1440-light');
      const p = await phonePage(await login(zh), 'zh-CN');
      await p.goto(`${base}/plugins`);
      await p.getByTestId('plugin-card').filter({ hasText: 'Weather' }).waitFor();
      const overflow = await sidewaysOverflow(p);
      check(overflow <= 0, `the market at 390 px does not scroll sideways (${overflow} px)`);
      await screenshot(p, 'tools-market-zh-390-dark');
      await p.context().close();
    });

    await step('the model calls the tool: the thread asks for approval and nothing runs yet', async () => {
      await page.goto(`${base}/chat`);
      const composer = page.getByLabel('Send', { exact: true });
      await composer.fill('Paris');
      await composer.press('Enter');
      await page.getByTestId('tool-approval').waitFor();
      await page.waitForURL(/\/chat\/[^/]+$/);
      conversationPath = new URL(page.url()).pathname;
      check(asked.length === 0, `the service was not called before approval: ${asked}`);
      await page.locator('[data-testid="tool-step"]').first().evaluate((d) => (d.open = true));
      await screenshot(page, 'tools-approval-1440-light');
    });

    await step('Approve: the tool runs, the answer goes on, the call is charged once', async () => {
      await page.getByTestId('tool-approve').click();
      await page.locator('[data-testid="tool-step"][data-state="done"]').waitFor();
      await page.getByTestId('tool-approval').waitFor({ state: 'detached' });
      check(asked.length === 1 && asked[0] === 'Paris', `the service was called once for Paris: ${asked}`);
      await page.locator('[data-testid="tool-step"]').first().evaluate((d) => (d.open = true));
      await page.waitForTimeout(500);
      await screenshot(page, 'tools-approved-1440-light');
      let records = [];
      for (let i = 0; i < 100; i++) {
        records = (await call('GET', 'billing/usage', ada)).items.filter((r) => r.model === 'tool:get_weather');
        if (records.length) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      check(records.length === 1 && records[0].cost === 25, `one charge of 25: ${JSON.stringify(records)}`);
      // The answer goes on after the tool: the next step sends into this conversation, which
      // takes one answer at a time.
      await page.locator('[data-testid="assistant-message"][data-status="streaming"]').waitFor({ state: 'detached' });
    });

    await step('390 px dark: a second call is denied and does not run', async () => {
      const p = await phonePage(await login(), 'en-US');
      await p.goto(`${base}${conversationPath}`);
      const composer = p.getByLabel('Send', { exact: true });
      await composer.fill('Oslo');
      await p.getByRole('button', { name: 'Send', exact: true }).click();
      await p.getByTestId('tool-approval').waitFor();
      const overflow = await sidewaysOverflow(p);
      check(overflow <= 0, `the approval prompt at 390 px does not scroll sideways (${overflow} px)`);
      await screenshot(p, 'tools-approval-390-dark');
      await p.getByTestId('tool-deny').click();
      await p.locator('[data-testid="tool-step"][data-state="error"]').waitFor();
      check(asked.length === 1, `a denied call does not run: ${asked}`);
      await p.waitForTimeout(500);
      await screenshot(p, 'tools-denied-390-dark');
      await p.context().close();
    });
    check(errors.length === 0, `no page errors: ${errors.join('\n')}`);
    log('all tool steps passed');
  } catch (e) {
    // Every page still open, the phone pages included: the failing step may be on any.
    const open = browser.contexts().flatMap((c) => c.pages());
    for (const [i, p] of open.entries()) await screenshot(p, `tools-failure-${i}`, { fullPage: true }).catch(() => undefined);
    throw e;
  } finally {
    await browser.close();
  }
}

run(main, log);
