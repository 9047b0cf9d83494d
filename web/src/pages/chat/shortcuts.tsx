import { useEffect } from 'react';
import { useT, type MessageKey } from '../../i18n';
import { Dialog } from '../../components/ui/dialog';

/** What a chat shortcut does. */
export type ShortcutAction = 'newChat' | 'focusComposer' | 'search' | 'stop' | 'help';

/** The keys the help overlay lists, in its order (`Mod` is ⌘ on a Mac, Ctrl elsewhere). */
export const SHORTCUTS: Array<{ action: ShortcutAction; keys: string[]; label: MessageKey }> = [
  { action: 'newChat', keys: ['Mod', 'Shift', 'O'], label: 'shortcuts.newChat' },
  { action: 'focusComposer', keys: ['Shift', 'Esc'], label: 'shortcuts.focusComposer' },
  { action: 'search', keys: ['Mod', 'K'], label: 'shortcuts.search' },
  { action: 'stop', keys: ['Esc'], label: 'shortcuts.stop' },
  { action: 'help', keys: ['Mod', '/'], label: 'shortcuts.help' },
];

/** Whether this is a Mac (⌘ instead of Ctrl). */
export const isMac = () => typeof navigator !== 'undefined' && /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);

/**
 * The chat action a key press asks for, or null. Plain Esc only stops an answer being
 * written (`streaming`); it is left alone otherwise (dialogs close with it). A key typed while
 * composing Chinese or Japanese (IME) is never a shortcut.
 */
export function shortcutFor(e: Pick<KeyboardEvent, 'key' | 'ctrlKey' | 'metaKey' | 'shiftKey' | 'altKey' | 'isComposing'>, streaming: boolean, mac = isMac()): ShortcutAction | null {
  if (e.isComposing) return null;
  const mod = mac ? e.metaKey && !e.ctrlKey : e.ctrlKey && !e.metaKey;
  const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
  if (mod && e.shiftKey && !e.altKey && key === 'o') return 'newChat';
  if (mod && !e.shiftKey && !e.altKey && key === 'k') return 'search';
  if (mod && !e.altKey && (key === '/' || key === '?')) return 'help';
  if (!mod && e.shiftKey && key === 'Escape') return 'focusComposer';
  if (!mod && !e.shiftKey && key === 'Escape' && streaming) return 'stop';
  return null;
}

/** Listens for the chat shortcuts on the whole page while mounted. */
export function useChatShortcuts(streaming: boolean, run: (action: ShortcutAction) => void) {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const action = shortcutFor(e, streaming);
      if (!action) return;
      // A dialog open: Esc is the dialog's own (it closes it).
      if (action === 'stop' && document.querySelector('[role="dialog"]')) return;
      e.preventDefault();
      run(action);
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [streaming, run]);
}

/** The help overlay: every shortcut with its keys. */
export function ShortcutHelp({ open, onOpenChange }: { open: boolean; onOpenChange: (o: boolean) => void }) {
  const t = useT();
  const mac = isMac();
  return (
    <Dialog open={open} onOpenChange={onOpenChange} title={t('shortcuts.title')}>
      <table className="w-full text-sm" data-testid="shortcut-help">
        <tbody>
          {SHORTCUTS.map((s) => (
            <tr key={s.action} className="border-t border-border first:border-t-0">
              <td className="py-2 pr-4">{t(s.label)}</td>
              <td className="py-2 text-right">
                {s.keys.map((k) => (
                  <kbd key={k} className="ml-1 inline-block min-w-[1.75rem] rounded border border-border bg-muted px-1.5 py-0.5 text-center font-mono text-xs">
                    {k === 'Mod' ? (mac ? '⌘' : 'Ctrl') : k}
                  </kbd>
                ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Dialog>
  );
}
