import { cx } from '../../components/ui';
import { isFileAvatar, isImageAvatar } from './logic';

/** An assistant's avatar: its uploaded image (`url`), its image URL, its emoji, or the first
 * letter of its name. */
export function AgentAvatar({ avatar, name, url, size = 'md' }: { avatar: string; name: string; url?: string | null; size?: 'sm' | 'md' | 'lg' }) {
  const box = cx(
    'flex shrink-0 items-center justify-center overflow-hidden rounded-xl bg-muted',
    size === 'sm' && 'h-7 w-7 text-base',
    size === 'md' && 'h-11 w-11 text-2xl',
    size === 'lg' && 'h-16 w-16 text-4xl',
  );
  const src = url || (isImageAvatar(avatar) ? avatar : null);
  if (src) {
    return (
      <span className={box}>
        <img src={src} alt="" className="h-full w-full object-cover" referrerPolicy="no-referrer" data-testid="agent-avatar-img" />
      </span>
    );
  }
  return (
    <span className={box} aria-hidden>
      {(isFileAvatar(avatar) ? '' : avatar) || name.slice(0, 1).toUpperCase() || '?'}
    </span>
  );
}
