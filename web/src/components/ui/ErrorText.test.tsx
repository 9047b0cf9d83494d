// An error says what went wrong; only a server failure quotes its request id.
import { afterEach, describe, expect, it } from 'vitest';
import { render, screen } from '@testing-library/react';
import { ErrorText } from './index';
import { ApiError } from '../../lib/api';
import { setLang } from '../../lib/settings';

afterEach(() => setLang('en'));

describe('ErrorText', () => {
  it('a wrong password shows the message without a request id', () => {
    render(<ErrorText error={new ApiError(401, 'invalid_credentials', 'Wrong username or password.', 'req-401')} />);
    expect(screen.getByRole('alert').textContent).toBe('Wrong username or password.');
  });

  it('a server failure quotes the request id to report', () => {
    render(<ErrorText error={new ApiError(502, 'upstream_unavailable', 'Unavailable right now.', 'req-502')} />);
    expect(screen.getByText('Request id: req-502')).toBeTruthy();
  });

  it('a network failure says so in the UI language', () => {
    setLang('zh-CN');
    render(<ErrorText error={new ApiError(0, 'network_error', 'Failed to fetch', null)} />);
    expect(screen.getByRole('alert').textContent).not.toContain('Failed to fetch');
  });
});
