/** The Agent pages' branch logic, kept pure so it is tested without a browser. */
import type { AgentSpec, Category, DiffLine } from './types';

/** How the market may be sorted (the server's names). */
export const SORTS = ['trending', 'newest', 'most_used', 'most_liked'] as const;
export type Sort = (typeof SORTS)[number];

/** The market's query string: empty values are left out, the page only past the first. */
export function marketQuery(f: { q: string; category: string; sort: Sort; page: number; perPage: number }): string {
  const p = new URLSearchParams();
  if (f.q.trim()) p.set('q', f.q.trim());
  if (f.category) p.set('category', f.category);
  p.set('sort', f.sort);
  if (f.page > 1) p.set('page', String(f.page));
  p.set('per_page', String(f.perPage));
  return p.toString();
}

/** Tags typed as text: split on commas (either width) and new lines, trimmed, without repeats. */
export function parseTags(text: string): string[] {
  const out: string[] = [];
  for (const part of text.split(/[,，\n]/)) {
    const tag = part.trim();
    if (tag && !out.includes(tag)) out.push(tag);
  }
  return out;
}

/** One question per line, blank lines dropped. */
export function parseLines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

/** Whether an avatar is an image address rather than an emoji. */
export function isImageAvatar(avatar: string): boolean {
  return /^https:\/\//.test(avatar);
}

/** Whether an avatar names an uploaded image (`file:<id>`), shown through its signed URL. */
export function isFileAvatar(avatar: string): boolean {
  return avatar.startsWith('file:');
}

/** How many lines a prompt diff adds and removes. */
export function diffStats(lines: DiffLine[]): { added: number; removed: number } {
  return {
    added: lines.filter((l) => l.op === 'added').length,
    removed: lines.filter((l) => l.op === 'removed').length,
  };
}

/** A compared field's value as text (JSON for lists, `—` for nothing). */
export function showValue(value: unknown): string {
  if (value === null || value === undefined || value === '') return '—';
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

/** A category's name in the reader's language. */
export function categoryName(c: Category, lang: string): string {
  return lang.startsWith('zh') ? c.name_zh : c.name_en;
}

/** A number input's value: empty is "not set" (`null`), anything else a number. */
export function numberOrNull(text: string): number | null {
  if (text.trim() === '') return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}

/** The draft fields the editor sends (everything it shows, so a save is one PATCH). */
export function draftPatch(spec: AgentSpec, visibility: string) {
  return {
    name: spec.name,
    avatar: spec.avatar,
    description: spec.description,
    tags: spec.tags,
    category: spec.category ?? '',
    system_prompt: spec.system_prompt,
    model: spec.model ?? '',
    temperature: spec.temperature,
    top_p: spec.top_p,
    max_tokens: spec.max_tokens,
    allow_model_override: spec.allow_model_override,
    opening_message: spec.opening_message,
    suggested_questions: spec.suggested_questions,
    knowledge_base_ids: spec.knowledge_base_ids,
    plugin_ids: spec.plugin_ids,
    visibility,
  };
}

/** `ids` with `id` added (once) or removed, keeping the order the user picked them in. */
export function toggleId(ids: string[], id: string, on: boolean): string[] {
  const rest = ids.filter((x) => x !== id);
  return on ? [...rest, id] : rest;
}
