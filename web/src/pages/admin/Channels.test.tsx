// Admin → Channels: a channel whose last test failed never reads as all green.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { render, screen, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { Channels, KINDS, baseUrlForKind } from './Channels';
import { valueNames } from '../../i18n/values';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

const channel = (id: string, name: string, result: string | null) => ({
  id,
  name,
  type: 'openai',
  base_url: 'https://api.example.com',
  models: ['gpt-4o'],
  model_mapping: {},
  groups: ['default'],
  header_names: [],
  key_count: 1,
  priority: 0,
  weight: 1,
  status: 'enabled',
  status_reason: null,
  circuit: 'closed',
  last_test_at: result ? '2026-12-01T00:00:00Z' : null,
  last_test_latency_ms: 40,
  last_test_result: result,
  created_at: '2026-12-01T00:00:00Z',
  updated_at: '2026-12-01T00:00:00Z',
});

function show() {
  vi.stubGlobal('fetch', async () =>
    new Response(JSON.stringify([channel('c1', 'broken', 'upstream unreachable'), channel('c2', 'fine', 'ok')]), { status: 200 }),
  );
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <Channels />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

const row = async (name: string) => {
  // The channels' table comes first (the routing panel's follows).
  const table = (await screen.findAllByRole('table'))[0];
  return within(table).getAllByRole('row').find((r) => r.querySelector('td')?.textContent?.startsWith(name))!;
};

describe('admin channels', () => {
  it('marks a channel whose last test failed, next to its Enabled status', async () => {
    show();
    await screen.findAllByText('broken');
    const broken = await row('broken');
    expect(within(broken).getByTestId('channel-test-failed').textContent).toBe('Last test failed');
    expect(within(broken).getByTestId('channel-test').textContent).toContain('Failed: upstream unreachable');
    const fine = await row('fine');
    expect(within(fine).queryByTestId('channel-test-failed')).toBeNull();
    expect(within(fine).getByTestId('channel-test').textContent).toContain('OK in 40 ms');
  });
});

describe('the kind picker', () => {
  it('fills each kind’s default base URL unless the admin typed one', () => {
    expect(baseUrlForKind('openai', 'deepseek', 'https://api.openai.com')).toBe('https://api.deepseek.com');
    expect(baseUrlForKind('deepseek', 'zhipu', '')).toBe('https://open.bigmodel.cn/api/paas/v4');
    expect(baseUrlForKind('openai', 'dashscope', 'https://my.proxy/v1')).toBe('https://my.proxy/v1');
    // Azure's default is a pattern: shown as a hint, never filled in.
    expect(baseUrlForKind('openai', 'azure', 'https://api.openai.com')).toBe('');
    expect(baseUrlForKind('azure', 'ollama', '')).toBe('http://localhost:11434');
  });

  it('names every kind in both languages', () => {
    for (const { kind } of KINDS) {
      expect(valueNames.en[`kind_${kind}`], kind).toBeTruthy();
      expect(valueNames['zh-CN'][`kind_${kind}`], kind).toBeTruthy();
    }
    expect(valueNames['zh-CN'].kind_zhipu).toContain('智谱');
  });
});
