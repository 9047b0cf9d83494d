//! A small pull reader for the well-formed XML inside DOCX, PPTX and EPUB: start and end tags
//! (names without their namespace prefix), attributes, and text with references resolved.
//! It never fails and never panics: malformed input ends the events early or reads as text,
//! and the extractors decide what a document missing its parts means.

use super::html::decode_entities;

/// One thing the reader found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// `<name attrs>`; `empty` for `<name/>` (no end event follows).
    Start {
        /// The local name ("p" for "w:p").
        name: &'a str,
        /// Attributes by local name, values unescaped.
        attrs: Vec<(&'a str, String)>,
        /// A self-closing tag.
        empty: bool,
    },
    /// `</name>`.
    End {
        /// The local name.
        name: &'a str,
    },
    /// Character data, references resolved.
    Text(String),
}

impl Event<'_> {
    /// The value of attribute `key` (local name) of a start tag.
    pub(crate) fn attr(&self, key: &str) -> Option<&str> {
        match self {
            Event::Start { attrs, .. } => attrs
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str()),
            _ => None,
        }
    }
}

/// The events of `source`, in order.
pub(crate) struct Reader<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `src`.
    pub(crate) fn new(src: &'a str) -> Reader<'a> {
        Reader { src, pos: 0 }
    }
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

impl<'a> Iterator for Reader<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        loop {
            let rest = &self.src[self.pos..];
            if rest.is_empty() {
                return None;
            }
            if !rest.starts_with('<') {
                let end = rest.find('<').unwrap_or(rest.len());
                self.pos += end;
                return Some(Event::Text(decode_entities(&rest[..end])));
            }
            if let Some(body) = rest.strip_prefix("<![CDATA[") {
                let end = body.find("]]>").unwrap_or(body.len());
                self.pos += 9 + (end + 3).min(body.len());
                return Some(Event::Text(body[..end].to_owned()));
            }
            if rest.starts_with("<!--") {
                self.pos += rest.find("-->").map(|n| n + 3).unwrap_or(rest.len());
                continue;
            }
            if rest.starts_with("<?") || rest.starts_with("<!") {
                self.pos += rest.find('>').map(|n| n + 1).unwrap_or(rest.len());
                continue;
            }
            // A tag: find its end outside quoted attribute values.
            let bytes = rest.as_bytes();
            let mut quote = None;
            let mut end = None;
            for (i, &b) in bytes.iter().enumerate().skip(1) {
                match quote {
                    Some(q) if b == q => quote = None,
                    Some(_) => {}
                    None if b == b'"' || b == b'\'' => quote = Some(b),
                    None if b == b'>' => {
                        end = Some(i);
                        break;
                    }
                    None => {}
                }
            }
            let Some(end) = end else {
                self.pos = self.src.len();
                return None;
            };
            self.pos += end + 1;
            let inner = &rest[1..end];
            if let Some(name) = inner.strip_prefix('/') {
                return Some(Event::End {
                    name: local(name.trim()),
                });
            }
            let empty = inner.ends_with('/');
            let inner = inner.trim_end_matches('/');
            let name_end = inner
                .find(|c: char| c.is_whitespace())
                .unwrap_or(inner.len());
            let name = local(&inner[..name_end]);
            if name.is_empty() {
                continue;
            }
            return Some(Event::Start {
                name,
                attrs: attributes(&inner[name_end..]),
                empty,
            });
        }
    }
}

fn attributes(mut rest: &str) -> Vec<(&str, String)> {
    let mut out = Vec::new();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim();
        let after = rest[eq + 1..].trim_start();
        let Some(q) = after.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            break;
        };
        let Some(close) = after[1..].find(q) else {
            break;
        };
        out.push((local(key), decode_entities(&after[1..1 + close])));
        rest = &after[close + 2..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_a_fragment() {
        let events: Vec<Event> = Reader::new(
            r#"<?xml version="1.0"?><w:p a:x="1 &amp; 2" y='&#x4E2D;'><w:t>A &lt; B</w:t><w:br/><![CDATA[<raw>]]><!-- c --></w:p>"#,
        )
        .collect();
        assert_eq!(
            events,
            [
                Event::Start {
                    name: "p",
                    attrs: vec![("x", "1 & 2".into()), ("y", "中".into())],
                    empty: false
                },
                Event::Start {
                    name: "t",
                    attrs: vec![],
                    empty: false
                },
                Event::Text("A < B".into()),
                Event::End { name: "t" },
                Event::Start {
                    name: "br",
                    attrs: vec![],
                    empty: true
                },
                Event::Text("<raw>".into()),
                Event::End { name: "p" },
            ]
        );
    }

    #[test]
    fn truncated_input_just_ends() {
        assert_eq!(Reader::new("<a b=\"unterminated").count(), 0);
        assert_eq!(Reader::new("<![CDATA[open").count(), 1);
    }
}
