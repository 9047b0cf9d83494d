import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { render, screen } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { authStore } from '../../lib/auth';
import { PreviewDialog } from './PreviewDialog';
import type { FileItem } from './types';

const file = { id: 'f1', name: 'notes.txt', size: 10, content_type: 'text/plain', purpose: 'chat', created_at: '2026-01-01T00:00:00Z', content_url: '/api/v1/files/f1/content' } as unknown as FileItem;

let seen: { url: string; auth: string | null }[];

function serve(answers: Record<string, () => Response>) {
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    seen.push({ url, auth: ((init.headers ?? {}) as Record<string, string>).authorization ?? null });
    const answer = answers[url];
    return answer ? answer() : new Response('{}', { status: 404 });
  });
}

function show() {
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <PreviewDialog file={file} onClose={() => undefined} onDownload={() => undefined} />
    </QueryClientProvider>,
  );
}

const json = (v: unknown, status = 200) => () => new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });

beforeEach(() => {
  seen = [];
  authStore.set({ accessToken: 'tok', user: null, reason: null });
});

afterEach(() => {
  vi.unstubAllGlobals();
  authStore.set({ accessToken: null, user: null, reason: null });
});

describe('file previews', () => {
  it('shows a text or document preview and says when it was cut', async () => {
    serve({ '/api/v1/files/f1/preview': json({ kind: 'document', content_type: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', text: 'Supplies\n\nItem | Qty', truncated: true }) });
    show();
    expect((await screen.findByTestId('preview-text')).textContent).toBe('Supplies\n\nItem | Qty');
    expect(screen.getByText(/Only the beginning is shown/)).toBeTruthy();
  });

  it('loads an image preview with the bearer token and shows it from memory', async () => {
    vi.stubGlobal('URL', Object.assign(URL, { createObjectURL: () => 'blob:preview', revokeObjectURL: () => undefined }));
    serve({
      '/api/v1/files/f1/preview': json({ kind: 'image', content_type: 'image/png', image_url: '/api/v1/files/f1/content?variant=web', truncated: false }),
      '/api/v1/files/f1/content?variant=web': () => new Response(new Uint8Array([1, 2, 3]), { status: 200, headers: { 'content-type': 'image/jpeg' } }),
    });
    show();
    const img = (await screen.findByRole('img')) as HTMLImageElement;
    expect(img.getAttribute('src')).toBe('blob:preview');
    expect(seen.find((s) => s.url.includes('variant=web'))?.auth).toBe('Bearer tok');
  });

  it('says a type has no preview', async () => {
    serve({ '/api/v1/files/f1/preview': json({ error: { code: 'no_preview', message: 'x' } }, 422) });
    show();
    expect(await screen.findByText('This type of file has no preview; download it instead.')).toBeTruthy();
  });
});
