import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { authStore } from '../../lib/auth';
import { ApiError } from '../../lib/api';
import { SESSION_THRESHOLD, SessionUpload, createUpload, formatBytes, isCancel, uploadFile, usedPercent } from './upload';

describe('file sizes and quota', () => {
  it('reads bytes as people do', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(5 * 1024 * 1024)).toBe('5.0 MB');
    expect(formatBytes(300 * 1024 * 1024)).toBe('300 MB');
  });
  it('caps the bar at 100% and survives a zero quota', () => {
    expect(usedPercent(50, 200)).toBe(25);
    expect(usedPercent(300, 200)).toBe(100);
    expect(usedPercent(1, 0)).toBe(100);
  });
});

const MIB = 1024 * 1024;
const PART = 4 * MIB;

/** What one request looked like. */
interface Seen {
  method: string;
  path: string;
  auth: string | null;
  bytes?: number;
  first?: number;
}

/** A jsdom Blob's bytes (jsdom's Blob is not the one Node's Response reads). */
function bytesOf(body: unknown): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(new Uint8Array(reader.result as ArrayBuffer));
    reader.onerror = () => reject(reader.error);
    reader.readAsArrayBuffer(body as Blob);
  });
}

/**
 * A stand-in for the File service's upload routes, behind both `fetch` (the JSON calls) and
 * `XMLHttpRequest` (the bodies, for progress): it keeps sessions and their parts like the
 * server does, and can be told to drop the connection on given parts.
 */
class FakeServer {
  seen: Seen[] = [];
  sessions = new Map<string, { name: string; purpose: string; size: number; parts: Map<number, Uint8Array> }>();
  /** Part number → how many more times its PUT fails as a dropped connection. */
  failPart = new Map<number, number>();
  /** A part whose PUT never answers (until aborted). */
  hangPart: number | null = null;
  direct = false;
  /** Completing answers this refusal (the quota, the purpose's type limit). */
  refuse: number | null = null;
  stored: Uint8Array | null = null;

  partCount(size: number) {
    return Math.ceil(size / PART);
  }

  view(id: string, withParts: boolean) {
    const s = this.sessions.get(id)!;
    return {
      id,
      name: s.name,
      purpose: s.purpose,
      size: s.size,
      part_size: PART,
      part_count: this.partCount(s.size),
      state: 'open',
      direct: this.direct,
      created_at: '2026-01-01T00:00:00Z',
      expires_at: '2026-01-02T00:00:00Z',
      ...(withParts ? { parts: [...s.parts].map(([number, b]) => ({ number, size: b.length, complete: true })) } : {}),
    };
  }

  file(name: string, size: number) {
    return { id: 'f1', name, size, content_type: 'application/octet-stream', purpose: 'chat', created_at: '2026-01-01T00:00:00Z', content_url: '/api/v1/files/f1/content' };
  }

  /** Answers a JSON call or a body upload; `null` is a dropped connection. */
  async handle(method: string, url: string, headers: Record<string, string>, body: unknown): Promise<Response | null> {
    const path = url.replace(/^https?:\/\/[^/]+/, '');
    const seen: Seen = { method, path, auth: headers.authorization ?? null };
    this.seen.push(seen);
    const json = (v: unknown, status = 200) => new Response(JSON.stringify(v), { status, headers: { 'content-type': 'application/json' } });
    if (method === 'POST' && path.startsWith('/api/v1/files?purpose=')) {
      const file = (body as FormData).get('file') as File;
      return json(this.file(file.name, file.size), 201);
    }
    if (method === 'POST' && path === '/api/v1/files/uploads') {
      const input = JSON.parse(body as string) as { name: string; purpose: string; size: number };
      const id = `u${this.sessions.size + 1}`;
      this.sessions.set(id, { name: input.name, purpose: input.purpose, size: input.size, parts: new Map() });
      return json(this.view(id, true), 201);
    }
    let m = path.match(/^\/api\/v1\/files\/uploads\/(\w+)(\/.*)?$/);
    const session = m ? this.sessions.get(m[1]) : undefined;
    if (m && !session) return json({ error: { code: 'not_found', message: 'No such upload.' } }, 404);
    if (m && session) {
      const id = m[1];
      const rest = m[2] ?? '';
      if (method === 'GET' && rest === '') return json(this.view(id, true));
      if (method === 'DELETE' && rest === '') {
        this.sessions.delete(id);
        return new Response(null, { status: 204 });
      }
      if (method === 'POST' && rest === '/part-urls') {
        const { parts } = JSON.parse(body as string) as { parts: number[] };
        return json(
          parts.map((n) =>
            this.direct
              ? { number: n, method: 'PUT', url: `https://bucket.s3.example/${id}/${n}?X-Amz-Signature=x`, headers: {}, direct: true, expires_at: '2999-01-01T00:00:00Z' }
              : { number: n, method: 'PUT', url: `/api/v1/files/uploads/${id}/parts/${n}`, headers: {}, direct: false, expires_at: null },
          ),
        );
      }
      if (method === 'POST' && rest === '/complete') {
        if (this.refuse) return json({ error: { code: 'quota_exceeded', message: 'Over your storage quota.' } }, this.refuse);
        const count = this.partCount(session.size);
        const missing = Array.from({ length: count }, (_, i) => i + 1).filter((n) => !session.parts.has(n));
        if (missing.length) return json({ error: { code: 'upload_incomplete', message: 'Parts are missing.', details: { missing_parts: missing } } }, 409);
        const all = new Uint8Array(session.size);
        for (const [n, b] of session.parts) all.set(b, (n - 1) * PART);
        this.stored = all;
        this.sessions.delete(id);
        return json(this.file(session.name, session.size), 201);
      }
      m = rest.match(/^\/parts\/(\d+)$/);
      if (method === 'PUT' && m) return this.part(session, Number(m[1]), body, seen);
    }
    m = path.match(/^\/(\w+)\/(\d+)\?X-Amz-Signature=x$/);
    if (method === 'PUT' && m && this.direct) return this.part(this.sessions.get(m[1])!, Number(m[2]), body, seen);
    return json({ error: { code: 'not_found', message: `unexpected ${method} ${path}` } }, 404);
  }

  private async part(session: { parts: Map<number, Uint8Array> }, n: number, body: unknown, seen: Seen): Promise<Response | null> {
    const bytes = await bytesOf(body);
    seen.bytes = bytes.length;
    seen.first = bytes[0];
    const fails = this.failPart.get(n) ?? 0;
    if (fails > 0) {
      this.failPart.set(n, fails - 1);
      return null;
    }
    if (this.hangPart === n) return new Promise(() => undefined);
    session.parts.set(n, bytes);
    return new Response(JSON.stringify({ number: n, size: bytes.length, complete: true }), { status: 200, headers: { 'content-type': 'application/json' } });
  }

  /** `METHOD path` of every request, in order, for asserting the sequence. */
  calls() {
    return this.seen.map((s) => `${s.method} ${s.path}`);
  }
}

let server: FakeServer;

/** XMLHttpRequest over the fake server, reporting upload progress once (all bytes sent). */
class FakeXhr {
  status = 0;
  responseText = '';
  upload: { onprogress: ((e: { loaded: number; total: number; lengthComputable: boolean }) => void) | null } = { onprogress: null };
  onload: (() => void) | null = null;
  onerror: (() => void) | null = null;
  ontimeout: (() => void) | null = null;
  onabort: (() => void) | null = null;
  private method = '';
  private url = '';
  private headers: Record<string, string> = {};
  private contentType: string | null = null;
  private done = false;
  open(method: string, url: string) {
    this.method = method;
    this.url = url;
  }
  setRequestHeader(name: string, value: string) {
    this.headers[name.toLowerCase()] = value;
  }
  getResponseHeader(name: string) {
    return name.toLowerCase() === 'content-type' ? this.contentType : null;
  }
  send(body: unknown) {
    void server.handle(this.method, this.url, this.headers, body).then(async (res) => {
      if (this.done) return;
      this.done = true;
      if (!res) return this.onerror?.();
      const size = body instanceof Blob ? body.size : 1;
      this.upload.onprogress?.({ loaded: size, total: size, lengthComputable: true });
      this.status = res.status;
      this.contentType = res.headers.get('content-type');
      this.responseText = await res.text();
      this.onload?.();
    });
  }
  abort() {
    if (this.done) return;
    this.done = true;
    this.onabort?.();
  }
}

/** A file of `size` bytes whose every byte is its part number (so a misplaced part shows). */
function bigFile(size: number, name = 'big.bin') {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = Math.floor(i / PART) + 1;
  return new File([bytes], name, { type: 'application/octet-stream' });
}

beforeEach(() => {
  server = new FakeServer();
  authStore.set({ accessToken: 'tok', user: null, reason: null });
  vi.stubGlobal('XMLHttpRequest', FakeXhr);
  vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
    const res = await server.handle(init.method ?? 'GET', url, (init.headers ?? {}) as Record<string, string>, init.body);
    if (!res) throw new TypeError('Failed to fetch');
    return res;
  });
});

afterEach(() => {
  vi.unstubAllGlobals();
  authStore.set({ accessToken: null, user: null, reason: null });
});

const opts = { retryDelayMs: 0, concurrency: 2 };

describe('large files go through an upload session', () => {
  it('opens a session, sends every part with its own bytes, and completes', async () => {
    const size = 2 * PART + 1234; // three parts, the last short
    expect(size).toBeGreaterThanOrEqual(SESSION_THRESHOLD);
    const progress: number[] = [];
    const file = await createUpload(bigFile(size), 'chat', (f) => progress.push(f), opts).run();

    expect(file.name).toBe('big.bin');
    const calls = server.calls();
    expect(calls[0]).toBe('POST /api/v1/files/uploads');
    expect(calls).not.toContain('POST /api/v1/files?purpose=chat');
    expect(calls.at(-1)).toBe('POST /api/v1/files/uploads/u1/complete');
    const puts = server.seen.filter((s) => s.method === 'PUT').sort((a, b) => a.path.localeCompare(b.path));
    expect(puts.map((p) => [p.path, p.bytes, p.first])).toEqual([
      ['/api/v1/files/uploads/u1/parts/1', PART, 1],
      ['/api/v1/files/uploads/u1/parts/2', PART, 2],
      ['/api/v1/files/uploads/u1/parts/3', 1234, 3],
    ]);
    // This server's part route gets the bearer token.
    expect(puts.every((p) => p.auth === 'Bearer tok')).toBe(true);
    // The stored file is the original, byte for byte.
    expect(server.stored?.length).toBe(size);
    expect(server.stored?.[PART * 2 + 1233]).toBe(3);
    // Progress climbs to 1 and never goes back.
    expect(progress.at(-1)).toBe(1);
    expect(progress.every((p, i) => i === 0 || p >= progress[i - 1])).toBe(true);
  });

  it('keeps small files in one request', async () => {
    await uploadFile(new File([new Uint8Array(1000)], 'small.txt'), 'chat', () => undefined);
    expect(server.calls()).toEqual(['POST /api/v1/files?purpose=chat']);
  });

  it('tries a dropped part again within the run', async () => {
    server.failPart.set(2, 2);
    await createUpload(bigFile(3 * PART), 'chat', () => undefined, { ...opts, attempts: 3 }).run();
    expect(server.calls().filter((c) => c.endsWith('/parts/2'))).toHaveLength(3);
    expect(server.calls().filter((c) => c.endsWith('/parts/1'))).toHaveLength(1);
    expect(server.stored?.length).toBe(3 * PART);
  });

  it('fails resumably when a part keeps failing, then resumes with only the missing parts', async () => {
    server.failPart.set(2, 10);
    const progress: number[] = [];
    const task = createUpload(bigFile(3 * PART), 'chat', (f) => progress.push(f), { ...opts, attempts: 2 });
    const err = await task.run().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(0);
    expect(task.resumable).toBe(true);
    expect(server.calls()).not.toContain('POST /api/v1/files/uploads/u1/complete');
    expect(server.sessions.get('u1')?.parts.size).toBe(2);
    expect(progress.at(-1)).toBeCloseTo(2 / 3);

    server.failPart.clear();
    server.seen = [];
    await task.run();
    const calls = server.calls();
    // The resume asks which parts arrived, sends only part 2, and completes the same session.
    expect(calls[0]).toBe('GET /api/v1/files/uploads/u1');
    expect(calls.filter((c) => c.startsWith('PUT'))).toEqual(['PUT /api/v1/files/uploads/u1/parts/2']);
    expect(calls).not.toContain('POST /api/v1/files/uploads');
    expect(calls.at(-1)).toBe('POST /api/v1/files/uploads/u1/complete');
    expect(server.stored?.[PART]).toBe(2);
    expect(task.resumable).toBe(false);
  });

  it('resumes a session left by an earlier visit with the same file picked again', async () => {
    const file = bigFile(2 * PART + 10);
    server.failPart.set(3, 10);
    const first = new SessionUpload(file, 'knowledge', () => undefined, { ...opts, attempts: 1 });
    await first.run().catch(() => undefined);
    const left = { ...server.view('u1', false) };
    server.failPart.clear();
    server.seen = [];
    await new SessionUpload(file, 'knowledge', () => undefined, opts, left).run();
    expect(server.calls().filter((c) => c.startsWith('PUT'))).toEqual(['PUT /api/v1/files/uploads/u1/parts/3']);
    expect(server.stored?.length).toBe(2 * PART + 10);
  });

  it('sends the parts the server names when completing finds some missing', async () => {
    const file = bigFile(2 * PART);
    const task = new SessionUpload(file, 'chat', () => undefined, opts);
    // The store loses part 1 between its PUT and the completion.
    const original = server.handle.bind(server);
    let lost = false;
    server.handle = async (method, url, headers, body) => {
      if (!lost && url.endsWith('/complete')) {
        lost = true;
        server.sessions.get('u1')!.parts.delete(1);
      }
      return original(method, url, headers, body);
    };
    await task.run();
    expect(server.calls().filter((c) => c.endsWith('/parts/1'))).toHaveLength(2);
    expect(server.stored?.[0]).toBe(1);
  });

  it('sends parts straight to presigned URLs without the bearer token', async () => {
    server.direct = true;
    await createUpload(bigFile(2 * PART), 'chat', () => undefined, opts).run();
    const puts = server.seen.filter((s) => s.method === 'PUT');
    expect(puts).toHaveLength(2);
    expect(puts.every((p) => p.path.includes('X-Amz-Signature') && p.auth === null)).toBe(true);
  });

  it('cancels: aborts the part in flight and drops the session', async () => {
    server.hangPart = 1;
    const task = createUpload(bigFile(2 * PART), 'chat', () => undefined, { ...opts, concurrency: 1 });
    const running = task.run().catch((e: unknown) => e);
    await vi.waitFor(() => expect(server.calls()).toContain('PUT /api/v1/files/uploads/u1/parts/1'));
    await task.cancel();
    const err = await running;
    expect(isCancel(err)).toBe(true);
    expect(server.calls()).toContain('DELETE /api/v1/files/uploads/u1');
    expect(server.calls()).not.toContain('PUT /api/v1/files/uploads/u1/parts/2');
    expect(server.sessions.size).toBe(0);
    expect(task.resumable).toBe(false);
  });

  it('starts a new session when the old one was swept', async () => {
    const file = bigFile(2 * PART);
    server.sessions.set('old', { name: 'big.bin', purpose: 'chat', size: 2 * PART, parts: new Map() });
    const gone = server.view('old', false);
    server.sessions.delete('old');
    await new SessionUpload(file, 'chat', () => undefined, opts, gone).run();
    expect(server.calls().slice(0, 2)).toEqual(['GET /api/v1/files/uploads/old', 'POST /api/v1/files/uploads']);
    expect(server.stored?.length).toBe(2 * PART);
  });

  it('drops the parts when the server refuses the finished file', async () => {
    server.refuse = 413;
    const task = createUpload(bigFile(2 * PART), 'chat', () => undefined, opts);
    const err = await task.run().catch((e: unknown) => e);
    expect((err as ApiError).status).toBe(413);
    expect(server.calls().at(-1)).toBe('DELETE /api/v1/files/uploads/u1');
    expect(task.resumable).toBe(false);
  });
});
