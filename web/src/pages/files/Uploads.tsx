import { useCallback, useRef, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { ApiError, api } from '../../lib/api';
import { when } from '../../lib/format';
import { qk } from '../../lib/queryKeys';
import { useT } from '../../i18n';
import { Button, Card, ErrorText } from '../../components/ui';
import { toast } from '../../components/ui/toast';
import { SessionUpload, createUpload, formatBytes, isCancel, type UploadTask } from './upload';
import type { FilePurpose, UploadSession } from './types';

/** One upload the page shows. */
interface Row {
  key: string;
  name: string;
  size: number;
  fraction: number;
  running: boolean;
  error?: unknown;
  resumable: boolean;
}

/** The uploads of this page: started, running, failed (to resume or discard). */
export function useUploadQueue() {
  const t = useT();
  const queryClient = useQueryClient();
  const [rows, setRows] = useState<Row[]>([]);
  const tasks = useRef(new Map<string, UploadTask>());
  const patch = (key: string, p: Partial<Row>) => setRows((all) => all.map((r) => (r.key === key ? { ...r, ...p } : r)));
  const drop = (key: string) => {
    tasks.current.delete(key);
    setRows((all) => all.filter((r) => r.key !== key));
  };

  const run = async (key: string, name: string) => {
    const task = tasks.current.get(key);
    if (!task) return;
    patch(key, { running: true, error: undefined });
    try {
      await task.run();
      drop(key);
      toast(t('files.uploaded', { name }));
    } catch (err) {
      if (isCancel(err)) drop(key);
      else patch(key, { running: false, error: err, resumable: task.resumable });
    }
    void queryClient.invalidateQueries({ queryKey: qk.files.all });
  };

  const add = (file: File, make: (onProgress: (f: number) => void) => UploadTask) => {
    const key = `${file.name}-${Date.now()}-${Math.random()}`;
    tasks.current.set(key, make((fraction) => patch(key, { fraction })));
    setRows((all) => [...all, { key, name: file.name, size: file.size, fraction: 0, running: true, resumable: false }]);
    return run(key, file.name);
  };

  /** Uploads the files one after another. */
  const start = async (list: FileList | File[], purpose: FilePurpose) => {
    for (const file of Array.from(list)) await add(file, (onProgress) => createUpload(file, purpose, onProgress));
  };

  /** Resumes a session left open by an earlier visit with the same file picked again. */
  const resume = (file: File, session: UploadSession) =>
    add(file, (onProgress) => new SessionUpload(file, session.purpose as FilePurpose, onProgress, {}, session));

  const cancel = async (key: string) => {
    const task = tasks.current.get(key);
    drop(key);
    await task?.cancel().catch(() => undefined);
    void queryClient.invalidateQueries({ queryKey: qk.files.uploads });
  };

  /** Ids of the sessions this page is sending (not listed as unfinished). */
  const active = useCallback(
    () => new Set(Array.from(tasks.current.values()).flatMap((task) => (task instanceof SessionUpload && task.id ? [task.id] : []))),
    [],
  );

  return { rows, start, resume, retry: (key: string, name: string) => run(key, name), cancel, active };
}

/** The upload queue's state and actions. */
export type UploadQueue = ReturnType<typeof useUploadQueue>;

/** Each upload with its progress, a cancel button while it runs, and resume or discard after
 * it failed. */
export function UploadList({ queue }: { queue: UploadQueue }) {
  const t = useT();
  return (
    <>
      {queue.rows.map((u) => (
        <Card key={u.key} className="mb-2 p-3 text-sm" data-testid="upload-row">
          <div className="flex items-center justify-between gap-2">
            <span className="min-w-0 flex-1 truncate">
              {u.name} <span className="text-xs text-muted-fg">{formatBytes(u.size)}</span>
            </span>
            {u.running && <span data-testid="upload-percent">{Math.round(u.fraction * 100)}%</span>}
            {u.running ? (
              <Button size="sm" variant="ghost" onClick={() => void queue.cancel(u.key)} data-testid="upload-cancel">
                {t('common.cancel')}
              </Button>
            ) : (
              <span className="flex gap-1">
                {u.resumable && (
                  <Button size="sm" variant="secondary" onClick={() => void queue.retry(u.key, u.name)} data-testid="upload-resume">
                    {t('files.resume')}
                  </Button>
                )}
                <Button size="sm" variant="ghost" onClick={() => void queue.cancel(u.key)}>
                  {u.resumable ? t('files.discard') : t('common.close')}
                </Button>
              </span>
            )}
          </div>
          {u.error ? (
            <div className="mt-1">
              <ErrorText error={u.error} />
              {u.resumable && <p className="mt-1 text-xs text-muted-fg">{t('files.resumeHint', { percent: Math.round(u.fraction * 100) })}</p>}
            </div>
          ) : (
            <div className="mt-1 h-1.5 overflow-hidden rounded bg-muted" role="progressbar" aria-valuenow={Math.round(u.fraction * 100)} aria-valuemin={0} aria-valuemax={100}>
              <div className="h-full bg-primary transition-[width]" style={{ width: `${u.fraction * 100}%` }} />
            </div>
          )}
        </Card>
      ))}
    </>
  );
}

/** Upload sessions left open by an earlier visit (a closed tab, a lost connection): pick the
 * same file again to send only what is missing, or discard the parts. */
export function UnfinishedUploads({ queue }: { queue: UploadQueue }) {
  const t = useT();
  const queryClient = useQueryClient();
  const input = useRef<HTMLInputElement>(null);
  const [picking, setPicking] = useState<UploadSession | null>(null);
  const [error, setError] = useState<unknown>(null);
  const sessions = useQuery({ queryKey: qk.files.uploads, queryFn: () => api<UploadSession[]>('files/uploads') });
  const active = queue.active();
  const open = (sessions.data ?? []).filter((s) => !active.has(s.id) && s.state === 'open');
  if (!open.length && !error) return null;
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.files.uploads });

  return (
    <Card className="mb-3 p-3 text-sm" data-testid="unfinished-uploads">
      <div className="font-medium">{t('files.unfinished')}</div>
      <p className="mb-2 text-xs text-muted-fg">{t('files.unfinishedHint')}</p>
      <ErrorText error={error} />
      {open.map((s) => (
        <div key={s.id} className="flex flex-wrap items-center gap-2 border-t border-border py-2">
          <span className="min-w-0 flex-1 truncate">
            {s.name} <span className="text-xs text-muted-fg">{formatBytes(s.size)} · {t('files.removedAt', { when: when(s.expires_at) })}</span>
          </span>
          <Button
            size="sm"
            variant="secondary"
            onClick={() => {
              setError(null);
              setPicking(s);
              input.current?.click();
            }}
          >
            {t('files.resume')}
          </Button>
          <Button
            size="sm"
            variant="ghost"
            onClick={async () => {
              setError(null);
              await api(`files/uploads/${s.id}`, { method: 'DELETE' }).catch(setError);
              void refresh();
            }}
          >
            {t('files.discard')}
          </Button>
        </div>
      ))}
      <input
        ref={input}
        type="file"
        hidden
        data-testid="resume-input"
        onChange={(e) => {
          const file = e.target.files?.[0];
          e.target.value = '';
          if (!file || !picking) return;
          // The parts on the server belong to one file; another file's bytes would make a
          // third, wrong one. Name and size are all a browser can cheaply compare.
          if (file.name !== picking.name || file.size !== picking.size) {
            setError(new ApiError(422, 'not_same_file', t('files.notSameFile', { name: picking.name, size: formatBytes(picking.size) }), null));
            return;
          }
          void queue.resume(file, picking).then(refresh);
          setPicking(null);
        }}
      />
    </Card>
  );
}
