//! Ingestion benchmark through the real server: documents uploaded into a knowledge base and
//! timed from upload to `ready` by the background worker (extraction, chunking, the lexical
//! index, and embeddings when the built-in model is there): a text PDF, a scanned PDF read by
//! OCR (pages/s for each), and a large PDF of images with a text layer (500 MB by default)
//! with the server's peak RSS while it is indexed — read from disk by poppler, and for
//! comparison read into memory (poppler hidden from the server) with `--in-memory-too`.
//!
//! Needs poppler-utils (the scans are made by rendering pages with `pdftoppm`) and, for the
//! OCR run, Tesseract with `chi_sim` and `eng`. Run
//! `cargo build --release -p skein -p skein-bench && ./target/release/bench-ingest`; results go
//! to `target/bench/ingest.json`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use serde_json::{Value, json};
use skein_bench::{PeakRss, default_binary, machine, post, rss_kib, start, wait_ready};
use skein_testkit::pdf::PdfBuilder;

/// Measures knowledge ingestion through the server.
#[derive(Parser)]
struct Args {
    /// Pages of the text PDF (0: skip).
    #[arg(long, default_value_t = 400)]
    text_pages: usize,
    /// Pages of the scanned PDF read by OCR (0: skip).
    #[arg(long, default_value_t = 12)]
    ocr_pages: usize,
    /// Size of the large PDF, MB (0: skip).
    #[arg(long, default_value_t = 500)]
    big_pdf_mb: u64,
    /// Also index the large PDF with poppler hidden from the server, so it is read into
    /// memory by lopdf (the path without poppler, and every PDF's path before large ones were
    /// read from disk).
    #[arg(long)]
    in_memory_too: bool,
    /// The built-in embedding model's folder: bases embed with it when given.
    #[arg(long, env = "SKEIN_LOCAL_EMBED_DIR")]
    local_model: Option<PathBuf>,
    /// The `skein` binary (default: the release build in the target directory).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/ingest.json")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

const BOUNDARY: &str = "skein-bench-ingest-boundary";

/// Lines of English prose for the pages (Latin only: the PDF's font is Helvetica).
const LINES: [&str; 8] = [
    "Ferries leave the north quay every forty minutes between six and midnight.",
    "The harbour master keeps the tide tables for the coming month at the office.",
    "Cargo for the islands is weighed at the east shed before it is loaded.",
    "Passengers with bicycles board first and leave them on the lower deck.",
    "In winter the last crossing is cancelled when the wind passes force eight.",
    "Lost property is kept for ninety days and then given to the town charity.",
    "The lighthouse keeper logs every ship that passes the point after dark.",
    "Fishing boats unload at the west pier and sell the catch at the morning market.",
];

/// The 40 lines of page `page` (1-based), a title first.
fn page_lines(page: usize) -> Vec<String> {
    std::iter::once(format!("Harbour notes, page {page}"))
        .chain((0..39).map(|l| {
            format!(
                "{} (entry {})",
                LINES[(page * 7 + l) % LINES.len()],
                page * 100 + l
            )
        }))
        .collect()
}

fn text_pdf(pages: usize) -> Vec<u8> {
    let mut pdf = PdfBuilder::new();
    for page in 1..=pages {
        let lines = page_lines(page);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        pdf.text_page(&lines);
    }
    pdf.finish()
}

/// JPEG scans (gray) of the first `pages` pages of [`text_pdf`], rendered by `pdftoppm` at
/// `dpi`.
fn scans(pages: usize, dpi: u32) -> anyhow::Result<Vec<Vec<u8>>> {
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("source.pdf");
    std::fs::write(&source, text_pdf(pages))?;
    let root = dir.path().join("page");
    let status = std::process::Command::new("pdftoppm")
        .args(["-gray", "-jpeg", "-r", &dpi.to_string()])
        .arg(&source)
        .arg(&root)
        .status()
        .context("pdftoppm (poppler-utils) is needed to make the scans")?;
    anyhow::ensure!(status.success(), "pdftoppm failed");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    files.sort();
    files.into_iter().map(|f| Ok(std::fs::read(f)?)).collect()
}

/// A multipart body carrying `content` as the file `name`.
fn form(name: &str, content: Bytes) -> reqwest::Body {
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
         Content-Type: application/pdf\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    // In pieces, so the client does not copy the whole file into one buffer.
    let pieces: Vec<Bytes> = std::iter::once(Bytes::from(head))
        .chain(
            (0..content.len())
                .step_by(1 << 20)
                .map(|at| content.slice(at..content.len().min(at + (1 << 20)))),
        )
        .chain(std::iter::once(Bytes::from(tail)))
        .collect();
    reqwest::Body::wrap_stream(futures::stream::iter(
        pieces.into_iter().map(Ok::<_, std::io::Error>),
    ))
}

/// A server with a user and a base, ready to take documents.
struct Bench {
    server: skein_bench::Server,
    client: reqwest::Client,
    access: String,
    base_id: String,
}

impl Bench {
    async fn start(
        binary: &std::path::Path,
        local_model: Option<&PathBuf>,
        hide_poppler: bool,
    ) -> anyhow::Result<Bench> {
        let mut env: Vec<(&str, String)> = vec![
            ("SKEIN_FILE__MAX_UPLOAD_BYTES", (1u64 << 30).to_string()),
            ("SKEIN_FILE__KNOWLEDGE_MAX_BYTES", (1u64 << 30).to_string()),
            ("SKEIN_FILE__QUOTA_BYTES", (8u64 << 30).to_string()),
            ("SKEIN_KNOWLEDGE__MAX_PDF_BYTES", (1u64 << 30).to_string()),
            ("SKEIN_KNOWLEDGE__POLL_INTERVAL_MS", "50".to_string()),
            ("SKEIN_SERVER__REQUEST_TIMEOUT_SECS", "3600".to_string()),
        ];
        if hide_poppler {
            // Without poppler a PDF is read into memory, so the in-memory limit must let it.
            env.push(("PATH", "/nonexistent".to_string()));
            env.push((
                "SKEIN_KNOWLEDGE__MAX_DOCUMENT_BYTES",
                (1u64 << 30).to_string(),
            ));
        }
        if let Some(dir) = local_model {
            env.push((
                "SKEIN_KNOWLEDGE__LOCAL_EMBED_DIR",
                dir.display().to_string(),
            ));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let server = start(binary, &env)?;
        let client = reqwest::Client::new();
        wait_ready(&client, &server.base).await?;
        let user = post(
            &client,
            format!("{}/api/v1/auth/register", server.base),
            "",
            json!({"username": "bench", "password": "benchmark password", "setup_token": skein_bench::SETUP_TOKEN}),
        )
        .await?;
        let access = user["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // With the built-in model the server's default applies; without it, lexical only.
        let mut base = json!({"name": "Ingestion"});
        if local_model.is_none() {
            base["embedding_model"] = json!("");
        }
        let base = post(
            &client,
            format!("{}/api/v1/knowledge/bases", server.base),
            &access,
            base,
        )
        .await?;
        Ok(Bench {
            base_id: base["id"].as_str().unwrap_or_default().to_string(),
            server,
            client,
            access,
        })
    }

    fn pid(&self) -> u32 {
        self.server.child.id()
    }

    /// Uploads `content` as `name`; the document's id, and the seconds the upload took.
    async fn upload(&self, name: &str, content: Bytes) -> anyhow::Result<(String, f64)> {
        let started = Instant::now();
        let r = self
            .client
            .post(format!(
                "{}/api/v1/knowledge/bases/{}/documents/upload",
                self.server.base, self.base_id
            ))
            .bearer_auth(&self.access)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(form(name, content))
            .send()
            .await?;
        let status = r.status();
        let doc: Value = r.json().await.unwrap_or_default();
        anyhow::ensure!(status.is_success(), "upload of {name}: {status} {doc}");
        Ok((
            doc["id"].as_str().unwrap_or_default().to_string(),
            started.elapsed().as_secs_f64(),
        ))
    }

    /// Polls the document until it is ready; it, and the seconds that took.
    async fn ready(&self, id: &str) -> anyhow::Result<(Value, f64)> {
        let started = Instant::now();
        loop {
            let doc: Value = self
                .client
                .get(format!(
                    "{}/api/v1/knowledge/bases/{}/documents/{id}",
                    self.server.base, self.base_id
                ))
                .bearer_auth(&self.access)
                .send()
                .await?
                .json()
                .await?;
            match doc["status"].as_str() {
                Some("ready") => return Ok((doc, started.elapsed().as_secs_f64())),
                Some("failed") => anyhow::bail!("document failed: {doc}"),
                _ => tokio::time::sleep(Duration::from_millis(25)).await,
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(3600),
                "not ready after an hour: {doc}"
            );
        }
    }

    /// Uploads `content` and waits until it is indexed: (upload s, indexing s, document).
    async fn ingest(&self, name: &str, content: Bytes) -> anyhow::Result<(f64, f64, Value)> {
        let (id, upload_secs) = self.upload(name, content).await?;
        let (doc, index_secs) = self.ready(&id).await?;
        Ok((upload_secs, index_secs, doc))
    }
}

/// A PDF of about `mb` MB: pages of a scan (a grayscale JPEG) with the page's text as an
/// invisible layer, each page its own copy of the image as a real scanned document has.
fn big_pdf(mb: u64, jpeg: &[u8]) -> (Vec<u8>, usize) {
    let per_page = jpeg.len() as u64 + 3_000;
    let pages = (mb * 1_000_000).div_ceil(per_page).max(1) as usize;
    let mut pdf = PdfBuilder::new();
    for page in 1..=pages {
        let lines = page_lines(page);
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        pdf.image_page(jpeg, &lines);
    }
    (pdf.finish(), pages)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let binary = std::fs::canonicalize(args.binary.clone().unwrap_or_else(default_binary))?;
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load_before.trim());
    let local = args.local_model.as_ref().filter(|d| d.exists());
    let mut results = json!({
        "benchmark": "ingest",
        "binary": binary.display().to_string(),
        "machine": machine(),
        "load_before": load_before.trim(),
        "embedding": if local.is_some() { "skein-local-embed" } else { "none (lexical only)" },
    });

    if args.text_pages > 0 {
        let bench = Bench::start(&binary, local, false).await?;
        let pdf = Bytes::from(text_pdf(args.text_pages));
        let size = pdf.len();
        let (upload, index, doc) = bench.ingest("text.pdf", pdf).await?;
        let pages_per_sec = args.text_pages as f64 / index;
        println!(
            "text PDF, {} pages ({:.1} MB): upload {upload:.2} s, indexed in {index:.2} s: {pages_per_sec:.0} pages/s ({} chunks)",
            args.text_pages,
            size as f64 / 1e6,
            doc["chunk_count"]
        );
        results["text_pdf"] = json!({"pages": args.text_pages, "bytes": size, "upload_secs": upload,
            "index_secs": index, "pages_per_sec": pages_per_sec, "chunks": doc["chunk_count"]});
    }

    if args.ocr_pages > 0 {
        let bench = Bench::start(&binary, local, false).await?;
        let scans = scans(args.ocr_pages, 150)?;
        let mut pdf = PdfBuilder::new();
        for jpeg in &scans {
            pdf.image_page(jpeg, &[]);
        }
        let pdf = Bytes::from(pdf.finish());
        let size = pdf.len();
        let (upload, index, doc) = bench.ingest("scan.pdf", pdf).await?;
        let pages_per_sec = scans.len() as f64 / index;
        // What OCR read: a line the pages carry, found by search.
        let hits = post(
            &bench.client,
            format!(
                "{}/api/v1/knowledge/bases/{}/search",
                bench.server.base, bench.base_id
            ),
            &bench.access,
            json!({"query": "lost property ninety days charity", "top_k": 1}),
        )
        .await?;
        let found = hits["hits"][0]["chunk"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("ninety days"));
        println!(
            "scanned PDF, {} pages at 150 dpi ({:.1} MB): upload {upload:.2} s, read by OCR and indexed in {index:.2} s: {pages_per_sec:.2} pages/s ({} chunks; search finds OCR'd text: {found})",
            scans.len(),
            size as f64 / 1e6,
            doc["chunk_count"]
        );
        results["ocr_pdf"] = json!({"pages": scans.len(), "dpi": 150, "bytes": size, "upload_secs": upload,
            "index_secs": index, "pages_per_sec": pages_per_sec, "chunks": doc["chunk_count"], "search_finds_ocr_text": found});
    }

    if args.big_pdf_mb > 0 {
        let scan = scans(1, 200)?
            .into_iter()
            .next()
            .context("no scan rendered")?;
        let (pdf, pages) = big_pdf(args.big_pdf_mb, &scan);
        let pdf = Bytes::from(pdf);
        let mut runs = Vec::new();
        let ways: &[(&str, bool)] = if args.in_memory_too {
            &[("from disk (poppler)", false), ("in memory (lopdf)", true)]
        } else {
            &[("from disk (poppler)", false)]
        };
        for (way, hide_poppler) in ways {
            let bench = Bench::start(&binary, local, *hide_poppler).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let idle = rss_kib(bench.pid())?;
            let (id, upload) = bench.upload("big.pdf", pdf.clone()).await?;
            let before = rss_kib(bench.pid())?;
            let sampler = PeakRss::start(bench.pid(), before);
            let (doc, index) = bench.ready(&id).await?;
            let peak = sampler.stop().await?;
            let after = rss_kib(bench.pid())?;
            let mib = |kib: u64| kib as f64 / 1024.0;
            println!(
                "large PDF {way}: {:.0} MB, {pages} pages: upload {upload:.1} s, indexed in {index:.1} s ({:.0} pages/s); server RSS idle {:.1} MiB, before indexing {:.1}, peak while indexing {:.1} (+{:.1} over idle), after {:.1}",
                pdf.len() as f64 / 1e6,
                pages as f64 / index,
                mib(idle),
                mib(before),
                mib(peak),
                mib(peak.saturating_sub(idle)),
                mib(after)
            );
            runs.push(
                json!({"way": way, "bytes": pdf.len(), "pages": pages, "upload_secs": upload,
                "index_secs": index, "chunks": doc["chunk_count"], "rss_idle_mib": mib(idle),
                "rss_before_index_mib": mib(before), "rss_peak_index_mib": mib(peak),
                "rss_after_mib": mib(after)}),
            );
        }
        results["big_pdf"] = json!(runs);
    }

    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, serde_json::to_vec_pretty(&results)?)?;
    println!("written to {}", args.out.display());
    Ok(())
}
