//! Avatars at the sizes pages show them: the size asked for snaps to one of [`SIZES`], each
//! size is made once from the stored 256 px original (Lanczos3) and kept in a bounded
//! in-process cache, and every answer carries a strong ETag so a browser revalidates with
//! `If-None-Match` and gets a 304 instead of the picture again.
//!
//! The cache is in memory rather than stored back through the File service: a resized avatar
//! is a few kilobytes, cheap to make again after a restart, and keeping it out of storage
//! means it never counts against the owner's quota nor outlives the original.

use std::io::Cursor;

use bytes::Bytes;
use moka::sync::Cache;

/// The sizes served, pixels (a side of the square).
pub const SIZES: [u32; 4] = [32, 64, 128, 256];
/// The size served when none is asked for (the stored original's).
pub const DEFAULT_SIZE: u32 = 256;
/// Sizes asked for outside this range are refused rather than snapped: they are mistakes.
pub const ASKABLE: std::ops::RangeInclusive<u32> = 16..=512;
/// Most bytes the resized avatars of one process keep.
const CACHE_BYTES: u64 = 16 * 1024 * 1024;
/// Changes when the resizing or encoding changes, so old ETags stop matching.
const RENDER_VERSION: &str = "1";

/// An encoding a browser may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Lossless PNG: what every client reads.
    Png,
    /// Lossless WebP: smaller, for browsers that say they read it.
    Webp,
}

impl Format {
    /// The `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Png => "image/png",
            Format::Webp => "image/webp",
        }
    }

    /// WebP when `accept` lists it (with a quality above 0), else PNG.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let wants_webp = accept.unwrap_or_default().split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let is_webp = parts
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("image/webp"));
            // `image/webp;q=0` means "not this".
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            is_webp && !refused
        });
        if wants_webp {
            Format::Webp
        } else {
            Format::Png
        }
    }
}

/// Why a `size` was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct SizeOutOfRange;

/// The served size for `asked`: the nearest of [`SIZES`] (the larger on a tie, so a picture
/// is never blurrier than asked); [`DEFAULT_SIZE`] when none is asked.
pub fn snap(asked: Option<u32>) -> Result<u32, SizeOutOfRange> {
    let Some(asked) = asked else {
        return Ok(DEFAULT_SIZE);
    };
    if !ASKABLE.contains(&asked) {
        return Err(SizeOutOfRange);
    }
    let mut best = SIZES[0];
    for size in SIZES {
        if asked.abs_diff(size) <= asked.abs_diff(best) {
            best = size;
        }
    }
    Ok(best)
}

/// A strong ETag for an uploaded avatar: the stored file, the size and the encoding name
/// exactly one sequence of bytes.
pub fn uploaded_etag(file_id: &str, size: u32, format: Format) -> String {
    format!(
        "\"av{RENDER_VERSION}-{:016x}-{size}-{}\"",
        fnv1a(file_id),
        ext(format)
    )
}

/// A strong ETag for a generated avatar: the user and the name its initials come from.
pub fn generated_etag(user_id: &str, display_name: &str, size: u32) -> String {
    let key = format!("{user_id}\u{0}{display_name}");
    format!("\"avg{RENDER_VERSION}-{:016x}-{size}\"", fnv1a(&key))
}

/// Whether `if_none_match` (the request header) names `etag`: the browser's copy is current.
pub fn matches(if_none_match: Option<&str>, etag: &str) -> bool {
    // If-None-Match compares weakly: a `W/` prefix does not stop a match.
    if_none_match.is_some_and(|header| {
        header.split(',').map(str::trim).any(|tag| {
            tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag.trim_start_matches("W/")
        })
    })
}

/// The resized avatars this process made, bounded by bytes.
pub struct AvatarCache {
    entries: Cache<(String, u32, Format), Bytes>,
}

impl Default for AvatarCache {
    fn default() -> Self {
        AvatarCache {
            entries: Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|_, v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
                .build(),
        }
    }
}

impl AvatarCache {
    /// The kept rendering of `file_id` at `size` in `format`.
    pub fn get(&self, file_id: &str, size: u32, format: Format) -> Option<Bytes> {
        self.entries.get(&(file_id.to_string(), size, format))
    }

    /// Keeps a rendering.
    pub fn insert(&self, file_id: &str, size: u32, format: Format, bytes: Bytes) {
        self.entries
            .insert((file_id.to_string(), size, format), bytes);
    }
}

/// `original` (an avatar as stored) as a `size` px square in `format`. The original is
/// already square; a smaller size is made with Lanczos3, which keeps edges and faces sharp
/// where a triangle filter would blur them. Blocking CPU work: call it off the async threads.
pub fn render(original: &[u8], size: u32, format: Format) -> Result<Vec<u8>, String> {
    let picture = image::load_from_memory(original).map_err(|e| e.to_string())?;
    let picture = if picture.width() == size && picture.height() == size {
        picture
    } else {
        picture.resize_exact(size, size, image::imageops::FilterType::Lanczos3)
    };
    let mut out = Vec::new();
    let format = match format {
        Format::Png => image::ImageFormat::Png,
        Format::Webp => image::ImageFormat::WebP,
    };
    picture
        .to_rgba8()
        .write_to(&mut Cursor::new(&mut out), format)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

fn ext(format: Format) -> &'static str {
    match format {
        Format::Png => "png",
        Format::Webp => "webp",
    }
}

/// FNV-1a: stable across processes and releases, unlike the std hasher.
pub(crate) fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_snap_to_the_nearest_and_out_of_range_is_refused() {
        assert_eq!(snap(None), Ok(256));
        assert_eq!(snap(Some(32)), Ok(32));
        assert_eq!(snap(Some(16)), Ok(32));
        assert_eq!(snap(Some(40)), Ok(32));
        assert_eq!(snap(Some(48)), Ok(64), "a tie goes to the larger");
        assert_eq!(snap(Some(100)), Ok(128));
        assert_eq!(snap(Some(512)), Ok(256));
        assert_eq!(snap(Some(15)), Err(SizeOutOfRange));
        assert_eq!(snap(Some(0)), Err(SizeOutOfRange));
        assert_eq!(snap(Some(513)), Err(SizeOutOfRange));
    }

    #[test]
    fn webp_only_when_the_browser_lists_it() {
        let chrome = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8";
        assert_eq!(Format::from_accept(Some(chrome)), Format::Webp);
        assert_eq!(Format::from_accept(Some("image/png,*/*")), Format::Png);
        assert_eq!(
            Format::from_accept(Some("image/webp;q=0, */*")),
            Format::Png
        );
        assert_eq!(Format::from_accept(None), Format::Png);
    }

    #[test]
    fn etags_differ_by_picture_size_and_format_and_match_weakly() {
        let a = uploaded_etag("f1", 64, Format::Png);
        assert_ne!(a, uploaded_etag("f2", 64, Format::Png));
        assert_ne!(a, uploaded_etag("f1", 128, Format::Png));
        assert_ne!(a, uploaded_etag("f1", 64, Format::Webp));
        assert!(!a.starts_with("W/"), "strong");
        assert!(matches(Some(&a), &a));
        assert!(matches(Some(&format!("\"x\", W/{a}")), &a));
        assert!(matches(Some("*"), &a));
        assert!(!matches(Some("\"x\""), &a));
        assert!(!matches(None, &a));
        assert_ne!(
            generated_etag("u", "Ada", 64),
            generated_etag("u", "Bob", 64),
            "a new name, new initials"
        );
    }

    #[test]
    fn renders_have_the_size_asked() {
        let mut original = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            256,
            256,
            image::Rgb([9, 8, 7]),
        ))
        .write_to(&mut Cursor::new(&mut original), image::ImageFormat::Png)
        .unwrap();
        for size in SIZES {
            for format in [Format::Png, Format::Webp] {
                let out = render(&original, size, format).unwrap();
                let decoded = image::load_from_memory(&out).unwrap();
                assert_eq!((decoded.width(), decoded.height()), (size, size));
            }
        }
        assert!(render(b"not a picture", 32, Format::Png).is_err());
    }
}
