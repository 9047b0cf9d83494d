//! Just enough of `multipart/form-data` (RFC 7578) to relay an upload untouched: find the
//! parts, read a text field (`model`), and swap one field's value (the mapped model) without
//! re-encoding the file. A full parser would copy every file part; this only records where
//! each part sits in the client's bytes.

use std::ops::Range;

/// One part of a form: its name, its file name if it is a file, and where its content is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename`, for file parts.
    pub filename: Option<String>,
    /// The content's byte range in the body.
    pub content: Range<usize>,
}

/// The boundary of a `multipart/form-data` content type, if it is one.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let essence = params.next()?.trim();
    if !essence.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|p| {
        let (name, value) = p.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        // RFC 2046: 1 to 70 characters.
        (!value.is_empty() && value.len() <= 70).then(|| value.to_string())
    })
}

/// Splits `body` into its parts; `Err` says what is malformed.
pub(crate) fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, &'static str> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // The first delimiter may open the body or follow a preamble line.
    let mut at = if body.starts_with(delimiter) {
        0
    } else {
        find(body, &[b"\r\n", delimiter].concat(), 0).ok_or("no part boundary found")? + 2
    };
    let mut parts = Vec::new();
    loop {
        let after = at + delimiter.len();
        let rest = body.get(after..).ok_or("the form ends inside a boundary")?;
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let headers_start = after + line_end(rest).ok_or("a boundary line does not end")?;
        let headers_end =
            find(body, b"\r\n\r\n", headers_start - 2).ok_or("a part's headers do not end")?;
        let headers = std::str::from_utf8(body.get(headers_start..headers_end).unwrap_or_default())
            .map_err(|_| "a part's headers are not text")?;
        let content_start = headers_end + 4;
        let next = find(body, &[b"\r\n", delimiter].concat(), content_start)
            .ok_or("the form has no closing boundary")?;
        let (name, filename) = disposition(headers).ok_or("a part has no name")?;
        parts.push(Part {
            name,
            filename,
            content: content_start..next,
        });
        at = next + 2;
    }
}

/// The text of the first field named `name`.
pub(crate) fn text_field<'a>(body: &'a [u8], parts: &[Part], name: &str) -> Option<&'a str> {
    let part = parts
        .iter()
        .find(|p| p.name == name && p.filename.is_none())?;
    std::str::from_utf8(body.get(part.content.clone())?).ok()
}

/// `body` with the content of `part` replaced by `value`; everything else byte for byte.
pub(crate) fn replace(body: &[u8], part: &Part, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + value.len());
    out.extend_from_slice(body.get(..part.content.start).unwrap_or_default());
    out.extend_from_slice(value);
    out.extend_from_slice(body.get(part.content.end..).unwrap_or_default());
    out
}

/// Length of the boundary line's tail (optional transport padding, then CRLF).
fn line_end(rest: &[u8]) -> Option<usize> {
    let crlf = find(rest, b"\r\n", 0)?;
    rest[..crlf]
        .iter()
        .all(|b| *b == b' ' || *b == b'\t')
        .then_some(crlf + 2)
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= haystack.len() {
        let offset = haystack[i..=haystack.len() - needle.len()]
            .iter()
            .position(|b| *b == first)?;
        i += offset;
        if haystack[i..].starts_with(needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// `name` and `filename` from a part's `Content-Disposition: form-data; name="..."` header.
fn disposition(headers: &str) -> Option<(String, Option<String>)> {
    let line = headers.split("\r\n").find(|l| {
        l.split_once(':')
            .is_some_and(|(h, _)| h.trim().eq_ignore_ascii_case("content-disposition"))
    })?;
    let (_, value) = line.split_once(':')?;
    let mut name = None;
    let mut filename = None;
    for param in value.split(';').skip(1) {
        let Some((key, raw)) = param.split_once('=') else {
            continue;
        };
        let raw = raw.trim();
        let unquoted = raw
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(raw)
            .to_string();
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(unquoted),
            "filename" => filename = Some(unquoted),
            _ => {}
        }
    }
    Some((name?, filename))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &[u8] = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\n\
ID3\r\n--X\x00\xff\r\n--XyZ--\r\n";

    #[test]
    fn finds_parts_and_swaps_a_field_byte_for_byte() {
        assert_eq!(
            boundary("multipart/form-data; boundary=\"XyZ\"").as_deref(),
            Some("XyZ")
        );
        assert_eq!(boundary("application/json"), None);
        let parts = parse(FORM, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(text_field(FORM, &parts, "model"), Some("whisper-1"));
        assert_eq!(parts[1].filename.as_deref(), Some("a.mp3"));
        // A file may hold CRLF, dashes and bytes that are not UTF-8.
        assert_eq!(&FORM[parts[1].content.clone()], b"ID3\r\n--X\x00\xff");
        let swapped = replace(FORM, &parts[0], b"upstream-whisper");
        let again = parse(&swapped, "XyZ").unwrap();
        assert_eq!(
            text_field(&swapped, &again, "model"),
            Some("upstream-whisper")
        );
        assert_eq!(&swapped[again[1].content.clone()], b"ID3\r\n--X\x00\xff");
    }

    #[test]
    fn refuses_malformed_forms() {
        assert!(parse(b"hello", "XyZ").is_err());
        assert!(
            parse(
                b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nno end",
                "XyZ"
            )
            .is_err()
        );
        assert!(parse(b"--XyZ\r\nX-Other: 1\r\n\r\nv\r\n--XyZ--", "XyZ").is_err());
        assert_eq!(parse(b"preamble\r\n--XyZ--\r\n", "XyZ"), Ok(vec![]));
        // A form cut off anywhere is refused, never a panic.
        for cut in 0..FORM.len() - 4 {
            assert!(parse(&FORM[..cut], "XyZ").is_err(), "cut at {cut}");
        }
    }
}
