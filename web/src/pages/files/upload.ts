import { ApiError, api, errorFrom, refreshSession } from '../../lib/api';
import { authStore } from '../../lib/auth';
import type { FileItem, FilePurpose, PartTarget, UploadSession } from './types';

/** Bytes as a person reads them (1.5 MB, 320 KB). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** The share of the quota used, 0–100, for the usage bar. */
export function usedPercent(used: number, quota: number): number {
  if (quota <= 0) return 100;
  return Math.min(100, Math.round((used / quota) * 1000) / 10);
}

/** Files at least this big go through an upload session (in parts, resumable); smaller ones
 * in one request. The server's default part is 8 MiB, so below this a session is one part
 * and only costs round trips. */
export const SESSION_THRESHOLD = 8 * 1024 * 1024;

/** An upload the page shows: run it (again, after a failure, when `resumable`), or cancel it. */
export interface UploadTask {
  /** Sends what the server does not have yet and answers the stored file. */
  run(): Promise<FileItem>;
  /** Stops sending and, for a session, tells the server to drop the parts it has. */
  cancel(): Promise<void>;
  /** Whether a failed run can be run again without sending what already arrived. */
  readonly resumable: boolean;
}

/** The answer of one XMLHttpRequest, as a fetch `Response` (so [`errorFrom`] reads it). */
function asResponse(xhr: XMLHttpRequest): Response {
  // A status outside 200–599 cannot build a Response; 0 (network error) never reaches here.
  return new Response(xhr.status === 204 ? null : xhr.responseText || null, {
    status: xhr.status,
    headers: { 'content-type': xhr.getResponseHeader('content-type') ?? 'application/json' },
  });
}

const aborted = () => new DOMException('The upload was cancelled.', 'AbortError');

/** One request with upload progress (fetch cannot report it; XMLHttpRequest can). Rejects with
 * an `ApiError` of status 0 when the connection fails, and an `AbortError` when `signal` fires. */
function xhrSend(
  method: string,
  url: string,
  headers: Record<string, string>,
  body: XMLHttpRequestBodyInit,
  onProgress: (loaded: number) => void,
  signal: AbortSignal,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(aborted());
    const xhr = new XMLHttpRequest();
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    const stop = () => xhr.abort();
    signal.addEventListener('abort', stop, { once: true });
    const done = (f: () => void) => {
      signal.removeEventListener('abort', stop);
      f();
    };
    xhr.onload = () => done(() => resolve(asResponse(xhr)));
    xhr.onerror = () => done(() => reject(new ApiError(0, 'network_error', 'The connection failed.', null)));
    xhr.ontimeout = xhr.onerror;
    xhr.onabort = () => done(() => reject(aborted()));
    xhr.send(body);
  });
}

function bearer(): Record<string, string> {
  const token = authStore.get().accessToken;
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** A file sent in one `POST /api/v1/files`. A 401 refreshes the session once and tries again. */
class SingleUpload implements UploadTask {
  readonly resumable = false;
  private readonly controller = new AbortController();

  constructor(
    private readonly file: File,
    private readonly purpose: FilePurpose,
    private readonly onProgress: (fraction: number) => void,
  ) {}

  async run(): Promise<FileItem> {
    const send = () => {
      const form = new FormData();
      form.append('file', this.file, this.file.name);
      return xhrSend('POST', `/api/v1/files?purpose=${this.purpose}`, bearer(), form, (loaded) => this.onProgress(Math.min(1, loaded / Math.max(1, this.file.size))), this.controller.signal);
    };
    let res = await send();
    if (res.status === 401 && (await refreshSession().catch(() => false))) res = await send();
    if (!res.ok) throw await errorFrom(res);
    return (await res.json()) as FileItem;
  }

  async cancel(): Promise<void> {
    this.controller.abort();
  }
}

/** Tuning of [`SessionUpload`] (tests make the pauses zero). */
export interface SessionOptions {
  /** Parts in flight at once. */
  concurrency?: number;
  /** Tries per part in one run before the run fails (the upload can then be resumed). */
  attempts?: number;
  /** Pause before the n-th try again: `n × retryDelayMs`. */
  retryDelayMs?: number;
}

/** Part answers worth sending the part again for: the connection failed, the part stopped
 * arriving, the server was busy or failing. */
const RETRYABLE = (status: number) => status === 0 || status === 408 || status === 429 || status >= 500;

/** Targets are asked for this many parts at a time (presigned URLs expire, so not all at once). */
const TARGET_BATCH = 16;

/**
 * A large file sent through an upload session (`/api/v1/files/uploads`): the session is
 * opened, parts go (a few at a time) to where the server says — this server, or presigned
 * URLs of the S3 store — a part that fails is tried again, and if it keeps failing the run
 * fails with the session kept: running again asks the server which parts it has and sends
 * only the others. Cancelling aborts what is in flight and drops the session.
 */
export class SessionUpload implements UploadTask {
  private session: UploadSession | null;
  private readonly controller = new AbortController();
  /** Bytes the server has, per part. */
  private readonly sent = new Map<number, number>();
  /** Bytes of parts in flight, per part. */
  private readonly sending = new Map<number, number>();
  private readonly targets = new Map<number, PartTarget>();
  private readonly opts: Required<SessionOptions>;

  constructor(
    private readonly file: File,
    private readonly purpose: FilePurpose,
    private readonly onProgress: (fraction: number) => void,
    opts: SessionOptions = {},
    /** An open session of this file (found in the list after a reload), to resume. */
    session: UploadSession | null = null,
  ) {
    this.session = session;
    this.opts = { concurrency: 3, attempts: 3, retryDelayMs: 1000, ...opts };
  }

  /** The session's id, while it is open. */
  get id(): string | null {
    return this.session?.id ?? null;
  }

  /** While the session is open (not completed, cancelled or refused), a run sends only what
   * the server does not have. */
  get resumable(): boolean {
    return this.session !== null;
  }

  async run(): Promise<FileItem> {
    const signal = this.controller.signal;
    if (signal.aborted) throw aborted();
    const missing = await this.prepare();
    this.report();
    await this.sendParts(missing);
    try {
      return await this.complete();
    } catch (err) {
      // Parts the store lost or never finished (a race with the sweeper, a presigned PUT the
      // store kept short): the server names them; send them and complete once more.
      const again = err instanceof ApiError && err.code === 'upload_incomplete' ? (err.details?.missing_parts as number[] | undefined) : undefined;
      if (!again?.length) throw err;
      for (const n of again) this.sent.delete(n);
      await this.sendParts(again);
      return this.complete();
    }
  }

  private async complete(): Promise<FileItem> {
    const id = this.session!.id;
    try {
      const file = await api<FileItem>(`files/uploads/${id}/complete`, { method: 'POST', signal: this.controller.signal });
      this.session = null;
      return file;
    } catch (err) {
      // The file itself was refused (too big for its purpose or the quota, a type the purpose
      // does not take): sending it again cannot help, so its parts are dropped now rather
      // than held until the session expires.
      if (err instanceof ApiError && [413, 415, 422].includes(err.status)) {
        this.session = null;
        await api(`files/uploads/${id}`, { method: 'DELETE' }).catch(() => undefined);
      }
      throw err;
    }
  }

  async cancel(): Promise<void> {
    this.controller.abort();
    const id = this.session?.id;
    if (!id) return;
    this.session = null;
    await api(`files/uploads/${id}`, { method: 'DELETE' }).catch((err: unknown) => {
      // Already gone (swept, completed elsewhere): nothing to drop.
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    });
  }

  /** Opens the session, or learns which parts an open one has; answers the parts to send. */
  private async prepare(): Promise<number[]> {
    const signal = this.controller.signal;
    if (this.session) {
      try {
        const now = await api<UploadSession>(`files/uploads/${this.session.id}`, { signal });
        this.session = now;
        this.sent.clear();
        for (const p of now.parts ?? []) if (p.complete) this.sent.set(p.number, p.size);
        const all = Array.from({ length: now.part_count }, (_, i) => i + 1);
        return all.filter((n) => !this.sent.has(n));
      } catch (err) {
        // Swept or aborted elsewhere: start over with a new session.
        if (!(err instanceof ApiError && err.status === 404)) throw err;
        this.session = null;
        this.sent.clear();
        this.targets.clear();
      }
    }
    const opened = await api<UploadSession>('files/uploads', { body: { name: this.file.name, purpose: this.purpose, size: this.file.size }, signal });
    this.session = opened;
    if (signal.aborted) {
      await this.cancel();
      throw aborted();
    }
    return Array.from({ length: opened.part_count }, (_, i) => i + 1);
  }

  private report() {
    let bytes = 0;
    for (const n of this.sent.values()) bytes += n;
    for (const n of this.sending.values()) bytes += n;
    this.onProgress(this.file.size ? Math.min(1, bytes / this.file.size) : 1);
  }

  private async sendParts(numbers: number[]) {
    const queue = [...numbers];
    let failure: unknown = null;
    const worker = async () => {
      while (queue.length && failure === null) {
        const n = queue.shift()!;
        try {
          await this.sendPart(n, queue);
        } catch (err) {
          failure ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.concurrency, numbers.length) }, worker));
    if (failure !== null) throw failure;
  }

  /** Where part `n` goes; asks for the next few queued parts in the same call. */
  private async target(n: number, queue: number[]): Promise<PartTarget> {
    const known = this.targets.get(n);
    // A presigned URL about to expire is asked for again (30 s to spare for a slow part).
    if (known && (!known.expires_at || Date.parse(known.expires_at) - Date.now() > 30_000)) return known;
    const session = this.session!;
    const wanted = [n, ...queue.filter((q) => !this.targets.has(q)).slice(0, TARGET_BATCH - 1)];
    const answer = await api<PartTarget[]>(`files/uploads/${session.id}/part-urls`, { body: { parts: wanted }, signal: this.controller.signal });
    for (const t of answer) this.targets.set(t.number, t);
    const got = this.targets.get(n);
    if (!got) throw new ApiError(0, 'network_error', `No address for part ${n}.`, null);
    return got;
  }

  private async sendPart(n: number, queue: number[]) {
    const session = this.session!;
    const start = (n - 1) * session.part_size;
    const blob = this.file.slice(start, Math.min(this.file.size, start + session.part_size));
    const signal = this.controller.signal;
    let refreshed = false;
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        const target = await this.target(n, queue);
        // Presigned URLs carry their own credentials; this server's part route wants ours.
        const headers = target.direct ? { ...target.headers } : { ...target.headers, ...bearer() };
        res = await xhrSend(target.method, target.url, headers, blob, (loaded) => {
          this.sending.set(n, Math.min(loaded, blob.size));
          this.report();
        }, signal);
      } catch (err) {
        if (signal.aborted || !(err instanceof ApiError) || !RETRYABLE(err.status)) throw err;
        res = new Response(null, { status: 599 });
      } finally {
        this.sending.delete(n);
      }
      if (res.ok) {
        this.sent.set(n, blob.size);
        this.report();
        return;
      }
      if (res.status === 401 && !refreshed) {
        refreshed = true;
        if (await refreshSession().catch(() => false)) {
          attempt--;
          continue;
        }
      }
      // A presigned URL that stopped working is asked for again on the next try.
      if (res.status === 403) this.targets.delete(n);
      if ((!RETRYABLE(res.status) && res.status !== 403) || attempt >= this.opts.attempts) {
        throw res.status === 599 ? new ApiError(0, 'network_error', `Part ${n} could not be sent.`, null) : await errorFrom(res);
      }
      await new Promise((r) => setTimeout(r, attempt * this.opts.retryDelayMs));
      if (signal.aborted) throw aborted();
    }
  }
}

/** The upload of `file`: an upload session at [`SESSION_THRESHOLD`] and above, else one request. */
export function createUpload(file: File, purpose: FilePurpose, onProgress: (fraction: number) => void, opts?: SessionOptions): UploadTask {
  return file.size >= SESSION_THRESHOLD ? new SessionUpload(file, purpose, onProgress, opts) : new SingleUpload(file, purpose, onProgress);
}

/** Uploads `file` with progress: in one request, or through an upload session when large. */
export function uploadFile(file: File, purpose: FilePurpose, onProgress: (fraction: number) => void): Promise<FileItem> {
  return createUpload(file, purpose, onProgress).run();
}

/** Whether a failure is the user's own cancel. */
export function isCancel(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError';
}
