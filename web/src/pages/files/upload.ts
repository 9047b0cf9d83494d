import { errorFrom, refreshSession } from '../../lib/api';
import { authStore } from '../../lib/auth';
import type { FileItem, FilePurpose } from './types';

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

function send(file: File, purpose: FilePurpose, onProgress: (fraction: number) => void): Promise<XMLHttpRequest> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', `/api/v1/files?purpose=${purpose}`);
    const token = authStore.get().accessToken;
    if (token) xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new Error('network error'));
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

/** Uploads `file` with progress (fetch cannot report upload progress; XMLHttpRequest can). A
 * 401 refreshes the session once and tries again. */
export async function uploadFile(file: File, purpose: FilePurpose, onProgress: (fraction: number) => void): Promise<FileItem> {
  let xhr = await send(file, purpose, onProgress);
  if (xhr.status === 401 && (await refreshSession().catch(() => false))) {
    xhr = await send(file, purpose, onProgress);
  }
  const res = new Response(xhr.responseText || null, {
    status: xhr.status,
    headers: { 'content-type': xhr.getResponseHeader('content-type') ?? 'application/json' },
  });
  if (!res.ok) throw await errorFrom(res);
  return (await res.json()) as FileItem;
}
