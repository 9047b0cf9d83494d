// The composer's media: images attached (sent as `images`, shown as thumbnails) and voice
// input (recorded, sent as multipart to /chat/transcriptions, the text put at the cursor).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { ChatPage } from './ChatPage';
import { acceptTokens, clearSession } from '../../lib/auth';
import { setLang } from '../../lib/settings';

interface Call {
  method: string;
  path: string;
  body: unknown;
}

let calls: Call[];
let routes: Record<string, (body: unknown) => Response | Promise<Response>>;

const json = (data: unknown, status = 200) => new Response(JSON.stringify(data), { status, headers: { 'content-type': 'application/json' } });

const conversation = {
  id: 'c1',
  title: 'Media chat',
  pinned: false,
  archived: false,
  deleted_at: null,
  model: 'gpt-test',
  system_prompt: null,
  temperature: null,
  top_p: null,
  max_tokens: null,
  history_limit: null,
  active_leaf_id: null,
  created_at: '2026-11-26T00:00:00Z',
  updated_at: '2026-11-26T00:00:00Z',
};

class FakeRecorder {
  static isTypeSupported = (t: string) => t === 'audio/webm;codecs=opus';
  state = 'inactive';
  mimeType: string;
  ondataavailable: ((e: { data: Blob }) => void) | null = null;
  onstop: (() => void) | null = null;
  constructor(
    readonly stream: MediaStream,
    opts?: { mimeType?: string },
  ) {
    this.mimeType = opts?.mimeType ?? 'audio/webm';
  }
  start() {
    this.state = 'recording';
  }
  stop() {
    this.state = 'inactive';
    this.ondataavailable?.({ data: new Blob([new Uint8Array(12)], { type: this.mimeType }) });
    this.onstop?.();
  }
}

let getUserMedia: ReturnType<typeof vi.fn>;

beforeEach(() => {
  calls = [];
  acceptTokens({ access_token: 'acc', refresh_token: 'ref', token_type: 'Bearer', expires_in: 900 });
  routes = {
    'GET /api/v1/chat/models': () => json([{ id: 'gpt-test', context_window: 8000, input_price: 500000, output_price: 1000000 }]),
    'GET /api/v1/chat/conversations': () => json({ items: [], next_cursor: null }),
    'GET /api/v1/chat/conversations/c1': () => json(conversation),
    'GET /api/v1/chat/conversations/c1/messages': () => json({ conversation_id: 'c1', active_leaf_id: null, messages: [] }),
  };
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const path = url.split('?')[0];
    const method = init.method ?? 'GET';
    const body = init.body instanceof FormData ? init.body : init.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, path, body });
    const route = routes[`${method} ${path}`];
    if (!route) return json({ error: { code: 'not_found', message: `no route ${method} ${path}` }, request_id: 'r' }, 404);
    return route(body);
  });
  getUserMedia = vi.fn(async () => ({ getTracks: () => [{ stop: vi.fn() }] }));
  vi.stubGlobal('MediaRecorder', FakeRecorder);
  Object.defineProperty(navigator, 'mediaDevices', { value: { getUserMedia }, configurable: true });
});

afterEach(() => {
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
  Object.defineProperty(navigator, 'mediaDevices', { value: undefined, configurable: true });
  clearSession();
  setLang('en');
});

function renderChat() {
  const client = new QueryClient({ defaultOptions: { queries: { retry: false } } });
  return render(
    <QueryClientProvider client={client}>
      <MemoryRouter initialEntries={['/chat/c1']}>
        <Routes>
          <Route path="/chat/:id" element={<ChatPage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  );
}

const composer = () => screen.getByRole('textbox', { name: 'Send' }) as HTMLTextAreaElement;

describe('voice input', () => {
  it('records, posts the recording as multipart with the UI language, and inserts the text at the cursor', async () => {
    routes['POST /api/v1/chat/transcriptions'] = () => json({ text: 'brave new' });
    renderChat();
    await screen.findByText('Start a conversation');
    fireEvent.change(composer(), { target: { value: 'hello world' } });
    composer().setSelectionRange(6, 6);
    fireEvent.click(screen.getByRole('button', { name: 'Voice input' }));
    const stop = await screen.findByRole('button', { name: 'Stop recording' });
    expect(screen.getByTestId('voice-elapsed').textContent).toBe('0:00');
    expect(getUserMedia).toHaveBeenCalledWith({ audio: true });
    fireEvent.click(stop);
    await waitFor(() => expect(composer().value).toBe('hello brave new world'));
    const call = calls.find((c) => c.path === '/api/v1/chat/transcriptions')!;
    expect(call.method).toBe('POST');
    const form = call.body as FormData;
    expect((form.get('file') as File).name).toBe('recording.webm');
    expect((form.get('file') as File).size).toBe(12);
    expect(form.get('language')).toBe('en');
    // Not sent by itself.
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/v1/chat/conversations/c1/messages')).toBe(false);
  });

  it('shows a server error in the UI language with its request id', async () => {
    setLang('zh-CN');
    routes['POST /api/v1/chat/transcriptions'] = () => json({ error: { code: 'unsupported_audio', message: '请使用 webm、ogg、wav 或 mp3 格式的录音。' }, request_id: 'req-415' }, 415);
    renderChat();
    fireEvent.click(await screen.findByRole('button', { name: '语音输入' }));
    fireEvent.click(await screen.findByRole('button', { name: '停止录音' }));
    const alert = await screen.findByTestId('composer-error');
    expect(alert.textContent).toContain('此浏览器的录音格式服务器不支持');
    expect(alert.textContent).toContain('req-415');
    expect((calls.find((c) => c.path === '/api/v1/chat/transcriptions')!.body as FormData).get('language')).toBe('zh');
  });

  it('says so when the microphone is refused', async () => {
    getUserMedia.mockRejectedValue(Object.assign(new Error('denied'), { name: 'NotAllowedError' }));
    renderChat();
    fireEvent.click(await screen.findByRole('button', { name: 'Voice input' }));
    expect((await screen.findByTestId('composer-error')).textContent).toMatch(/Microphone access was refused/);
  });

  it('is hidden when the browser cannot record', async () => {
    Object.defineProperty(navigator, 'mediaDevices', { value: undefined, configurable: true });
    renderChat();
    await screen.findByText('Start a conversation');
    expect(screen.queryByRole('button', { name: 'Voice input' })).toBeNull();
  });
});

describe('image attach', () => {
  it('attaches an image, shows its thumbnail, sends it as images and shows it in the thread', async () => {
    vi.stubGlobal(
      'Image',
      class {
        naturalWidth = 10;
        naturalHeight = 10;
        onload: (() => void) | null = null;
        set src(_: string) {
          setTimeout(() => this.onload?.(), 0);
        }
      },
    );
    let sent: unknown;
    routes['POST /api/v1/chat/conversations/c1/messages'] = (body) => {
      sent = body;
      return new Response('', { status: 500 });
    };
    renderChat();
    await screen.findByText('Start a conversation');
    const input = screen.getByTestId('image-input') as HTMLInputElement;
    const file = new File([new Uint8Array([1, 2, 3])], 'dot.png', { type: 'image/png' });
    fireEvent.change(input, { target: { files: [file] } });
    const thumbs = await screen.findByTestId('attached-images');
    expect(within(thumbs).getByRole('img').getAttribute('src')).toBe('data:image/png;base64,AQID');
    // A non-image is refused with a message; the image stays.
    fireEvent.change(input, { target: { files: [new File(['x'], 'a.txt', { type: 'text/plain' })] } });
    expect((await screen.findByTestId('composer-error')).textContent).toMatch(/Only PNG, JPEG, WebP or GIF/);
    expect(within(screen.getByTestId('attached-images')).getAllByRole('img')).toHaveLength(1);
    // Sending with no text is allowed when there is an image.
    fireEvent.keyDown(composer(), { key: 'Enter' });
    await waitFor(() => expect(sent).toEqual({ content: '', model: 'gpt-test', images: ['data:image/png;base64,AQID'] }));
    // The send failed before the answer started: the image comes back to the composer.
    await waitFor(() => expect(within(screen.getByTestId('attached-images')).getAllByRole('img')).toHaveLength(1));
  });

  it('uploads an attached image as a chat file and sends its id', async () => {
    vi.stubGlobal(
      'Image',
      class {
        naturalWidth = 10;
        naturalHeight = 10;
        onload: (() => void) | null = null;
        set src(_: string) {
          setTimeout(() => this.onload?.(), 0);
        }
      },
    );
    let form: FormData | null = null;
    routes['POST /api/v1/files'] = (body) => {
      form = body as FormData;
      return json({ id: 'f-1' }, 201);
    };
    let sent: unknown;
    routes['POST /api/v1/chat/conversations/c1/messages'] = (body) => {
      sent = body;
      return new Response('', { status: 500 });
    };
    renderChat();
    await screen.findByText('Start a conversation');
    const input = screen.getByTestId('image-input') as HTMLInputElement;
    fireEvent.change(input, { target: { files: [new File([new Uint8Array([9, 8, 7])], 'cat.png', { type: 'image/png' })] } });
    await screen.findByTestId('attached-images');
    await waitFor(() => expect(form).not.toBeNull());
    expect(form!.get('purpose')).toBe('chat');
    expect((form!.get('file') as File).size).toBe(3);
    fireEvent.keyDown(composer(), { key: 'Enter' });
    await waitFor(() => expect(sent).toEqual({ content: '', model: 'gpt-test', images: ['file:f-1'] }));
    expect(calls.filter((c) => c.method === 'POST' && c.path === '/api/v1/files')).toHaveLength(1);
  });

  it('attaches a pasted or dropped image, and refuses a fifth', async () => {
    vi.stubGlobal(
      'Image',
      class {
        naturalWidth = 10;
        naturalHeight = 10;
        onload: (() => void) | null = null;
        set src(_: string) {
          setTimeout(() => this.onload?.(), 0);
        }
      },
    );
    renderChat();
    await screen.findByText('Start a conversation');
    const img = (n: number) => new File([new Uint8Array([n])], `${n}.png`, { type: 'image/png' });
    fireEvent.paste(composer(), { clipboardData: { files: [img(1)] } });
    await waitFor(() => expect(within(screen.getByTestId('attached-images')).getAllByRole('img')).toHaveLength(1));
    const form = composer().closest('form')!;
    fireEvent.drop(form, { dataTransfer: { files: [img(2), img(3), img(4), img(5)], types: ['Files'] } });
    expect((await screen.findByTestId('composer-error')).textContent).toBe('At most 4 images per message.');
    expect(within(screen.getByTestId('attached-images')).getAllByRole('img')).toHaveLength(4);
    expect(screen.getByRole('button', { name: 'Attach images' })).toHaveProperty('disabled', true);
  });

  it('removes an attached image', async () => {
    vi.stubGlobal(
      'Image',
      class {
        naturalWidth = 10;
        naturalHeight = 10;
        onload: (() => void) | null = null;
        set src(_: string) {
          setTimeout(() => this.onload?.(), 0);
        }
      },
    );
    renderChat();
    await screen.findByText('Start a conversation');
    fireEvent.change(screen.getByTestId('image-input'), { target: { files: [new File([new Uint8Array([1])], 'a.png', { type: 'image/png' })] } });
    fireEvent.click(await screen.findByRole('button', { name: 'Remove image 1' }));
    expect(screen.queryByTestId('attached-images')).toBeNull();
  });

  it('shows only data: and https: images of a message', async () => {
    const user = {
      id: 'u1', parent_id: null, role: 'user', content: 'look', reasoning: null, status: 'done', model: null, error: null,
      images: ['data:image/png;base64,AQID', 'javascript:alert(1)', 'https://example.com/a.png'],
      sibling_ids: ['u1'], sibling_index: 0, sibling_count: 1, usage: null, created_at: '2026-11-26T00:00:00Z',
    };
    routes['GET /api/v1/chat/conversations/c1/messages'] = () => json({ conversation_id: 'c1', active_leaf_id: 'u1', messages: [user] });
    renderChat();
    const shown = await screen.findByTestId('message-images');
    expect(within(shown).getAllByRole('img').map((i) => i.getAttribute('src'))).toEqual(['data:image/png;base64,AQID', 'https://example.com/a.png']);
    fireEvent.click(within(shown).getByRole('button', { name: 'Open image 1' }));
    expect((await screen.findByRole('dialog')).querySelector('img')!.getAttribute('src')).toBe('data:image/png;base64,AQID');
  });

  it('shows a stored image by its signed URL, never the file reference or a foreign path', async () => {
    const user = {
      id: 'u1', parent_id: null, role: 'user', content: 'look', reasoning: null, status: 'done', model: null, error: null,
      images: ['file:0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee', 'file:x'],
      image_urls: ['/api/v1/files/0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee/content?exp=1800000000&sig=abc_DEF-1', '/etc/passwd'],
      sibling_ids: ['u1'], sibling_index: 0, sibling_count: 1, usage: null, created_at: '2026-11-26T00:00:00Z',
    };
    routes['GET /api/v1/chat/conversations/c1/messages'] = () => json({ conversation_id: 'c1', active_leaf_id: 'u1', messages: [user] });
    renderChat();
    const shown = await screen.findByTestId('message-images');
    expect(within(shown).getAllByRole('img').map((i) => i.getAttribute('src'))).toEqual(['/api/v1/files/0190aaaa-bbbb-7ccc-8ddd-eeeeeeeeeeee/content?exp=1800000000&sig=abc_DEF-1']);
  });
});
