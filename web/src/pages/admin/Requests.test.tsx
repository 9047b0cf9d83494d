// Admin → Requests: every user's requests with their outcome, filters sent to the API, and a
// request's routing and upstream attempts in order, in English and Chinese.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { Requests } from './Requests';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

const base = {
  request_id: 'req-1',
  key_id: 'k1',
  stream: false,
  http_status: 200,
  cost: 1500,
  prompt_tokens: 10,
  completion_tokens: 5,
  duration_ms: 1200,
  ttfb_ms: 300,
  created_at: '2026-12-01T10:00:00Z',
};
const ok = { ...base, id: 'r-ok', user_id: 'u1', model: 'gpt-4o', channel_id: 'c2', channel_name: 'west', status: 'ok', detail: null, attempt_count: 2 };
const failed = {
  ...base,
  id: 'r-err',
  user_id: 'u2',
  model: 'lonely',
  channel_id: 'c1',
  channel_name: 'east',
  status: 'error',
  detail: 'upstream_unavailable',
  http_status: 502,
  cost: 0,
  ttfb_ms: null,
  attempt_count: 1,
};
const detail = {
  request: ok,
  routing: {
    group: 'default',
    strategy: 'balanced',
    explored: false,
    sticky: true,
    candidates: [{ id: 'c1', name: 'east', priority: 20, score: 61.5 }, { id: 'c2', name: 'west', priority: 10, score: null }],
    skipped: [{ id: 'c3', name: 'north', reason: 'circuit_open' }],
  },
  attempts: [
    { seq: 0, channel_id: 'c1', channel_name: 'east', outcome: 'retry', http_status: 503, error: 'upstream 503', latency_ms: 40, ttfb_ms: 40, cost: 0 },
    { seq: 1, channel_id: 'c2', channel_name: 'west', outcome: 'ok', http_status: 200, error: null, latency_ms: 1100, ttfb_ms: 250, cost: 1500 },
  ],
};

function show() {
  const urls: string[] = [];
  vi.stubGlobal('fetch', async (url: string) => {
    urls.push(url);
    const path = url.split('?')[0];
    const answer =
      path === '/api/v1/admin/requests'
        ? { items: url.includes('status=error') ? [failed] : [ok, failed], next_cursor: null }
        : path === '/api/v1/admin/requests/r-ok'
          ? detail
          : path === '/api/v1/channels'
            ? []
            : path === '/api/v1/admin/users/u1'
              ? { id: 'u1', username: 'ada' }
              : path === '/api/v1/admin/users/u2'
                ? { id: 'u2', username: 'bob' }
                : undefined;
    if (answer === undefined) return new Response('{}', { status: 404 });
    return new Response(JSON.stringify(answer), { status: 200 });
  });
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <Requests />
      </MemoryRouter>
    </QueryClientProvider>,
  );
  return urls;
}

const rowOf = async (model: string) => {
  const table = await screen.findByRole('table');
  await within(table).findByText(model);
  return within(table).getAllByRole('row').find((r) => r.textContent?.includes(model))!;
};

describe('admin request log', () => {
  it('lists every user’s requests with who made them and how they ended', async () => {
    show();
    const bad = await rowOf('lonely');
    await within(bad).findByText('bob');
    expect(within(bad).getByTestId('request-status').textContent).toContain('Error');
    expect(within(bad).getByTestId('request-status').textContent).toContain('every channel failed');
    const good = await rowOf('gpt-4o');
    await within(good).findByText('ada');
    expect(good.textContent).toContain('west (2 tries)');
  });

  it('sends the chosen filters to the API', async () => {
    const urls = show();
    await rowOf('gpt-4o');
    fireEvent.change(screen.getByLabelText('Status'), { target: { value: 'error' } });
    fireEvent.change(screen.getByLabelText('Model'), { target: { value: 'lonely' } });
    fireEvent.click(screen.getByRole('button', { name: 'Apply' }));
    await waitFor(() => expect(urls.some((u) => u.includes('status=error') && u.includes('model=lonely'))).toBe(true));
    await waitFor(() => expect(within(screen.getByRole('table')).queryByText('gpt-4o')).toBeNull());
  });

  it('shows a request’s routing and every attempt in order', async () => {
    show();
    const good = await rowOf('gpt-4o');
    fireEvent.click(within(good).getByRole('button', { name: 'Details of the gpt-4o request' }));
    const attempts = await screen.findAllByTestId('attempt');
    expect(attempts).toHaveLength(2);
    expect(attempts[0].textContent).toContain('east');
    expect(attempts[0].textContent).toContain('Failed over');
    expect(attempts[0].textContent).toContain('upstream 503');
    expect(attempts[1].textContent).toContain('west');
    expect(attempts[1].textContent).toContain('Answered');
    const routing = screen.getByTestId('routing').textContent ?? '';
    expect(routing.indexOf('east')).toBeLessThan(routing.indexOf('west'));
    expect(screen.getByRole('dialog').textContent).toContain('north left out: circuit open');
    // Why this order: the strategy, the scores, and that stickiness chose the first.
    const why = screen.getByTestId('routing-why').textContent ?? '';
    expect(why).toContain('Balanced (latency, errors, cost)');
    expect(why).toContain('the conversation or key kept its channel');
    expect(why).not.toContain('explored');
    expect(routing).toContain('score 61.5');
  });

  it('speaks Chinese', async () => {
    setLang('zh-CN');
    show();
    const bad = await rowOf('lonely');
    expect(within(bad).getByTestId('request-status').textContent).toContain('所有渠道均失败');
    expect(screen.getByRole('button', { name: '应用' })).toBeTruthy();
  });
});
