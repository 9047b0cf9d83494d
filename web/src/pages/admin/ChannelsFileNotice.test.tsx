// Admin → Channels: the notice of a channels file kept applied, its last changes and a refused
// content; nothing when no file is set; in Chinese too.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { render, screen } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { ChannelsFileNotice } from './ChannelsFileNotice';
import { setLang } from '../../lib/settings';

afterEach(() => {
  vi.unstubAllGlobals();
  setLang('en');
});

function show(body: unknown) {
  vi.stubGlobal('fetch', async () => new Response(JSON.stringify(body), { status: 200 }));
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <ChannelsFileNotice />
    </QueryClientProvider>,
  );
}

const applied = {
  path: '/etc/skein/channels.yaml',
  prune: false,
  checked_at: '2026-12-05T10:00:00Z',
  applied_at: '2026-12-05T09:00:00Z',
  changes: ['+ channel deepseek', '~ price gpt-4o (input_per_mtok)'],
  error: null,
};

describe('channels file notice', () => {
  it('says the channels follow the file, with its last changes', async () => {
    show(applied);
    const notice = await screen.findByTestId('channels-file');
    expect(notice.textContent).toContain('/etc/skein/channels.yaml');
    expect(notice.textContent).toContain('+ channel deepseek · ~ price gpt-4o (input_per_mtok)');
    expect(notice.textContent).not.toContain('refused');
  });

  it('shows why the current content was refused', async () => {
    show({ ...applied, changes: [], error: 'The channels file is not valid: bad indentation' });
    const notice = await screen.findByTestId('channels-file');
    expect(notice.textContent).toContain('bad indentation');
  });

  it('shows nothing without a file', async () => {
    const { container } = show({ path: null, prune: false, checked_at: null, applied_at: null, changes: [], error: null });
    await new Promise((r) => setTimeout(r, 50));
    expect(container.textContent).toBe('');
  });

  it('in Chinese too', async () => {
    setLang('zh-CN');
    show(applied);
    const notice = await screen.findByTestId('channels-file');
    expect(notice.textContent).toContain('由文件 /etc/skein/channels.yaml 管理');
  });
});
