//! HTML (and the XHTML of EPUB) to blocks: headings, paragraphs, lists, tables and `<pre>` code;
//! scripts, styles, templates, forms and page furniture (navigation, sidebars, footers, the
//! site header outside the article) dropped.
//!
//! A small tolerant scanner rather than an HTML5 parser: extraction needs the block structure
//! and the text, never a DOM, and web pages are often malformed. Unclosed tags close at the
//! next block boundary; stray close tags are ignored.

use skein_text::chunk::{Block, BlockKind};

use super::squash;

/// The blocks of an HTML document.
pub(crate) fn extract(source: &str) -> Vec<Block> {
    let mut b = Builder::default();
    let bytes = source.as_bytes();
    let mut i = 0;
    while i < source.len() {
        if bytes[i] != b'<' {
            let end = source[i..].find('<').map(|n| i + n).unwrap_or(source.len());
            b.text(&decode_entities(&source[i..end]));
            i = end;
            continue;
        }
        let rest = &source[i..];
        if rest.starts_with("<!--") {
            i += rest.find("-->").map(|n| n + 3).unwrap_or(rest.len());
            continue;
        }
        if rest.starts_with("<!") || rest.starts_with("<?") {
            i += rest.find('>').map(|n| n + 1).unwrap_or(rest.len());
            continue;
        }
        let Some(tag) = parse_tag(rest) else {
            // A '<' that opens no tag is text.
            b.text("<");
            i += 1;
            continue;
        };
        i += tag.len;
        if !tag.closing && RAW.contains(&tag.name.as_str()) {
            // Skip everything up to the matching close tag, whatever it contains.
            let close = format!("</{}", tag.name);
            let lower = source[i..].to_ascii_lowercase();
            i += lower.find(&close).unwrap_or(lower.len());
            continue;
        }
        b.tag(&tag);
    }
    b.finish()
}

/// Elements whose content is never text.
const RAW: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "canvas",
    "textarea", "select", "title",
];

/// Page furniture: skipped with everything inside.
const FURNITURE: &[&str] = &["nav", "aside", "footer", "form", "button", "dialog", "menu"];

/// Tags that end the running paragraph.
const BLOCK: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "li",
    "dt",
    "dd",
    "blockquote",
    "figcaption",
    "br",
    "hr",
    "ul",
    "ol",
    "dl",
    "body",
    "address",
    "caption",
    "header",
    "figure",
    "details",
    "summary",
    "center",
];

#[derive(Debug)]
struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    class: String,
    role: String,
    len: usize,
}

fn parse_tag(s: &str) -> Option<Tag> {
    let bytes = s.as_bytes();
    let mut i = 1;
    let closing = bytes.get(1) == Some(&b'/');
    if closing {
        i += 1;
    }
    let name_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b':' | b'-')) {
        i += 1;
    }
    if i == name_start || !bytes[name_start].is_ascii_alphabetic() {
        return None;
    }
    let raw_name = s[name_start..i].to_ascii_lowercase();
    // "xhtml:p" and "p" are the same element.
    let name = raw_name.rsplit(':').next().unwrap_or(&raw_name).to_owned();
    let mut class = String::new();
    let mut role = String::new();
    let mut quote: Option<u8> = None;
    let attrs_start = i;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'>' => break,
            None => {}
        }
        i += 1;
    }
    let attrs = &s[attrs_start..i.min(s.len())];
    let self_closing = attrs.trim_end().ends_with('/');
    for (key, value) in attributes(attrs) {
        match key.as_str() {
            "class" | "id" => {
                class.push(' ');
                class.push_str(&value.to_ascii_lowercase());
            }
            "role" => role = value.to_ascii_lowercase(),
            _ => {}
        }
    }
    Some(Tag {
        name,
        closing,
        self_closing,
        class,
        role,
        len: (i + 1).min(s.len()),
    })
}

fn attributes(attrs: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = attrs;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .split_whitespace()
            .last()
            .unwrap_or("")
            .to_ascii_lowercase();
        let after = rest[eq + 1..].trim_start();
        let (value, tail) = match after.chars().next() {
            Some(q @ ('"' | '\'')) => match after[1..].find(q) {
                Some(end) => (&after[1..1 + end], &after[2 + end..]),
                None => (&after[1..], ""),
            },
            _ => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        out.push((key, value.to_owned()));
        rest = tail;
    }
    out
}

#[derive(Default)]
struct Builder {
    blocks: Vec<Block>,
    text: String,
    /// Inside furniture: how deep, and which tag opened it.
    skip: Vec<String>,
    /// The heading being read, by level.
    heading: Option<u8>,
    /// Inside `<pre>`: the code's language, if a class named it.
    pre: Option<Option<String>>,
    /// Tables being read (nested ones flatten into the outer table's cell).
    tables: Vec<Vec<Vec<String>>>,
    /// Whether the text so far is inside an article or main element.
    in_article: usize,
}

impl Builder {
    fn text(&mut self, text: &str) {
        if self.skip.is_empty() {
            self.text.push_str(text);
        }
    }

    fn tag(&mut self, tag: &Tag) {
        let name = tag.name.as_str();
        if !self.skip.is_empty() {
            if tag.closing && self.skip.last().is_some_and(|s| s == name) {
                self.skip.pop();
            } else if !tag.closing
                && !tag.self_closing
                && self.skip.last().is_some_and(|s| s == name)
            {
                self.skip.push(name.to_owned());
            }
            return;
        }
        if !tag.closing && !tag.self_closing && self.is_furniture(tag) {
            self.flush();
            self.skip.push(name.to_owned());
            return;
        }
        match (name, tag.closing) {
            ("article" | "main", false) => self.in_article += 1,
            ("article" | "main", true) => self.in_article = self.in_article.saturating_sub(1),
            _ => {}
        }
        if let Some(level) = heading_level(name) {
            self.flush();
            self.heading = if tag.closing { None } else { Some(level) };
            return;
        }
        if self.tables.len() == 1 || (!self.tables.is_empty() && name == "table") {
            self.table_tag(tag);
            return;
        }
        match (name, tag.closing) {
            ("pre", false) => {
                self.flush();
                self.pre = Some(language(&tag.class));
            }
            ("pre", true) => {
                let lang = self.pre.take().flatten();
                let code = std::mem::take(&mut self.text);
                let code = code.trim_matches('\n').to_owned();
                if !code.trim().is_empty() {
                    self.blocks
                        .push(Block::new(BlockKind::Code { lang, text: code }));
                }
            }
            ("code", false) if self.pre.as_ref().is_some_and(Option::is_none) => {
                self.pre = Some(language(&tag.class));
            }
            ("br", _) if self.pre.is_some() => self.text.push('\n'),
            ("table", false) => {
                self.flush();
                self.tables.push(Vec::new());
            }
            ("td" | "th", false) => self.text.push(' '),
            _ if BLOCK.contains(&name) && self.pre.is_none() => self.flush(),
            _ => {}
        }
    }

    fn table_tag(&mut self, tag: &Tag) {
        let depth = self.tables.len();
        match (tag.name.as_str(), tag.closing) {
            ("table", false) => {
                self.tables.push(Vec::new());
            }
            ("table", true) if depth > 1 => {
                self.tables.pop();
                self.text.push(' ');
            }
            ("table", true) => {
                self.end_cell();
                if let Some(rows) = self.tables.pop() {
                    let rows: Vec<Vec<String>> = rows
                        .into_iter()
                        .filter(|r| r.iter().any(|c| !c.is_empty()))
                        .collect();
                    if !rows.is_empty() {
                        self.blocks.push(Block::new(BlockKind::Table(rows)));
                    }
                }
            }
            ("tr", false) => {
                self.end_cell();
                if let Some(rows) = self.tables.last_mut() {
                    rows.push(Vec::new());
                }
            }
            ("td" | "th", false) => {
                self.end_cell();
                if let Some(rows) = self.tables.last_mut() {
                    if rows.is_empty() {
                        rows.push(Vec::new());
                    }
                    if let Some(row) = rows.last_mut() {
                        row.push(String::new());
                    }
                }
            }
            ("td" | "th" | "tr", true) => self.end_cell(),
            ("caption", true) => {
                let caption = squash(&std::mem::take(&mut self.text));
                if !caption.is_empty() {
                    self.blocks.push(Block::paragraph(caption));
                }
            }
            _ if BLOCK.contains(&tag.name.as_str()) => self.text.push(' '),
            _ => {}
        }
    }

    /// Moves the text read so far into the current cell.
    fn end_cell(&mut self) {
        let text = squash(&std::mem::take(&mut self.text));
        if text.is_empty() {
            return;
        }
        if let Some(rows) = self.tables.last_mut() {
            if rows.is_empty() {
                rows.push(Vec::new());
            }
            if let Some(row) = rows.last_mut() {
                match row.last_mut() {
                    Some(cell) if cell.is_empty() => *cell = text,
                    Some(cell) => {
                        cell.push(' ');
                        cell.push_str(&text);
                    }
                    None => row.push(text),
                }
            }
        }
    }

    fn is_furniture(&self, tag: &Tag) -> bool {
        if FURNITURE.contains(&tag.name.as_str()) {
            return true;
        }
        if tag.name == "header" && self.in_article == 0 {
            return true;
        }
        if matches!(
            tag.role.as_str(),
            "navigation" | "banner" | "contentinfo" | "complementary"
        ) {
            return true;
        }
        // Common class and id names of cookie banners, sidebars and share bars.
        [
            " sidebar",
            " cookie",
            " breadcrumb",
            " share",
            " advert",
            " navbar",
        ]
        .iter()
        .any(|c| tag.class.contains(c))
    }

    fn flush(&mut self) {
        if !self.tables.is_empty() {
            return;
        }
        let text = squash(&std::mem::take(&mut self.text));
        if text.is_empty() {
            return;
        }
        match self.heading {
            Some(level) => self.blocks.push(Block::heading(level, text)),
            None => self.blocks.push(Block::paragraph(text)),
        }
    }

    fn finish(mut self) -> Vec<Block> {
        if self.pre.is_some() {
            self.tag(&Tag {
                name: "pre".into(),
                closing: true,
                self_closing: false,
                class: String::new(),
                role: String::new(),
                len: 0,
            });
        }
        while !self.tables.is_empty() {
            self.table_tag(&Tag {
                name: "table".into(),
                closing: true,
                self_closing: false,
                class: String::new(),
                role: String::new(),
                len: 0,
            });
        }
        self.flush();
        self.blocks
    }
}

fn heading_level(name: &str) -> Option<u8> {
    match name {
        "h1" => Some(1),
        "h2" => Some(2),
        "h3" => Some(3),
        "h4" => Some(4),
        "h5" => Some(5),
        "h6" => Some(6),
        _ => None,
    }
}

fn language(class: &str) -> Option<String> {
    class
        .split_whitespace()
        .find_map(|c| {
            c.strip_prefix("language-")
                .or_else(|| c.strip_prefix("lang-"))
        })
        .map(str::to_owned)
}

/// Resolves character references: numeric ones and the named ones documents actually use.
pub(crate) fn decode_entities(text: &str) -> String {
    if !text.contains('&') {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest[1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .map(|n| n + 1);
        let decoded = end
            .filter(|&e| rest[e..].starts_with(';') && e > 1)
            .and_then(|e| entity(&rest[1..e]).map(|c| (c, e + 1)));
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn entity(name: &str) -> Option<char> {
    if let Some(num) = name.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        return char::from_u32(code).filter(|&c| c != '\0');
    }
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
        "mdash" => '—',
        "ndash" => '–',
        "hellip" => '…',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "lsquo" => '‘',
        "rsquo" => '’',
        "ldquo" => '“',
        "rdquo" => '”',
        "middot" => '·',
        "bull" => '•',
        "times" => '×',
        "yen" => '¥',
        "euro" => '€',
        "pound" => '£',
        "deg" => '°',
        "laquo" => '«',
        "raquo" => '»',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_text_with_headings_and_tables() {
        let page = r#"<!DOCTYPE html><html><head><title>T</title><style>p{color:red}</style>
<script>var x = "<p>not text</p>";</script></head><body>
<header><a href="/">Site</a></header><nav><ul><li>Home</li></ul></nav>
<main><article><h1>报销 &amp; 差旅</h1><p>First <b>para</b>
graph.<br>Same block.</p><div class="sidebar">ads</div>
<table><caption>Rates</caption><tr><th>City</th><th>Per&nbsp;day</th></tr>
<tr><td>北京</td><td>300</td></tr><tr><td></td><td></td></tr></table>
<pre><code class="language-sh">cargo   test
  --all</code></pre><ul><li>One</li><li>Two</ul></article></main>
<footer>© 2026</footer></body></html>"#;
        let blocks = extract(page);
        assert_eq!(
            blocks,
            [
                Block::heading(1, "报销 & 差旅"),
                Block::paragraph("First para graph."),
                Block::paragraph("Same block."),
                Block::paragraph("Rates"),
                Block::new(BlockKind::Table(vec![
                    vec!["City".into(), "Per day".into()],
                    vec!["北京".into(), "300".into()],
                ])),
                Block::new(BlockKind::Code {
                    lang: Some("sh".into()),
                    text: "cargo   test\n  --all".into()
                }),
                Block::paragraph("One"),
                Block::paragraph("Two"),
            ]
        );
    }

    #[test]
    fn broken_markup_still_reads() {
        let blocks = extract("<p>unclosed <b>bold<h2>Next</h2>tail < 3 &bogus; &#x4E2D;");
        assert_eq!(
            blocks,
            [
                Block::paragraph("unclosed bold"),
                Block::heading(2, "Next"),
                Block::paragraph("tail < 3 &bogus; 中"),
            ]
        );
    }
}
