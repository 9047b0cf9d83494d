// Redeeming a code as typed: case and spaces do not matter (codes are issued in upper case).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import UsagePage, { normalizeCode } from './Usage';

afterEach(() => vi.unstubAllGlobals());

describe('redeem', () => {
  it('normalizes what was typed', () => {
    expect(normalizeCode(' abcd 23xy\n')).toBe('ABCD23XY');
  });

  it('sends the code in upper case', async () => {
    const bodies: unknown[] = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      if (url.startsWith('/api/v1/billing/redeem')) {
        bodies.push(JSON.parse(String(init.body)));
        return new Response(JSON.stringify({ amount: 250000, balance: 250000 }), { status: 200 });
      }
      if (url.startsWith('/api/v1/billing/quota')) {
        return new Response(JSON.stringify({ balance: 0, reserved: 0, available: 0, used: 0, quota_per_usd: 500000, balance_usd: 0, balance_cny: 0 }), { status: 200 });
      }
      if (url.startsWith('/api/v1/billing/usage/daily')) return new Response('[]', { status: 200 });
      return new Response(JSON.stringify({ items: [], total: 0, page: 1, per_page: 10 }), { status: 200 });
    });
    const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    render(
      <QueryClientProvider client={client}>
        <MemoryRouter>
          <UsagePage />
        </MemoryRouter>
      </QueryClientProvider>,
    );
    fireEvent.change(screen.getByLabelText('Code'), { target: { value: 'abcd23xy ' } });
    fireEvent.click(screen.getByRole('button', { name: 'Redeem' }));
    await waitFor(() => expect(bodies).toEqual([{ code: 'ABCD23XY' }]));
    await screen.findByText(/Redeemed \$0\.50/);
  });
});
