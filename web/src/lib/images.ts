// Images attached to a chat message: read in the browser, downscaled when large, and sent as
// `data:image/...;base64,` URLs (docs/CHAT-API.md: at most 4 per message, each ≤ ~5 MB).

/** Most images one message may carry (the server refuses more). */
export const MAX_IMAGES = 4;
/** Longest data URL accepted per image, in characters (= bytes; data URLs are ASCII). */
export const MAX_DATA_URL = 5 * 1024 * 1024;
/** Longest side, in pixels, an image is scaled down to before sending. */
export const MAX_SIDE = 2048;
/** The formats read (GIF is sent as its first frame, re-encoded). */
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'image/gif'];

/** Why an image was not attached; the UI shows it in the user's language. */
export type ImageProblem = 'notImage' | 'tooLarge' | 'tooMany' | 'unreadable';

export class ImageError extends Error {
  constructor(readonly problem: ImageProblem) {
    super(problem);
  }
}

/** The size an image of `width` × `height` is drawn at so that neither side exceeds `max`. */
export function fitWithin(width: number, height: number, max = MAX_SIDE): { width: number; height: number } {
  const side = Math.max(width, height);
  if (side <= max || side === 0) return { width, height };
  const scale = max / side;
  return { width: Math.max(1, Math.round(width * scale)), height: Math.max(1, Math.round(height * scale)) };
}

/**
 * Whether `url` may be shown with `<img src>`: inline images, https URLs, and this server's
 * signed file URLs (how stored chat images are shown).
 */
export function isSafeImageSrc(url: unknown): url is string {
  if (typeof url !== 'string') return false;
  return (
    /^data:image\/(png|jpeg|jpg|webp|gif);base64,[A-Za-z0-9+/=]+$/i.test(url) ||
    /^https:\/\/[^\s"'<>]+$/i.test(url) ||
    /^\/api\/v1\/files\/[A-Za-z0-9_-]+\/content\?[A-Za-z0-9_=&%.-]+$/.test(url)
  );
}

/** Reads a file as a data URL. */
export function readAsDataUrl(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => (typeof reader.result === 'string' ? resolve(reader.result) : reject(new ImageError('unreadable')));
    reader.onerror = () => reject(new ImageError('unreadable'));
    reader.readAsDataURL(file);
  });
}

/** Decodes a data URL into an image element. */
export function loadImage(src: string): Promise<HTMLImageElement> {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new ImageError('unreadable'));
    img.src = src;
  });
}

/** Draws `img` at `size` and encodes it; PNG stays PNG (transparency) unless it is too big. */
function encode(img: HTMLImageElement, size: { width: number; height: number }, type: string): string {
  const canvas = document.createElement('canvas');
  canvas.width = size.width;
  canvas.height = size.height;
  const ctx = canvas.getContext('2d');
  if (!ctx) throw new ImageError('unreadable');
  ctx.drawImage(img, 0, 0, size.width, size.height);
  return canvas.toDataURL(type, 0.9);
}

/**
 * Turns a picked, pasted or dropped file into a data URL to send: refused when it is not an
 * image; scaled down to [`MAX_SIDE`] and re-encoded (JPEG when PNG stays too big) when large.
 */
export async function prepareImage(file: File): Promise<string> {
  if (!IMAGE_TYPES.includes(file.type.toLowerCase())) throw new ImageError('notImage');
  const original = await readAsDataUrl(file);
  const img = await loadImage(original);
  const width = img.naturalWidth || img.width;
  const height = img.naturalHeight || img.height;
  const size = fitWithin(width, height);
  const needsScale = size.width !== width || size.height !== height;
  const isGif = file.type.toLowerCase() === 'image/gif';
  if (!needsScale && !isGif && original.length <= MAX_DATA_URL) return original;
  const type = file.type.toLowerCase() === 'image/png' || isGif ? 'image/png' : file.type.toLowerCase() === 'image/webp' ? 'image/webp' : 'image/jpeg';
  let url = encode(img, size, type);
  if (url.length > MAX_DATA_URL && type !== 'image/jpeg') url = encode(img, size, 'image/jpeg');
  if (!url.startsWith('data:image/')) throw new ImageError('unreadable');
  if (url.length > MAX_DATA_URL) throw new ImageError('tooLarge');
  return url;
}

/**
 * Adds `files` to the images already attached, keeping at most [`MAX_IMAGES`]: answers the new
 * list and the first problem met (the other files are still added).
 */
export async function attachImages(
  current: string[],
  files: Iterable<File>,
  prepare: (file: File) => Promise<string> = prepareImage,
): Promise<{ images: string[]; problem: ImageProblem | null }> {
  const images = current.slice();
  let problem: ImageProblem | null = null;
  for (const file of files) {
    if (images.length >= MAX_IMAGES) {
      problem ??= 'tooMany';
      break;
    }
    try {
      images.push(await prepare(file));
    } catch (e) {
      problem ??= e instanceof ImageError ? e.problem : 'unreadable';
    }
  }
  return { images, problem };
}

/** Uploads of attached images, by data URL, started when attached and awaited when sent. */
const uploads = new Map<string, Promise<string | null>>();

/** Turns a data URL back into the bytes it holds. */
export function dataUrlToBlob(url: string): Blob | null {
  const m = /^data:([^;,]+);base64,(.*)$/.exec(url);
  if (!m) return null;
  const bin = atob(m[2]);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Blob([bytes], { type: m[1] });
}

/**
 * Starts uploading an attached image to the File service (`purpose=chat`) so the message can
 * name it by id; `upload` posts the form and answers the new file's id. A failed upload
 * answers null: the message then carries the image inline and the server stores it.
 */
export function startImageUpload(url: string, upload: (form: FormData) => Promise<{ id: string }>): Promise<string | null> {
  const known = uploads.get(url);
  if (known) return known;
  const blob = url.startsWith('data:') ? dataUrlToBlob(url) : null;
  const started = blob
    ? (() => {
        const form = new FormData();
        form.append('purpose', 'chat');
        form.append('file', blob, `image.${blob.type.split('/')[1] ?? 'png'}`);
        return upload(form).then(
          (f) => `file:${f.id}`,
          () => {
            uploads.delete(url);
            return null;
          },
        );
      })()
    : Promise.resolve(null);
  uploads.set(url, started);
  return started;
}

/**
 * The images of a message as sent: each attached data URL as the `file:<id>` of its upload
 * (started now if it was not yet), or inline when the upload failed; other entries as they are.
 */
export async function imagesToSend(images: string[], upload: (form: FormData) => Promise<{ id: string }>): Promise<string[]> {
  const refs = await Promise.all(images.map((url) => (url.startsWith('data:') ? startImageUpload(url, upload) : Promise.resolve(null))));
  return images.map((url, i) => refs[i] ?? url);
}
