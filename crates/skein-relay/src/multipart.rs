//! Just enough of `multipart/form-data` (RFC 7578) to relay an upload untouched: find the
//! parts, read a text field (`model`), and swap one field's value (the mapped model) without
//! re-encoding the file. A full parser would copy every file part; this only records where
//! each part sits in the client's bytes.
//!
//! What goes upstream is not the client's bytes but a form rebuilt from the checked parts
//! ([`rebuild`]): canonical part headers, no preamble or epilogue, so a vendor whose parser
//! differs from this one (which `name` of two, which duplicate field) reads what the relay
//! read. The file's bytes are copied once, as they are.

use std::ops::Range;

/// One part of a form: its name, its file name if it is a file, and where its content is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Part {
    /// The `name` of its `Content-Disposition`.
    pub name: String,
    /// The `filename`, for file parts.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if it gave a valid one.
    pub content_type: Option<String>,
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
            content_type: part_content_type(headers),
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

/// Checks a form's fields against `allowed`: each field at most once (names ending in `[]`,
/// the array fields, may repeat), none outside the list, and only `file` may be a file.
/// `Err` names the offending field.
pub(crate) fn check_fields(parts: &[Part], allowed: &[&str]) -> Result<(), (String, &'static str)> {
    let mut seen: Vec<&str> = Vec::with_capacity(parts.len());
    for part in parts {
        let name = part.name.as_str();
        if !allowed.contains(&name) {
            return Err((name.to_string(), "unknown"));
        }
        if !name.ends_with("[]") && seen.contains(&name) {
            return Err((name.to_string(), "duplicated"));
        }
        if (name == "file") != part.filename.is_some() {
            return Err((name.to_string(), "misplaced file"));
        }
        seen.push(name);
    }
    Ok(())
}

/// A new form with `parts` of `body` (checked by [`check_fields`]) under `boundary`, with
/// `replacement`'s value for the field it names: canonical headers, nothing the client
/// wrote around the parts. `boundary` is the client's, which no part contains (the parse
/// split at each of its occurrences).
pub(crate) fn rebuild(
    body: &[u8],
    parts: &[Part],
    boundary: &str,
    replacement: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let size: usize = parts.iter().map(|p| p.content.len() + 160).sum();
    let mut out = Vec::with_capacity(size + boundary.len() + 8);
    for part in parts {
        out.extend_from_slice(b"--");
        out.extend_from_slice(boundary.as_bytes());
        out.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"");
        out.extend_from_slice(quoted(&part.name).as_bytes());
        out.push(b'"');
        if let Some(filename) = &part.filename {
            out.extend_from_slice(b"; filename=\"");
            out.extend_from_slice(quoted(filename).as_bytes());
            out.push(b'"');
        }
        if let Some(content_type) = &part.content_type {
            out.extend_from_slice(b"\r\nContent-Type: ");
            out.extend_from_slice(content_type.as_bytes());
        }
        out.extend_from_slice(b"\r\n\r\n");
        match replacement {
            Some((name, value)) if name == part.name => out.extend_from_slice(value),
            _ => out.extend_from_slice(body.get(part.content.clone()).unwrap_or_default()),
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"--");
    out.extend_from_slice(boundary.as_bytes());
    out.extend_from_slice(b"--\r\n");
    out
}

/// A form of text `fields` and one `file` (field name, file name, content type, bytes), as
/// the body and parts [`rebuild`] takes: how an in-process caller's typed upload becomes the
/// same form a client's would, so both go upstream through one encoder. A content type that
/// is not a plain `type/subtype` is left out, as a client's would be.
pub(crate) fn form(
    fields: &[(&str, &str)],
    file: (&str, &str, &str, &[u8]),
) -> (Vec<u8>, Vec<Part>) {
    let (file_field, file_name, content_type, bytes) = file;
    let mut body = Vec::with_capacity(bytes.len() + 256);
    let mut parts = Vec::with_capacity(fields.len() + 1);
    for (name, value) in fields {
        let start = body.len();
        body.extend_from_slice(value.as_bytes());
        parts.push(Part {
            name: (*name).to_string(),
            filename: None,
            content_type: None,
            content: start..body.len(),
        });
    }
    let start = body.len();
    body.extend_from_slice(bytes);
    parts.push(Part {
        name: file_field.to_string(),
        filename: Some(file_name.to_string()),
        // A line break could smuggle a header in: such a type is dropped whole.
        content_type: (!content_type.chars().any(char::is_control))
            .then(|| part_content_type(&format!("Content-Type: {content_type}")))
            .flatten(),
        content: start..body.len(),
    });
    (body, parts)
}

/// A value fit for a quoted header parameter: quotes and line breaks percent-encoded, as
/// browsers do (WHATWG), so no value can end its parameter or header early.
fn quoted(value: &str) -> String {
    value
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// The `Content-Type` header of a part, kept only if it is a plain `type/subtype` token
/// (with parameters) that cannot carry anything else into the rebuilt form.
fn part_content_type(headers: &str) -> Option<String> {
    let line = headers.split("\r\n").find(|l| {
        l.split_once(':')
            .is_some_and(|(h, _)| h.trim().eq_ignore_ascii_case("content-type"))
    })?;
    let (_, value) = line.split_once(':')?;
    let value = value.trim();
    let ok = !value.is_empty()
        && value.len() <= 200
        && value.contains('/')
        && value.bytes().all(|b| (0x20..0x7f).contains(&b));
    ok.then(|| value.to_string())
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

    #[test]
    fn a_typed_upload_encodes_as_a_form_that_parses_back() {
        let (body, parts) = form(
            &[("model", "whisper-1"), ("language", "en")],
            ("file", "a\"b.webm", "audio/webm\r\nX-Evil: 1", b"\x00RIFF"),
        );
        let encoded = rebuild(
            &body,
            &parts,
            "skein-test",
            Some(("model", b"whisper-large")),
        );
        let parsed = parse(&encoded, "skein-test").expect("the form parses");
        assert_eq!(
            text_field(&encoded, &parsed, "model"),
            Some("whisper-large")
        );
        assert_eq!(text_field(&encoded, &parsed, "language"), Some("en"));
        let file = parsed
            .iter()
            .find(|p| p.name == "file")
            .expect("a file part");
        assert_eq!(&encoded[file.content.clone()], b"\x00RIFF");
        // The quote is escaped and the forged header line never reaches the form.
        assert_eq!(file.filename.as_deref(), Some("a%22b.webm"));
        assert_eq!(file.content_type, None);
        assert!(!String::from_utf8_lossy(&encoded).contains("X-Evil"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256),
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Fuzzing (issue #11): any upload body, well-formed or not, is parsed or refused
        /// without a panic, and what parses is checked and rebuilt without one either.
        #[test]
        fn any_form_is_parsed_or_refused_without_a_panic(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            cut in 0usize..400,
        ) {
            let mut body = FORM.to_vec();
            let at = cut.min(body.len());
            body.splice(at..at, noise.iter().copied());
            for form in [&body[..], &noise[..]] {
                if let Ok(parts) = parse(form, "XyZ") {
                    let _ = check_fields(&parts, &["model", "file"]);
                    let _ = text_field(form, &parts, "model");
                }
            }
        }
    }

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
        let swapped = rebuild(FORM, &parts, "XyZ", Some(("model", b"upstream-whisper")));
        let again = parse(&swapped, "XyZ").unwrap();
        assert_eq!(
            text_field(&swapped, &again, "model"),
            Some("upstream-whisper")
        );
        assert_eq!(&swapped[again[1].content.clone()], b"ID3\r\n--X\x00\xff");
    }

    #[test]
    fn duplicated_unknown_and_misplaced_fields_are_named() {
        let part = |name: &str, file: bool| Part {
            name: name.into(),
            filename: file.then(|| "a.mp3".into()),
            content_type: None,
            content: 0..0,
        };
        let allowed = &["file", "model", "include[]"];
        let ok = [
            part("model", false),
            part("file", true),
            part("include[]", false),
            part("include[]", false),
        ];
        assert_eq!(check_fields(&ok, allowed), Ok(()));
        let twice = [
            part("model", false),
            part("file", true),
            part("model", false),
        ];
        assert_eq!(
            check_fields(&twice, allowed),
            Err(("model".into(), "duplicated"))
        );
        let unknown = [part("model", false), part("extra", false)];
        assert_eq!(
            check_fields(&unknown, allowed),
            Err(("extra".into(), "unknown"))
        );
        let model_file = [part("model", true)];
        assert_eq!(
            check_fields(&model_file, allowed).map_err(|e| e.0),
            Err("model".into())
        );
    }

    #[test]
    fn a_rebuilt_form_keeps_only_the_parsed_parts_in_canonical_form() {
        // A preamble, a second name parameter and an epilogue: none of it survives.
        let form = b"junk\r\n--B\r\nContent-Disposition: form-data; name=\"model\"; name=\"x\"\r\n\r\nm\r\n--B\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"a\"b.mp3\"\r\nContent-Type: audio/mpeg\r\nX-Evil: 1\r\n\r\nAB\r\n--B--\r\nepilogue";
        let parts = parse(form, "B").unwrap();
        let rebuilt = rebuild(form, &parts, "B", None);
        assert_eq!(
            rebuilt,
            b"--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nm\r\n--B\r\n\
Content-Disposition: form-data; name=\"file\"; filename=\"a%22b.mp3\"\r\nContent-Type: audio/mpeg\r\n\r\nAB\r\n--B--\r\n"
                .to_vec()
        );
        assert_eq!(parse(&rebuilt, "B").unwrap().len(), 2);
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
