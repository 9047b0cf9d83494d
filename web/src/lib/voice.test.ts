import { afterEach, describe, expect, it, vi } from 'vitest';
import { insertAtCursor, languageFor, pickMimeType, recordingName, transcribe, transcriptionForm } from './voice';
import { acceptTokens, clearSession } from './auth';
import { ApiError } from './api';

afterEach(() => {
  vi.unstubAllGlobals();
  clearSession();
});

describe('recording format', () => {
  it('prefers webm/opus, then ogg, then mp4', () => {
    expect(pickMimeType(() => true)).toBe('audio/webm;codecs=opus');
    expect(pickMimeType((t) => t.startsWith('audio/ogg'))).toBe('audio/ogg;codecs=opus');
    expect(pickMimeType((t) => t === 'audio/mp4')).toBe('audio/mp4');
    expect(pickMimeType(() => false)).toBe('');
  });

  it('names the file after its type, which the server checks', () => {
    expect(recordingName('audio/webm;codecs=opus')).toBe('recording.webm');
    expect(recordingName('audio/ogg')).toBe('recording.ogg');
    expect(recordingName('audio/mp4')).toBe('recording.m4a');
    expect(recordingName('audio/wav')).toBe('recording.wav');
  });

  it('asks for the UI language', () => {
    expect(languageFor('zh-CN')).toBe('zh');
    expect(languageFor('en')).toBe('en');
  });
});

describe('transcription request', () => {
  it('builds the multipart form: file and language', async () => {
    const form = transcriptionForm(new Blob([new Uint8Array(5)], { type: 'audio/webm;codecs=opus' }), 'zh-CN');
    const file = form.get('file') as File;
    expect(file.name).toBe('recording.webm');
    expect(file.type).toBe('audio/webm');
    expect(file.size).toBe(5);
    expect(form.get('language')).toBe('zh');
  });

  it('posts the form as multipart (no JSON content type) with the token and answers the text', async () => {
    acceptTokens({ access_token: 'acc', refresh_token: 'ref', token_type: 'Bearer', expires_in: 900 });
    const fetch = vi.fn(async () => new Response(JSON.stringify({ text: ' hello world ' }), { status: 200 }));
    vi.stubGlobal('fetch', fetch);
    const text = await transcribe(new Blob(['abc'], { type: 'audio/ogg' }), 'en');
    expect(text).toBe('hello world');
    const [url, init] = fetch.mock.calls[0] as unknown as [string, RequestInit];
    expect(url).toBe('/api/v1/chat/transcriptions');
    expect(init.method).toBe('POST');
    expect(init.body).toBeInstanceOf(FormData);
    const headers = init.headers as Record<string, string>;
    expect(headers['content-type']).toBeUndefined();
    expect(headers.authorization).toBe('Bearer acc');
    expect(((init.body as FormData).get('file') as File).name).toBe('recording.ogg');
    expect((init.body as FormData).get('language')).toBe('en');
  });

  it('turns a 415 into an ApiError with the request id', async () => {
    vi.stubGlobal('fetch', async () =>
      new Response(JSON.stringify({ error: { code: 'unsupported_audio', message: 'Record as webm, ogg, wav or mp3.' }, request_id: 'req-1' }), { status: 415 }),
    );
    const e = await transcribe(new Blob(['x'], { type: 'audio/webm' }), 'en').catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 415, code: 'unsupported_audio', requestId: 'req-1' });
  });
});

describe('insertAtCursor', () => {
  it('puts the text at the cursor with spaces between words and moves the cursor after it', () => {
    expect(insertAtCursor('', 'hello', 0)).toEqual({ value: 'hello', caret: 5 });
    expect(insertAtCursor('say now', 'hello', 3)).toEqual({ value: 'say hello now', caret: 9 });
    expect(insertAtCursor('say ', 'hello', 4)).toEqual({ value: 'say hello', caret: 9 });
    expect(insertAtCursor('a XX b', 'hi', 2, 4)).toEqual({ value: 'a hi b', caret: 4 });
    expect(insertAtCursor('abc', 'x', 99)).toEqual({ value: 'abc x', caret: 5 });
  });
});
