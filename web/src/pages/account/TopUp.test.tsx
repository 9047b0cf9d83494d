// Top-up: amounts typed as people type them, the quota they buy, and the order that is sent.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import TopUpPage, { formatPrice, isScanCode, parsePrice } from './TopUp';
import { qrPath } from './QrCode';

afterEach(() => vi.unstubAllGlobals());

const options = {
  enabled: true,
  currency: 'CNY',
  amounts: [1000, 5000],
  min_amount: 100,
  max_amount: 100000,
  quota_per_unit: 50000,
  providers: [{ provider: 'epay', methods: ['alipay', 'wxpay'] }],
};

function serve(opts: unknown, orders: unknown[] = [], sent: unknown[] = []) {
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    if (url.startsWith('/api/v1/billing/payment/options')) return new Response(JSON.stringify(opts), { status: 200 });
    if (url.startsWith('/api/v1/billing/quota')) {
      return new Response(JSON.stringify({ balance: 0, reserved: 0, available: 0, used: 0, quota_per_usd: 500000, balance_usd: 0, balance_cny: 0 }), { status: 200 });
    }
    if (url.startsWith('/api/v1/billing/orders') && init.method === 'POST') {
      sent.push(JSON.parse(String(init.body)));
      return new Response(JSON.stringify({ message: 'provider down' }), { status: 503 });
    }
    return new Response(JSON.stringify({ items: orders, total: orders.length, page: 1, per_page: 10 }), { status: 200 });
  });
}

function page(path = '/billing/topup') {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <TopUpPage />
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

describe('amounts', () => {
  it('reads what people type and refuses the rest', () => {
    expect(parsePrice('12')).toBe(1200);
    expect(parsePrice('12.5')).toBe(1250);
    expect(parsePrice(' 12.05 ')).toBe(1205);
    expect(parsePrice('12.345')).toBeNull();
    expect(parsePrice('-1')).toBeNull();
    expect(parsePrice('abc')).toBeNull();
    expect(formatPrice(1205, 'CNY')).toBe('¥12.05');
    expect(formatPrice(99, 'USD')).toBe('$0.99');
  });
});

describe('top-up page', () => {
  it('shows what an amount buys and sends the order in minor units', async () => {
    const sent: unknown[] = [];
    serve(options, [], sent);
    page();
    fireEvent.click(await screen.findByRole('button', { name: '¥50.00' }));
    // 50 yuan × 50,000 units = 2,500,000 units = $5.00.
    expect(screen.getByTestId('topup-buys').textContent).toContain('$5.00');
    fireEvent.click(screen.getByLabelText('WeChat Pay'));
    fireEvent.click(screen.getByRole('button', { name: 'Pay ¥50.00' }));
    await waitFor(() => expect(sent).toEqual([{ amount: 5000, provider: 'epay', method: 'wxpay' }]));
  });

  it('refuses amounts out of range before sending', async () => {
    serve(options);
    page();
    fireEvent.change(await screen.findByPlaceholderText('10.00'), { target: { value: '0.50' } });
    expect(screen.getByText('This amount is outside the allowed range.')).toBeTruthy();
    expect((screen.getByRole('button', { name: /^Pay/ }) as HTMLButtonElement).disabled).toBe(true);
  });

  it('says where to go when top-up is off', async () => {
    serve({ enabled: false, amounts: [], min_amount: 0, max_amount: 0, quota_per_unit: 0, providers: [] });
    page();
    expect(await screen.findByText(/Online top-up is not enabled/)).toBeTruthy();
    expect(screen.getByRole('link', { name: 'Redeem a code' }).getAttribute('href')).toBe('/usage');
  });

  it('confirms a paid order the payer came back with', async () => {
    vi.stubGlobal('fetch', async (url: string) => {
      if (url.startsWith('/api/v1/billing/orders/o1')) {
        return new Response(JSON.stringify({ id: 'o1', user_id: 'u', provider: 'epay', method: 'alipay', currency: 'CNY', amount_minor: 1000, amount: '10.00', quota: 500000, status: 'paid', created_at: '2026-12-04T00:00:00Z' }), { status: 200 });
      }
      if (url.startsWith('/api/v1/billing/payment/options')) return new Response(JSON.stringify(options), { status: 200 });
      if (url.startsWith('/api/v1/billing/quota')) return new Response(JSON.stringify({ balance: 500000, reserved: 0, available: 500000, used: 0, quota_per_usd: 500000 }), { status: 200 });
      return new Response(JSON.stringify({ items: [], total: 0, page: 1, per_page: 10 }), { status: 200 });
    });
    page('/billing/topup?order=o1');
    expect(await screen.findByText('Paid ¥10.00: $1.00 was added to your balance.')).toBeTruthy();
  });
});

describe('coupons and WeChat Pay', () => {
  it('quotes a coupon, pays the discounted amount, and shows a code to scan', async () => {
    const sent: unknown[] = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      if (url.startsWith('/api/v1/billing/payment/options')) {
        return new Response(JSON.stringify({ ...options, providers: [{ provider: 'wechat', methods: ['native'] }] }), { status: 200 });
      }
      if (url.startsWith('/api/v1/billing/quota')) return new Response(JSON.stringify({ balance: 0, reserved: 0, available: 0, used: 0, quota_per_usd: 500000 }), { status: 200 });
      if (url.startsWith('/api/v1/billing/coupons/quote')) {
        const body = JSON.parse(String(init.body));
        return new Response(JSON.stringify({ code: 'SPRING20', kind: 'percent', percent_off: 20, amount: body.amount, discount: 1000, pay_amount: body.amount - 1000 }), { status: 200 });
      }
      if (url.startsWith('/api/v1/billing/orders') && init.method === 'POST') {
        sent.push(JSON.parse(String(init.body)));
        const order = { id: 'o2', user_id: 'u', provider: 'wechat', method: 'native', currency: 'CNY', amount_minor: 4000, discount_minor: 1000, amount: '40.00', quota: 2500000, status: 'pending', created_at: '2026-12-04T00:00:00Z' };
        return new Response(JSON.stringify({ order, pay_url: 'weixin://wxpay/bizpayurl?pr=abc123' }), { status: 201 });
      }
      if (url.startsWith('/api/v1/billing/orders/o2')) {
        return new Response(JSON.stringify({ id: 'o2', user_id: 'u', provider: 'wechat', method: 'native', currency: 'CNY', amount_minor: 4000, discount_minor: 1000, amount: '40.00', quota: 2500000, status: 'pending', created_at: '2026-12-04T00:00:00Z' }), { status: 200 });
      }
      return new Response(JSON.stringify({ items: [], total: 0, page: 1, per_page: 10 }), { status: 200 });
    });
    page();
    fireEvent.click(await screen.findByRole('button', { name: '¥50.00' }));
    fireEvent.change(screen.getByPlaceholderText('SPRING20'), { target: { value: 'spring20' } });
    fireEvent.click(screen.getByRole('button', { name: 'Apply' }));
    expect((await screen.findByTestId('topup-discount')).textContent).toBe('¥10.00 off: you pay ¥40.00.');
    fireEvent.click(screen.getByRole('button', { name: 'Pay ¥40.00' }));
    await waitFor(() => expect(sent).toEqual([{ amount: 5000, provider: 'wechat', method: 'native', coupon: 'spring20' }]));
    expect(await screen.findByTestId('pay-qr')).toBeTruthy();
    expect(screen.getByText(/Waiting for the payment/)).toBeTruthy();
  });

  it('knows a code to scan from a page to open, and draws it', () => {
    expect(isScanCode('weixin://wxpay/bizpayurl?pr=abc')).toBe(true);
    expect(isScanCode('https://openapi.alipay.com/gateway.do?x=1')).toBe(false);
    const { size, d } = qrPath('weixin://wxpay/bizpayurl?pr=abc');
    // Version 3 (29 modules) at error correction M, plus a border of two on each side.
    expect(size).toBe(33);
    expect(d.startsWith('M2 2h1v1h-1z')).toBe(true);
  });
});
