import { useEffect, useRef, useState } from 'react';
import { useT } from '../../i18n';
import { Button, ErrorText, Input } from '../../components/ui';
import { uploadFile } from '../files/upload';
import { AgentAvatar } from './AgentAvatar';
import { isFileAvatar } from './logic';

/** The editor's avatar: an emoji or https:// URL typed in, or an image uploaded to the File
 * service (stored as `file:<id>`), with a preview. `savedUrl` is the signed URL the server gave
 * for the avatar it has, shown until another image is picked. */
export function AvatarField({ value, name, savedUrl, onChange }: { value: string; name: string; savedUrl?: string | null; onChange: (avatar: string) => void }) {
  const t = useT();
  const input = useRef<HTMLInputElement>(null);
  const [local, setLocal] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => () => {
    if (local) URL.revokeObjectURL(local);
  }, [local]);

  const pick = async (file: File | undefined) => {
    if (!file) return;
    setError(null);
    setBusy(true);
    try {
      const uploaded = await uploadFile(file, 'agent', () => {});
      setLocal(URL.createObjectURL(file));
      onChange(`file:${uploaded.id}`);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
      if (input.current) input.current.value = '';
    }
  };
  const fileAvatar = isFileAvatar(value);
  const url = fileAvatar ? (local ?? savedUrl ?? null) : null;
  return (
    <div className="space-y-2">
      <div className="flex items-center gap-2">
        <AgentAvatar avatar={value} name={name} url={url} />
        <div className="flex flex-wrap gap-1">
          <Button type="button" size="sm" variant="secondary" disabled={busy} onClick={() => input.current?.click()} data-testid="agent-avatar-upload">
            {busy ? t('agents.avatarUploading') : t('agents.avatarUpload')}
          </Button>
          {fileAvatar && (
            <Button type="button" size="sm" variant="ghost" onClick={() => { setLocal(null); onChange(''); }}>
              {t('agents.avatarRemove')}
            </Button>
          )}
        </div>
      </div>
      {!fileAvatar && <Input value={value} onChange={(e) => onChange(e.target.value)} maxLength={512} aria-label={t('agents.avatar')} />}
      <input ref={input} type="file" accept="image/png,image/jpeg,image/webp,image/gif" className="hidden" onChange={(e) => pick(e.target.files?.[0])} data-testid="agent-avatar-file" />
      <ErrorText error={error} />
    </div>
  );
}
