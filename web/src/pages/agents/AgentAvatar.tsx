import { cx } from '../../components/ui';
import { isImageAvatar } from './logic';

/** An assistant's avatar: its image, its emoji, or the first letter of its name. */
export function AgentAvatar({ avatar, name, size = 'md' }: { avatar: string; name: string; size?: 'sm' | 'md' | 'lg' }) {
  const box = cx(
    'flex shrink-0 items-center justify-center overflow-hidden rounded-xl bg-muted',
    size === 'sm' && 'h-7 w-7 text-base',
    size === 'md' && 'h-11 w-11 text-2xl',
    size === 'lg' && 'h-16 w-16 text-4xl',
  );
  if (isImageAvatar(avatar)) {
    return (
      <span className={box}>
        <img src={avatar} alt="" className="h-full w-full object-cover" referrerPolicy="no-referrer" />
      </span>
    );
  }
  return (
    <span className={box} aria-hidden>
      {avatar || name.slice(0, 1).toUpperCase() || '?'}
    </span>
  );
}
