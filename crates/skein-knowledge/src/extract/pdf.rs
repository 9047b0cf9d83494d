//! PDF's text layer, page by page, with lopdf (pure Rust); poppler's `pdftotext` is used instead
//! when it is installed and lopdf cannot read the file or finds no text in it. Lines repeated
//! at the top or bottom of most pages (running headers, footers, page numbers) are removed.
//! Pages without a text layer (scans) are rendered and read by OCR ([`super::ocr`]) when
//! Tesseract is installed; a PDF that is all scans fails with a clear error when it is not.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use skein_text::chunk::Block;

use super::ocr::{Run, run};
use super::text::join_lines;
use super::{ExtractError, Format};

/// How long `pdftotext` may take before it is stopped.
const PDFTOTEXT_TIMEOUT: Duration = Duration::from_secs(120);

/// The blocks of a PDF, one paragraph per run of lines, with page numbers.
pub(crate) fn extract(bytes: &[u8]) -> Result<Vec<Block>, ExtractError> {
    if !bytes.starts_with(b"%PDF")
        && !bytes[..bytes.len().min(1024)]
            .windows(4)
            .any(|w| w == b"%PDF")
    {
        return Err(ExtractError::corrupt(Format::Pdf, "no %PDF header"));
    }
    let (pages, images) = match with_lopdf(bytes) {
        Ok(read) if read.pages.iter().any(|p| !p.trim().is_empty()) => (read.pages, read.images),
        Ok(read) => match with_pdftotext(bytes) {
            Some(Ok(other)) => (other, read.images),
            _ => (read.pages, read.images),
        },
        Err(ExtractError::Encrypted { format }) => return Err(ExtractError::Encrypted { format }),
        Err(error) => match with_pdftotext(bytes) {
            // A file lopdf cannot read: its raw bytes tell whether it holds an image.
            Some(Ok(pages)) => (pages, bytes.windows(6).any(|w| w == b"/Image")),
            _ => return Err(error),
        },
    };
    let mut pages = pages;
    let scanned = empty_pages(&pages);
    // Only a PDF that holds an image can have a scanned page: blank pages of a text PDF (and
    // damaged files) are not worth a render and a recognition each.
    if !scanned.is_empty() && images {
        recognise_into(&mut pages, &scanned, super::ocr::pdf_pages(bytes, &scanned))?;
    }
    Ok(blocks(&pages))
}

/// PDFs larger than this are read from a file on disk by poppler, a range of pages at a
/// time ([`extract_file`]), when it is installed: lopdf holds the whole file and every object
/// it parsed in memory, several times the file's size.
pub const LARGE_PDF_BYTES: u64 = 16 << 20;

/// Pages read by one `pdftotext` run of [`extract_file`].
const PAGES_PER_RUN: u32 = 64;

/// The most pages [`extract_file`] reads: a page count is the file's own claim, and a forged
/// one must not keep the worker running `pdftotext` for days.
const MAX_FILE_PAGES: u32 = 100_000;

/// The blocks of the PDF at `path`, read by poppler (`pdfinfo`, `pdftotext`, `pdfimages`) a
/// range of pages at a time, so the memory this process takes grows with the text, never with
/// the file (its images, fonts and streams stay on disk). `None` when poppler is not
/// installed; scanned pages are read by OCR as in [`extract`].
pub(crate) fn extract_file(path: &Path) -> Option<Result<Vec<Block>, ExtractError>> {
    if !pdftotext_available() {
        return None;
    }
    Some(read_file(path))
}

fn read_file(path: &Path) -> Result<Vec<Block>, ExtractError> {
    let path_arg = path.to_string_lossy();
    let claimed = page_count(&path_arg)?;
    let count = claimed.min(MAX_FILE_PAGES);
    if count < claimed {
        tracing::info!(
            pages = claimed,
            read = count,
            "a PDF's pages past the limit are left out"
        );
    }
    let mut pages: Vec<String> = Vec::with_capacity(count as usize);
    let mut first = 1;
    while first <= count {
        let last = count.min(first.saturating_add(PAGES_PER_RUN - 1));
        let (a, b) = (first.to_string(), last.to_string());
        let out = match run(
            "pdftotext",
            &["-enc", "UTF-8", "-f", &a, "-l", &b, &path_arg, "-"],
            &[],
            PDFTOTEXT_TIMEOUT,
        ) {
            Run::Done(out) => out,
            Run::TimedOut => {
                return Err(ExtractError::corrupt(Format::Pdf, "pdftotext timed out"));
            }
            _ => {
                return Err(ExtractError::corrupt(
                    Format::Pdf,
                    "pdftotext could not read it",
                ));
            }
        };
        // One form feed ends each page, empty pages included.
        let mut range: Vec<String> = String::from_utf8_lossy(&out)
            .split('\u{c}')
            .map(str::to_owned)
            .collect();
        range.resize((last - first + 1) as usize, String::new());
        pages.extend(range);
        first = last + 1;
    }
    let scanned = empty_pages(&pages);
    if !scanned.is_empty() {
        let with_images = image_pages(&path_arg);
        let scanned: Vec<u32> = scanned
            .into_iter()
            .filter(|p| with_images.binary_search(p).is_ok())
            .collect();
        if !scanned.is_empty() {
            recognise_into(
                &mut pages,
                &scanned,
                super::ocr::pdf_file_pages(path, &scanned),
            )?;
        }
    }
    Ok(blocks(&pages))
}

/// The number of pages `pdfinfo` reads in the PDF at `path`; a PDF that needs a password is
/// [`ExtractError::Encrypted`].
fn page_count(path: &str) -> Result<u32, ExtractError> {
    let output = Command::new("pdfinfo")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|_| ExtractError::corrupt(Format::Pdf, "pdfinfo could not be run"))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr).to_ascii_lowercase();
        return Err(if said.contains("password") {
            ExtractError::Encrypted {
                format: Format::Pdf.as_str(),
            }
        } else {
            ExtractError::corrupt(Format::Pdf, "pdfinfo could not read it")
        });
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or_else(|| ExtractError::corrupt(Format::Pdf, "no page count"))
}

/// The pages (sorted, 1-based) that show at least one image, by `pdfimages -list`: a table
/// with two header lines and a row per image whose first column is its page.
fn image_pages(path: &str) -> Vec<u32> {
    let Run::Done(out) = run("pdfimages", &["-list", path], &[], PDFTOTEXT_TIMEOUT) else {
        return Vec::new();
    };
    let mut pages: Vec<u32> = String::from_utf8_lossy(&out)
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    pages.sort_unstable();
    pages.dedup();
    pages
}

/// The 1-based numbers of pages without text.
fn empty_pages(pages: &[String]) -> Vec<u32> {
    pages
        .iter()
        .enumerate()
        .filter(|(_, p)| p.trim().is_empty())
        .filter_map(|(i, _)| u32::try_from(i + 1).ok())
        .collect()
}

/// Puts what OCR read into `pages`. Without OCR a PDF that is all scans fails, saying what is
/// missing; with some text, the text pages are indexed and the scans left out.
fn recognise_into(
    pages: &mut [String],
    scanned: &[u32],
    read: Result<Vec<(u32, String)>, ExtractError>,
) -> Result<(), ExtractError> {
    match read {
        Ok(read) => {
            for (page, text) in read {
                if let Some(slot) = pages.get_mut(page as usize - 1) {
                    *slot = text;
                }
            }
            Ok(())
        }
        Err(e) if scanned.len() == pages.len() => Err(e),
        Err(e) => {
            tracing::info!(error = %e, pages = scanned.len(), "scanned pages left out");
            Ok(())
        }
    }
}

/// Whether poppler's `pdftotext` can be run (it is the fallback for PDFs lopdf cannot read).
pub fn pdftotext_available() -> bool {
    Command::new("pdftotext")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// What lopdf read of a PDF.
struct Read {
    /// Each page's text.
    pages: Vec<String>,
    /// Whether the file holds an image XObject (so a page without text may be a scan).
    images: bool,
}

/// Each page's text, by lopdf. lopdf is not hardened against hostile files everywhere, so a
/// panic inside it is caught and reported as a damaged file.
fn with_lopdf(bytes: &[u8]) -> Result<Read, ExtractError> {
    let result = std::panic::catch_unwind(|| -> Result<Read, ExtractError> {
        let mut doc = lopdf::Document::load_mem(bytes).map_err(map_lopdf)?;
        if doc.is_encrypted() {
            // Many PDFs are "encrypted" with an empty user password only to set permissions.
            doc.decrypt("").map_err(|_| ExtractError::Encrypted {
                format: Format::Pdf.as_str(),
            })?;
        }
        let pages = doc.get_pages();
        let mut out = Vec::with_capacity(pages.len());
        for number in pages.keys() {
            // A page whose text cannot be decoded is left empty; the others still count.
            out.push(doc.extract_text(&[*number]).unwrap_or_default());
        }
        // Object streams are unpacked by now, so an image inside one is found too.
        let images = doc.objects.values().any(|o| match o {
            lopdf::Object::Stream(s) => s
                .dict
                .get(b"Subtype")
                .ok()
                .and_then(|v| v.as_name().ok())
                .is_some_and(|n| n == b"Image"),
            _ => false,
        });
        Ok(Read { pages: out, images })
    });
    match result {
        Ok(read) => read,
        Err(_) => Err(ExtractError::corrupt(
            Format::Pdf,
            "the PDF reader failed on this file",
        )),
    }
}

fn map_lopdf(error: lopdf::Error) -> ExtractError {
    let text = error.to_string();
    if text.to_ascii_lowercase().contains("decrypt")
        || text.to_ascii_lowercase().contains("encrypt")
    {
        ExtractError::Encrypted {
            format: Format::Pdf.as_str(),
        }
    } else {
        ExtractError::corrupt(Format::Pdf, text)
    }
}

/// Each page's text by `pdftotext`, `None` when it is not installed.
fn with_pdftotext(bytes: &[u8]) -> Option<Result<Vec<String>, ExtractError>> {
    let out = match run(
        "pdftotext",
        &["-enc", "UTF-8", "-", "-"],
        bytes,
        PDFTOTEXT_TIMEOUT,
    ) {
        Run::Done(out) => out,
        Run::Missing => return None,
        Run::Failed => {
            return Some(Err(ExtractError::corrupt(
                Format::Pdf,
                "pdftotext could not read it",
            )));
        }
        Run::TimedOut => {
            return Some(Err(ExtractError::corrupt(
                Format::Pdf,
                "pdftotext timed out",
            )));
        }
    };
    let text = String::from_utf8_lossy(&out);
    let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
    // pdftotext ends the last page with a form feed too.
    if pages.last().is_some_and(|p| p.trim().is_empty()) {
        pages.pop();
    }
    Some(Ok(pages))
}

/// Paragraph blocks of the pages, running headers and footers removed.
fn blocks(pages: &[String]) -> Vec<Block> {
    let furniture = repeated_edge_lines(pages);
    let mut out = Vec::new();
    for (i, page) in pages.iter().enumerate() {
        let number = u32::try_from(i + 1).ok();
        let lines: Vec<&str> = page.lines().collect();
        let mut paragraph: Vec<&str> = Vec::new();
        for (j, line) in lines.iter().enumerate() {
            let edge = j < EDGE || j + EDGE >= lines.len();
            if line.trim().is_empty() || (edge && furniture.contains(&shape(line))) {
                if !paragraph.is_empty() {
                    out.push(Block::paragraph(join_lines(&paragraph)).on_page(number));
                    paragraph.clear();
                }
                continue;
            }
            paragraph.push(line);
        }
        if !paragraph.is_empty() {
            out.push(Block::paragraph(join_lines(&paragraph)).on_page(number));
        }
    }
    out
}

/// How many lines at each end of a page may be a running header or footer.
const EDGE: usize = 2;

/// A line with each run of digits masked, so "Page 3 of 19" and "Page 12 of 19" on every page
/// are one shape (a digit each would make pages 1–9 a shape of their own, left in the text).
fn shape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.trim().chars() {
        if !c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('#') {
            out.push('#');
        }
    }
    out
}

/// Shapes of lines at the edge of at least 60 % of the pages (documents of 3 pages or more).
fn repeated_edge_lines(pages: &[String]) -> Vec<String> {
    if pages.len() < 3 {
        return Vec::new();
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for page in pages {
        let lines: Vec<&str> = page.lines().filter(|l| !l.trim().is_empty()).collect();
        let mut seen: Vec<String> = Vec::new();
        for (j, line) in lines.iter().enumerate() {
            if j < EDGE || j + EDGE >= lines.len() {
                let s = shape(line);
                if !seen.contains(&s) {
                    seen.push(s);
                }
            }
        }
        for s in seen {
            *counts.entry(s).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(_, n)| *n * 10 >= pages.len() * 6)
        .map(|(s, _)| s)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_headers_and_page_numbers_go() {
        let words = ["Leave", "Travel", "Laptops", "Expenses"];
        let pages: Vec<String> = (1..=4)
            .map(|i| {
                format!(
                    "ACME Handbook\n{0} rules go\non about {0}.\nPage {i} of 4",
                    words[i - 1]
                )
            })
            .collect();
        let blocks = blocks(&pages);
        assert_eq!(blocks.len(), 4);
        assert_eq!(
            blocks[2],
            Block::paragraph("Laptops rules go on about Laptops.").on_page(Some(3))
        );
        // Page numbers of one and two digits are one footer: none is left on pages 1 to 9.
        let pages: Vec<String> = (1..=12)
            .map(|i| {
                format!(
                    "ACME Handbook\n{} is rule {i}.\nPage {i} of 12",
                    words[i % 4]
                )
            })
            .collect();
        let texts: Vec<String> = super::blocks(&pages).iter().map(Block::text).collect();
        assert_eq!(texts.len(), 12, "{texts:?}");
        assert!(
            texts
                .iter()
                .all(|t| t.contains(" is rule ") && !t.contains("Page")),
            "{texts:?}"
        );
    }

    /// The fallback reads pages where poppler is installed and stands aside where it is not;
    /// either way the answer is stated, never skipped.
    #[test]
    fn pdftotext_reads_pages_when_installed() {
        let pdf = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/fixtures/sample.pdf"
        ))
        .unwrap();
        match with_pdftotext(&pdf) {
            None => assert!(!pdftotext_available()),
            Some(pages) => {
                let pages = pages.unwrap();
                assert_eq!(pages.len(), 3);
                let blocks = blocks(&pages);
                assert_eq!(
                    blocks[1],
                    Block::paragraph("Expenses are filed within sixty days.").on_page(Some(2))
                );
            }
        }
        assert!(matches!(
            with_pdftotext(b"%PDF-1.4 garbage"),
            None | Some(Err(ExtractError::Corrupt { .. }))
        ));
    }

    #[test]
    fn not_a_pdf_is_corrupt() {
        assert!(matches!(
            extract(b"hello"),
            Err(ExtractError::Corrupt { .. })
        ));
    }
}
