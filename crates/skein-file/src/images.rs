//! What is made from an upload after it is committed, in the background: image variants
//! (a thumbnail and a web-sized copy, orientation applied, re-encoded so EXIF — location
//! included — never leaves with them), and for a PDF its page count and the same two variants
//! of its first page, when poppler's `pdfinfo` and `pdftoppm` are installed (skipped
//! otherwise: `apt-get install poppler-utils`).

use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use crate::sniff::Kind;
use crate::storage::{object_key, variant_key};
use crate::{FileService, store};

/// Longest side of the thumbnail, in pixels.
pub const THUMB_SIDE: u32 = 320;
/// Longest side of the web-sized copy, in pixels.
pub const WEB_SIDE: u32 = 1600;
/// JPEG quality of the variants.
const QUALITY: u8 = 82;
/// Largest original decoded, in bytes (its pixels are limited separately).
const MAX_DECODE_BYTES: u64 = 64 * 1024 * 1024;

/// Starts the jobs a new object needs (tracked, so shutdown waits for them).
pub(crate) fn after_upload(svc: &FileService, object_id: String, kind: Kind, _content_type: &str) {
    let db = svc.db.clone();
    let storage = svc.storage.clone();
    let max_pixels = svc.config.image_max_pixels;
    match kind {
        Kind::Image => {
            svc.jobs.spawn(async move {
                if let Err(error) = make_variants(&db, &storage, &object_id, max_pixels).await {
                    tracing::info!(%error, object_id, "no image variants for this upload");
                }
            });
        }
        Kind::Pdf if svc.pdftoppm => {
            svc.jobs.spawn(async move {
                if let Err(error) = inspect_pdf(&db, &storage, &object_id, max_pixels).await {
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

/// Decodes the original (within the pixel limit), applies its EXIF orientation and stores a
/// thumbnail and a web-sized JPEG; then records the size and the ready variants.
async fn make_variants(
    db: &skein_db::Db,
    storage: &crate::storage::Storage,
    object_id: &str,
    max_pixels: u64,
) -> Result<(), String> {
    let bytes = read_original(storage, object_id, "image too large to decode").await?;
    let made = tokio::task::spawn_blocking(move || render(&bytes, max_pixels))
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
    /// The thumbnail (JPEG).
    pub thumb: Vec<u8>,
    /// The web-sized copy (JPEG).
    pub web: Vec<u8>,
}

/// Decodes `bytes` with a pixel-count limit (a decompression bomb fails before any pixel is
/// allocated), applies the EXIF orientation, and encodes the two variants.
pub fn render(bytes: &[u8], max_pixels: u64) -> Result<Rendered, String> {
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
    let thumb = encode(&shrink(&img, THUMB_SIDE))?;
    let web = encode(&shrink(&img, WEB_SIDE))?;
    Ok(Rendered {
        width,
        height,
        thumb,
        web,
    })
}

fn shrink(img: &DynamicImage, side: u32) -> DynamicImage {
    if img.width() <= side && img.height() <= side {
        img.clone()
    } else {
        // `thumbnail` is a fast box-filter-then-linear resize, fine for downscaling.
        img.thumbnail(side, side)
    }
}

/// JPEG, from RGB (an alpha channel is dropped: JPEG has none).
fn encode(img: &DynamicImage) -> Result<Vec<u8>, String> {
    let rgb = img.to_rgb8();
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, QUALITY)
        .encode_image(&rgb)
        .map_err(|e| e.to_string())?;
    Ok(out)
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
    max_pixels: u64,
) -> Result<(), String> {
    let bytes = read_original(storage, object_id, "PDF too large to inspect").await?;
    let dir = std::env::temp_dir().join(format!("skein-pdf-{object_id}"));
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| e.to_string())?;
    let result = inspect_in(db, storage, object_id, max_pixels, &dir, &bytes).await;
    let _ = tokio::fs::remove_dir_all(&dir).await;
    result
}

async fn inspect_in(
    db: &skein_db::Db,
    storage: &crate::storage::Storage,
    object_id: &str,
    max_pixels: u64,
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
    let made = tokio::task::spawn_blocking(move || render(&png, max_pixels))
        .await
        .map_err(|e| e.to_string())??;
    for (variant, jpeg) in [("thumb", made.thumb), ("web", made.web)] {
        storage
            .put(&variant_key(object_id, variant), jpeg)
            .await
            .map_err(|e| e.to_string())?;
    }
    store::set_variants(db, object_id, "thumb,web")
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
