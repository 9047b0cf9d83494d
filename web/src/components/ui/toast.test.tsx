// Notices appear under the header, never over the chat composer at the bottom.
import { describe, expect, it } from 'vitest';
import { act, render, screen } from '@testing-library/react';
import { toast, Toaster } from './toast';

describe('toasts', () => {
  it('are shown at the top, clear of the composer', () => {
    render(<Toaster />);
    act(() => toast('Imported 3 conversations'));
    expect(screen.getByText('Imported 3 conversations')).toBeTruthy();
    const classes = screen.getByTestId('toaster').className.split(/\s+/);
    expect(classes).toContain('top-14');
    expect(classes.some((c) => c.startsWith('bottom-'))).toBe(false);
  });
});
