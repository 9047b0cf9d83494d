//! OCR with Tesseract (`tesseract` with the `chi_sim` and `eng` models, Debian's
//! `tesseract-ocr` and `tesseract-ocr-chi-sim`): images, and PDF pages that have no text layer
//! (scans), rendered first with poppler's `pdftoppm`.
//!
//! Bounded: at most [`CONCURRENT`] recognitions run at once in the process (each is one core's
//! work for seconds; more would starve searches), each stops after [`TIMEOUT`], and a scanned
//! PDF has at most [`MAX_PAGES`] pages recognised. Without `tesseract` a document that needs
//! OCR fails with [`ExtractError::OcrUnavailable`], saying what to install.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use skein_text::chunk::Block;

use super::text::join_lines;
use super::{ExtractError, Format};

/// Recognitions running at once, in this process.
pub const CONCURRENT: usize = 2;
/// How long one page or image may take.
pub const TIMEOUT: Duration = Duration::from_secs(120);
/// Scanned pages of one PDF that are recognised; the rest are left out.
pub const MAX_PAGES: usize = 300;
/// Tesseract's languages: Simplified Chinese and English together.
const LANGUAGES: &str = "chi_sim+eng";
/// Resolution scanned pages are rendered at (Tesseract reads best at about 300 dpi; 200 is a
/// third of the work and still reads body text).
const DPI: &str = "200";

/// Whether `tesseract` can be run with both languages.
pub fn tesseract_available() -> bool {
    let Ok(out) = Command::new("tesseract")
        .arg("--list-langs")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    else {
        return false;
    };
    let langs = String::from_utf8_lossy(&out.stdout);
    langs.lines().any(|l| l.trim() == "chi_sim") && langs.lines().any(|l| l.trim() == "eng")
}

/// Whether poppler's `pdftoppm` can be run (to render scanned pages).
pub fn pdftoppm_available() -> bool {
    Command::new("pdftoppm")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A slot of the process's OCR budget, held while one recognition runs.
struct Slot;

static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

impl Slot {
    fn take() -> Slot {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *running >= CONCURRENT {
            running = FREED.wait(running).unwrap_or_else(|e| e.into_inner());
        }
        *running += 1;
        Slot
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        *running = running.saturating_sub(1);
        FREED.notify_one();
    }
}

/// How a helper program ended.
pub(crate) enum Run {
    /// It exited 0 with this output.
    Done(Vec<u8>),
    /// It exited otherwise.
    Failed,
    /// It ran past its time and was stopped.
    TimedOut,
    /// It could not be started (not installed).
    Missing,
}

/// Runs `program` with `args`, `input` on its stdin, for at most `timeout`.
pub(crate) fn run(program: &str, args: &[&str], input: &[u8], timeout: Duration) -> Run {
    let Ok(mut child) = Command::new(program)
        .args(args)
        // Tesseract's OpenMP threads: one per recognition, as the budget counts them.
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    else {
        return Run::Missing;
    };
    let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
        let _ = child.kill();
        let _ = child.wait();
        return Run::Failed;
    };
    // Written from another thread so a full output pipe cannot deadlock the two; scoped, so
    // the input is lent rather than copied.
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            let _ = stdin.write_all(input);
        });
        let reader = scope.spawn(move || {
            let mut out = Vec::new();
            let _ = stdout.read_to_end(&mut out);
            out
        });
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let _ = writer.join();
        let out = reader.join().unwrap_or_default();
        match status {
            Some(s) if s.success() => Run::Done(out),
            Some(_) => Run::Failed,
            None => Run::TimedOut,
        }
    })
}

/// The text Tesseract reads in an image (PNG, JPEG, TIFF, BMP, GIF, WebP).
fn recognise(image: &[u8], format: Format) -> Result<String, ExtractError> {
    let _slot = Slot::take();
    match run(
        "tesseract",
        &["stdin", "stdout", "-l", LANGUAGES, "--psm", "3"],
        image,
        TIMEOUT,
    ) {
        Run::Done(out) => Ok(tidy(&String::from_utf8_lossy(&out))),
        Run::Failed => Err(ExtractError::corrupt(
            format,
            "the OCR engine could not read the image",
        )),
        Run::TimedOut => Err(ExtractError::corrupt(
            format,
            format!("OCR took longer than {} s", TIMEOUT.as_secs()),
        )),
        Run::Missing => Err(ExtractError::OcrUnavailable {
            format: format.as_str(),
        }),
    }
}

/// Tesseract puts a space between Chinese characters it reads one by one; they are joined
/// again (a space between two CJK characters is never meaningful), and form feeds dropped.
fn tidy(text: &str) -> String {
    let chars: Vec<char> = text.chars().filter(|c| *c != '\u{c}').collect();
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let before = out.chars().last();
            let after = chars[i + 1..].iter().find(|c| **c != ' ');
            if before.is_some_and(is_cjk) && after.is_some_and(|c| is_cjk(*c)) {
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3000..=0x303F | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF)
}

/// Paragraph blocks of recognised text (split at blank lines), on `page`.
fn paragraphs(text: &str, page: Option<u32>) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.trim().is_empty() {
            if !lines.is_empty() {
                out.push(Block::paragraph(join_lines(&lines)).on_page(page));
                lines.clear();
            }
        } else {
            lines.push(line);
        }
    }
    out
}

/// The blocks of an image.
pub(crate) fn image(bytes: &[u8]) -> Result<Vec<Block>, ExtractError> {
    Ok(paragraphs(&recognise(bytes, Format::Image)?, None))
}

/// Recognises the pages of a PDF numbered (1-based) in `pages`: each rendered to PNG by
/// `pdftoppm` and read by Tesseract. Answers `(page, text)` for the pages read, in page order.
pub(crate) fn pdf_pages(pdf: &[u8], pages: &[u32]) -> Result<Vec<(u32, String)>, ExtractError> {
    if !tesseract_available() || !pdftoppm_available() {
        return Err(ExtractError::OcrUnavailable {
            format: Format::Pdf.as_str(),
        });
    }
    // Written once to a scratch file that every page is rendered from: piping the whole PDF
    // to pdftoppm for each page costs a copy of the file per page.
    let scratch = Scratch::new("pdf");
    std::fs::write(&scratch.0, pdf)
        .map_err(|e| ExtractError::corrupt(Format::Pdf, format!("scratch file: {e}")))?;
    pdf_file_pages(&scratch.0, pages)
}

/// [`pdf_pages`] for a PDF on disk. Up to [`CONCURRENT`] pages are read at once (each
/// recognition still takes a slot of the process's budget), and Tesseract runs on one thread
/// per page: its own threads speed one page up far less than a page per core does.
pub(crate) fn pdf_file_pages(
    path: &std::path::Path,
    pages: &[u32],
) -> Result<Vec<(u32, String)>, ExtractError> {
    if !tesseract_available() || !pdftoppm_available() {
        return Err(ExtractError::OcrUnavailable {
            format: Format::Pdf.as_str(),
        });
    }
    let pages: Vec<u32> = pages.iter().copied().take(MAX_PAGES).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let read: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::with_capacity(pages.len()));
    let failed: Mutex<Option<ExtractError>> = Mutex::new(None);
    let path_arg = path.to_string_lossy();
    std::thread::scope(|scope| {
        for _ in 0..CONCURRENT.min(pages.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&page) = pages.get(i) else { break };
                    if failed.lock().map(|f| f.is_some()).unwrap_or(true) {
                        break;
                    }
                    let Some(png) = render_page(&path_arg, page) else {
                        // A page poppler cannot render is left out, as a page lopdf cannot
                        // decode is.
                        continue;
                    };
                    match recognise(&png, Format::Pdf) {
                        Ok(text) => {
                            if let Ok(mut read) = read.lock() {
                                read.push((page, text));
                            }
                        }
                        Err(error) => {
                            if let Ok(mut failed) = failed.lock() {
                                failed.get_or_insert(error);
                            }
                            break;
                        }
                    }
                }
            });
        }
    });
    if let Some(error) = failed.into_inner().ok().flatten() {
        return Err(error);
    }
    let mut read = read.into_inner().unwrap_or_default();
    read.sort_by_key(|(page, _)| *page);
    Ok(read)
}

/// Page `page` of the PDF at `path` as a PNG, or `None` when poppler cannot render it.
fn render_page(path: &str, page: u32) -> Option<Vec<u8>> {
    let number = page.to_string();
    // pdftoppm writes PNG only to files: a scratch file per page.
    let root = Scratch::new("page");
    let root_arg = root.0.to_string_lossy().into_owned();
    let png_file = Scratch(root.0.with_extension("png"));
    let rendered = run(
        "pdftoppm",
        &[
            "-r",
            DPI,
            "-f",
            &number,
            "-l",
            &number,
            "-png",
            "-singlefile",
            path,
            &root_arg,
        ],
        &[],
        TIMEOUT,
    );
    let png = std::fs::read(&png_file.0).unwrap_or_default();
    (matches!(rendered, Run::Done(_)) && !png.is_empty()).then_some(png)
}

/// A scratch path in the temporary folder, removed when dropped.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(kind: &str) -> Scratch {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Scratch(std::env::temp_dir().join(format!(
            "skein-ocr-{}-{kind}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_between_chinese_characters_go() {
        assert_eq!(
            tidy("年 假 十 五 天 , annual leave\u{c}"),
            "年假十五天 , annual leave"
        );
        assert_eq!(tidy("A B 中 C"), "A B 中 C");
    }

    #[test]
    fn the_budget_admits_a_bounded_number_at_once() {
        let held: Vec<Slot> = (0..CONCURRENT).map(|_| Slot::take()).collect();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _slot = Slot::take();
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "a third waits"
        );
        drop(held);
        assert!(
            rx.recv_timeout(Duration::from_secs(5)).is_ok(),
            "and runs once one ends"
        );
        waiter.join().unwrap();
    }
}
