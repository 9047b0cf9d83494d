// The show-password toggle: it reveals and hides what was typed, names itself for screen
// readers in both languages, keeps the input's label, and hides again when the form is sent.
import { afterEach, describe, expect, it } from 'vitest';
import { fireEvent, render, screen } from '@testing-library/react';
import { Field, PasswordInput } from '.';
import { setLang } from '../../lib/settings';

afterEach(() => setLang('en'));

describe('PasswordInput', () => {
  it('shows and hides the password, keeping the field labelled', () => {
    render(
      <Field label="Password">
        <PasswordInput value="hunter2 horse" onChange={() => undefined} />
      </Field>,
    );
    const input = screen.getByLabelText('Password') as HTMLInputElement;
    expect(input.type).toBe('password');
    fireEvent.click(screen.getByRole('button', { name: 'Show password' }));
    expect(input.type).toBe('text');
    const hide = screen.getByRole('button', { name: 'Hide password' });
    expect(hide.getAttribute('aria-pressed')).toBe('true');
    fireEvent.click(hide);
    expect(input.type).toBe('password');
  });

  it('goes back to hidden when the form is submitted', () => {
    render(
      <form onSubmit={(e) => e.preventDefault()}>
        <PasswordInput aria-label="Secret" defaultValue="x" />
        <button type="submit">Go</button>
      </form>,
    );
    fireEvent.click(screen.getByRole('button', { name: 'Show password' }));
    expect((screen.getByLabelText('Secret') as HTMLInputElement).type).toBe('text');
    fireEvent.click(screen.getByRole('button', { name: 'Go' }));
    expect((screen.getByLabelText('Secret') as HTMLInputElement).type).toBe('password');
  });

  it('reads in Chinese', () => {
    setLang('zh-CN');
    render(<PasswordInput aria-label="密码" defaultValue="x" />);
    expect(screen.getByRole('button', { name: '显示密码' })).toBeTruthy();
  });
});
