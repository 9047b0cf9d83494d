// End-to-end steps for the admin request log in real headless Chromium: an admin sets up a
// channel that cannot be reached (tried first) and a working mock channel; a user's key makes a
// request that fails over and one that fails on every channel. The admin opens Admin → Requests,
// finds the failed request with the error filter, opens it and sees its routing and both
// upstream attempts in order; the Channels page shows the broken channel's last error and the
// channel statistics; every model of the working channel is probed from its Models dialog and
// then shown with its own measurements. Screenshots (1440 light, 390 dark, zh) go to target/screenshots/adminlog-*.png.
//
// Environment: SKEIN_BIN, MOCK_BIN (default: the debug builds in CARGO_TARGET_DIR or target/),
// CHROMIUM (default /usr/bin/chromium). Needs web/dist (npm run build).
import { MODEL, apiScenario, check, launchBrowser, loginState, logger, requireBuilt, run, screenshot, sidewaysOverflow, stepper } from './harness.mjs';

const log = logger('e2e adminlog');
const step = stepper(log);

async function main() {
  requireBuilt({ mock: true });
  const { base, mockUrl, call, root, ada, adaProfile: me } = await apiScenario('adminlog');
  // Port 1 on loopback refuses connections: "upstream unreachable", tried first (priority 20).
  await call('POST', 'channels', root, { type: 'openai', name: 'broken-east', base_url: 'http://127.0.0.1:1', keys: ['sk-nowhere'], models: [MODEL, 'lonely-model'], priority: 20 });
  await call('POST', 'channels', root, { type: 'openai', name: 'mock-west', base_url: mockUrl, keys: ['sk-upstream'], models: [MODEL, 'mock-other'], priority: 10 });
  for (const model of [MODEL, 'lonely-model']) {
    await call('PUT', `admin/pricing/${model}`, root, { input_per_mtok: 1000, output_per_mtok: 2000, cache_read_per_mtok: 0, cache_write_per_mtok: 0, per_call: 0 });
  }
  await call('POST', `admin/billing/users/${me.id}/adjust`, root, { amount: 10_000_000, memo: 'e2e' });
  const key = (await call('POST', 'keys', ada, { name: 'e2e' })).key;
  const relay = async (model) => {
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: 'a private question' }] }),
    });
    await r.text();
    return r.status;
  };
  check((await relay(MODEL)) === 200, 'the request fails over to the working channel');
  check((await relay('lonely-model')) === 502, 'a model only the broken channel serves fails');
  // The log is written in batches off the request path.
  for (let i = 0; ; i++) {
    const page = await call('GET', 'admin/requests', root);
    if (page.items.length >= 2) break;
    if (i > 100) throw new Error(`the log never showed both requests: ${JSON.stringify(page)}`);
    await new Promise((r) => setTimeout(r, 100));
  }

  const login = (username, extra = []) => loginState(base, username, { extra });

  const browser = await launchBrowser();
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US', colorScheme: 'light', storageState: await login('root') });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  try {
    await step('the request log lists both requests, the failed one as an error', async () => {
      await page.goto(`${base}/admin/requests`);
      await page.getByTestId('request-status').first().waitFor();
      const table = page.locator('table');
      await table.getByText('lonely-model').waitFor();
      await table.getByText('every channel failed').waitFor();
      await screenshot(page, 'adminlog-requests-1440-light');
    });

    await step('the error filter finds the failed request; its detail shows both attempts in order', async () => {
      await page.locator('select[name="status"]').selectOption('error');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.waitForFunction(() => document.querySelectorAll('table [data-testid="request-status"]').length === 1);
      await page.getByRole('button', { name: 'Details of the lonely-model request' }).click();
      const attempts = page.getByTestId('attempt');
      await attempts.first().waitFor();
      check((await attempts.count()) === 1, `one attempt for the model only the broken channel serves (${await attempts.count()})`);
      const first = await attempts.nth(0).textContent();
      check(first.includes('broken-east') && first.includes('upstream unreachable'), `the attempt names the channel and its error: ${first}`);
      check(!(await page.getByRole('dialog').textContent()).includes('a private question'), 'no prompt in the detail');
      await screenshot(page, 'adminlog-detail-error-1440-light');
      await page.keyboard.press('Escape');
    });

    await step('the failed-over request shows the broken channel first, then the one that answered', async () => {
      await page.locator('select[name="status"]').selectOption('ok');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.waitForFunction(() => document.querySelectorAll('table [data-testid="request-status"]').length === 1);
      await page.getByRole('button', { name: `Details of the ${MODEL} request` }).click();
      const attempts = page.getByTestId('attempt');
      await attempts.nth(1).waitFor();
      const [a, b] = [await attempts.nth(0).textContent(), await attempts.nth(1).textContent()];
      check(a.includes('broken-east') && a.includes('Failed over'), `first attempt: ${a}`);
      check(b.includes('mock-west') && b.includes('Answered'), `second attempt: ${b}`);
      const routing = await page.getByTestId('routing').textContent();
      check(routing.indexOf('broken-east') < routing.indexOf('mock-west'), `routing order: ${routing}`);
      await screenshot(page, 'adminlog-detail-failover-1440-light');
      await page.keyboard.press('Escape');
    });

    await step('the Channels page shows the last error and the statistics', async () => {
      await page.goto(`${base}/admin/channels`);
      const circuit = page.locator('table').getByTestId('channel-circuit').first();
      await circuit.waitFor();
      await page.locator('table').getByText('Last error: upstream unreachable').first().waitFor();
      await page.getByText('Channel statistics').waitFor();
      await page.getByTestId('stat-errors').first().waitFor();
      await screenshot(page, 'adminlog-channels-1440-light', { fullPage: true });
    });

    await step('Models: each model of a channel is probed and its measurements shown apart', async () => {
      const row = page.locator('table tr', { hasText: 'mock-west' });
      await row.getByRole('button', { name: 'Models' }).click();
      const list = page.getByTestId('channel-probes');
      await list.waitFor();
      check((await list.textContent()).includes('not probed yet'), 'nothing probed before the button');
      await page.getByRole('button', { name: 'Probe every model now' }).click();
      await page.waitForFunction(() => (document.querySelector('[data-testid="channel-probes"]')?.textContent ?? '').split('OK in').length === 3);
      await screenshot(page, 'adminlog-probes-1440-light');
      await page.keyboard.press('Escape');
      const health = row.getByTestId('channel-model-health');
      await health.waitFor();
      const text = await health.textContent();
      check(text.includes('mock-other:') && text.includes(`${MODEL}:`), `per-model measurements: ${text}`);
    });

    await step('390 px dark and Chinese: the request log and the channels page', async () => {
      for (const [suffix, opts, lang] of [
        ['390-dark', { viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true, hasTouch: true, locale: 'en-US' }, 'en'],
        ['zh-390-dark', { viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true, hasTouch: true, locale: 'zh-CN' }, 'zh-CN'],
        ['zh-1440-light', { viewport: { width: 1440, height: 900 }, colorScheme: 'light', locale: 'zh-CN' }, 'zh-CN'],
      ]) {
        const c = await browser.newContext({ ...opts, storageState: await login('root', [{ name: 'skein.lang', value: lang }]) });
        const p = await c.newPage();
        p.setDefaultTimeout(20_000);
        for (const [name, path, ready] of [
          ['requests', '/admin/requests', 'request-status'],
          ['channels', '/admin/channels', 'channel-circuit'],
        ]) {
          await p.goto(`${base}${path}`);
          // Phones get cards, wider screens the table: wait for whichever is shown.
          await p.locator(`[data-testid="${ready}"]:visible`).first().waitFor();
          await p.waitForTimeout(300);
          const overflow = await sidewaysOverflow(p);
          check(overflow <= 0, `${name} at ${suffix} does not scroll sideways (${overflow} px)`);
          await screenshot(p, `adminlog-${name}-${suffix}`, { fullPage: true });
        }
        await c.close();
      }
    });
    check(errors.length === 0, `no page errors: ${errors.join('\n')}`);
    log('all admin-log steps passed');
  } catch (e) {
    await screenshot(page, 'adminlog-failure', { fullPage: true }).catch(() => undefined);
    throw e;
  } finally {
    await browser.close();
  }
}

run(main, log);
