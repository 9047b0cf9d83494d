import { describe, expect, it } from 'vitest';
import { avatarSources, servedSize } from './avatar';

describe('avatar sizes', () => {
  it('asks for the smallest served size that covers the shown size', () => {
    expect(servedSize(20)).toBe(32);
    expect(servedSize(32)).toBe(32);
    expect(servedSize(56)).toBe(64);
    expect(servedSize(112)).toBe(128);
    expect(servedSize(1000)).toBe(256);
  });

  it('adds 1x and 2x sizes to the uploaded or generated address', () => {
    expect(avatarSources({ id: 'u1', avatar_url: '/api/v1/users/u1/avatar?v=abcd' }, 56)).toEqual({
      src: '/api/v1/users/u1/avatar?v=abcd&size=64',
      srcSet: '/api/v1/users/u1/avatar?v=abcd&size=64 1x, /api/v1/users/u1/avatar?v=abcd&size=128 2x',
    });
    expect(avatarSources({ id: 'u2', avatar_url: null }, 32)).toEqual({
      src: '/api/v1/users/u2/avatar?size=32',
      srcSet: '/api/v1/users/u2/avatar?size=32 1x, /api/v1/users/u2/avatar?size=64 2x',
    });
  });

  it('shows the generated avatar, never an outside address', () => {
    expect(avatarSources({ id: 'u3', avatar_url: 'https://cdn.example.com/a.png' }, 32).src).toBe('/api/v1/users/u3/avatar?size=32');
  });
});
