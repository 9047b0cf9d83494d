// A user's avatar as an <img> asks for it: the size it is shown at, and twice that for
// high-DPI screens, so the server sends a picture made for that size (32, 64, 128 or 256 px)
// instead of the full 256 px one everywhere.

/** The sizes the server makes, pixels. */
export const AVATAR_SIZES = [32, 64, 128, 256] as const;

/** The smallest served size at least `px` (the largest when none is). */
export function servedSize(px: number): number {
  return AVATAR_SIZES.find((s) => s >= px) ?? AVATAR_SIZES[AVATAR_SIZES.length - 1];
}

/** Adds `size` to an avatar address, keeping its other query (the picture's version). */
function withSize(url: string, size: number): string {
  return `${url}${url.includes('?') ? '&' : '?'}size=${size}`;
}

/**
 * The `src` and `srcSet` of `user`'s avatar shown `px` CSS pixels wide: the uploaded
 * avatar's own address (it carries the picture's version), else the generated one. An
 * outside URL typed in the profile is never loaded here (it would tell another server who
 * looks at the page); the generated avatar stands in for it.
 */
export function avatarSources(user: { id: string; avatar_url?: string | null }, px: number): { src: string; srcSet: string } {
  const own = user.avatar_url?.startsWith('/api/') ? user.avatar_url : `/api/v1/users/${user.id}/avatar`;
  const one = servedSize(px);
  const two = servedSize(px * 2);
  return { src: withSize(own, one), srcSet: `${withSize(own, one)} 1x, ${withSize(own, two)} 2x` };
}
