//! PDF's text layer, page by page, with lopdf (pure Rust); poppler's `pdftotext` is used instead
//! when it is installed and lopdf cannot read the file or finds no text in it. Lines repeated
//! at the top or bottom of most pages (running headers, footers, page numbers) are removed.
//! Pages without a text layer (scans) are rendered and read by OCR ([`super::ocr`]) when
//! Tesseract is installed; a PDF that is all scans fails with a clear error when it is not.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skein_text::chunk::Block;

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
    let pages = match with_lopdf(bytes) {
        Ok(pages) if pages.iter().any(|p| !p.trim().is_empty()) => pages,
        Ok(pages) => match with_pdftotext(bytes) {
            Some(Ok(other)) => other,
            _ => pages,
        },
        Err(ExtractError::Encrypted { format }) => return Err(ExtractError::Encrypted { format }),
        Err(error) => match with_pdftotext(bytes) {
            Some(Ok(pages)) => pages,
            _ => return Err(error),
        },
    };
    let mut pages = pages;
    let scanned: Vec<u32> = pages
        .iter()
        .enumerate()
        .filter(|(_, p)| p.trim().is_empty())
        .filter_map(|(i, _)| u32::try_from(i + 1).ok())
        .collect();
    // Only a PDF that holds an image can have a scanned page: blank pages of a text PDF (and
    // damaged files) are not worth a render and a recognition each.
    if !scanned.is_empty() && has_images(bytes) {
        match super::ocr::pdf_pages(bytes, &scanned) {
            Ok(read) => {
                for (page, text) in read {
                    if let Some(slot) = pages.get_mut(page as usize - 1) {
                        *slot = text;
                    }
                }
            }
            // Nothing readable without OCR: say what is missing. With some text, the text
            // pages are indexed and the scans left out.
            Err(e) if scanned.len() == pages.len() => return Err(e),
            Err(e) => tracing::info!(error = %e, pages = scanned.len(), "scanned pages left out"),
        }
    }
    Ok(blocks(&pages))
}

/// Whether the PDF holds an image XObject: its objects as lopdf reads them (object streams
/// unpacked), or, for a file lopdf cannot read, its raw bytes.
fn has_images(bytes: &[u8]) -> bool {
    let owned = bytes.to_vec();
    let parsed = std::panic::catch_unwind(move || {
        let doc = lopdf::Document::load_mem(&owned).ok()?;
        Some(doc.objects.values().any(|o| {
            match o {
                lopdf::Object::Stream(s) => s
                    .dict
                    .get(b"Subtype")
                    .ok()
                    .and_then(|v| v.as_name().ok())
                    .is_some_and(|n| n == b"Image"),
                _ => false,
            }
        }))
    });
    match parsed {
        Ok(Some(found)) => found,
        _ => bytes.windows(6).any(|w| w == b"/Image"),
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

/// Each page's text, by lopdf. lopdf is not hardened against hostile files everywhere, so a
/// panic inside it is caught and reported as a damaged file.
fn with_lopdf(bytes: &[u8]) -> Result<Vec<String>, ExtractError> {
    let owned = bytes.to_vec();
    let result = std::panic::catch_unwind(move || -> Result<Vec<String>, ExtractError> {
        let mut doc = lopdf::Document::load_mem(&owned).map_err(map_lopdf)?;
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
        Ok(out)
    });
    match result {
        Ok(pages) => pages,
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
    let mut child = Command::new("pdftotext")
        .args(["-enc", "UTF-8", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take()?;
    let input = bytes.to_vec();
    // Written from another thread so a full output pipe cannot deadlock the two.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take()?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < PDFTOTEXT_TIMEOUT => {
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
    Some(match status {
        Some(s) if s.success() => {
            let text = String::from_utf8_lossy(&out);
            let mut pages: Vec<String> = text.split('\u{c}').map(str::to_owned).collect();
            // pdftotext ends the last page with a form feed too.
            if pages.last().is_some_and(|p| p.trim().is_empty()) {
                pages.pop();
            }
            Ok(pages)
        }
        Some(_) => Err(ExtractError::corrupt(
            Format::Pdf,
            "pdftotext could not read it",
        )),
        None => Err(ExtractError::corrupt(Format::Pdf, "pdftotext timed out")),
    })
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

/// A line with its digits masked, so "Page 3 of 9" on every page is one shape.
fn shape(line: &str) -> String {
    line.trim()
        .chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .collect()
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
