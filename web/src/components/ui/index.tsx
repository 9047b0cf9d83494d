import * as React from 'react';
import { ApiError } from '../../lib/api';
import { useT } from '../../i18n';
import { EyeIcon, EyeOffIcon } from '../icons';

/** Joins class names, skipping falsy ones. */
export function cx(...parts: Array<string | false | null | undefined>) {
  return parts.filter(Boolean).join(' ');
}

type ButtonProps = React.ButtonHTMLAttributes<HTMLButtonElement> & {
  variant?: 'primary' | 'secondary' | 'ghost' | 'danger';
  size?: 'sm' | 'md' | 'icon';
};

/** A button in one of four looks. */
export const Button = React.forwardRef<HTMLButtonElement, ButtonProps>(function Button(
  { variant = 'primary', size = 'md', className, type = 'button', ...props },
  ref,
) {
  return (
    <button
      ref={ref}
      type={type}
      className={cx(
        'inline-flex shrink-0 items-center justify-center gap-1.5 whitespace-nowrap rounded-md font-medium transition-colors',
        'focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-primary/60 disabled:opacity-50 disabled:pointer-events-none',
        size === 'sm' && 'h-8 px-2.5 text-sm',
        size === 'md' && 'h-9 px-3.5 text-sm',
        size === 'icon' && 'h-8 w-8 text-sm',
        variant === 'primary' && 'bg-primary text-primary-fg hover:bg-primary/90',
        variant === 'secondary' && 'border border-border bg-card hover:bg-muted',
        variant === 'ghost' && 'hover:bg-muted',
        variant === 'danger' && 'bg-danger text-danger-fg hover:bg-danger/90',
        className,
      )}
      {...props}
    />
  );
});

/** A text input. */
export const Input = React.forwardRef<HTMLInputElement, React.InputHTMLAttributes<HTMLInputElement>>(
  function Input({ className, ...props }, ref) {
    return (
      <input
        ref={ref}
        className={cx(
          'h-9 w-full rounded-md border border-border bg-bg px-3 text-sm placeholder:text-muted-fg',
          // focus-within too: in a date input the keyboard sits in an inner field, and the
          // input itself does not count as focused.
          'focus:outline-none focus:ring-2 focus:ring-primary/50 focus-within:ring-2 focus-within:ring-primary/50',
          className,
        )}
        {...props}
      />
    );
  },
);

/**
 * A password (or secret) input with a button that shows what was typed, for checking a long
 * password on a phone keyboard. It goes back to hidden on submit, so a browser never offers to
 * remember the shown text as a plain field.
 */
export const PasswordInput = React.forwardRef<HTMLInputElement, Omit<React.InputHTMLAttributes<HTMLInputElement>, 'type'>>(
  function PasswordInput({ className, ...props }, ref) {
    const t = useT();
    const [shown, setShown] = React.useState(false);
    const local = React.useRef<HTMLInputElement | null>(null);
    React.useEffect(() => {
      const form = local.current?.form;
      if (!form) return;
      const hide = () => setShown(false);
      form.addEventListener('submit', hide);
      return () => form.removeEventListener('submit', hide);
    }, []);
    return (
      <span className="relative block">
        <Input
          ref={(el) => {
            local.current = el;
            if (typeof ref === 'function') ref(el);
            else if (ref) ref.current = el;
          }}
          type={shown ? 'text' : 'password'}
          className={cx('pr-11', className)}
          {...props}
        />
        <button
          type="button"
          className="absolute inset-y-0 right-0 flex w-10 items-center justify-center rounded-r-md text-muted-fg hover:text-fg focus-visible:outline-none focus-visible:ring-2 focus-visible:ring-primary/60"
          aria-label={shown ? t('common.hidePassword') : t('common.showPassword')}
          aria-pressed={shown}
          title={shown ? t('common.hidePassword') : t('common.showPassword')}
          onClick={(e) => {
            // Inside a <label>: keep the click from also focusing the input's label target.
            e.preventDefault();
            setShown((v) => !v);
          }}
          data-testid="password-toggle"
        >
          {shown ? <EyeOffIcon /> : <EyeIcon />}
        </button>
      </span>
    );
  },
);

/** A multi-line text input. */
export const Textarea = React.forwardRef<HTMLTextAreaElement, React.TextareaHTMLAttributes<HTMLTextAreaElement>>(
  function Textarea({ className, ...props }, ref) {
    return (
      <textarea
        ref={ref}
        className={cx(
          'w-full rounded-md border border-border bg-bg px-3 py-2 text-sm placeholder:text-muted-fg',
          'focus:outline-none focus:ring-2 focus:ring-primary/50',
          className,
        )}
        {...props}
      />
    );
  },
);

/** A native select styled like the inputs. */
export function Select({ className, ...props }: React.SelectHTMLAttributes<HTMLSelectElement>) {
  return (
    <select
      className={cx('h-9 rounded-md border border-border bg-bg px-2 text-sm focus:outline-none focus:ring-2 focus:ring-primary/50', className)}
      {...props}
    />
  );
}

/** A labelled form field. */
export function Field({ label, hint, error, children }: { label: string; hint?: string; error?: string | null; children: React.ReactNode }) {
  return (
    <div className="space-y-1">
      <label className="block space-y-1">
        <span className="text-sm font-medium">{label}</span>
        {children}
      </label>
      {error ? (
        <span className="block text-xs text-danger" data-testid="field-error">{error}</span>
      ) : (
        hint && <span className="block text-xs text-muted-fg">{hint}</span>
      )}
    </div>
  );
}

/** A bordered panel. */
export function Card({ className, ...props }: React.HTMLAttributes<HTMLDivElement>) {
  return <div className={cx('rounded-xl border border-border bg-card p-4', className)} {...props} />;
}

/** A small status label. */
export function Badge({ tone = 'neutral', children }: { tone?: 'neutral' | 'ok' | 'danger' | 'primary'; children: React.ReactNode }) {
  return (
    <span
      className={cx(
        'inline-flex items-center rounded-full px-2 py-0.5 text-xs font-medium',
        tone === 'neutral' && 'bg-muted text-muted-fg',
        tone === 'ok' && 'bg-ok/15 text-ok',
        tone === 'danger' && 'bg-danger/15 text-danger',
        tone === 'primary' && 'bg-primary/15 text-primary',
      )}
    >
      {children}
    </span>
  );
}

/** Shows an error in the user's language, with the request id when the server gave one. */
export function ErrorText({ error }: { error: unknown }) {
  const t = useT();
  if (!error) return null;
  let message = t('error.generic');
  let requestId: string | null = null;
  if (error instanceof ApiError) {
    message = error.status === 0 ? t('error.network') : error.message;
    // Only a server-side failure is worth quoting to an operator; a wrong password or an
    // invalid field (4xx) is the user's to fix, and an id there reads like a crash.
    requestId = error.status >= 500 ? error.requestId : null;
  }
  return (
    <div role="alert" className="rounded-md border border-danger/40 bg-danger/10 px-3 py-2 text-sm text-danger">
      <div>{message}</div>
      {requestId && <div className="mt-0.5 text-xs opacity-80">{t('error.requestId', { id: requestId })}</div>}
    </div>
  );
}

/** Page title row with optional actions on the right. */
export function PageHeader({ title, children }: { title: string; children?: React.ReactNode }) {
  return (
    <div className="mb-4 flex flex-wrap items-center justify-between gap-2">
      <h1 className="text-xl font-semibold">{title}</h1>
      <div className="flex flex-wrap gap-2">{children}</div>
    </div>
  );
}

/** Previous/next paging for `{items,total,page,per_page}` lists. */
export function Pager({ page, perPage, total, onPage }: { page: number; perPage: number; total: number; onPage: (p: number) => void }) {
  const t = useT();
  const pages = Math.max(1, Math.ceil(total / perPage));
  if (pages <= 1) return null;
  return (
    <div className="mt-3 flex items-center justify-end gap-2 text-sm">
      <Button variant="secondary" size="sm" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        {t('common.prev')}
      </Button>
      <span className="text-muted-fg">{t('common.pageOf', { page, pages })}</span>
      <Button variant="secondary" size="sm" disabled={page >= pages} onClick={() => onPage(page + 1)}>
        {t('common.next')}
      </Button>
    </div>
  );
}

/** A column of a [`DataTable`]. */
export interface Column<T> {
  header: string;
  cell: (row: T) => React.ReactNode;
  className?: string;
}

/** A table on wide screens and a stack of cards on phones. */
export function DataTable<T>({ rows, columns, rowKey, empty }: { rows: T[]; columns: Column<T>[]; rowKey: (row: T) => string; empty?: string }) {
  const t = useT();
  if (rows.length === 0) return <p className="py-6 text-center text-sm text-muted-fg">{empty ?? t('common.none')}</p>;
  return (
    <>
      <div className="hidden overflow-x-auto rounded-xl border border-border md:block">
        <table className="w-full text-sm">
          <thead className="bg-muted/60 text-left text-muted-fg">
            <tr>
              {columns.map((c) => (
                <th key={c.header} className={cx('px-3 py-2 font-medium', c.className)}>
                  {c.header}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={rowKey(row)} className="border-t border-border">
                {columns.map((c) => (
                  <td key={c.header} className={cx('px-3 py-2 align-top', c.className)}>
                    {c.cell(row)}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div className="space-y-2 md:hidden" data-testid="cards">
        {rows.map((row) => (
          <Card key={rowKey(row)} className="space-y-1 p-3 text-sm">
            {columns.map((c) => (
              <div key={c.header} className="flex justify-between gap-3">
                <span className="shrink-0 text-muted-fg">{c.header}</span>
                <span className="min-w-0 break-words text-right">{c.cell(row)}</span>
              </div>
            ))}
          </Card>
        ))}
      </div>
    </>
  );
}

/** Copies text and says so for a moment. */
export function CopyButton({ text, label, className }: { text: string; label?: string; className?: string }) {
  const t = useT();
  const [done, setDone] = React.useState(false);
  return (
    <Button
      variant="ghost"
      size="sm"
      className={className}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(text);
        } catch {
          /* clipboard blocked: the text stays selectable */
        }
        setDone(true);
        setTimeout(() => setDone(false), 1500);
      }}
    >
      {done ? t('common.copied') : (label ?? t('common.copy'))}
    </Button>
  );
}
