// Chat keyboard shortcuts: which key does what (Ctrl elsewhere, ⌘ on a Mac), Esc stops only
// an answer being written, IME composition is never a shortcut, and the help overlay lists them.
import { afterEach, describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import { ShortcutHelp, shortcutFor } from './shortcuts';
import { setLang } from '../../lib/settings';

afterEach(() => setLang('en'));

const key = (k: string, mods: Partial<{ ctrlKey: boolean; metaKey: boolean; shiftKey: boolean; altKey: boolean; isComposing: boolean }> = {}) => ({
  key: k,
  ctrlKey: false,
  metaKey: false,
  shiftKey: false,
  altKey: false,
  isComposing: false,
  ...mods,
});

describe('shortcutFor', () => {
  it('maps the keys to actions with Ctrl, and with ⌘ on a Mac', () => {
    expect(shortcutFor(key('O', { ctrlKey: true, shiftKey: true }), false, false)).toBe('newChat');
    expect(shortcutFor(key('o', { metaKey: true, shiftKey: true }), false, true)).toBe('newChat');
    expect(shortcutFor(key('k', { ctrlKey: true }), false, false)).toBe('search');
    expect(shortcutFor(key('k', { metaKey: true }), false, false)).toBeNull();
    expect(shortcutFor(key('/', { ctrlKey: true }), false, false)).toBe('help');
    expect(shortcutFor(key('Escape', { shiftKey: true }), false, false)).toBe('focusComposer');
  });

  it('Esc stops only while an answer is written', () => {
    expect(shortcutFor(key('Escape'), true, false)).toBe('stop');
    expect(shortcutFor(key('Escape'), false, false)).toBeNull();
  });

  it('ignores keys typed while an IME composes, and plain letters', () => {
    expect(shortcutFor(key('k', { ctrlKey: true, isComposing: true }), false, false)).toBeNull();
    expect(shortcutFor(key('k'), false, false)).toBeNull();
  });
});

describe('shortcut help', () => {
  it('lists every shortcut with its keys, in Chinese too', () => {
    setLang('zh-CN');
    render(<ShortcutHelp open onOpenChange={() => undefined} />);
    const table = screen.getByTestId('shortcut-help');
    expect(screen.getByRole('dialog', { name: '键盘快捷键' })).toBeTruthy();
    expect(table.querySelectorAll('tr')).toHaveLength(5);
    expect(table.textContent).toContain('新对话');
    expect(table.textContent).toContain('Esc');
  });
});
