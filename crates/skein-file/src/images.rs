//! What is made from an upload after it is committed, in the background: image variants
//! (a thumbnail and a web-sized copy, orientation applied, re-encoded so EXIF — location
//! included — never leaves with them), and for a PDF its page count and the same two variants
//! of its first page, when poppler's `pdfinfo` and `pdftoppm` are installed (skipped
//! otherwise: `apt-get install poppler-utils`).

use std::io::Cursor;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::webp::WebPEncoder;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use crate::config::{FileConfig, ImageFormat};
use crate::sniff::Kind;
use crate::storage::{object_key, variant_key};
use crate::{FileService, store};

/// Longest side of the thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 320;
/// Longest side of the web-sized copy, in pixels.
pub const WEB_SIDE: u32 = 1600;
/// Largest original decoded, in bytes (its pixels are limited separately).
const MAX_DECODE_BYTES: u64 = 64 * 1024 * 1024;

/// Starts the jobs a new object needs (tracked, so shutdown waits for them).
pub(crate) fn after_upload(svc: &FileService, object_id: String, kind: Kind, _content_type: &str) {
    let db = svc.db.clone();
    let storage = svc.storage.clone();
    let options = VariantOptions::from(&svc.config);
    match kind {
        Kind::Image => {
            svc.jobs.spawn(async move {
                if let Err(error) = make_variants(&db, &storage, &object_id, options).await {
                    tracing::info!(%error, object_id, "no image variants for this upload");
                }
            });
        }
        Kind::Pdf if svc.pdftoppm => {
            svc.jobs.spawn(async move {
                if let Err(error) = inspect_pdf(&db, &storage, &object_id, options).await {
                    tracing::info!(%error, object_id, "no page count or preview for this PDF");
                }
            });
        }
        _ => {}
    }
}

/// The stored original, if it is within what may be decoded (`too_large` otherwise).
async fn read_original(
    storage: &crate::storage::Storage,
    object_id: &str,
    too_large: &str,
) -> Result<Vec<u8>, String> {
    let bytes = storage
        .read_head(&object_key(object_id), MAX_DECODE_BYTES + 1)
        .await
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_DECODE_BYTES {
        return Err(too_large.to_string());
    }
    Ok(bytes)
}

/// How variants are made: the limits of what is decoded, and what is written.
#[derive(Debug, Clone, Copy)]
pub struct VariantOptions {
    /// Most pixels of one frame.
    pub max_pixels: u64,
    /// Most frames of an animation.
    pub max_frames: u32,
    /// The variants' format.
    pub format: ImageFormat,
    /// JPEG quality, 1–100.
    pub quality: u8,
}

impl From<&FileConfig> for VariantOptions {
    fn from(c: &FileConfig) -> Self {
        VariantOptions {
            max_pixels: c.image_max_pixels,
            max_frames: c.image_max_frames,
            format: c.image_format,
            quality: c.image_quality,
        }
    }
}

/// Decodes the original (within the pixel and frame limits), applies its EXIF orientation and
/// stores a thumbnail and a web-sized copy; then records the size and the ready variants.
async fn make_variants(
    db: &skein_db::Db,
    storage: &crate::storage::Storage,
    object_id: &str,
    options: VariantOptions,
) -> Result<(), String> {
    let bytes = read_original(storage, object_id, "image too large to decode").await?;
    let made = tokio::task::spawn_blocking(move || render(&bytes, options))
        .await
        .map_err(|e| e.to_string())??;
    for (variant, jpeg) in [("thumb", made.thumb), ("web", made.web)] {
        storage
            .put(&variant_key(object_id, variant), jpeg)
            .await
            .map_err(|e| e.to_string())?;
    }
    store::set_image_facts(
        db,
        object_id,
        i64::from(made.width),
        i64::from(made.height),
        "thumb,web",
        made.content_type,
    )
    .await
    .map_err(|e| e.to_string())
}

/// An image's variants and its size (after orientation).
pub struct Rendered {
    /// Width of the original as shown.
    pub width: u32,
    /// Height of the original as shown.
    pub height: u32,
    /// The thumbnail.
    pub thumb: Vec<u8>,
    /// The web-sized copy.
    pub web: Vec<u8>,
    /// The variants' MIME type.
    pub content_type: &'static str,
}

/// Decodes `bytes` with a pixel-count and a frame-count limit (a decompression bomb fails
/// before any pixel is allocated), applies the EXIF orientation, and encodes the two variants.
pub fn render(bytes: &[u8], options: VariantOptions) -> Result<Rendered, String> {
    let max_pixels = options.max_pixels;
    if let Some(frames) = frame_count(bytes)
        && frames > u64::from(options.max_frames)
    {
        return Err(format!(
            "{frames} frames is over the limit of {}",
            options.max_frames
        ));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    let (w, h) = reader.into_dimensions().map_err(|e| e.to_string())?;
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(format!("{w}×{h} pixels is over the limit of {max_pixels}"));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(w);
    limits.max_image_height = Some(h);
    // Room for the decoded pixels (RGBA16 at most) and nothing more.
    limits.max_alloc = Some(u64::from(w) * u64::from(h) * 8 + (16 << 20));
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    let orientation = decoder.orientation().map_err(|e| e.to_string())?;
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    img.apply_orientation(orientation);
    let (width, height) = (img.width(), img.height());
    // 8 bits per channel is what both formats are written with; alpha only when there is one.
    let img = if img.color().has_alpha() {
        DynamicImage::ImageRgba8(img.into_rgba8())
    } else {
        DynamicImage::ImageRgb8(img.into_rgb8())
    };
    let web = shrink(&img, WEB_SIDE, RESIZE)?;
    let web = web.as_ref().unwrap_or(&img);
    // The thumbnail from the web-sized copy: the same picture at a fraction of the pixels read.
    let thumb = shrink(web, THUMB_SIDE, RESIZE)?;
    let thumb = encode(thumb.as_ref().unwrap_or(web), options)?;
    let web = encode(web, options)?;
    Ok(Rendered {
        width,
        height,
        thumb,
        web,
        content_type: options.format.content_type(),
    })
}

/// How variants are resized: a separable convolution with the Catmull-Rom filter (sharp, no
/// ringing to speak of when shrinking photos), with SIMD picked at run time.
pub const RESIZE: ResizeAlg = ResizeAlg::Convolution(FilterType::CatmullRom);

/// The size that fits `width`×`height` within a `side`×`side` box, keeping the aspect ratio
/// (each side at least one pixel).
fn fit(width: u32, height: u32, side: u32) -> (u32, u32) {
    let ratio = (f64::from(side) / f64::from(width)).min(f64::from(side) / f64::from(height));
    let scale = |n: u32| ((f64::from(n) * ratio).round() as u32).max(1);
    (scale(width), scale(height))
}

/// `img` (8-bit RGB or RGBA) shrunk with `algorithm` to fit a `side`×`side` box; `None` when
/// it already fits.
pub fn shrink(
    img: &DynamicImage,
    side: u32,
    algorithm: ResizeAlg,
) -> Result<Option<DynamicImage>, String> {
    if img.width() <= side && img.height() <= side {
        return Ok(None);
    }
    let (w, h) = fit(img.width(), img.height(), side);
    let (pixels, kind) = match img {
        DynamicImage::ImageRgb8(rgb) => (rgb.as_raw().as_slice(), PixelType::U8x3),
        DynamicImage::ImageRgba8(rgba) => (rgba.as_raw().as_slice(), PixelType::U8x4),
        _ => return Err("variants are made from 8-bit RGB or RGBA".into()),
    };
    let source =
        ImageRef::new(img.width(), img.height(), pixels, kind).map_err(|e| e.to_string())?;
    let mut target = Image::new(w, h, kind);
    // With alpha the colours are weighted by it (premultiplied while resizing), so transparent
    // pixels do not bleed their hidden colour into the edges.
    Resizer::new()
        .resize(
            &source,
            &mut target,
            &ResizeOptions::new().resize_alg(algorithm),
        )
        .map_err(|e| e.to_string())?;
    let buffer = target.into_vec();
    let resized = match kind {
        PixelType::U8x4 => image::RgbaImage::from_raw(w, h, buffer).map(DynamicImage::ImageRgba8),
        _ => image::RgbImage::from_raw(w, h, buffer).map(DynamicImage::ImageRgb8),
    };
    resized
        .map(Some)
        .ok_or_else(|| "the resized image has the wrong size".to_string())
}

/// JPEG from RGB (an alpha channel is dropped: JPEG has none) at the configured quality, or
/// lossless WebP keeping the alpha channel when the image has one.
fn encode(img: &DynamicImage, options: VariantOptions) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    match options.format {
        ImageFormat::Jpeg => {
            JpegEncoder::new_with_quality(&mut out, options.quality)
                .encode_image(&img.to_rgb8())
                .map_err(|e| e.to_string())?;
        }
        ImageFormat::Webp => {
            let encoder = WebPEncoder::new_lossless(&mut out);
            // 8 bits per channel, the alpha channel only when there is one.
            let pixels = if img.color().has_alpha() {
                DynamicImage::ImageRgba8(img.to_rgba8())
            } else {
                DynamicImage::ImageRgb8(img.to_rgb8())
            };
            pixels
                .write_with_encoder(encoder)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(out)
}

/// How many frames an animated GIF, WebP or PNG (APNG) says it has, read from its chunk
/// structure without decoding a pixel; `None` for other formats (one frame).
pub fn frame_count(bytes: &[u8]) -> Option<u64> {
    if bytes.starts_with(b"GIF8") {
        return Some(gif_frames(bytes));
    }
    if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some(webp_frames(bytes));
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(png_frames(bytes));
    }
    None
}

/// Counts a GIF's image descriptors, skipping colour tables, extensions and the LZW data by
/// their length bytes; a truncated file counts what was whole.
fn gif_frames(b: &[u8]) -> u64 {
    /// Skips data sub-blocks (a length byte, that many bytes, until a zero length).
    fn skip_blocks(b: &[u8], mut at: usize) -> Option<usize> {
        loop {
            let len = usize::from(*b.get(at)?);
            at += 1;
            if len == 0 {
                return Some(at);
            }
            at += len;
        }
    }
    let table = |packed: u8| {
        if packed & 0x80 != 0 {
            3usize << ((packed & 7) + 1)
        } else {
            0
        }
    };
    let Some(&packed) = b.get(10) else { return 0 };
    let mut at = 13 + table(packed);
    let mut frames = 0;
    while let Some(&tag) = b.get(at) {
        match tag {
            0x21 => match skip_blocks(b, at + 2) {
                Some(next) => at = next,
                None => break,
            },
            0x2C => {
                let Some(&packed) = b.get(at + 9) else { break };
                frames += 1;
                // Descriptor, local colour table, LZW minimum code size, then the data.
                match skip_blocks(b, at + 10 + table(packed) + 1) {
                    Some(next) => at = next,
                    None => break,
                }
            }
            _ => break,
        }
    }
    frames
}

/// Counts a WebP's `ANMF` (animation frame) chunks; a still WebP is one frame.
fn webp_frames(b: &[u8]) -> u64 {
    let mut at = 12;
    let mut frames = 0;
    while at + 8 <= b.len() {
        let len = u32::from_le_bytes([b[at + 4], b[at + 5], b[at + 6], b[at + 7]]) as usize;
        if &b[at..at + 4] == b"ANMF" {
            frames += 1;
        }
        // Chunks are padded to an even length.
        at = at
            .saturating_add(8)
            .saturating_add(len)
            .saturating_add(len & 1);
    }
    frames.max(1)
}

/// An APNG's frame count from its `acTL` chunk (before the image data); a still PNG is one.
fn png_frames(b: &[u8]) -> u64 {
    let mut at = 8;
    while at + 8 <= b.len() {
        let len = u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize;
        let kind = &b[at + 4..at + 8];
        if kind == b"acTL" && at + 12 <= b.len() {
            return u64::from(u32::from_be_bytes([
                b[at + 8],
                b[at + 9],
                b[at + 10],
                b[at + 11],
            ]));
        }
        if kind == b"IDAT" {
            break;
        }
        at = at.saturating_add(12).saturating_add(len);
    }
    1
}

/// Whether poppler's tools (`pdfinfo`, `pdftoppm`) are installed.
pub(crate) async fn pdftoppm_available() -> bool {
    for tool in ["pdfinfo", "pdftoppm"] {
        let found = tokio::process::Command::new(tool)
            .arg("-v")
            .output()
            .await
            .is_ok();
        if !found {
            return false;
        }
    }
    true
}

/// Counts a PDF's pages with `pdfinfo` and renders its first page with `pdftoppm` into the
/// thumbnail and web variants, reading it from a private temporary folder. Each tool gets 20 s.
async fn inspect_pdf(
    db: &skein_db::Db,
    storage: &crate::storage::Storage,
    object_id: &str,
    options: VariantOptions,
) -> Result<(), String> {
    let bytes = read_original(storage, object_id, "PDF too large to inspect").await?;
    let dir = std::env::temp_dir().join(format!("skein-pdf-{object_id}"));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| e.to_string())?;
    let result = inspect_in(db, storage, object_id, options, &dir, &bytes).await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

async fn inspect_in(
    db: &skein_db::Db,
    storage: &crate::storage::Storage,
    object_id: &str,
    options: VariantOptions,
    dir: &std::path::Path,
    bytes: &[u8],
) -> Result<(), String> {
    let pdf = dir.join("in.pdf");
    tokio::fs::write(&pdf, bytes)
        .await
        .map_err(|e| e.to_string())?;
    let info = run_tool(tokio::process::Command::new("pdfinfo").arg(&pdf)).await?;
    let pages = String::from_utf8_lossy(&info)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse::<i64>().ok())
        .ok_or("pdfinfo reported no page count")?;
    store::set_page_count(db, object_id, pages)
        .await
        .map_err(|e| e.to_string())?;
    let prefix = dir.join("page");
    run_tool(
        tokio::process::Command::new("pdftoppm")
            .args(["-f", "1", "-l", "1", "-png", "-singlefile", "-scale-to"])
            .arg(WEB_SIDE.to_string())
            .arg(&pdf)
            .arg(&prefix),
    )
    .await?;
    let png = tokio::fs::read(dir.join("page.png"))
        .await
        .map_err(|e| e.to_string())?;
    let made = tokio::task::spawn_blocking(move || render(&png, options))
        .await
        .map_err(|e| e.to_string())??;
    for (variant, jpeg) in [("thumb", made.thumb), ("web", made.web)] {
        storage
            .put(&variant_key(object_id, variant), jpeg)
            .await
            .map_err(|e| e.to_string())?;
    }
    store::set_variants(db, object_id, "thumb,web", made.content_type)
        .await
        .map_err(|e| e.to_string())
}

/// Runs a poppler tool with a time limit; its standard output.
async fn run_tool(command: &mut tokio::process::Command) -> Result<Vec<u8>, String> {
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        command.kill_on_drop(true).output(),
    )
    .await
    .map_err(|_| "a PDF tool took too long".to_string())?
    .map_err(|e| e.to_string())?;
    if !output.status.success() {
        return Err(format!(
            "a PDF tool failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(format: ImageFormat, quality: u8) -> VariantOptions {
        VariantOptions {
            max_pixels: 50_000_000,
            max_frames: 10,
            format,
            quality,
        }
    }

    fn gif(frames: u32) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = image::codecs::gif::GifEncoder::new(&mut out);
            encoder
                .encode_frames((0..frames).map(|i| {
                    image::Frame::new(image::RgbaImage::from_pixel(
                        30,
                        20,
                        image::Rgba([i as u8 * 20, 1, 2, 255]),
                    ))
                }))
                .unwrap();
        }
        out
    }

    fn photo() -> Vec<u8> {
        let img = image::RgbImage::from_fn(1200, 800, |x, y| {
            image::Rgb([
                (x * 7 % 256) as u8,
                (y * 3 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn frames_are_counted_without_decoding() {
        assert_eq!(frame_count(&gif(1)), Some(1));
        assert_eq!(frame_count(&gif(7)), Some(7));
        // A truncated GIF counts what was whole, and a broken header counts nothing.
        let g = gif(7);
        assert!(frame_count(&g[..g.len() / 2]).unwrap() < 7);
        assert_eq!(frame_count(b"GIF89a"), Some(0));
        assert_eq!(frame_count(&photo()), Some(1), "a still PNG");
        assert_eq!(frame_count(b"\xff\xd8\xff\xe0"), None, "JPEG has no frames");
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0".to_vec();
        webp.extend_from_slice(&[0u8; 10]);
        for _ in 0..4 {
            webp.extend_from_slice(b"ANMF\x03\0\0\0abc\0");
        }
        assert_eq!(frame_count(&webp), Some(4));
        let mut apng = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        apng.extend_from_slice(&[0u8; 13 + 4]);
        apng.extend_from_slice(b"\0\0\0\x08acTL\0\0\x03\xe8\0\0\0\0");
        assert_eq!(frame_count(&apng), Some(1000));
    }

    #[test]
    fn too_many_frames_are_refused_before_decoding() {
        let err = render(&gif(11), options(ImageFormat::Jpeg, 82))
            .err()
            .unwrap();
        assert!(err.contains("11 frames"), "{err}");
        assert!(render(&gif(10), options(ImageFormat::Jpeg, 82)).is_ok());
    }

    #[test]
    fn sizes_fit_the_box_and_keep_the_aspect_ratio() {
        assert_eq!(fit(6000, 4000, 1600), (1600, 1067));
        assert_eq!(fit(4000, 6000, 320), (213, 320));
        assert_eq!(fit(10_000, 3, 320), (320, 1));
    }

    #[test]
    fn transparent_pixels_do_not_bleed_into_the_edges() {
        // Left half fully transparent green, right half opaque red: once shrunk, the pixels
        // at the seam are red with partial alpha, never green.
        let img = image::RgbaImage::from_fn(800, 400, |x, _| {
            if x < 400 {
                image::Rgba([0, 255, 0, 0])
            } else {
                image::Rgba([255, 0, 0, 255])
            }
        });
        let small = shrink(&DynamicImage::ImageRgba8(img), 320, RESIZE)
            .unwrap()
            .unwrap()
            .to_rgba8();
        assert_eq!((small.width(), small.height()), (320, 160));
        for x in 150..170 {
            let p = small.get_pixel(x, 80).0;
            if p[3] > 8 {
                assert!(p[1] < 16 && p[0] > 200, "seam pixel {x}: {p:?}");
            }
        }
        assert_eq!(small.get_pixel(300, 80).0, [255, 0, 0, 255]);
    }

    #[test]
    fn quality_and_format_shape_the_variants() {
        let bytes = photo();
        let low = render(&bytes, options(ImageFormat::Jpeg, 30)).unwrap();
        let high = render(&bytes, options(ImageFormat::Jpeg, 95)).unwrap();
        assert!(
            low.web.len() < high.web.len(),
            "{} vs {}",
            low.web.len(),
            high.web.len()
        );
        assert_eq!(high.content_type, "image/jpeg");
        let webp = render(&bytes, options(ImageFormat::Webp, 82)).unwrap();
        assert_eq!(webp.content_type, "image/webp");
        let decoded =
            image::load_from_memory_with_format(&webp.thumb, image::ImageFormat::WebP).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (320, 213));
    }
}
