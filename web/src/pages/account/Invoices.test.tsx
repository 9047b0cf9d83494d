// Invoices: which paid orders may still be asked for.
import { describe, expect, it } from 'vitest';
import type { Invoice, PaymentOrder } from '../../lib/types';
import { invoiceable } from './Invoices';

const order = (id: string, status: string) => ({ id, status, amount_minor: 1000, currency: 'CNY' }) as PaymentOrder;
const invoice = (status: string, order_ids: string[]) => ({ status, order_ids }) as Invoice;

describe('invoiceable orders', () => {
  it('are paid and on no live invoice; a rejected invoice frees its orders', () => {
    const orders = [order('a', 'paid'), order('b', 'paid'), order('c', 'pending'), order('d', 'paid')];
    const invoices = [invoice('requested', ['a']), invoice('rejected', ['b']), invoice('issued', ['x'])];
    expect(invoiceable(orders, invoices).map((o) => o.id)).toEqual(['b', 'd']);
  });
});
