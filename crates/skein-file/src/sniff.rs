//! What an upload is, decided from its first bytes (magic numbers), never from its name or
//! the client's `Content-Type`; which kinds each purpose accepts; and names made safe.

use skein_core::api::FilePurpose;

/// Bytes of an upload's head that the sniffer looks at.
pub const HEAD_BYTES: usize = 8192;

/// A broad kind of content, which purposes accept or refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// PNG, JPEG, GIF, WebP: what the image pipeline decodes.
    Image,
    /// PDF.
    Pdf,
    /// UTF-8 text: plain, Markdown, code, CSV, JSON, HTML.
    Text,
    /// Word, Excel and PowerPoint documents (OOXML).
    Office,
    /// EPUB books.
    Ebook,
    /// Audio (voice messages).
    Audio,
    /// Anything else, archives included.
    Other,
}

/// The sniffed type of an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    /// The MIME type stored and served.
    pub content_type: String,
    /// Its kind.
    pub kind: Kind,
}

/// Sniffs `head` (the first [`HEAD_BYTES`] or fewer); `name` only picks among text types
/// (Markdown or CSV look like any text), never turns binary content into something else.
pub fn sniff(head: &[u8], name: &str) -> Sniffed {
    if let Some(found) = infer::get(head) {
        // infer recognises OOXML only when the part after `[Content_Types].xml` sits where
        // Word puts it; documents written by other tools (LibreOffice, python-docx, Pages)
        // come out as plain zip. Their entry names say what they are.
        let mime = match found.mime_type() {
            "application/zip" => zip_document(head).unwrap_or("application/zip"),
            mime => mime,
        };
        let kind = match mime {
            "image/png" | "image/jpeg" | "image/gif" | "image/webp" => Kind::Image,
            "application/pdf" => Kind::Pdf,
            "text/html" | "text/xml" | "application/xml" | "text/x-shellscript" => Kind::Text,
            m if m.starts_with("application/vnd.openxmlformats-officedocument.") => Kind::Office,
            "application/epub+zip" => Kind::Ebook,
            m if m.starts_with("audio/") => Kind::Audio,
            _ => Kind::Other,
        };
        let content_type = match kind {
            // Served as text, never as markup a browser would run.
            Kind::Text => text_type(name).to_string(),
            _ => mime.to_string(),
        };
        return Sniffed { content_type, kind };
    }
    if looks_like_text(head) {
        return Sniffed {
            content_type: text_type(name).to_string(),
            kind: Kind::Text,
        };
    }
    Sniffed {
        content_type: "application/octet-stream".into(),
        kind: Kind::Other,
    }
}

/// The OOXML or EPUB type a zip's entry names (in the local headers within `head`) show.
fn zip_document(head: &[u8]) -> Option<&'static str> {
    let mut at = 0;
    while let Some(found) = head[at..].windows(4).position(|w| w == b"PK\x03\x04") {
        let start = at + found;
        let name_len = head
            .get(start + 26..start + 28)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))?;
        let name = head.get(start + 30..start + 30 + name_len)?;
        if name.starts_with(b"word/") {
            return Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document");
        }
        if name.starts_with(b"ppt/") {
            return Some(
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            );
        }
        if name.starts_with(b"xl/") {
            return Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
        }
        // EPUB's own entry (its `mimetype` entry is often compressed, so not readable here).
        if name == b"META-INF/container.xml" {
            return Some("application/epub+zip");
        }
        at = start + 4;
    }
    None
}

/// UTF-8 without NUL bytes; a character cut at the end of the head still counts.
fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}

/// The text type a name suggests.
fn text_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "md" | "markdown" => "text/markdown",
        "csv" => "text/csv",
        "json" => "application/json",
        _ => "text/plain",
    }
}

/// The kinds a purpose accepts.
pub fn accepts(purpose: FilePurpose, kind: Kind) -> bool {
    match purpose {
        FilePurpose::Avatar => kind == Kind::Image,
        FilePurpose::Chat => matches!(
            kind,
            Kind::Image | Kind::Pdf | Kind::Text | Kind::Office | Kind::Audio
        ),
        FilePurpose::Agent => matches!(kind, Kind::Image | Kind::Pdf | Kind::Text),
        FilePurpose::Knowledge => {
            matches!(
                kind,
                Kind::Pdf | Kind::Text | Kind::Office | Kind::Ebook | Kind::Image
            )
        }
        FilePurpose::Plugin => true,
    }
}

/// Longest name kept, in bytes.
const NAME_MAX_BYTES: usize = 255;

/// A name safe to store and to put in a `Content-Disposition`: its last path component only
/// (`../../etc/passwd` → `passwd`), no control or reserved characters, no leading dots, at
/// most 255 bytes; `file` when nothing is left.
pub fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let mut out = String::new();
    for c in trimmed.chars() {
        if out.len() + c.len_utf8() > NAME_MAX_BYTES {
            break;
        }
        out.push(c);
    }
    if out.is_empty() { "file".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipped_documents_are_told_by_their_entries() {
        let fixtures = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../skein-knowledge/tests/data/fixtures"
        );
        for (file, kind, mime) in [
            (
                "sample.docx",
                Kind::Office,
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            (
                "sample.pptx",
                Kind::Office,
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ),
            ("sample.epub", Kind::Ebook, "application/epub+zip"),
        ] {
            let bytes = std::fs::read(format!("{fixtures}/{file}")).unwrap();
            let s = sniff(&bytes[..bytes.len().min(HEAD_BYTES)], file);
            assert_eq!((s.kind, s.content_type.as_str()), (kind, mime), "{file}");
            assert!(accepts(FilePurpose::Knowledge, s.kind));
        }
    }

    #[test]
    fn content_decides_not_the_name() {
        let zip = b"PK\x03\x04\x14\x00\x00\x00\x08\x00rest of a zip";
        let s = sniff(zip, "cat.png");
        assert_eq!(s.kind, Kind::Other);
        assert!(!accepts(FilePurpose::Avatar, s.kind));
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(sniff(png, "cat.txt").content_type, "image/png");
        assert_eq!(
            sniff("# 标题\n".as_bytes(), "a.md").content_type,
            "text/markdown"
        );
        assert_eq!(sniff(b"\0\x01\x02binary", "a.md").kind, Kind::Other);
        // A head cut in the middle of a character is still text.
        let cut = &"中文".as_bytes()[..4];
        assert_eq!(sniff(cut, "a.txt").kind, Kind::Text);
    }

    #[test]
    fn names_lose_their_paths() {
        assert_eq!(safe_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_name("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(safe_name(".."), "file");
        assert_eq!(safe_name("  .hidden "), "hidden");
        assert_eq!(safe_name("a\u{0}b\r\n.txt"), "a_b__.txt");
        assert_eq!(safe_name("报告 2024.pdf"), "报告 2024.pdf");
        assert!(safe_name(&"長".repeat(300)).len() <= 255);
    }
}
