import { describe, expect, it } from 'vitest';
import { categoryName, diffStats, draftPatch, toggleId, isImageAvatar, marketQuery, numberOrNull, parseLines, parseTags, showValue } from './logic';
import type { AgentSpec } from './types';

describe('agent page logic', () => {
  it('builds the market query without empty filters', () => {
    expect(marketQuery({ q: '  翻译 ', category: '', sort: 'trending', page: 1, perPage: 24 })).toBe('q=%E7%BF%BB%E8%AF%91&sort=trending&per_page=24');
    expect(marketQuery({ q: '', category: 'writing', sort: 'newest', page: 3, perPage: 24 })).toBe('category=writing&sort=newest&page=3&per_page=24');
    // Metacharacters go to the server as typed; it escapes them.
    expect(marketQuery({ q: '100%_', category: '', sort: 'most_liked', page: 1, perPage: 10 })).toBe('q=100%25_&sort=most_liked&per_page=10');
  });

  it('parses tags in either comma width, without repeats, and questions per line', () => {
    expect(parseTags('翻译，language, 翻译\n code ,')).toEqual(['翻译', 'language', 'code']);
    expect(parseLines('a\n\n b \n')).toEqual(['a', 'b']);
  });

  it('tells image avatars from emoji and counts diff lines', () => {
    expect(isImageAvatar('https://example.com/a.png')).toBe(true);
    expect(isImageAvatar('🌐')).toBe(false);
    expect(isImageAvatar('http://example.com/a.png')).toBe(false);
    expect(diffStats([{ op: 'same', text: 'a' }, { op: 'removed', text: 'b' }, { op: 'added', text: 'c' }, { op: 'added', text: 'd' }])).toEqual({ added: 2, removed: 1 });
  });

  it('shows values, category names and numbers as the editor needs them', () => {
    expect(showValue(null)).toBe('—');
    expect(showValue(['a'])).toBe('["a"]');
    expect(showValue(0.5)).toBe('0.5');
    expect(categoryName({ id: 'w', name_en: 'Writing', name_zh: '写作', sort: 0 }, 'zh-CN')).toBe('写作');
    expect(categoryName({ id: 'w', name_en: 'Writing', name_zh: '写作', sort: 0 }, 'en')).toBe('Writing');
    expect(numberOrNull('')).toBeNull();
    expect(numberOrNull('0.7')).toBe(0.7);
    expect(numberOrNull('x')).toBeNull();
  });

  it('sends cleared model and category as empty strings, which the server reads as "none"', () => {
    const spec: AgentSpec = {
      name: 'A', avatar: '', description: '', tags: [], category: null, system_prompt: 'p', model: null,
      temperature: null, top_p: null, max_tokens: null, allow_model_override: false, opening_message: '',
      suggested_questions: [], knowledge_base_ids: [], plugin_ids: [],
    };
    const patch = draftPatch(spec, 'public');
    expect(patch.model).toBe('');
    expect(patch.category).toBe('');
    expect(patch.visibility).toBe('public');
  });

  it('saves the bound knowledge bases and plugins with the draft, each chosen once', () => {
    const spec: AgentSpec = {
      name: 'A', avatar: '', description: '', tags: [], category: null, system_prompt: 'p', model: null,
      temperature: null, top_p: null, max_tokens: null, allow_model_override: false, opening_message: '',
      suggested_questions: [], knowledge_base_ids: ['kb1'], plugin_ids: ['pl1'],
    };
    expect(draftPatch(spec, 'private')).toMatchObject({ knowledge_base_ids: ['kb1'], plugin_ids: ['pl1'] });
    expect(toggleId(['a'], 'b', true)).toEqual(['a', 'b']);
    expect(toggleId(['a', 'b'], 'a', true)).toEqual(['b', 'a']);
    expect(toggleId(['a', 'b'], 'a', false)).toEqual(['b']);
  });
});
