// Uploaded avatars and an assistant's bound tools: what the editor sends after an upload, how
// avatars show, and that the composer's tool list shows bound plugins as on and says why.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter } from 'react-router-dom';
import { AgentAvatar } from './AgentAvatar';
import { AvatarField } from './AvatarField';
import { isFileAvatar } from './logic';
import { isOn, ToolToggles } from '../chat/ToolToggles';
import { setLang } from '../../lib/settings';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  setLang('en');
});

/** An XMLHttpRequest that answers the upload with a stored file `f-9`, recording the URL. */
class FakeXhr {
  static opened: string[] = [];
  status = 0;
  responseText = '';
  upload: { onprogress: ((e: ProgressEvent) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  open(_method: string, url: string) {
    FakeXhr.opened.push(url);
  }
  setRequestHeader() {}
  getResponseHeader() {
    return 'application/json';
  }
  send() {
    this.status = 201;
    this.responseText = JSON.stringify({ id: 'f-9', name: 'face.png', size: 3, content_type: 'image/png', purpose: 'agent' });
    setTimeout(() => this.onload?.(), 0);
  }
}

describe('assistant avatars', () => {
  it('an uploaded avatar shows its signed URL, never its file: name', () => {
    expect(isFileAvatar('file:f-1')).toBe(true);
    expect(isFileAvatar('🌐')).toBe(false);
    const { container, rerender } = render(<AgentAvatar avatar="file:f-1" name="Helper" url="/api/v1/files/f-1/content?sig=x" />);
    expect(container.querySelector('img')?.getAttribute('src')).toBe('/api/v1/files/f-1/content?sig=x');
    rerender(<AgentAvatar avatar="file:f-1" name="Helper" url={null} />);
    expect(container.querySelector('img')).toBeNull();
    expect(container.textContent).toBe('H');
  });

  it('uploading an image sets the avatar to the stored file', async () => {
    FakeXhr.opened = [];
    vi.stubGlobal('XMLHttpRequest', FakeXhr);
    vi.stubGlobal('URL', Object.assign(URL, { createObjectURL: () => 'blob:local', revokeObjectURL: () => undefined }));
    const onChange = vi.fn();
    render(<AvatarField value="🤖" name="Helper" onChange={onChange} />);
    const file = new File([new Uint8Array([1, 2, 3])], 'face.png', { type: 'image/png' });
    fireEvent.change(screen.getByTestId('agent-avatar-file'), { target: { files: [file] } });
    await waitFor(() => expect(onChange).toHaveBeenCalledWith('file:f-9'));
    expect(FakeXhr.opened).toEqual(['/api/v1/files?purpose=agent']);
  });

  it('a file avatar offers removal instead of the text box', () => {
    const onChange = vi.fn();
    render(<AvatarField value="file:f-9" name="Helper" savedUrl="/signed" onChange={onChange} />);
    expect(screen.queryByRole('textbox')).toBeNull();
    fireEvent.click(screen.getByRole('button', { name: 'Remove image' }));
    expect(onChange).toHaveBeenCalledWith('');
  });
});

describe('bound tools in the composer', () => {
  it('a plugin the assistant binds is on unless switched off, and says it comes from the assistant', async () => {
    expect(isOn({ id: 'p1', enabled: false }, [], ['p1'])).toBe(true);
    expect(isOn({ id: 'p1', enabled: false }, [{ plugin_id: 'p1', enabled: false }], ['p1'])).toBe(false);
    expect(isOn({ id: 'p1', enabled: false }, [])).toBe(false);
    vi.stubGlobal('fetch', async (url: string) => {
      const path = url.split('?')[0];
      if (path === '/api/v1/plugins') {
        return new Response(JSON.stringify({ items: [
          { id: 'p1', name: 'Directory', enabled: false, available: true },
          { id: 'p2', name: 'Weather', enabled: false, available: true },
        ] }), { status: 200 });
      }
      if (path === '/api/v1/plugins/conversations/c1') return new Response(JSON.stringify({ items: [] }), { status: 200 });
      return new Response('{}', { status: 404 });
    });
    const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
    render(
      <MemoryRouter>
        <QueryClientProvider client={client}>
          <ToolToggles conversationId="c1" bound={['p1']} />
        </QueryClientProvider>
      </MemoryRouter>,
    );
    fireEvent.click(screen.getByTestId('tool-toggles'));
    const bound = (await screen.findByTestId('toggle-p1')) as HTMLInputElement;
    expect(bound.checked).toBe(true);
    expect((screen.getByTestId('toggle-p2') as HTMLInputElement).checked).toBe(false);
    expect(screen.getByTestId('bound-p1').textContent).toBe('From the assistant');
    expect(screen.queryByTestId('bound-p2')).toBeNull();
  });
});
