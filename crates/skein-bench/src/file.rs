//! File benchmark: upload throughput (MB/s) of a large file streamed through multipart with
//! the server's peak RSS above idle (the upload must not be held in memory), the time to make
//! the variants of a 24-megapixel JPEG, and the p50/p99 of ranged downloads. Run
//! `cargo build --release -p skein -p skein-bench && ./target/release/bench-file`; results go
//! to `target/bench/file.json`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use serde_json::json;
use skein_bench::{default_binary, machine, ms, post, rss_kib, start, wait_ready};

/// Measures the File service.
#[derive(Parser)]
struct Args {
    /// Size of the uploaded file, MiB.
    #[arg(long, default_value_t = 1024)]
    size_mib: u64,
    /// Ranged downloads timed.
    #[arg(long, default_value_t = 500)]
    ranges: usize,
    /// Bytes per ranged download.
    #[arg(long, default_value_t = 65536)]
    range_bytes: u64,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/file.json")]
    out: std::path::PathBuf,
    /// The `skein` binary (default: the release build in the target directory).
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

const BOUNDARY: &str = "skein-bench-boundary";
const CHUNK: usize = 256 * 1024;

/// A multipart body of `size` bytes of generated content, made as it is sent.
fn streamed_form(size: u64) -> reqwest::Body {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let block: Bytes = (0..CHUNK)
        .map(|i| (i % 251) as u8 ^ 0x5a)
        .collect::<Vec<_>>()
        .into();
    let chunks = size.div_ceil(CHUNK as u64);
    let body = futures::stream::iter(
        std::iter::once(Bytes::from(head))
            .chain((0..chunks).map(move |i| {
                let left = size - i * CHUNK as u64;
                block.slice(..(left.min(CHUNK as u64) as usize))
            }))
            .chain(std::iter::once(Bytes::from(tail)))
            .map(Ok::<_, std::io::Error>),
    );
    reqwest::Body::wrap_stream(body)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    ms(sorted[at.min(sorted.len() - 1)])
}

async fn run(args: Args) -> anyhow::Result<()> {
    let binary = std::fs::canonicalize(args.binary.clone().unwrap_or_else(default_binary))?;
    let size = args.size_mib * 1024 * 1024;
    let limit = (size + 1024 * 1024).to_string();
    let quota = (size * 2).to_string();
    let server = start(
        &binary,
        &[
            ("SKEIN_FILE__MAX_UPLOAD_BYTES", &limit),
            ("SKEIN_FILE__PLUGIN_MAX_BYTES", &limit),
            ("SKEIN_FILE__QUOTA_BYTES", &quota),
            ("SKEIN_SERVER__REQUEST_TIMEOUT_SECS", "3600"),
        ],
    )?;
    let pid = server.child.id();
    let client = reqwest::Client::new();
    wait_ready(&client, &server.base).await?;
    let base = server.base.clone();
    let user = post(
        &client,
        format!("{base}/api/v1/auth/register"),
        "",
        json!({"username": "bench", "password": "benchmark password", "setup_token": skein_bench::SETUP_TOKEN}),
    )
    .await?;
    let access = user["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_kib = rss_kib(pid)?;

    // Upload, sampling the server's memory as it goes.
    let peak = Arc::new(AtomicU64::new(idle_kib));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Ok(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let started = Instant::now();
    let response = client
        .post(format!("{base}/api/v1/files?purpose=plugin"))
        .bearer_auth(&access)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(streamed_form(size))
        .send()
        .await?;
    let status = response.status();
    let uploaded: serde_json::Value = response.json().await.unwrap_or_default();
    let upload_secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    anyhow::ensure!(status.is_success(), "upload failed: {status} {uploaded}");
    let id = uploaded["id"].as_str().unwrap_or_default().to_string();
    let mb_per_s = size as f64 / 1e6 / upload_secs;
    let peak_above_idle_mib =
        (peak.load(Ordering::Relaxed).saturating_sub(idle_kib)) as f64 / 1024.0;
    println!(
        "upload of {} MiB: {upload_secs:.2} s, {mb_per_s:.1} MB/s; server RSS idle {:.1} MiB, peak {:.1} MiB above idle",
        args.size_mib,
        idle_kib as f64 / 1024.0,
        peak_above_idle_mib
    );

    // Ranged downloads, one after another, at spread offsets.
    let mut latencies = Vec::with_capacity(args.ranges);
    let span = size.saturating_sub(args.range_bytes).max(1);
    for i in 0..args.ranges as u64 {
        let start = (i * 7_919 * 4096) % span;
        let end = start + args.range_bytes - 1;
        let t = Instant::now();
        let r = client
            .get(format!("{base}/api/v1/files/{id}/content"))
            .bearer_auth(&access)
            .header("range", format!("bytes={start}-{end}"))
            .send()
            .await?;
        anyhow::ensure!(r.status().as_u16() == 206, "range status {}", r.status());
        let got = r.bytes().await?;
        anyhow::ensure!(got.len() as u64 == args.range_bytes, "short range");
        latencies.push(t.elapsed());
    }
    latencies.sort();
    let (range_p50, range_p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "ranged download of {} KiB: p50 {range_p50:.3} ms  p99 {range_p99:.3} ms  ({} requests)",
        args.range_bytes / 1024,
        args.ranges
    );

    // Variants of a 24-megapixel JPEG (6000×4000), as the upload job makes them.
    let jpeg = tokio::task::spawn_blocking(|| {
        let img = image::RgbImage::from_fn(6000, 4000, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut out),
                image::ImageFormat::Jpeg,
            )
            .map(|()| out)
    })
    .await??;
    let jpeg = Arc::new(jpeg);
    let options = skein_file::images::VariantOptions::from(&skein_file::FileConfig::default());
    let t = Instant::now();
    let source = jpeg.clone();
    let rendered =
        tokio::task::spawn_blocking(move || skein_file::images::render(&source, options))
            .await?
            .map_err(|e| anyhow::anyhow!(e))?;
    let thumb_ms = ms(t.elapsed());
    println!(
        "variants of a 24 MP JPEG (thumbnail {} B + web {} B): {thumb_ms:.0} ms",
        rendered.thumb.len(),
        rendered.web.len()
    );
    let webp_options = skein_file::images::VariantOptions {
        format: skein_file::ImageFormat::Webp,
        ..options
    };
    let t = Instant::now();
    let source = jpeg.clone();
    let webp =
        tokio::task::spawn_blocking(move || skein_file::images::render(&source, webp_options))
            .await?
            .map_err(|e| anyhow::anyhow!(e))?;
    let webp_ms = ms(t.elapsed());
    println!(
        "the same as lossless WebP (thumbnail {} B + web {} B): {webp_ms:.0} ms",
        webp.thumb.len(),
        webp.web.len()
    );
    // Where the time goes: decoding, resizing (what a faster resizer could save) and encoding.
    let source = jpeg.clone();
    let (decode_ms, resize_ms, encode_ms) = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let img = image::load_from_memory(&source)?;
        let decode = ms(t.elapsed());
        let t = Instant::now();
        let web = img.thumbnail(1600, 1600);
        let thumb = img.thumbnail(320, 320);
        let resize = ms(t.elapsed());
        let t = Instant::now();
        for small in [&web, &thumb] {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82)
                .encode_image(&small.to_rgb8())?;
        }
        Ok::<_, image::ImageError>((decode, resize, ms(t.elapsed())))
    })
    .await??;
    println!(
        "  of which: decode {decode_ms:.0} ms, resize to both sizes {resize_ms:.0} ms, JPEG encode {encode_ms:.0} ms"
    );

    let results = json!({
        "benchmark": "file",
        "binary": binary.display().to_string(),
        "machine": machine(),
        "upload_mib": args.size_mib,
        "upload_secs": upload_secs,
        "upload_mb_per_s": mb_per_s,
        "rss_idle_mib": idle_kib as f64 / 1024.0,
        "rss_peak_above_idle_mib": peak_above_idle_mib,
        "range_bytes": args.range_bytes,
        "range_requests": args.ranges,
        "range_p50_ms": range_p50,
        "range_p99_ms": range_p99,
        "variants_24mp_ms": thumb_ms,
        "variants_24mp_webp_ms": webp_ms,
        "variants_24mp_webp_bytes": webp.thumb.len() + webp.web.len(),
        "variants_24mp_jpeg_bytes": rendered.thumb.len() + rendered.web.len(),
        "decode_24mp_ms": decode_ms,
        "resize_24mp_ms": resize_ms,
        "encode_variants_ms": encode_ms,
    });
    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", args.out.display());
    Ok(())
}
