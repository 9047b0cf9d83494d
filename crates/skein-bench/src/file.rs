//! File benchmark: upload throughput (MB/s) of a large file streamed through multipart, and of
//! the same size sent through an upload session in parts, each with the server's peak RSS
//! above idle (an upload must not be held in memory), the p50/p99 of ranged downloads, and the
//! time to make the variants of a 24-megapixel JPEG with the resizers compared. On the local
//! disk by default, or on an S3 server with `--s3-url` (s3s-fs as `scripts/test` starts it).
//! Run `cargo build --release -p skein -p skein-bench && ./target/release/bench-file`; results
//! go to `target/bench/file.json` (`file-s3.json` on S3).

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use serde_json::json;
use skein_bench::{PeakRss, default_binary, machine, ms, post, rss_kib, start, wait_ready};

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
    /// Where to write the JSON results (default `target/bench/file.json`, or `file-s3.json`
    /// with `--s3-url`).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// An S3 endpoint to store files in instead of the local disk (path-style, region
    /// us-east-1; the bucket must exist).
    #[arg(long)]
    s3_url: Option<String>,
    /// The S3 access key.
    #[arg(long, default_value = "skeintest")]
    s3_access_key: String,
    /// The S3 secret key.
    #[arg(long, default_value = "skeintest-secret-key")]
    s3_secret_key: String,
    /// The S3 bucket.
    #[arg(long, default_value = "skein-test")]
    s3_bucket: String,
    /// Skip the image variants (they do not depend on the store).
    #[arg(long)]
    no_images: bool,
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

/// `size` bytes of generated content (`seed` makes different content), made as it is sent.
fn generated(size: u64, seed: u8) -> impl Iterator<Item = Bytes> {
    let block: Bytes = (0..CHUNK)
        .map(|i| (i % 251) as u8 ^ 0x5a ^ seed)
        .collect::<Vec<_>>()
        .into();
    let chunks = size.div_ceil(CHUNK as u64);
    (0..chunks).map(move |i| {
        let left = size - i * CHUNK as u64;
        block.slice(..(left.min(CHUNK as u64) as usize))
    })
}

/// A multipart body of `size` bytes of generated content, made as it is sent.
fn streamed_form(size: u64) -> reqwest::Body {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let body = futures::stream::iter(
        std::iter::once(Bytes::from(head))
            .chain(generated(size, 0))
            .chain(std::iter::once(Bytes::from(tail)))
            .map(Ok::<_, std::io::Error>),
    );
    reqwest::Body::wrap_stream(body)
}

/// Sends `size` bytes through an upload session (parts one after another, each streamed) and
/// completes it; the new file's id.
async fn session_upload(
    client: &reqwest::Client,
    base: &str,
    access: &str,
    size: u64,
) -> anyhow::Result<String> {
    let session = post(
        client,
        format!("{base}/api/v1/files/uploads"),
        access,
        json!({"name": "big-parts.bin", "purpose": "plugin", "size": size}),
    )
    .await?;
    let id = session["id"].as_str().unwrap_or_default().to_string();
    let part_size = session["part_size"].as_u64().unwrap_or(0);
    let parts = session["part_count"].as_u64().unwrap_or(0);
    anyhow::ensure!(part_size > 0 && parts > 0, "no session: {session}");
    for n in 1..=parts {
        let len = part_size.min(size - (n - 1) * part_size);
        // Each part its own content, so the file differs from the one-request upload's.
        let body = futures::stream::iter(generated(len, n as u8).map(Ok::<_, std::io::Error>));
        let r = client
            .put(format!("{base}/api/v1/files/uploads/{id}/parts/{n}"))
            .bearer_auth(access)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "part {n}: {}", r.status());
    }
    let done = post(
        client,
        format!("{base}/api/v1/files/uploads/{id}/complete"),
        access,
        json!({}),
    )
    .await?;
    Ok(done["id"].as_str().unwrap_or_default().to_string())
}

/// The 1-, 5- and 15-minute load averages.
fn load() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
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
    let load_before = load();
    let size = args.size_mib * 1024 * 1024;
    let limit = (size + 1024 * 1024).to_string();
    // Two files of `size` (their contents differ) and room for the session's parts.
    let quota = (size * 4).to_string();
    let mut env = vec![
        ("SKEIN_FILE__MAX_UPLOAD_BYTES", limit.clone()),
        ("SKEIN_FILE__PLUGIN_MAX_BYTES", limit),
        ("SKEIN_FILE__QUOTA_BYTES", quota),
        ("SKEIN_SERVER__REQUEST_TIMEOUT_SECS", "3600".to_string()),
    ];
    let store = match &args.s3_url {
        Some(url) => {
            env.extend([
                ("SKEIN_FILE__STORAGE", "s3".to_string()),
                ("SKEIN_FILE__S3__ENDPOINT", url.clone()),
                ("SKEIN_FILE__S3__REGION", "us-east-1".to_string()),
                ("SKEIN_FILE__S3__BUCKET", args.s3_bucket.clone()),
                ("SKEIN_FILE__S3__ACCESS_KEY_ID", args.s3_access_key.clone()),
                (
                    "SKEIN_FILE__S3__SECRET_ACCESS_KEY",
                    args.s3_secret_key.clone(),
                ),
                (
                    "SKEIN_FILE__S3__ROOT",
                    format!("bench-{}", std::process::id()),
                ),
            ]);
            "s3"
        }
        None => "fs",
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let server = start(&binary, &env)?;
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
    println!(
        "store: {store}; load average before: {:.2} {:.2} {:.2}",
        load_before[0], load_before[1], load_before[2]
    );

    // Upload in one request, sampling the server's memory as it goes.
    let sampler = PeakRss::start(pid, idle_kib);
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
    let peak_kib = sampler.stop().await?;
    anyhow::ensure!(status.is_success(), "upload failed: {status} {uploaded}");
    let id = uploaded["id"].as_str().unwrap_or_default().to_string();
    let mb_per_s = size as f64 / 1e6 / upload_secs;
    let peak_above_idle_mib = peak_kib.saturating_sub(idle_kib) as f64 / 1024.0;
    println!(
        "upload of {} MiB: {upload_secs:.2} s, {mb_per_s:.1} MB/s; server RSS idle {:.1} MiB, peak {:.1} MiB above idle",
        args.size_mib,
        idle_kib as f64 / 1024.0,
        peak_above_idle_mib
    );

    // The same size through an upload session: parts stored, then read back and assembled.
    let before_kib = rss_kib(pid)?;
    let sampler = PeakRss::start(pid, before_kib);
    let started = Instant::now();
    session_upload(&client, &base, &access, size).await?;
    let session_secs = started.elapsed().as_secs_f64();
    let session_peak_kib = sampler.stop().await?;
    let session_mb_per_s = size as f64 / 1e6 / session_secs;
    let session_peak_above_idle_mib = session_peak_kib.saturating_sub(idle_kib) as f64 / 1024.0;
    println!(
        "upload session of {} MiB (parts, then complete): {session_secs:.2} s, {session_mb_per_s:.1} MB/s; peak {session_peak_above_idle_mib:.1} MiB above idle",
        args.size_mib
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

    let images = if args.no_images {
        json!(null)
    } else {
        images().await?
    };
    let load_after = load();
    println!(
        "load average after: {:.2} {:.2} {:.2}",
        load_after[0], load_after[1], load_after[2]
    );

    let results = json!({
        "benchmark": "file",
        "store": store,
        "binary": binary.display().to_string(),
        "machine": machine(),
        "load_before": load_before,
        "load_after": load_after,
        "upload_mib": args.size_mib,
        "upload_secs": upload_secs,
        "upload_mb_per_s": mb_per_s,
        "rss_idle_mib": idle_kib as f64 / 1024.0,
        "rss_peak_above_idle_mib": peak_above_idle_mib,
        "session_upload_secs": session_secs,
        "session_upload_mb_per_s": session_mb_per_s,
        "session_rss_peak_above_idle_mib": session_peak_above_idle_mib,
        "range_bytes": args.range_bytes,
        "range_requests": args.ranges,
        "range_p50_ms": range_p50,
        "range_p99_ms": range_p99,
        "images": images,
    });
    let out = args.out.clone().unwrap_or_else(|| {
        std::path::PathBuf::from(if args.s3_url.is_some() {
            "target/bench/file-s3.json"
        } else {
            "target/bench/file.json"
        })
    });
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&results)?)?;
    println!("wrote {}", out.display());
    Ok(())
}

/// Runs `f` `RUNS` times; the fastest and the median, in milliseconds (the fastest is the
/// least disturbed by other work on a shared machine).
fn timed<T>(mut f: impl FnMut() -> anyhow::Result<T>) -> anyhow::Result<(f64, f64, T)> {
    const RUNS: usize = 3;
    let mut took = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let t = Instant::now();
        last = Some(f()?);
        took.push(ms(t.elapsed()));
    }
    took.sort_by(f64::total_cmp);
    let value = last.ok_or_else(|| anyhow::anyhow!("no run"))?;
    Ok((took[0], took[RUNS / 2], value))
}

/// The variants of a 24-megapixel JPEG (6000×4000) as the upload job makes them, where the
/// time goes, and the resizers side by side.
async fn images() -> anyhow::Result<serde_json::Value> {
    tokio::task::spawn_blocking(|| -> anyhow::Result<serde_json::Value> {
        let img = image::RgbImage::from_fn(6000, 4000, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        });
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)?;
        let options = skein_file::images::VariantOptions::from(&skein_file::FileConfig::default());
        let (jpeg_min, jpeg_median, rendered) = timed(|| {
            skein_file::images::render(&jpeg, options).map_err(anyhow::Error::msg)
        })?;
        println!(
            "variants of a 24 MP JPEG (thumbnail {} B + web {} B): fastest {jpeg_min:.0} ms, median {jpeg_median:.0} ms",
            rendered.thumb.len(),
            rendered.web.len()
        );
        let webp_options = skein_file::images::VariantOptions {
            format: skein_file::ImageFormat::Webp,
            ..options
        };
        let (webp_min, webp_median, webp) = timed(|| {
            skein_file::images::render(&jpeg, webp_options).map_err(anyhow::Error::msg)
        })?;
        println!(
            "the same as lossless WebP (thumbnail {} B + web {} B): fastest {webp_min:.0} ms, median {webp_median:.0} ms",
            webp.thumb.len(),
            webp.web.len()
        );

        // Where the time goes, and the resizers side by side on the decoded picture: the
        // `image` crate's `thumbnail` (a box average, both sizes from the original: what the
        // variants were made with before) against fast_image_resize's SIMD convolution with
        // three filters (the web size from the original, the thumbnail from the web size, as
        // `render` does now).
        let (decode_ms, _, img) = timed(|| {
            Ok(image::DynamicImage::ImageRgb8(
                image::load_from_memory(&jpeg)?.into_rgb8(),
            ))
        })?;
        let mut resizers = serde_json::Map::new();
        let (image_min, image_median, (web, thumb)) =
            timed(|| Ok((img.thumbnail(1600, 1600), img.thumbnail(320, 320))))?;
        println!("  decode {decode_ms:.0} ms; resize to both sizes (fastest, median of 3):");
        println!("    image thumbnail   {image_min:>6.1} ms {image_median:>6.1} ms");
        resizers.insert("image_thumbnail".into(), json!({"min_ms": image_min, "median_ms": image_median}));
        use fast_image_resize::{FilterType, ResizeAlg};
        for (name, algorithm) in [
            ("fir_bilinear", ResizeAlg::Convolution(FilterType::Bilinear)),
            ("fir_catmull_rom", ResizeAlg::Convolution(FilterType::CatmullRom)),
            ("fir_lanczos3", ResizeAlg::Convolution(FilterType::Lanczos3)),
        ] {
            let (min, median, _) = timed(|| {
                let web = skein_file::images::shrink(&img, 1600, algorithm)
                    .map_err(anyhow::Error::msg)?
                    .unwrap_or_else(|| img.clone());
                skein_file::images::shrink(&web, 320, algorithm).map_err(anyhow::Error::msg)
            })?;
            println!("    {name:<17} {min:>6.1} ms {median:>6.1} ms");
            resizers.insert(name.into(), json!({"min_ms": min, "median_ms": median}));
        }
        let (encode_ms, _, ()) = timed(|| {
            for small in [&web, &thumb] {
                let mut out = Vec::new();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 82)
                    .encode_image(&small.to_rgb8())?;
            }
            Ok(())
        })?;
        println!("  JPEG encode of both sizes {encode_ms:.0} ms");
        Ok(json!({
            "variants_24mp_ms": jpeg_min,
            "variants_24mp_median_ms": jpeg_median,
            "variants_24mp_webp_ms": webp_min,
            "variants_24mp_webp_median_ms": webp_median,
            "variants_24mp_jpeg_bytes": rendered.thumb.len() + rendered.web.len(),
            "variants_24mp_webp_bytes": webp.thumb.len() + webp.web.len(),
            "decode_24mp_ms": decode_ms,
            "encode_variants_ms": encode_ms,
            "resizers_24mp": resizers,
        }))
    })
    .await?
}
