// The registration rules agree with the server's (crates/skein-user/src/validate.rs tests).
import { describe, expect, it } from 'vitest';
import { emailProblem, passwordProblem, registrationProblems, usernameProblem } from './validate';

describe('registration rules', () => {
  it('usernames: 3 to 32 letters of any script, digits, _ . -', () => {
    for (const ok of ['ada', 'ada_l.ove-1', '张三丰', 'a'.repeat(32), ' ada ']) expect(usernameProblem(ok)).toBeNull();
    expect(usernameProblem('ab')?.key).toBe('validate.usernameLength');
    expect(usernameProblem('a'.repeat(33))?.key).toBe('validate.usernameLength');
    expect(usernameProblem("x'); DROP")?.key).toBe('validate.usernameChars');
    expect(usernameProblem('ada love')?.key).toBe('validate.usernameChars');
    // Counted in characters, as the server does: three astral letters are three.
    expect(usernameProblem('𠀀𠀁𠀂')).toBeNull();
  });

  it('emails of plausible shape', () => {
    for (const ok of ['ada@example.com', '  Ada@Example.COM ']) expect(emailProblem(ok)).toBeNull();
    for (const bad of ['nope', '@example.com', 'a@b', 'a@.com', 'a@example.', 'a@exa..mple.com', 'a b@example.com', 'a@b@c.com']) {
      expect(emailProblem(bad)?.key, bad).toBe('validate.email');
    }
  });

  it('passwords of 8 to 128 characters, not only spaces', () => {
    expect(passwordProblem('correct horse')).toBeNull();
    expect(passwordProblem('short')?.key).toBe('validate.password');
    expect(passwordProblem(' '.repeat(10))?.key).toBe('validate.password');
    expect(passwordProblem('x'.repeat(129))?.key).toBe('validate.password');
  });

  it('a form gets every problem at once', () => {
    expect(Object.keys(registrationProblems({ username: 'a', email: 'nope', password: 'short' }))).toEqual(['username', 'email', 'password']);
    expect(registrationProblems({ username: '', email: '', password: 'long enough' }).username?.key).toBe('validate.nameOrEmail');
    expect(registrationProblems({ username: '', email: 'ada@example.com', password: 'long enough' })).toEqual({});
  });
});
