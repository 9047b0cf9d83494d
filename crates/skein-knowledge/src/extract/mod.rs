//! Documents to structured text: bytes in, [`Block`]s (headings, paragraphs, tables, code,
//! each with its page) out.
//!
//! Every extractor takes untrusted bytes: a broken, truncated, encrypted or hostile file is a
//! typed [`ExtractError`], never a panic, and archives are read with hard limits on how much
//! they may inflate to (a zip bomb stops at the limit). Extraction is CPU work; the service
//! runs it on the blocking pool.

mod csv;
mod epub;
mod html;
mod json;
mod markdown;
mod ocr;
mod ooxml;
mod pdf;
mod text;
mod xlsx;
mod xml;

use skein_text::chunk::Block;

pub use ocr::{pdftoppm_available, tesseract_available};
pub use pdf::{LARGE_PDF_BYTES, pdftotext_available};

/// The document formats Skein extracts (images, and scanned PDF pages, by OCR).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text in any common encoding (UTF-8, UTF-16 with a BOM, GB18030/GBK).
    Text,
    /// Markdown (CommonMark's block structure: headings, fences, pipe tables).
    Markdown,
    /// HTML: readable text with headings and tables; scripts, styles and navigation dropped.
    Html,
    /// Comma-, semicolon- or tab-separated values: one table.
    Csv,
    /// JSON: one line per leaf, grouped by top-level entry.
    Json,
    /// Word (Office Open XML).
    Docx,
    /// PowerPoint (Office Open XML): one page per slide, with tables and speaker notes.
    Pptx,
    /// EPUB 2 or 3: the spine's XHTML in reading order.
    Epub,
    /// PDF's text layer, page by page.
    Pdf,
    /// Excel (Office Open XML): each sheet a table, header first.
    Xlsx,
    /// An image (PNG, JPEG, TIFF, BMP, GIF, WebP), read by OCR.
    Image,
}

impl Format {
    /// The format a file name's extension names, if Skein reads it.
    pub fn from_file_name(name: &str) -> Option<Format> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" | "log" => Format::Text,
            "md" | "markdown" | "mdx" => Format::Markdown,
            "html" | "htm" | "xhtml" => Format::Html,
            "csv" | "tsv" => Format::Csv,
            "json" => Format::Json,
            "docx" => Format::Docx,
            "pptx" => Format::Pptx,
            "epub" => Format::Epub,
            "pdf" => Format::Pdf,
            "xlsx" => Format::Xlsx,
            "png" | "jpg" | "jpeg" | "tif" | "tiff" | "bmp" | "gif" | "webp" => Format::Image,
            _ => return None,
        })
    }

    /// The format a MIME type names, if Skein reads it.
    pub fn from_mime(mime: &str) -> Option<Format> {
        let mime = mime.split(';').next()?.trim().to_ascii_lowercase();
        Some(match mime.as_str() {
            "text/plain" => Format::Text,
            "text/markdown" | "text/x-markdown" => Format::Markdown,
            "text/html" | "application/xhtml+xml" => Format::Html,
            "text/csv" | "text/tab-separated-values" => Format::Csv,
            "application/json" => Format::Json,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => {
                Format::Docx
            }
            "application/vnd.openxmlformats-officedocument.presentationml.presentation" => {
                Format::Pptx
            }
            "application/epub+zip" => Format::Epub,
            "application/pdf" => Format::Pdf,
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => Format::Xlsx,
            "image/png" | "image/jpeg" | "image/tiff" | "image/bmp" | "image/gif"
            | "image/webp" => Format::Image,
            _ => return None,
        })
    }

    /// The name used in errors and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Docx => "docx",
            Format::Pptx => "pptx",
            Format::Epub => "epub",
            Format::Pdf => "pdf",
            Format::Xlsx => "xlsx",
            Format::Image => "image",
        }
    }
}

/// Why a document could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    /// The bytes are not a valid file of the format (truncated, corrupt, or another format).
    #[error("the {format} file is damaged or not a {format} file: {reason}")]
    Corrupt {
        /// The format it claimed to be.
        format: &'static str,
        /// What was wrong, for the per-document error.
        reason: String,
    },
    /// The file is encrypted with a password Skein does not have.
    #[error("the {format} file is password-protected")]
    Encrypted {
        /// The format.
        format: &'static str,
    },
    /// The file inflates past the extraction limits (a zip bomb, or simply too big).
    #[error("the {format} file expands past the limit of {limit_bytes} bytes")]
    TooLarge {
        /// The format.
        format: &'static str,
        /// The limit that was hit.
        limit_bytes: u64,
    },
    /// The file was read but holds no text (a scanned PDF without OCR, an empty file).
    #[error("the {format} file contains no text")]
    NoText {
        /// The format.
        format: &'static str,
    },
    /// The file needs OCR (an image, a scan) and this server has no OCR engine.
    #[error(
        "the {format} file needs OCR (it has no text layer) and OCR is not installed on this server: install tesseract-ocr and tesseract-ocr-chi-sim"
    )]
    OcrUnavailable {
        /// The format.
        format: &'static str,
    },
}

impl ExtractError {
    /// The message a user sees on the document, in their language (the reason of a corrupt
    /// file comes from the parser and stays in English).
    pub fn message(&self, lang: skein_core::i18n::Lang) -> String {
        match lang {
            skein_core::i18n::Lang::En => self.to_string(),
            skein_core::i18n::Lang::Zh => match self {
                ExtractError::Corrupt { format, reason } => {
                    format!("该 {format} 文件已损坏或不是 {format} 文件：{reason}")
                }
                ExtractError::Encrypted { format } => format!("该 {format} 文件有密码保护"),
                ExtractError::TooLarge {
                    format,
                    limit_bytes,
                } => format!("该 {format} 文件解压后超过 {limit_bytes} 字节的上限"),
                ExtractError::NoText { format } => format!("该 {format} 文件中没有文字"),
                ExtractError::OcrUnavailable { format } => format!(
                    "该 {format} 文件需要 OCR 识别（没有文字层），但此服务器未安装 OCR：请安装 tesseract-ocr 和 tesseract-ocr-chi-sim"
                ),
            },
        }
    }

    pub(crate) fn corrupt(format: Format, reason: impl std::fmt::Display) -> ExtractError {
        ExtractError::Corrupt {
            format: format.as_str(),
            reason: reason.to_string(),
        }
    }
}

/// How much an archive-based document may inflate to, in total and per member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most bytes all members read together may inflate to.
    pub total_bytes: u64,
    /// The most bytes one member may inflate to.
    pub member_bytes: u64,
    /// The most members an archive may list.
    pub members: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            total_bytes: 512 << 20,
            member_bytes: 128 << 20,
            members: 20_000,
        }
    }
}

/// Reads `bytes` as `format` with the default [`Limits`]. A document without any text is
/// [`ExtractError::NoText`].
pub fn extract(format: Format, bytes: &[u8]) -> Result<Vec<Block>, ExtractError> {
    extract_with(format, bytes, Limits::default())
}

/// Reads `bytes` as `format` within `limits`.
pub fn extract_with(
    format: Format,
    bytes: &[u8],
    limits: Limits,
) -> Result<Vec<Block>, ExtractError> {
    let blocks = match format {
        Format::Text => text::extract(bytes),
        Format::Markdown => markdown::extract(&text::decode(bytes)),
        Format::Html => html::extract(&text::decode(bytes)),
        Format::Csv => csv::extract(&text::decode(bytes)),
        Format::Json => json::extract(bytes)?,
        Format::Docx => ooxml::docx(bytes, limits)?,
        Format::Pptx => ooxml::pptx(bytes, limits)?,
        Format::Epub => epub::extract(bytes, limits)?,
        Format::Pdf => pdf::extract(bytes)?,
        Format::Xlsx => xlsx::extract(bytes, limits)?,
        Format::Image => ocr::image(bytes)?,
    };
    with_text(format, blocks)
}

/// Reads the PDF at `path` with poppler, a range of pages at a time, so the memory taken grows
/// with the document's text and never with the file's size: for PDFs over
/// [`LARGE_PDF_BYTES`]. `None` when poppler is not installed (read the bytes with [`extract`]).
pub fn extract_pdf_file(path: &std::path::Path) -> Option<Result<Vec<Block>, ExtractError>> {
    pdf::extract_file(path).map(|read| read.and_then(|blocks| with_text(Format::Pdf, blocks)))
}

/// The blocks that hold text; none at all is [`ExtractError::NoText`].
fn with_text(format: Format, blocks: Vec<Block>) -> Result<Vec<Block>, ExtractError> {
    let blocks: Vec<Block> = blocks.into_iter().filter(|b| !b.is_empty()).collect();
    if blocks.is_empty() {
        return Err(ExtractError::NoText {
            format: format.as_str(),
        });
    }
    Ok(blocks)
}

/// Collapses runs of whitespace to one space and trims, for text that came out of markup.
fn squash(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_names_and_mime_types() {
        assert_eq!(Format::from_file_name("报告.PDF"), Some(Format::Pdf));
        assert_eq!(Format::from_file_name("a.tar.gz"), None);
        assert_eq!(Format::from_file_name("noext"), None);
        assert_eq!(
            Format::from_mime("text/html; charset=utf-8"),
            Some(Format::Html)
        );
    }

    #[test]
    fn errors_speak_both_languages() {
        let error = ExtractError::Encrypted { format: "pdf" };
        assert_eq!(
            error.message(skein_core::i18n::Lang::En),
            "the pdf file is password-protected"
        );
        assert_eq!(
            error.message(skein_core::i18n::Lang::Zh),
            "该 pdf 文件有密码保护"
        );
    }

    #[test]
    fn an_empty_file_has_no_text() {
        for format in [Format::Text, Format::Markdown, Format::Html, Format::Csv] {
            assert_eq!(
                extract(format, b"  \n "),
                Err(ExtractError::NoText {
                    format: format.as_str()
                })
            );
        }
    }
}

/// Knowledge's extractors as the File service's previews of Office documents and EPUBs
/// (wired by the binary; the File service does not depend on Knowledge).
#[derive(Debug, Clone, Copy, Default)]
pub struct DocumentPreviews;

impl DocumentPreviews {
    /// What a preview may inflate to: far less than ingestion, since only the start is shown.
    const LIMITS: Limits = Limits {
        total_bytes: 64 << 20,
        member_bytes: 32 << 20,
        members: 5_000,
    };

    fn format(content_type: &str) -> Option<Format> {
        Format::from_mime(content_type)
            .filter(|f| matches!(f, Format::Docx | Format::Pptx | Format::Xlsx | Format::Epub))
    }
}

impl skein_core::api::DocumentText for DocumentPreviews {
    fn reads(&self, content_type: &str) -> bool {
        Self::format(content_type).is_some()
    }

    fn text(&self, content_type: &str, bytes: &[u8]) -> Result<String, String> {
        let format = Self::format(content_type).ok_or("not a document Skein previews")?;
        let blocks = extract_with(format, bytes, Self::LIMITS).map_err(|e| e.to_string())?;
        Ok(skein_text::chunk::render(&blocks))
    }
}
