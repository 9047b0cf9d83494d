// The avatar crop tool: the framing math (the picture always covers the square, zoom keeps the
// centre), and the dialog drawing the framed square into a PNG sent to PUT /user/avatar.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { act, cleanup, fireEvent, render, screen, waitFor } from '@testing-library/react';
import { AvatarCropDialog, OUT, VIEW, centred, clampOffset, cropRect, zoomAbout } from './AvatarCrop';
import { setLang } from '../../lib/settings';

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  vi.restoreAllMocks();
  setLang('en');
});

describe('framing', () => {
  const wide = { w: 1000, h: 500 };

  it('fills the square with the short side and centres the picture', () => {
    const o = centred(wide, 1);
    // 500 px tall fills 256 px: scale 0.512, the picture is 512 px wide, centred.
    expect(o.x).toBeCloseTo((VIEW - 512) / 2);
    expect(o.y).toBeCloseTo(0);
    const r = cropRect(wide, 1, o);
    expect(r.size).toBeCloseTo(500);
    expect(r.sx).toBeCloseTo(250);
    expect(r.sy).toBeCloseTo(0);
  });

  it('never lets the picture uncover the square', () => {
    expect(clampOffset(wide, 1, { x: 50, y: 50 })).toEqual({ x: 0, y: 0 });
    const far = clampOffset(wide, 1, { x: -5000, y: -5000 });
    expect(far.x).toBeCloseTo(VIEW - 512);
    expect(far.y).toBeCloseTo(0);
    const r = cropRect(wide, 1, { x: -5000, y: 0 });
    expect(r.sx + r.size).toBeCloseTo(1000);
  });

  it('zooms about the centre and crops a smaller square', () => {
    const o = centred(wide, 1);
    const z = zoomAbout(wide, 1, 2, o);
    const r = cropRect(wide, 2, z);
    expect(r.size).toBeCloseTo(250);
    // The same centre: (500, 250) in the source.
    expect(r.sx + r.size / 2).toBeCloseTo(500);
    expect(r.sy + r.size / 2).toBeCloseTo(250);
  });
});

describe('AvatarCropDialog', () => {
  it('draws the framed square at 512 px and uploads it as the avatar', async () => {
    vi.stubGlobal('URL', Object.assign(URL, { createObjectURL: () => 'blob:picture', revokeObjectURL: () => undefined }));
    const drawImage = vi.fn();
    vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockReturnValue({ drawImage, imageSmoothingQuality: 'low' } as unknown as CanvasRenderingContext2D);
    vi.spyOn(HTMLCanvasElement.prototype, 'toBlob').mockImplementation(function (cb: BlobCallback) {
      cb(new Blob(['png'], { type: 'image/png' }));
    });
    const sent: { method: string; url: string; body: unknown }[] = [];
    vi.stubGlobal('fetch', async (url: string, init: RequestInit = {}) => {
      sent.push({ method: init.method ?? 'GET', url, body: init.body });
      return new Response(JSON.stringify({ id: 'u1', display_name: 'Ada', avatar_url: '/api/v1/users/u1/avatar' }), { status: 200 });
    });
    const onClose = vi.fn();
    render(<AvatarCropDialog file={new File(['x'], 'me.jpg', { type: 'image/jpeg' })} onClose={onClose} />);
    expect(screen.getByText('Frame your picture')).toBeTruthy();
    const save = screen.getByRole('button', { name: 'Use this picture' }) as HTMLButtonElement;
    expect(save.disabled).toBe(true);

    // The picture loads: 1000 × 500.
    const img = document.querySelector('img[src="blob:picture"]') as HTMLImageElement;
    Object.defineProperty(img, 'naturalWidth', { value: 1000 });
    Object.defineProperty(img, 'naturalHeight', { value: 500 });
    act(() => {
      fireEvent.load(img);
    });
    await waitFor(() => expect(save.disabled).toBe(false));

    // Move it right as far as it goes (and further: it stops at the picture's left edge).
    const frame = screen.getByTestId('crop-frame');
    for (let i = 0; i < 6; i++) fireEvent.keyDown(frame, { key: 'ArrowLeft', shiftKey: true });

    fireEvent.click(save);
    await waitFor(() => expect(onClose).toHaveBeenCalled());
    expect(drawImage).toHaveBeenCalledTimes(1);
    const [, sx, sy, sw, sh, dx, dy, dw, dh] = drawImage.mock.calls[0];
    expect([sx, sy]).toEqual([0, 0]);
    expect(sw).toBeCloseTo(500);
    expect(sh).toBeCloseTo(500);
    expect([dx, dy, dw, dh]).toEqual([0, 0, OUT, OUT]);
    expect(sent).toHaveLength(1);
    expect(sent[0].method).toBe('PUT');
    expect(sent[0].url).toContain('/api/v1/user/avatar');
    const form = sent[0].body as FormData;
    expect((form.get('file') as File).type).toBe('image/png');
  });

  it('speaks Chinese', () => {
    setLang('zh-CN');
    vi.stubGlobal('URL', Object.assign(URL, { createObjectURL: () => 'blob:p', revokeObjectURL: () => undefined }));
    render(<AvatarCropDialog file={new File(['x'], 'me.png')} onClose={() => undefined} />);
    expect(screen.getByText('裁剪头像')).toBeTruthy();
    expect(screen.getByRole('button', { name: '使用此图片' })).toBeTruthy();
  });
});
