//! Plain text: the encoding detected, paragraphs at blank lines, hard-wrapped lines rejoined.

use skein_text::chunk::Block;

/// Decodes text in the encodings Chinese and English documents come in: UTF-8 (with or
/// without a BOM), UTF-16 with a BOM, then GB18030 (a superset of GBK and GB2312), then Big5;
/// what none of them reads cleanly is read as UTF-8 with replacement characters.
pub(crate) fn decode(bytes: &[u8]) -> String {
    if let Some((encoding, bom)) = encoding_rs::Encoding::for_bom(bytes) {
        let (text, _) = encoding.decode_without_bom_handling(&bytes[bom..]);
        return text.into_owned();
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    for encoding in [encoding_rs::GB18030, encoding_rs::BIG5] {
        let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
        if !had_errors {
            return text.into_owned();
        }
    }
    String::from_utf8_lossy(bytes).into_owned()
}

/// One paragraph per run of non-blank lines.
pub(crate) fn extract(bytes: &[u8]) -> Vec<Block> {
    paragraphs(&decode(bytes))
}

/// Paragraphs of `text` (split at blank lines), each with its wrapped lines rejoined.
pub(crate) fn paragraphs(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines: Vec<&str> = Vec::new();
    for line in text.lines().chain(std::iter::once("")) {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !lines.is_empty() {
                out.push(Block::paragraph(join_lines(&lines)));
                lines.clear();
            }
        } else {
            lines.push(line);
        }
    }
    out
}

/// Joins hard-wrapped lines: no space between two Chinese characters, a hyphen at a line's
/// end before a lower-case letter dropped ("infor-" + "mation"), one space otherwise.
pub(crate) fn join_lines(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some(last) = out.chars().last() else {
            out.push_str(line);
            continue;
        };
        let first = line.chars().next().unwrap_or(' ');
        if last == '-'
            && first.is_lowercase()
            && out.chars().rev().nth(1).is_some_and(char::is_alphabetic)
        {
            out.pop();
        } else if !(is_wide(last) && is_wide(first)) {
            out.push(' ');
        }
        out.push_str(line);
    }
    out
}

/// Characters written without spaces between them: CJK ideographs, kana, and full-width
/// punctuation.
pub(crate) fn is_wide(c: char) -> bool {
    matches!(u32::from(c), 0x2E80..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF | 0xFF00..=0xFFEF | 0x20000..=0x323AF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_and_utf16_are_decoded() {
        let (gbk, _, _) = encoding_rs::GBK.encode("员工手册：年假十五天。");
        assert_eq!(decode(&gbk), "员工手册：年假十五天。");
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in "知识库 ok".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(decode(&utf16), "知识库 ok");
        assert_eq!(decode(b"\xEF\xBB\xBFplain"), "plain");
    }

    #[test]
    fn wrapped_lines_rejoin() {
        let blocks = paragraphs("The infor-\nmation is\nhere.\n\n中文段落\n继续。\r\n");
        assert_eq!(
            blocks,
            [
                Block::paragraph("The information is here."),
                Block::paragraph("中文段落继续。")
            ]
        );
    }
}
