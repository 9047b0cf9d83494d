// Admin → Channels → routing: each group's strategy is listed and saved as the API takes it
// (in Chinese too); channels show what the relay measured and their upstream balance, low
// balances flagged and refreshable.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { RoutingPanel } from './RoutingPanel';
import { Channels } from './Channels';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

type Call = { method: string; path: string; body: unknown };

const channel = {
  id: 'c1',
  name: 'ds',
  type: 'deepseek',
  base_url: 'https://api.deepseek.com',
  models: ['deepseek-chat'],
  model_mapping: {},
  groups: ['default'],
  header_names: [],
  key_count: 1,
  priority: 0,
  weight: 1,
  cost_ratio_permille: 800,
  health: { latency_ms: 412.4, ttft_ms: 655.6, error_rate: 0.25, samples: 12, stale: false, models: [] },
  balance: 3.5,
  balance_currency: 'CNY',
  balance_at: '2026-12-01T00:00:00Z',
  low_balance_threshold: 5,
  balance_low: true,
  status: 'enabled',
  status_reason: null,
  circuit: 'closed',
  last_test_at: null,
  last_test_latency_ms: null,
  last_test_result: null,
  created_at: '2026-12-01T00:00:00Z',
  updated_at: '2026-12-01T00:00:00Z',
};

function stubFetch() {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    const path = url.split('?')[0];
    calls.push({ method, path, body: init.body ? JSON.parse(String(init.body)) : undefined });
    if (path === '/api/v1/admin/routing') {
      return new Response(JSON.stringify([{ group: 'default', strategy: 'priority', explore_percent: 5, sticky: false, updated_at: null }]), { status: 200 });
    }
    if (path === '/api/v1/channels') return new Response(JSON.stringify([channel]), { status: 200 });
    if (method === 'PUT') return new Response(JSON.stringify({ group: 'default', strategy: 'latency', explore_percent: 10, sticky: false, updated_at: '' }), { status: 200 });
    if (method === 'POST') return new Response(JSON.stringify(channel), { status: 200 });
    return new Response('[]', { status: 200 });
  });
  return calls;
}

function show(node: React.ReactNode) {
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>{node}</MemoryRouter>
    </QueryClientProvider>,
  );
}

describe('routing strategies', () => {
  it('saves a group’s strategy and exploration share', async () => {
    const calls = stubFetch();
    show(<RoutingPanel />);
    const panel = await screen.findByTestId('routing-panel');
    // The table and the phone layout both render the row; the first is the table's.
    const select = (await within(panel).findAllByLabelText('Strategy default'))[0];
    expect((select as HTMLSelectElement).value).toBe('priority');
    fireEvent.change(select, { target: { value: 'latency' } });
    fireEvent.change(within(panel).getAllByLabelText('Explore % default')[0], { target: { value: '10' } });
    fireEvent.click(within(panel).getAllByRole('button', { name: 'Save' })[0]);
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    const put = calls.find((c) => c.method === 'PUT')!;
    expect(put.path).toBe('/api/v1/admin/routing/default');
    expect(put.body).toEqual({ strategy: 'latency', explore_percent: 10, sticky: false });
  });

  it('makes a group sticky and balanced', async () => {
    const calls = stubFetch();
    show(<RoutingPanel />);
    const panel = await screen.findByTestId('routing-panel');
    const save = () => within(panel).getAllByRole('button', { name: 'Save' })[0] as HTMLButtonElement;
    await within(panel).findAllByLabelText('Sticky default');
    expect(save().disabled).toBe(true);
    fireEvent.click(within(panel).getAllByLabelText('Sticky default')[0]);
    fireEvent.change(within(panel).getAllByLabelText('Strategy default')[0], { target: { value: 'balanced' } });
    expect(save().disabled).toBe(false);
    fireEvent.click(save());
    await waitFor(() => expect(calls.some((c) => c.method === 'PUT')).toBe(true));
    expect(calls.find((c) => c.method === 'PUT')!.body).toEqual({ strategy: 'balanced', explore_percent: 5, sticky: true });
  });

  it('names the strategies in Chinese', async () => {
    setLang('zh-CN');
    stubFetch();
    show(<RoutingPanel />);
    await screen.findByText('各分组的路由策略');
    expect((await screen.findAllByRole('option', { name: '延迟最低' })).length).toBeGreaterThan(0);
  });
});

describe('channel health and balance', () => {
  it('shows the measured latency, the balance flagged low, and refreshes it', async () => {
    const calls = stubFetch();
    show(<Channels />);
    const health = (await screen.findAllByTestId('channel-health'))[0];
    expect(health.textContent).toBe('412 ms · 25% errors · first token 656 ms');
    const balance = screen.getAllByTestId('channel-balance')[0];
    expect(balance.textContent).toContain('3.50 CNY');
    expect(within(balance).getByText('Low')).toBeTruthy();
    fireEvent.click(within(balance).getByRole('button', { name: 'Refresh balance' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/channels/c1/balance')).toBe(true));
  });
});
