// Knowledge citations open their document through the server's signed link (a reader of a
// shared base does not own the file), and say so when it cannot be opened.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { Sources } from './MessageItem';
import type { Citation } from '../../lib/types';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
});

const cited: Citation = { source: 'knowledge', label: '1', title: 'handbook.pdf', excerpt: 'Leave is 25 days.', reference: { base_id: 'b1', document_id: 'd1', file_id: 'f1', pages: [3, 3] } };

describe('sources', () => {
  it('opens a cited document through its signed link', async () => {
    const asked: string[] = [];
    vi.stubGlobal('fetch', async (url: string) => {
      asked.push(url);
      return new Response(JSON.stringify({ url: '/api/v1/files/f1/content?exp=1&sig=s', name: 'handbook.pdf', content_type: 'application/pdf' }), { status: 200 });
    });
    const tab = { opener: {}, location: { href: '' }, close: vi.fn() };
    vi.spyOn(window, 'open').mockReturnValue(tab as unknown as Window);
    render(<Sources sources={[cited, { source: 'web', label: '2', title: 'A page', excerpt: '…' }]} />);
    const open = screen.getAllByTestId('source-open');
    expect(open).toHaveLength(1);
    fireEvent.click(open[0]);
    await waitFor(() => expect(tab.location.href).toBe('/api/v1/files/f1/content?exp=1&sig=s'));
    expect(tab.opener).toBeNull();
    expect(asked[0]).toBe('/api/v1/knowledge/bases/b1/documents/d1/file');
  });

  it('says when the document cannot be opened (no longer shared)', async () => {
    vi.stubGlobal('fetch', async () => new Response(JSON.stringify({ error: { code: 'not_found', message: 'x' } }), { status: 404 }));
    const tab = { opener: {}, location: { href: '' }, close: vi.fn() };
    vi.spyOn(window, 'open').mockReturnValue(tab as unknown as Window);
    render(<Sources sources={[cited]} />);
    fireEvent.click(screen.getByTestId('source-open'));
    await screen.findByText('Not available');
    expect(tab.close).toHaveBeenCalled();
    expect(tab.location.href).toBe('');
  });
});
