// Admin → Channels tools: the breaker and last error at a glance, "test all" with live results,
// the test model, fetching models into the form, and delete only after a confirmation that
// says what happens to the channel's history.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { Channels } from './Channels';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

const channel = (id: string, name: string, extra: Record<string, unknown> = {}) => ({
  id,
  name,
  type: 'openai',
  base_url: 'https://api.example.com',
  models: ['gpt-4o', 'gpt-4o-mini'],
  model_mapping: {},
  groups: ['default'],
  header_names: [],
  param_overrides: {},
  key_count: 1,
  priority: 0,
  weight: 1,
  timeout_secs: 120,
  status: 'enabled',
  status_reason: null,
  circuit: 'closed',
  circuit_since: null,
  last_error: null,
  last_error_at: null,
  last_test_at: null,
  last_test_latency_ms: null,
  last_test_result: null,
  created_at: '2026-12-01T00:00:00Z',
  updated_at: '2026-12-01T00:00:00Z',
  ...extra,
});

type Call = { method: string; url: string; body: unknown };

function show() {
  const calls: Call[] = [];
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const method = init.method ?? 'GET';
    calls.push({ method, url, body: init.body ? JSON.parse(String(init.body)) : undefined });
    const path = url.split('?')[0];
    let answer: unknown;
    if (method === 'GET' && path === '/api/v1/channels')
      answer = [
        channel('c1', 'east', {
          circuit: 'open', circuit_since: '2026-12-01T09:00:00Z', last_error: 'upstream unreachable', last_error_at: '2026-12-01T09:00:00Z',
          health: { latency_ms: null, ttft_ms: null, error_rate: 1, samples: 3, stale: false, models: [] },
        }),
        channel('c2', 'west', {
          health: {
            latency_ms: 300, ttft_ms: null, error_rate: 0.25, samples: 8, stale: false,
            models: [
              { model: 'gpt-4o', latency_ms: 510, ttft_ms: null, error_rate: 0.5, samples: 4, stale: false },
              { model: 'gpt-4o-mini', latency_ms: 90, ttft_ms: null, error_rate: 0, samples: 4, stale: false },
            ],
          },
        }),
      ];
    else if (method === 'GET' && path === '/api/v1/channels/c2/probes')
      answer = { channel_id: 'c2', models_left_out: 0, items: [{ model: 'gpt-4o', ok: false, latency_ms: 80, message: 'upstream 404: model_not_found', at: '2026-12-01T09:00:00Z' }] };
    else if (method === 'POST' && path === '/api/v1/channels/c2/probes')
      answer = {
        channel_id: 'c2',
        models_left_out: 0,
        items: [
          { model: 'gpt-4o', ok: true, latency_ms: 120, message: 'ok', at: '2026-12-01T10:00:00Z' },
          { model: 'gpt-4o-mini', ok: true, latency_ms: 60, message: 'ok', at: '2026-12-01T10:00:00Z' },
        ],
      };
    else if (method === 'POST' && path.endsWith('/test')) answer = { ok: path.includes('c2'), latency_ms: 42, message: path.includes('c2') ? 'ok' : 'upstream unreachable' };
    else if (method === 'POST' && path === '/api/v1/channels/fetch-models') answer = { models: ['gpt-4o', 'o3', 'text-embedding-3-small'] };
    else if (method === 'DELETE') return new Response(null, { status: 204 });
    else if (path === '/api/v1/admin/requests/channel-stats') answer = { from: '', to: '', channels: [] };
    if (answer === undefined) return new Response('{}', { status: 404 });
    return new Response(JSON.stringify(answer), { status: 200 });
  });
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <Channels />
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return calls;
}

const row = async (name: string) => {
  const table = await screen.findByRole('table');
  await within(table).findByText(name);
  return within(table).getAllByRole('row').find((r) => r.querySelector('td')?.textContent?.startsWith(name))!;
};

describe('channel tools', () => {
  it('shows the breaker, since when, and the last error at once', async () => {
    show();
    const east = await row('east');
    const circuit = within(east).getByTestId('channel-circuit').textContent ?? '';
    expect(circuit).toContain('Tripped');
    expect(circuit).toContain('since');
    expect(circuit).toContain('Last error: upstream unreachable');
    expect(within(await row('west')).getByTestId('channel-circuit').textContent).toBe('Healthy');
  });

  it('shows the measurements of each model a channel serves', async () => {
    show();
    const west = await row('west');
    expect(within(west).getByTestId('channel-health').textContent).toContain('300 ms');
    const models = within(west).getByTestId('channel-model-health').textContent ?? '';
    expect(models).toContain('gpt-4o: 510 ms');
    expect(models).toContain('50%');
    expect(models).toContain('gpt-4o-mini: 90 ms');
    expect(within(await row('east')).queryByTestId('channel-model-health')).toBeNull();
    // Nothing answered yet: no latency is made up.
    const east = within(await row('east')).getByTestId('channel-health').textContent ?? '';
    expect(east).toContain('no answer yet · 100% errors');
    expect(east).not.toContain('0 ms');
  });

  it('shows each model’s last probe and probes them all on request', async () => {
    const calls = show();
    const west = await row('west');
    fireEvent.click(within(west).getByRole('button', { name: 'Models' }));
    const list = await screen.findByTestId('channel-probes');
    await waitFor(() => expect(list.textContent).toContain('Failed: upstream 404: model_not_found'));
    expect(list.textContent).toContain('not probed yet');
    fireEvent.click(screen.getByRole('button', { name: 'Probe every model now' }));
    await waitFor(() => expect(list.textContent).toContain('OK in 60 ms'));
    expect(list.textContent).toContain('OK in 120 ms');
    expect(list.textContent).not.toContain('not probed yet');
    expect(calls.filter((c) => c.method === 'POST' && c.url === '/api/v1/channels/c2/probes')).toHaveLength(1);
  });

  it('tests every channel with the chosen model and shows each result', async () => {
    const calls = show();
    const east = await row('east');
    fireEvent.change(within(east).getByLabelText('Model to test with'), { target: { value: 'gpt-4o-mini' } });
    fireEvent.click(screen.getByRole('button', { name: 'Test all' }));
    await waitFor(() => expect(within(east).getByTestId('channel-test').textContent).toContain('Failed: upstream unreachable'));
    await waitFor(() => expect(within(screen.getByRole('table')).getAllByTestId('channel-test')[1].textContent).toContain('OK in 42 ms'));
    const tests = calls.filter((c) => c.url.includes('/test'));
    expect(tests.map((c) => c.url).sort()).toEqual(['/api/v1/channels/c1/test?model=gpt-4o-mini', '/api/v1/channels/c2/test']);
  });

  it('fetches the upstream’s models into the form', async () => {
    const calls = show();
    await row('east');
    fireEvent.click(screen.getByRole('button', { name: '+ New channel' }));
    fireEvent.change(screen.getByLabelText('Upstream keys (one per line)'), { target: { value: 'sk-typed' } });
    fireEvent.click(screen.getByRole('button', { name: 'Fetch models' }));
    const list = await screen.findByTestId('fetched-models');
    expect(calls.find((c) => c.url === '/api/v1/channels/fetch-models')?.body).toMatchObject({ type: 'openai', keys: ['sk-typed'] });
    fireEvent.click(within(list).getByRole('button', { name: 'o3' }));
    expect((screen.getByLabelText('Models (comma separated)') as HTMLInputElement).value).toBe('o3');
    fireEvent.click(within(list).getByRole('button', { name: 'Add all' }));
    expect((screen.getByLabelText('Models (comma separated)') as HTMLInputElement).value).toBe('o3, gpt-4o, text-embedding-3-small');
  });

  it('deletes a channel only after a confirmation that says its history stays', async () => {
    const calls = show();
    const west = await row('west');
    fireEvent.click(within(west).getByRole('button', { name: 'Delete' }));
    const dialog = await screen.findByRole('dialog');
    expect(dialog.textContent).toContain('west stops receiving requests');
    expect(dialog.textContent).toContain('request log');
    expect(calls.some((c) => c.method === 'DELETE')).toBe(false);
    fireEvent.click(within(dialog).getByRole('button', { name: 'Delete' }));
    await waitFor(() => expect(calls.some((c) => c.method === 'DELETE' && c.url === '/api/v1/channels/c2')).toBe(true));
  });
});
