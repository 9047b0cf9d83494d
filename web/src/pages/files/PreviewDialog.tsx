import { useEffect, useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { ApiError, api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import { useT } from '../../i18n';
import { Button, ErrorText } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';
import type { FileItem, FilePreview } from './types';

/** An owner-only image (the preview's web-sized copy) as an object URL: `<img>` cannot send
 * the bearer token, so it is fetched with it and shown from memory. */
function useOwnedImage(path: string | null | undefined) {
  const [url, setUrl] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    if (!path) return;
    let made: string | null = null;
    let live = true;
    api<Response>(path, { raw: true })
      .then((res) => res.blob())
      .then((blob) => {
        if (!live) return;
        made = URL.createObjectURL(blob);
        setUrl(made);
      })
      .catch((err: unknown) => live && setError(err));
    return () => {
      live = false;
      if (made) URL.revokeObjectURL(made);
    };
  }, [path]);
  return { url, error };
}

/** A file's preview: its text (text files, Office documents, EPUBs; capped by the server), or
 * its web-sized image (images, a PDF's first page), or why there is none. */
export function PreviewDialog({ file, onClose, onDownload }: { file: FileItem; onClose: () => void; onDownload: () => void }) {
  const t = useT();
  const preview = useQuery({ queryKey: qk.files.preview(file.id), queryFn: () => api<FilePreview>(`files/${file.id}/preview`), retry: false });
  const image = useOwnedImage(preview.data?.image_url);
  const p = preview.data;
  const none = preview.error instanceof ApiError && preview.error.code === 'no_preview';
  return (
    <Dialog open onOpenChange={(o) => !o && onClose()} title={file.name} wide>
      <div data-testid="file-preview">
        {preview.isLoading && <p className="text-sm text-muted-fg">{t('common.loading')}</p>}
        {none ? <p className="text-sm text-muted-fg">{t('files.noPreview')}</p> : <ErrorText error={preview.error ?? image.error} />}
        {p?.kind === 'pdf' && p.page_count != null && <p className="mb-2 text-sm text-muted-fg">{t('files.pages', { n: p.page_count })}</p>}
        {image.url && <img src={image.url} alt={file.name} className="mx-auto max-h-[60vh] max-w-full rounded border border-border object-contain" />}
        {p?.kind === 'pdf' && !p.image_url && <p className="text-sm text-muted-fg">{t('files.noPdfImage')}</p>}
        {p?.text != null && (
          <>
            <pre className="max-h-[60vh] overflow-auto whitespace-pre-wrap break-words rounded bg-muted p-3 text-xs" data-testid="preview-text">
              {p.text}
            </pre>
            {p.truncated && <p className="mt-1 text-xs text-muted-fg">{t('files.previewTruncated')}</p>}
          </>
        )}
      </div>
      <div className="mt-4 flex justify-end">
        <Button variant="secondary" onClick={onDownload}>
          {t('files.download')}
        </Button>
      </div>
    </Dialog>
  );
}
