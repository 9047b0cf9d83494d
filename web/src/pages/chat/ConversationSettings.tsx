import { useState } from 'react';
import { useQuery } from '@tanstack/react-query';
import { api } from '../../lib/api';
import { qk } from '../../lib/queryKeys';
import type { Conversation, Page } from '../../lib/types';
import type { Base } from '../knowledge/types';
import { useT } from '../../i18n';
import { Button, cx, ErrorText, Field, Input, Textarea } from '../../components/ui';
import { Dialog } from '../../components/ui/dialog';

const numOrNull = (s: string) => (s.trim() === '' ? null : Number(s));
const sameIds = (a: string[], b: string[]) => a.length === b.length && a.every((id) => b.includes(id));

/** The dialog's fields as the conversation has them (an unset number is an empty field). */
function formOf(conversation: Conversation) {
  const s = (v: number | null) => (v == null ? '' : String(v));
  return {
    system_prompt: conversation.system_prompt ?? '',
    temperature: s(conversation.temperature),
    top_p: s(conversation.top_p),
    max_tokens: s(conversation.max_tokens),
    history_limit: s(conversation.history_limit),
  };
}

/**
 * A labelled slider for a sampling setting that may be left to the model's default: the value
 * (or "Model default") beside the label, the range under it, and a Reset back to the default.
 */
export function SliderField({ label, hint, value, onChange, min, max, step, fallback }: { label: string; hint: string; value: string; onChange: (v: string) => void; min: number; max: number; step: number; fallback: number }) {
  const t = useT();
  const id = `slider-${label.replace(/\W+/g, '-').toLowerCase()}`;
  const isDefault = value.trim() === '';
  return (
    <div className="space-y-1" data-testid="slider-field">
      <div className="flex items-center justify-between gap-2">
        <label htmlFor={id} className="text-sm font-medium">
          {label}
        </label>
        <span className="flex items-center gap-2 text-sm tabular-nums">
          <span className={isDefault ? 'text-muted-fg' : undefined} data-testid="slider-value">
            {isDefault ? t('chat.modelDefault') : value}
          </span>
          {!isDefault && (
            <button type="button" className="text-xs text-primary hover:underline" onClick={() => onChange('')}>
              {t('chat.reset')}
            </button>
          )}
        </span>
      </div>
      <input
        id={id}
        type="range"
        min={min}
        max={max}
        step={step}
        value={isDefault ? fallback : Number(value)}
        onChange={(e) => onChange(e.target.value)}
        aria-valuetext={isDefault ? t('chat.modelDefault') : value}
        className={cx('h-2 w-full cursor-pointer accent-[rgb(var(--primary))]', isDefault && 'opacity-50')}
      />
      <div className="flex justify-between gap-2 text-xs text-muted-fg">
        <span>{min}</span>
        <span className="text-center">{hint}</span>
        <span>{max}</span>
      </div>
    </div>
  );
}

/** Per-conversation settings: system prompt, sampling, answer length, history sent, and the
 * knowledge bases answers search. */
export function ConversationSettings({
  open,
  onOpenChange,
  conversation,
  onSaved,
}: {
  open: boolean;
  onOpenChange: (o: boolean) => void;
  conversation: Conversation;
  onSaved: () => void;
}) {
  const t = useT();
  const [form, setForm] = useState(() => formOf(conversation));
  const [error, setError] = useState<unknown>(null);
  // Which conversation the form was filled from, and the bases it had when they loaded: the form
  // is filled once per opening — the conversation is fetched again while the dialog is open (a
  // finished answer, a new title), and refilling then would throw away what was typed — and the
  // bases are sent back only once they are known, so a save before they load cannot detach them.
  const [filledFor, setFilledFor] = useState<string | null>(null);
  const [attached, setAttached] = useState<{ conversation: string; ids: string[] } | null>(null);
  const bases = useQuery({ queryKey: qk.knowledge.bases, queryFn: () => api<Page<Base>>('knowledge/bases?per_page=100'), enabled: open });
  const current = useQuery({
    queryKey: qk.knowledge.attached(conversation.id),
    queryFn: () => api<{ base_ids: string[] }>(`knowledge/conversations/${conversation.id}/bases`),
    enabled: open,
  });
  if (open && filledFor !== conversation.id) {
    setFilledFor(conversation.id);
    setForm(formOf(conversation));
    setError(null);
    setAttached(null);
  } else if (!open && filledFor !== null) {
    setFilledFor(null);
  }
  if (open && current.data && attached?.conversation !== conversation.id) {
    setAttached({ conversation: conversation.id, ids: current.data.base_ids });
  }
  const picked = attached?.conversation === conversation.id ? attached.ids : null;
  const set = (k: keyof typeof form) => (e: React.ChangeEvent<HTMLInputElement | HTMLTextAreaElement>) => setForm({ ...form, [k]: e.target.value });
  return (
    <Dialog open={open} onOpenChange={onOpenChange} title={t('chat.settings')}>
      <form
        className="space-y-3"
        onSubmit={async (e) => {
          e.preventDefault();
          try {
            await api(`chat/conversations/${conversation.id}`, {
              method: 'PATCH',
              body: {
                system_prompt: form.system_prompt.trim() || null,
                temperature: numOrNull(form.temperature),
                top_p: numOrNull(form.top_p),
                max_tokens: numOrNull(form.max_tokens),
                history_limit: numOrNull(form.history_limit),
              },
            });
            if (picked && !sameIds(picked, current.data?.base_ids ?? [])) {
              await api(`knowledge/conversations/${conversation.id}/bases`, { method: 'PUT', body: { base_ids: picked } });
              void current.refetch();
            }
            onSaved();
            onOpenChange(false);
          } catch (err) {
            setError(err);
          }
        }}
      >
        <Field label={t('chat.systemPrompt')}>
          <Textarea rows={4} value={form.system_prompt} onChange={set('system_prompt')} />
        </Field>
        <SliderField label={t('chat.temperature')} hint={t('chat.temperatureHint')} min={0} max={2} step={0.1} fallback={1} value={form.temperature} onChange={(v) => setForm({ ...form, temperature: v })} />
        <SliderField label={t('chat.topP')} hint={t('chat.topPHint')} min={0} max={1} step={0.05} fallback={1} value={form.top_p} onChange={(v) => setForm({ ...form, top_p: v })} />
        <div className="grid gap-3 sm:grid-cols-2">
          <Field label={t('chat.maxTokens')} hint={t('chat.maxTokensHint')}>
            <Input type="number" min="1" placeholder={t('chat.modelDefault')} value={form.max_tokens} onChange={set('max_tokens')} />
          </Field>
          <Field label={t('chat.historyLimit')} hint={t('chat.historyLimitHint')}>
            <Input type="number" min="0" placeholder={t('chat.allHistory')} value={form.history_limit} onChange={set('history_limit')} />
          </Field>
        </div>
        <fieldset className="space-y-1" data-testid="knowledge-picker" disabled={!picked} aria-busy={!picked}>
          <legend className="text-sm font-medium">{t('knowledge.attach')}</legend>
          <p className="text-xs text-muted-fg">{t('knowledge.attachHint')}</p>
          {(bases.data?.items ?? []).length === 0 && <p className="text-xs text-muted-fg">{t('knowledge.noBases')}</p>}
          {(bases.data?.items ?? []).map((b) => (
            <label key={b.id} className="flex items-center gap-2 text-sm">
              <input
                type="checkbox"
                checked={picked?.includes(b.id) ?? false}
                onChange={(e) => picked && setAttached({ conversation: conversation.id, ids: e.target.checked ? [...picked, b.id] : picked.filter((id) => id !== b.id) })}
              />
              <span className="truncate">{b.name}</span>
            </label>
          ))}
        </fieldset>
        <ErrorText error={error} />
        <div className="flex justify-end gap-2">
          <Button variant="secondary" onClick={() => onOpenChange(false)}>
            {t('common.cancel')}
          </Button>
          <Button type="submit">{t('common.save')}</Button>
        </div>
      </form>
    </Dialog>
  );
}
