import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { attachImages, fitWithin, ImageError, isSafeImageSrc, MAX_DATA_URL, MAX_IMAGES, prepareImage } from './images';

/** A stand-in for HTMLImageElement that "decodes" at a given size as soon as src is set. */
function fakeImage(width: number, height: number, fail = false) {
  return class {
    naturalWidth = width;
    naturalHeight = height;
    width = width;
    height = height;
    onload: (() => void) | null = null;
    onerror: (() => void) | null = null;
    set src(_: string) {
      setTimeout(() => (fail ? this.onerror?.() : this.onload?.()), 0);
    }
  };
}

const png = (bytes = 8) => new File([new Uint8Array(bytes)], 'a.png', { type: 'image/png' });
let drawn: { width: number; height: number; type: string }[];
let encoded: (type: string) => string;

beforeEach(() => {
  drawn = [];
  encoded = (type) => `data:${type};base64,AAAA`;
  vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockImplementation(() => ({ drawImage: vi.fn() }) as unknown as CanvasRenderingContext2D);
  vi.spyOn(HTMLCanvasElement.prototype, 'toDataURL').mockImplementation(function (this: HTMLCanvasElement, type?: string) {
    drawn.push({ width: this.width, height: this.height, type: type ?? 'image/png' });
    return encoded(type ?? 'image/png');
  });
});

afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllGlobals();
});

describe('fitWithin', () => {
  it('keeps small images and scales the longest side down to 2048', () => {
    expect(fitWithin(800, 600)).toEqual({ width: 800, height: 600 });
    expect(fitWithin(4096, 1024)).toEqual({ width: 2048, height: 512 });
    expect(fitWithin(1000, 3000)).toEqual({ width: 683, height: 2048 });
  });
});

describe('isSafeImageSrc', () => {
  it('allows only inline images and https URLs', () => {
    expect(isSafeImageSrc('data:image/png;base64,iVBORw0KGgo=')).toBe(true);
    expect(isSafeImageSrc('data:image/webp;base64,AAAA')).toBe(true);
    expect(isSafeImageSrc('https://example.com/cat.jpg')).toBe(true);
    expect(isSafeImageSrc('http://example.com/cat.jpg')).toBe(false);
    expect(isSafeImageSrc('javascript:alert(1)')).toBe(false);
    expect(isSafeImageSrc('data:text/html;base64,PHNjcmlwdD4=')).toBe(false);
    expect(isSafeImageSrc('data:image/svg+xml;base64,PHN2Zz4=')).toBe(false);
    expect(isSafeImageSrc('https://x.com/a.png" onerror="x')).toBe(false);
    expect(isSafeImageSrc(null)).toBe(false);
  });
});

describe('prepareImage', () => {
  it('refuses files that are not images', async () => {
    const text = new File(['hello'], 'a.txt', { type: 'text/plain' });
    await expect(prepareImage(text)).rejects.toEqual(new ImageError('notImage'));
    const svg = new File(['<svg/>'], 'a.svg', { type: 'image/svg+xml' });
    await expect(prepareImage(svg)).rejects.toMatchObject({ problem: 'notImage' });
  });

  it('sends a small image as it is, as a base64 data URL', async () => {
    vi.stubGlobal('Image', fakeImage(64, 64));
    const url = await prepareImage(new File([new Uint8Array([1, 2, 3])], 'a.png', { type: 'image/png' }));
    expect(url).toBe('data:image/png;base64,AQID');
    expect(drawn).toEqual([]);
  });

  it('scales a large image down to 2048 px on its longest side, keeping its format', async () => {
    vi.stubGlobal('Image', fakeImage(4000, 3000));
    const jpeg = new File([new Uint8Array(10)], 'p.jpg', { type: 'image/jpeg' });
    expect(await prepareImage(jpeg)).toBe('data:image/jpeg;base64,AAAA');
    expect(drawn).toEqual([{ width: 2048, height: 1536, type: 'image/jpeg' }]);
    drawn = [];
    expect(await prepareImage(png())).toBe('data:image/png;base64,AAAA');
    expect(drawn[0].type).toBe('image/png');
  });

  it('re-encodes a PNG that stays too big as JPEG, and refuses what is still over 5 MB', async () => {
    vi.stubGlobal('Image', fakeImage(3000, 3000));
    encoded = (type) => (type === 'image/png' ? `data:image/png;base64,${'A'.repeat(MAX_DATA_URL)}` : 'data:image/jpeg;base64,BBBB');
    expect(await prepareImage(png())).toBe('data:image/jpeg;base64,BBBB');
    expect(drawn.map((d) => d.type)).toEqual(['image/png', 'image/jpeg']);
    encoded = (type) => `data:${type};base64,${'A'.repeat(MAX_DATA_URL)}`;
    await expect(prepareImage(png())).rejects.toMatchObject({ problem: 'tooLarge' });
  });

  it('reports an image the browser cannot decode', async () => {
    vi.stubGlobal('Image', fakeImage(1, 1, true));
    await expect(prepareImage(png())).rejects.toMatchObject({ problem: 'unreadable' });
  });
});

describe('attachImages', () => {
  const ok = async (f: File) => `data:image/png;base64,${f.name}`;

  it(`keeps at most ${MAX_IMAGES} images and says so`, async () => {
    const files = Array.from({ length: 6 }, (_, i) => new File(['x'], `f${i}`, { type: 'image/png' }));
    const { images, problem } = await attachImages(['data:image/png;base64,old'], files, ok);
    expect(images).toHaveLength(MAX_IMAGES);
    expect(images[1]).toBe('data:image/png;base64,f0');
    expect(problem).toBe('tooMany');
  });

  it('adds the good files and reports the first bad one', async () => {
    const files = [new File(['x'], 'a.txt', { type: 'text/plain' }), new File(['x'], 'b', { type: 'image/png' })];
    const prepare = (f: File) => (f.type === 'text/plain' ? Promise.reject(new ImageError('notImage')) : ok(f));
    expect(await attachImages([], files, prepare)).toEqual({ images: ['data:image/png;base64,b'], problem: 'notImage' });
  });
});
