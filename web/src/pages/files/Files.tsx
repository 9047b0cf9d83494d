import { useRef, useState } from 'react';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { api, download } from '../../lib/api';
import { when } from '../../lib/format';
import type { Page } from '../../lib/types';
import { qk } from '../../lib/queryKeys';
import { useT } from '../../i18n';
import { Button, Card, CopyButton, DataTable, ErrorText, Field, Input, PageHeader, Pager, Select, cx, PasswordInput } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import { formatBytes, usedPercent } from './upload';
import { UnfinishedUploads, UploadList, useUploadQueue } from './Uploads';
import { PreviewDialog } from './PreviewDialog';
import type { FileItem, FilePurpose, FileUsage, Share } from './types';

const PER_PAGE = 24;
const PURPOSES: FilePurpose[] = ['chat', 'knowledge', 'avatar', 'agent', 'plugin'];
const TYPES = ['', 'image/', 'application/pdf', 'text/'] as const;

/** An absolute link for a path the server answered (it may already be absolute, behind a CDN). */
function absolute(url: string): string {
  return /^https?:\/\//.test(url) ? url : `${window.location.origin}${url}`;
}

function Thumb({ file }: { file: FileItem }) {
  if (file.thumbnail_url) {
    return <img src={file.thumbnail_url} alt="" loading="lazy" className="h-full w-full object-cover" />;
  }
  const ext = file.name.includes('.') ? file.name.split('.').pop()!.slice(0, 5).toUpperCase() : 'FILE';
  return <span className="text-sm font-semibold text-muted-fg">{ext}</span>;
}

/** The user's files: upload (button or drag and drop, with progress; large files in resumable
 * parts), grid or list, rename, delete, share links, and storage used against the quota. */
export default function FilesPage() {
  const t = useT();
  const queryClient = useQueryClient();
  const input = useRef<HTMLInputElement>(null);
  const [page, setPage] = useState(1);
  const [purpose, setPurpose] = useState<FilePurpose>('chat');
  const [filter, setFilter] = useState<{ purpose: string; type: string }>({ purpose: '', type: '' });
  const [grid, setGrid] = useState(true);
  const [dragging, setDragging] = useState(false);
  const uploads = useUploadQueue();
  const [renaming, setRenaming] = useState<FileItem | null>(null);
  const [newName, setNewName] = useState('');
  const [deleting, setDeleting] = useState<FileItem | null>(null);
  const [sharing, setSharing] = useState<FileItem | null>(null);
  const [previewing, setPreviewing] = useState<FileItem | null>(null);
  const [error, setError] = useState<unknown>(null);

  const query = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
  if (filter.purpose) query.set('purpose', filter.purpose);
  if (filter.type) query.set('type', filter.type);
  const files = useQuery({ queryKey: qk.files.list(query.toString()), queryFn: () => api<Page<FileItem>>(`files?${query}`) });
  const usage = useQuery({ queryKey: qk.files.usage, queryFn: () => api<FileUsage>('files/usage') });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.files.all });

  const start = (list: FileList | File[]) => uploads.start(list, purpose);

  const used = usage.data?.used_bytes ?? 0;
  const quota = usage.data?.quota_bytes ?? 0;
  const percent = usedPercent(used, quota);
  const items = files.data?.items ?? [];

  const actions = (f: FileItem) => (
    <span className="flex flex-wrap justify-end gap-1">
      <Button variant="secondary" size="sm" onClick={() => download(f.content_url, f.name).catch(setError)}>
        {t('files.download')}
      </Button>
      <Button variant="secondary" size="sm" onClick={() => setSharing(f)} data-testid="share-file">
        {t('files.share')}
      </Button>
      <Button
        variant="secondary"
        size="sm"
        onClick={() => {
          setNewName(f.name);
          setRenaming(f);
        }}
      >
        {t('files.rename')}
      </Button>
      <Button variant="danger" size="sm" onClick={() => setDeleting(f)}>
        {t('common.delete')}
      </Button>
    </span>
  );

  return (
    <div
      className={cx('mx-auto max-w-6xl p-4', dragging && 'rounded-xl outline-dashed outline-2 outline-primary')}
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={(e) => {
        e.preventDefault();
        setDragging(false);
        if (e.dataTransfer.files.length) void start(e.dataTransfer.files);
      }}
    >
      <PageHeader title={t('files.title')}>
        <Select aria-label={t('files.purpose')} value={purpose} onChange={(e) => setPurpose(e.target.value as FilePurpose)}>
          {PURPOSES.map((p) => (
            <option key={p} value={p}>
              {t(`files.purpose.${p}`)}
            </option>
          ))}
        </Select>
        <Button onClick={() => input.current?.click()}>+ {t('files.upload')}</Button>
        <input
          ref={input}
          type="file"
          multiple
          hidden
          data-testid="file-input"
          onChange={(e) => {
            if (e.target.files?.length) void start(e.target.files);
            e.target.value = '';
          }}
        />
      </PageHeader>
      <p className="mb-3 text-sm text-muted-fg">{t('files.intro')}</p>

      <Card className="mb-4 p-3">
        <div className="mb-1 flex justify-between text-sm">
          <span>{t('files.usage')}</span>
          <span data-testid="files-usage">
            {formatBytes(used)} / {formatBytes(quota)}
          </span>
        </div>
        <div className="h-2 overflow-hidden rounded bg-muted" role="progressbar" aria-label={t('files.usage')} aria-valuenow={percent} aria-valuemin={0} aria-valuemax={100}>
          <div className={cx('h-full', percent > 90 ? 'bg-danger' : 'bg-primary')} style={{ width: `${percent}%` }} />
        </div>
      </Card>

      <UploadList queue={uploads} />
      <UnfinishedUploads queue={uploads} />

      <div className="mb-3 flex flex-wrap items-center gap-2">
        <Select aria-label={t('files.filterPurpose')} value={filter.purpose} onChange={(e) => { setPage(1); setFilter({ ...filter, purpose: e.target.value }); }}>
          <option value="">{t('files.allPurposes')}</option>
          {PURPOSES.map((p) => (
            <option key={p} value={p}>
              {t(`files.purpose.${p}`)}
            </option>
          ))}
        </Select>
        <Select aria-label={t('files.filterType')} value={filter.type} onChange={(e) => { setPage(1); setFilter({ ...filter, type: e.target.value }); }}>
          {TYPES.map((type) => (
            <option key={type} value={type}>
              {t(type === '' ? 'files.allTypes' : type === 'image/' ? 'files.images' : type === 'text/' ? 'files.texts' : 'files.pdfs')}
            </option>
          ))}
        </Select>
        <span className="flex-1" />
        <Button variant={grid ? 'secondary' : 'ghost'} size="sm" onClick={() => setGrid(true)} aria-pressed={grid}>
          {t('files.grid')}
        </Button>
        <Button variant={grid ? 'ghost' : 'secondary'} size="sm" onClick={() => setGrid(false)} aria-pressed={!grid}>
          {t('files.list')}
        </Button>
      </div>

      <ErrorText error={files.error ?? error} />
      {!files.isLoading && items.length === 0 && (
        <Card className="p-8 text-center text-sm text-muted-fg">{t('files.empty')}</Card>
      )}
      {grid ? (
        <div className="grid grid-cols-2 gap-3 sm:grid-cols-3 lg:grid-cols-4" data-testid="files-grid">
          {items.map((f) => (
            <Card key={f.id} className="flex flex-col overflow-hidden">
              <button
                type="button"
                className="flex h-32 items-center justify-center overflow-hidden bg-muted"
                onClick={() => setPreviewing(f)}
                aria-label={t('files.previewOf', { name: f.name })}
                data-testid="preview-file"
              >
                <Thumb file={f} />
              </button>
              <div className="flex-1 p-2 text-sm">
                <div className="truncate font-medium" title={f.name}>
                  {f.name}
                </div>
                <div className="text-xs text-muted-fg">
                  {formatBytes(f.size)} · {t(`files.purpose.${f.purpose}`)} · {when(f.created_at)}
                </div>
              </div>
              <div className="border-t border-border p-2">{actions(f)}</div>
            </Card>
          ))}
        </div>
      ) : (
        items.length > 0 && (
          <DataTable
            rows={items}
            rowKey={(f) => f.id}
            columns={[
              {
                header: t('common.name'),
                cell: (f) => (
                  <button type="button" className="text-left font-medium hover:underline" onClick={() => setPreviewing(f)}>
                    {f.name}
                  </button>
                ),
              },
              { header: t('files.size'), cell: (f) => formatBytes(f.size) },
              { header: t('files.type'), cell: (f) => <code className="text-xs">{f.content_type}</code> },
              { header: t('files.purpose'), cell: (f) => t(`files.purpose.${f.purpose}`) },
              { header: t('common.time'), cell: (f) => when(f.created_at) },
              { header: t('common.actions'), cell: actions },
            ]}
          />
        )
      )}
      <Pager page={page} perPage={PER_PAGE} total={files.data?.total ?? 0} onPage={setPage} />

      <Dialog open={renaming !== null} onOpenChange={(o) => !o && setRenaming(null)} title={t('files.rename')}>
        <form
          onSubmit={async (e) => {
            e.preventDefault();
            if (!renaming) return;
            try {
              await api(`files/${renaming.id}`, { method: 'PATCH', body: { name: newName } });
              setRenaming(null);
              refresh();
            } catch (err) {
              setError(err);
            }
          }}
        >
          <Field label={t('common.name')}>
            <Input value={newName} onChange={(e) => setNewName(e.target.value)} autoFocus maxLength={255} />
          </Field>
          <div className="mt-4 flex justify-end gap-2">
            <Button variant="secondary" onClick={() => setRenaming(null)}>
              {t('common.cancel')}
            </Button>
            <Button type="submit" disabled={!newName.trim()}>
              {t('common.save')}
            </Button>
          </div>
        </form>
      </Dialog>

      <Dialog open={deleting !== null} onOpenChange={(o) => !o && setDeleting(null)} title={t('common.delete')}>
        <p className="text-sm">{t('files.deleteConfirm', { name: deleting?.name ?? '' })}</p>
        <div className="mt-4 flex justify-end gap-2">
          <Button variant="secondary" onClick={() => setDeleting(null)}>
            {t('common.cancel')}
          </Button>
          <Button
            variant="danger"
            onClick={async () => {
              if (!deleting) return;
              await api(`files/${deleting.id}`, { method: 'DELETE' }).catch(setError);
              setDeleting(null);
              refresh();
            }}
          >
            {t('common.delete')}
          </Button>
        </div>
      </Dialog>

      {sharing && <ShareDialog file={sharing} onClose={() => setSharing(null)} />}
      {previewing && (
        <PreviewDialog
          file={previewing}
          onClose={() => setPreviewing(null)}
          onDownload={() => download(previewing.content_url, previewing.name).catch(setError)}
        />
      )}
    </div>
  );
}

const EXPIRIES = [
  { secs: 0, key: 'files.expiresNever' },
  { secs: 3600, key: 'files.expiresHour' },
  { secs: 86_400, key: 'files.expiresDay' },
  { secs: 7 * 86_400, key: 'files.expiresWeek' },
] as const;

/** Share links of one file: create (expiry, password, download limit), copy, revoke. */
function ShareDialog({ file, onClose }: { file: FileItem; onClose: () => void }) {
  const t = useT();
  const queryClient = useQueryClient();
  const [expiry, setExpiry] = useState(0);
  const [password, setPassword] = useState('');
  const [maxDownloads, setMaxDownloads] = useState('');
  const [error, setError] = useState<unknown>(null);
  const shares = useQuery({ queryKey: qk.files.shares(file.id), queryFn: () => api<Share[]>(`files/${file.id}/shares`) });
  const refresh = () => queryClient.invalidateQueries({ queryKey: qk.files.shares(file.id) });

  const create = async (e: React.FormEvent) => {
    e.preventDefault();
    setError(null);
    try {
      await api<Share>(`files/${file.id}/shares`, {
        body: {
          ...(expiry ? { expires_in_secs: expiry } : {}),
          ...(password ? { password } : {}),
          ...(maxDownloads.trim() ? { max_downloads: Number(maxDownloads) } : {}),
        },
      });
      setPassword('');
      setMaxDownloads('');
      refresh();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <Dialog open onOpenChange={(o) => !o && onClose()} title={t('files.shareTitle', { name: file.name })} wide>
      <form onSubmit={create} className="grid gap-3 sm:grid-cols-3">
        <Field label={t('files.expires')}>
          <Select value={expiry} onChange={(e) => setExpiry(Number(e.target.value))}>
            {EXPIRIES.map((x) => (
              <option key={x.secs} value={x.secs}>
                {t(x.key)}
              </option>
            ))}
          </Select>
        </Field>
        <Field label={t('files.sharePassword')} hint={t('common.optional')}>
          <PasswordInput value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="new-password" />
        </Field>
        <Field label={t('files.maxDownloads')} hint={t('common.optional')}>
          <Input type="number" min={1} value={maxDownloads} onChange={(e) => setMaxDownloads(e.target.value)} />
        </Field>
        <div className="sm:col-span-3 flex justify-end">
          <Button type="submit" data-testid="create-share">
            {t('files.createShare')}
          </Button>
        </div>
      </form>
      <ErrorText error={error ?? shares.error} />
      <div className="mt-4 space-y-2">
        {(shares.data ?? []).map((s) => (
          <Card key={s.id} className={cx('p-3 text-sm', s.revoked && 'opacity-60')}>
            <div className="flex items-center gap-2">
              <a href={absolute(s.url)} target="_blank" rel="noreferrer" className="flex-1 truncate text-primary underline" data-testid="share-link">
                {absolute(s.url)}
              </a>
              {!s.revoked && <CopyButton text={absolute(s.url)} />}
              {!s.revoked && (
                <Button
                  size="sm"
                  variant="danger"
                  onClick={async () => {
                    await api(`files/${file.id}/shares/${s.id}`, { method: 'DELETE' }).catch(setError);
                    refresh();
                  }}
                >
                  {t('files.revoke')}
                </Button>
              )}
            </div>
            <div className="mt-1 text-xs text-muted-fg">
              {s.revoked ? t('files.revoked') : s.expires_at ? `${t('files.expires')} ${when(s.expires_at)}` : t('files.expiresNever')}
              {' · '}
              {t('files.downloads', { n: s.downloads, max: s.max_downloads ?? '∞' })}
              {s.password_required && ` · ${t('files.passwordSet')}`}
            </div>
          </Card>
        ))}
      </div>
    </Dialog>
  );
}
