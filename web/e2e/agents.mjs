// End-to-end steps for assistants in real headless Chromium: an admin sets up a channel, a
// price and a market category through the API; a user creates an assistant in the editor,
// publishes v1, edits and publishes v2, opens the diff; previews the draft; uploads an avatar (v3); finds it in the market by a Chinese
// word; starts a chat from its page and sees the assistant and version in the chat header
// with the upstream receiving the version's prompt. Screenshots (1440 light, 390 dark, zh)
// go to target/screenshots/agents-*.png.
//
// Environment: SKEIN_BIN, MOCK_BIN (default: the debug builds in CARGO_TARGET_DIR or target/),
// CHROMIUM (default /usr/bin/chromium). Needs web/dist (npm run build).
import { MODEL, apiScenario, check, launchBrowser, loginState, logger, requireBuilt, run, screenshot, sidewaysOverflow, stepper } from './harness.mjs';

const log = logger('e2e agents');
const step = stepper(log);

async function main() {
  requireBuilt({ mock: true });
  const { base, mockUrl, call, root, ada, adaProfile: me } = await apiScenario('agents');
  await call('POST', 'channels', root, { type: 'openai', name: 'mock', base_url: mockUrl, keys: ['sk-upstream'], models: [MODEL], priority: 10 });
  await call('PUT', `admin/pricing/${MODEL}`, root, { input_per_mtok: 1000, output_per_mtok: 2000, cache_read_per_mtok: 0, cache_write_per_mtok: 0, per_call: 0 });
  await call('POST', `admin/billing/users/${me.id}/adjust`, root, { amount: 10_000_000, memo: 'e2e' });
  await call('PUT', 'admin/agent-categories', root, { id: 'writing', name_en: 'Writing', name_zh: '写作' });
  await call('PUT', 'admin/agent-categories', root, { id: 'code', name_en: 'Code', name_zh: '编程', sort: 1 });
  // Some neighbours in the market.
  for (const [name, avatar, description, tags, category] of [
    ['Code Reviewer', '🧐', 'Reviews your pull requests line by line and explains every finding.', ['code', 'review'], 'code'],
    ['周报助手', '📝', '把零散的工作记录整理成清晰的周报。', ['写作', '效率'], 'writing'],
    ['SQL Tutor', '🗄️', 'Teaches SQL with exercises on your own schema.', ['sql', 'learning'], 'code'],
  ]) {
    const a = await call('POST', 'agents', ada, { name, avatar, description, tags, category, visibility: 'public', system_prompt: `You are ${name}.`, model: MODEL });
    await call('POST', `agents/${a.id}/publish`, ada, { changelog: 'first' });
  }

  const login = (extra = []) => loginState(base, 'ada', { extra });

  const browser = await launchBrowser();
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'en-US', colorScheme: 'light', storageState: await login() });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  let agentId = '';
  let conversationUrl = '';
  try {
    await step('create an assistant in the editor and publish v1', async () => {
      await page.goto(`${base}/agents/mine`);
      await page.getByTestId('agent-new').click();
      await page.waitForURL(/\/agents\/[^/]+\/edit$/);
      agentId = page.url().split('/').slice(-2)[0];
      await page.getByTestId('agent-edit-name').fill('翻译助手 Translator');
      await page.getByLabel('Avatar', { exact: true }).fill('🌐');
      await page.getByLabel('Description', { exact: true }).fill('中英文互译，地道自然。Translates between Chinese and English.');
      await page.getByLabel('Tags', { exact: true }).fill('翻译, language');
      await page.locator('select').nth(0).selectOption('writing');
      await page.locator('select').nth(1).selectOption('public');
      await page.getByTestId('agent-edit-prompt').fill('You translate between Chinese and English.\nKeep the tone of the original.');
      await page.getByLabel('Model', { exact: true }).fill(MODEL);
      await page.getByLabel('Opening message').fill('你好！Send me text in either language.');
      await page.getByLabel('Suggested questions').fill('Translate 你好世界\n把 "good morning" 翻成中文');
      await page.getByLabel('What changed (changelog)').fill('First version');
      await page.getByTestId('agent-publish').click();
      await page.getByTestId('agent-versions').getByText('v1').waitFor();
    });

    await step('edit and publish v2; the diff shows the prompt line that changed', async () => {
      await page.getByTestId('agent-edit-prompt').fill('You translate between Chinese and English.\nKeep the tone of the original.\nExplain idioms briefly.');
      await page.getByLabel('temperature').fill('0.4');
      await page.getByLabel('What changed (changelog)').fill('Explain idioms');
      await page.getByTestId('agent-publish').click();
      await page.getByTestId('agent-versions').getByText('v2').waitFor();
      await page.getByRole('button', { name: 'Diff with previous' }).first().click();
      const diff = page.getByTestId('agent-diff');
      await diff.getByText('+ Explain idioms briefly.').waitFor();
      await diff.getByText('temperature').waitFor();
      await screenshot(page, 'agents-editor-diff-1440-light');
      await page.keyboard.press('Escape');
      await screenshot(page, 'agents-editor-1440-light', { fullPage: true });
    });

    await step('the editor previews the draft: the answer uses the unpublished prompt', async () => {
      await page.getByTestId('agent-edit-prompt').fill('You translate between Chinese and English.\nDraft only: answer in haiku.');
      await page.getByTestId('agent-preview-start').click();
      const preview = page.getByTestId('agent-preview');
      await preview.getByTestId('chat-agent').getByText('Draft preview').waitFor();
      await preview.getByRole('textbox', { name: 'Send' }).fill('Translate 早上好');
      await preview.getByRole('button', { name: 'Send', exact: true }).click();
      let sent = null;
      for (let i = 0; i < 100 && !sent; i++) {
        const list = await call('GET', 'chat/conversations?limit=50', ada);
        const conv = list.items.find((c) => (c.title ?? '').includes('preview'));
        if (conv) {
          const history = await call('GET', `chat/conversations/${conv.id}/messages`, ada);
          const answer = history.messages.find((m) => m.role === 'assistant' && m.status !== 'streaming');
          if (answer) sent = (await call('GET', `chat/messages/${answer.id}/context`, ada)).request.messages[0].content;
        }
        if (!sent) await page.waitForTimeout(100);
      }
      check(sent && sent.includes('Draft only: answer in haiku.'), `the draft's prompt went upstream: ${sent}`);
      await screenshot(page, 'agents-editor-preview-1440-light', { fullPage: true });
      const v = await call('GET', `agents/${agentId}/versions`, ada);
      check(v.length === 2, `a preview publishes nothing: ${v.length} versions`);
    });

    await step('an uploaded avatar is stored as a file and shown on the published card', async () => {
      // A 2×2 red PNG.
      const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMAAAA0VAQDgZ8J3AAAAAElFTkSuQmCC', 'base64');
      // Back to v2's prompt: only the avatar changes in v3.
      await page.getByTestId('agent-edit-prompt').fill('You translate between Chinese and English.\nKeep the tone of the original.\nExplain idioms briefly.');
      await page.getByTestId('agent-avatar-file').setInputFiles({ name: 'face.png', mimeType: 'image/png', buffer: png });
      await page.getByTestId('agent-avatar-img').waitFor();
      await page.getByLabel('What changed (changelog)').fill('A face');
      await page.getByTestId('agent-publish').click();
      await page.getByTestId('agent-versions').getByText('v3').waitFor();
      const detail = await call('GET', `agents/${agentId}`, ada);
      check(detail.avatar.startsWith('file:') && detail.avatar_url, `the avatar is a file with a signed URL: ${detail.avatar}`);
      const img = await fetch(`${base}${detail.avatar_url.slice(detail.avatar_url.indexOf('/api/'))}`);
      check(img.status === 200 && img.headers.get('content-type') === 'image/png', `the signed URL serves the image: ${img.status}`);
    });

    await step('the market finds it by a Chinese word', async () => {
      await page.goto(`${base}/agents`);
      await page.getByTestId('agent-card').first().waitFor();
      check((await page.getByTestId('agent-card').count()) === 4, 'four public assistants');
      await screenshot(page, 'agents-market-1440-light');
      await page.getByTestId('market-search').fill('互译');
      await page.getByRole('button', { name: 'Search' }).click();
      await page.waitForFunction(() => document.querySelectorAll('[data-testid="agent-card"]').length === 1);
      check((await page.getByTestId('agent-card').textContent()).includes('翻译助手'), 'the translator is found');
      check((await page.getByTestId('agent-card').getByTestId('agent-avatar-img').count()) === 1, 'its card shows the uploaded avatar');
    });

    await step('start a chat from its page: the header shows the assistant and v3, the upstream gets v2\'s prompt kept in v3', async () => {
      await page.getByTestId('agent-card').click();
      await page.getByTestId('agent-name').waitFor();
      await screenshot(page, 'agents-page-1440-light');
      await page.getByTestId('agent-start').click();
      await page.waitForURL(/\/chat\/[^/]+$/);
      conversationUrl = page.url();
      const strip = page.getByTestId('chat-agent');
      await strip.getByText('翻译助手 Translator').waitFor();
      await strip.getByText('v3').waitFor();
      await strip.getByRole('button', { name: 'Translate 你好世界' }).click();
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      // The opening message and questions give way to the thread once it has messages.
      await strip.getByRole('button', { name: 'Translate 你好世界' }).waitFor({ state: 'detached' });
      await page.waitForTimeout(1500);
      await screenshot(page, 'agents-chat-1440-light');
      const convId = conversationUrl.split('/').pop();
      const history = await call('GET', `chat/conversations/${convId}/messages`, ada);
      const answer = history.messages.find((m) => m.role === 'assistant');
      check(answer, `an answer was written: ${JSON.stringify(history.messages.map((m) => m.role))}`);
      const ctxView = await call('GET', `chat/messages/${answer.id}/context`, ada);
      check(ctxView.request.messages[0].content.includes('Explain idioms briefly.'), `v2's prompt went upstream: ${JSON.stringify(ctxView.request.messages[0])}`);
    });

    await step('390 px dark and Chinese: market, assistant page, editor, chat', async () => {
      for (const [suffix, opts, lang] of [
        ['390-dark', { viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true, hasTouch: true, locale: 'en-US' }, 'en'],
        ['zh-390-dark', { viewport: { width: 390, height: 844 }, colorScheme: 'dark', isMobile: true, hasTouch: true, locale: 'zh-CN' }, 'zh-CN'],
      ]) {
        const c = await browser.newContext({ ...opts, storageState: await login([{ name: 'skein.lang', value: lang }]) });
        const p = await c.newPage();
        p.setDefaultTimeout(20_000);
        for (const [name, path, ready] of [
          ['market', '/agents', 'agent-card'],
          ['page', `/agents/${agentId}`, 'agent-name'],
          ['editor', `/agents/${agentId}/edit`, 'agent-versions'],
          ['chat', new URL(conversationUrl).pathname, 'chat-agent'],
        ]) {
          await p.goto(`${base}${path}`);
          await p.getByTestId(ready).first().waitFor();
          await p.waitForTimeout(300);
          const overflow = await sidewaysOverflow(p);
          check(overflow <= 0, `${name} at 390 px does not scroll sideways (${overflow} px)`);
          await screenshot(p, `agents-${name}-${suffix}`);
        }
        await c.close();
      }
    });
    check(errors.length === 0, `no page errors: ${errors.join('\n')}`);
    log('all agent steps passed');
  } catch (e) {
    await screenshot(page, 'agents-failure', { fullPage: true }).catch(() => undefined);
    throw e;
  } finally {
    await browser.close();
  }
}

run(main, log);
