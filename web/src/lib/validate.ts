// What the server checks on registration (crates/skein-user/src/validate.rs), checked in the
// browser first so a form names every problem at once, before it is sent. The server stays the
// judge; these rules only have to agree with it.
import type { MessageKey } from '../i18n';

/** Shortest and longest password the server accepts. */
export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 128;

/** A field's problem, as a message key with its values. */
export interface FieldProblem {
  key: MessageKey;
  vars?: Record<string, string | number>;
}

/** Length in characters as Rust counts them (code points, not UTF-16 units). */
const length = (s: string) => Array.from(s).length;

/** A username: 3 to 32 letters (any script), digits, `_`, `.` or `-`. */
export function usernameProblem(raw: string): FieldProblem | null {
  const name = raw.trim();
  if (length(name) < 3 || length(name) > 32) return { key: 'validate.usernameLength' };
  if (!/^[\p{Alphabetic}\p{N}_.-]+$/u.test(name)) return { key: 'validate.usernameChars' };
  return null;
}

/** An email address of plausible shape (the server's rule, not RFC 5322). */
export function emailProblem(raw: string): FieldProblem | null {
  const email = raw.trim().toLowerCase();
  const bad = { key: 'validate.email' as const };
  if (email.length > 254 || /[\s\p{Cc}]/u.test(email)) return bad;
  const at = email.indexOf('@');
  if (at < 0) return bad;
  const local = email.slice(0, at);
  const domain = email.slice(at + 1);
  if (
    !local ||
    local.length > 64 ||
    domain.length < 3 ||
    domain.includes('@') ||
    !domain.includes('.') ||
    domain.startsWith('.') ||
    domain.endsWith('.') ||
    domain.includes('..')
  ) {
    return bad;
  }
  return null;
}

/** A new password: 8 to 128 characters, not only spaces. */
export function passwordProblem(raw: string): FieldProblem | null {
  const n = length(raw);
  if (n < PASSWORD_MIN || n > PASSWORD_MAX || !raw.trim()) {
    return { key: 'validate.password', vars: { min: PASSWORD_MIN, max: PASSWORD_MAX } };
  }
  return null;
}

/** Every problem of a registration form, by field (`username`, `email`, `password`). */
export function registrationProblems(form: { username: string; email: string; password: string }) {
  const problems: Record<string, FieldProblem> = {};
  const username = form.username.trim();
  const email = form.email.trim();
  if (!username && !email) problems.username = { key: 'validate.nameOrEmail' };
  const u = username ? usernameProblem(username) : null;
  if (u) problems.username = u;
  const e = email ? emailProblem(email) : null;
  if (e) problems.email = e;
  const p = passwordProblem(form.password);
  if (p) problems.password = p;
  return problems;
}
