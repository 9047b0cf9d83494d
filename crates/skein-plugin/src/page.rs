//! The built-in `fetch_page` tool: reads one web page (a search result) as plain text for the
//! model. The address comes from the model, so it is untrusted: every hop (redirects are
//! followed by hand, at most [`MAX_REDIRECTS`]) goes through the SSRF guard in [`crate::net`],
//! the body is capped at [`MAX_PAGE_BYTES`] and the whole fetch at the call's deadline; HTML
//! is reduced to its readable text (scripts, styles and markup dropped).

use std::time::Duration;

use serde_json::{Value, json};
use skein_core::api::{ToolCitation, ToolOutput, ToolProgress};

use crate::net::{self, FetchPolicy, Outgoing};

/// The tool's name.
pub const FETCH_PAGE: &str = "fetch_page";

/// The most bytes of a page read.
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// The most characters of a page's text the model reads.
pub const MAX_PAGE_CHARS: usize = 20_000;

/// Redirects followed.
const MAX_REDIRECTS: usize = 5;

/// The tool as offered.
pub(crate) fn tool() -> crate::openapi::ToolDef {
    crate::openapi::ToolDef {
        name: FETCH_PAGE.into(),
        description:
            "Read a web page (such as a search result) as plain text. Give its full http(s) URL."
                .into(),
        parameters: json!({"type": "object",
            "properties": {"url": {"type": "string", "description": "The page's http or https URL."}},
            "required": ["url"]}),
        method: String::new(),
        path: String::new(),
        params: Vec::new(),
        body: false,
    }
}

/// Reads `arguments.url`, reaching private addresses only when `allow_private`.
pub(crate) async fn fetch(
    arguments: &Value,
    allow_private: bool,
    deadline: Duration,
    progress: &ToolProgress,
) -> ToolOutput {
    let Some(raw) = arguments["url"]
        .as_str()
        .map(str::trim)
        .filter(|u| !u.is_empty())
    else {
        return ToolOutput::error("The argument `url` is required.");
    };
    let Ok(mut url) = reqwest::Url::parse(raw) else {
        return ToolOutput::error(format!("{raw} is not a URL."));
    };
    let policy = FetchPolicy {
        allow_private,
        max_bytes: MAX_PAGE_BYTES,
        timeout: deadline,
    };
    progress(json!({"stage": "fetching", "text": format!("Reading {url}")}));
    let mut hops = 0;
    let answer = loop {
        if !matches!(url.scheme(), "http" | "https") {
            return ToolOutput::error("Only http and https pages can be read.");
        }
        let request = Outgoing {
            method: reqwest::Method::GET,
            url: url.clone(),
            headers: vec![
                (
                    "accept".into(),
                    "text/html, text/plain;q=0.9, */*;q=0.1".into(),
                ),
                (
                    "user-agent".into(),
                    concat!("Skein/", env!("CARGO_PKG_VERSION")).into(),
                ),
            ],
            body: None,
        };
        let answer = match net::send(request, policy).await {
            Ok(a) => a,
            Err(e) => return ToolOutput::error(format!("The page could not be read: {e}.")),
        };
        if (300..400).contains(&answer.status) {
            let next = answer
                .headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok());
            hops += 1;
            match next {
                Some(next) if hops <= MAX_REDIRECTS => {
                    url = next;
                    continue;
                }
                _ => return ToolOutput::error("The page redirects too often or nowhere."),
            }
        }
        break answer;
    };
    if !(200..300).contains(&answer.status) {
        return ToolOutput::error(format!("The page answered HTTP {}.", answer.status));
    }
    let content_type = answer.content_type.to_ascii_lowercase();
    let body = String::from_utf8_lossy(&answer.body);
    let (title, text) =
        if content_type.starts_with("text/html") || content_type.starts_with("application/xhtml") {
            html_text(&body)
        } else if content_type.starts_with("text/") || content_type.contains("json") {
            (String::new(), body.trim().to_string())
        } else {
            return ToolOutput::error(format!(
                "The page is not text (it is {}).",
                if content_type.is_empty() {
                    "of no stated type"
                } else {
                    content_type.as_str()
                }
            ));
        };
    let cut = text.chars().count() > MAX_PAGE_CHARS;
    let text: String = text.chars().take(MAX_PAGE_CHARS).collect();
    progress(json!({"stage": "read", "text": format!("{} characters", text.chars().count())}));
    let mut content = String::new();
    if !title.is_empty() {
        content.push_str(&format!("Title: {title}\n"));
    }
    content.push_str(&format!("URL: {url}\n\n{text}"));
    if cut {
        content.push_str("\n\n[The page goes on; only its beginning is shown.]");
    }
    ToolOutput {
        content,
        citations: vec![ToolCitation {
            title: if title.is_empty() {
                url.to_string()
            } else {
                title
            },
            url: url.to_string(),
            snippet: text.chars().take(300).collect(),
        }],
        ..ToolOutput::default()
    }
}

/// Elements whose content is never text a reader sees.
const HIDDEN: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "head", "iframe",
];

/// Elements that end a line.
const BLOCKS: &[&str] = &[
    "p",
    "div",
    "br",
    "li",
    "tr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
    "pre",
    "table",
    "ul",
    "ol",
    "hr",
    "dd",
    "dt",
    "main",
    "nav",
];

/// The title and readable text of an HTML page.
pub fn html_text(html: &str) -> (String, String) {
    let mut out = String::new();
    let mut title = String::new();
    let mut hidden: Option<String> = None;
    let mut in_title = false;
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        if hidden.is_none() {
            if in_title {
                title.push_str(text);
            } else {
                out.push_str(text);
            }
        }
        let after = &rest[open..];
        // Comments end at `-->`, everything else at the next `>`.
        let end = if after.starts_with("<!--") {
            after.find("-->").map(|i| i + 3)
        } else {
            after.find('>').map(|i| i + 1)
        };
        let Some(end) = end else {
            rest = "";
            break;
        };
        let tag = &after[1..end - 1];
        rest = &after[end..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name == "title" {
            in_title = !closing;
            continue;
        }
        match &hidden {
            Some(open_name) => {
                if closing && *open_name == name {
                    hidden = None;
                }
                continue;
            }
            None if !closing && HIDDEN.contains(&name.as_str()) && !tag.ends_with('/') => {
                // `<head>` holds the title: it is read, the rest of the head is not.
                if name != "head" {
                    hidden = Some(name);
                }
                continue;
            }
            None => {}
        }
        if BLOCKS.contains(&name.as_str()) {
            out.push('\n');
        }
    }
    if hidden.is_none() {
        out.push_str(rest);
    }
    let text = decode_entities(&out);
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !line.is_empty() {
            lines.push(line);
        }
    }
    let title = decode_entities(&title)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (title, lines.join("\n"))
}

/// The common named entities and numeric ones.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';').filter(|i| *i <= 10) else {
            out.push('&');
            rest = &after[1..];
            continue;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" | "#39" => Some('\''),
            "nbsp" => Some(' '),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_reduced_to_its_readable_text() {
        let (title, text) = html_text(
            "<!doctype html><html><head><title>Rust &amp; you</title><style>p{color:red}</style>\
             <script>alert('x<p>')</script></head><body><!-- a <p> comment --><h1>Hello</h1>\
             <p>One&nbsp;two &lt;three&gt; &#x4F60;&#22909;</p><div>last<br>line</div></body></html>",
        );
        assert_eq!(title, "Rust & you");
        assert_eq!(text, "Hello\nOne two <three> 你好\nlast\nline");
    }
}
