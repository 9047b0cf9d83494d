// Monthly bills: the month and offset asked for, and the statement shown.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import BillsPage, { localOffset, monthOf } from './Bills';

afterEach(() => vi.unstubAllGlobals());

describe('bills', () => {
  it('names months and offsets as the server wants them', () => {
    expect(monthOf(new Date(2026, 0, 31))).toBe('2026-01');
    expect(monthOf(new Date(2026, 11, 1))).toBe('2026-12');
    expect(localOffset(new Date())).toBe(-new Date().getTimezoneOffset());
  });

  it('asks for this month in local time and shows the statement with key names', async () => {
    const asked: string[] = [];
    vi.stubGlobal('fetch', async (url: string) => {
      asked.push(url);
      if (url.startsWith('/api/v1/keys')) return new Response(JSON.stringify({ items: [{ id: 'k1', name: 'laptop' }], total: 1, page: 1, per_page: 20 }), { status: 200 });
      return new Response(
        JSON.stringify({
          user_id: 'u', month: monthOf(new Date()), utc_offset_minutes: 0, period_start: '2026-12-01T00:00:00Z', period_end: '2027-01-01T00:00:00Z',
          opening_balance: 0, closing_balance: 490000, credits: 500000, debits: 10000, top_ups: 500000, consumption: 10000, unattributed: 0,
          by_kind: [{ kind: 'topup', entries: 1, amount: 500000 }, { kind: 'consume', entries: 2, amount: -10000 }],
          by_model: [{ name: 'gpt-4o', requests: 2, amount: 10000 }],
          by_key: [{ name: 'k1', requests: 1, amount: 6000 }, { name: null, requests: 1, amount: 4000 }],
          orders: [],
        }),
        { status: 200 },
      );
    });
    const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    render(
      <QueryClientProvider client={client}>
        <MemoryRouter>
          <BillsPage />
        </MemoryRouter>
      </QueryClientProvider>,
    );
    expect((await screen.findByTestId('bill-closing')).textContent).toBe('$0.98');
    expect(asked.some((u) => u === `/api/v1/billing/statements/${monthOf(new Date())}?utc_offset_minutes=${localOffset()}`)).toBe(true);
    // The table shows each row twice (wide and narrow layouts).
    await waitFor(() => expect(screen.getAllByText('laptop').length).toBeGreaterThan(0));
    expect(screen.getAllByText('Web chat (no key)').length).toBeGreaterThan(0);
    expect(screen.getAllByText('gpt-4o').length).toBeGreaterThan(0);
  });
});
