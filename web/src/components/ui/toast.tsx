import { createStore, useStore } from '../../lib/store';
import { useT } from '../../i18n';
import { CloseIcon } from '../icons';

/** A short notice, optionally with an action (Undo). */
export interface Toast {
  id: number;
  text: string;
  action?: { label: string; run: () => void };
}

/** Notices on screen. */
export const toastStore = createStore<Toast[]>([]);
let nextId = 1;

/** Shows a notice for a few seconds. */
export function toast(text: string, action?: Toast['action'], ms = 6000) {
  const id = nextId++;
  toastStore.set((list) => [...list, { id, text, action }]);
  setTimeout(() => dismiss(id), ms);
}

/** Removes a notice. */
export function dismiss(id: number) {
  toastStore.set((list) => list.filter((t) => t.id !== id));
}

/** Where notices appear: at the top, just under the header, so they never cover the chat
 * composer or a page's bottom actions. */
export function Toaster() {
  const list = useStore(toastStore);
  const t = useT();
  return (
    <div className="pointer-events-none fixed inset-x-0 top-14 z-[60] flex flex-col items-center gap-2 px-3" aria-live="polite" data-testid="toaster">
      {list.map((item) => (
        <div key={item.id} className="pointer-events-auto flex items-center gap-3 rounded-lg border border-border bg-card px-4 py-2 text-sm shadow-lg">
          <span>{item.text}</span>
          {item.action && (
            <button
              className="font-semibold text-primary hover:underline"
              onClick={() => {
                item.action?.run();
                dismiss(item.id);
              }}
            >
              {item.action.label}
            </button>
          )}
          <button className="-mr-2 flex h-8 w-8 items-center justify-center rounded-md text-muted-fg hover:bg-muted" aria-label={t('common.close')} onClick={() => dismiss(item.id)}>
            <CloseIcon />
          </button>
        </div>
      ))}
    </div>
  );
}
