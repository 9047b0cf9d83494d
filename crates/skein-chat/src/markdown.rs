//! Markdown as the chat shows it, done on the server where there is no browser: rendered to
//! safe HTML for the HTML export, and flattened to plain text for generated titles and search
//! snippets.

use pulldown_cmark::{CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

/// The Markdown the web app renders (GitHub's tables, strikethrough and task lists, and
/// `$`/`$$` math), so an export reads like the chat did.
fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_MATH
}

/// Whether a link may stay a link: web, mail and in-page targets. Anything else
/// (`javascript:`, `data:`, `file:`) becomes a dead `#` so a hostile answer cannot plant one.
fn safe_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    match lower.find(':') {
        // A colon after a slash, `?` or `#` is inside a relative path, not a scheme.
        Some(colon) if !lower[..colon].contains(['/', '?', '#']) => {
            let scheme = &lower[..colon];
            scheme == "http" || scheme == "https" || scheme == "mailto"
        }
        _ => true,
    }
}

/// Renders Markdown to HTML that runs nothing: raw HTML in the text is shown escaped, as
/// text; links keep only safe targets; images become links to their source (the exported
/// page loads nothing from outside, so an image could never show).
pub fn to_html(markdown: &str) -> String {
    let events = Parser::new_ext(markdown, options()).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: if safe_url(&dest_url) {
                dest_url
            } else {
                CowStr::Borrowed("#")
            },
            title,
            id,
        }),
        Event::Start(Tag::Image {
            dest_url,
            title,
            id,
            ..
        }) => Event::Start(Tag::Link {
            link_type: LinkType::Inline,
            dest_url: if safe_url(&dest_url) {
                dest_url
            } else {
                CowStr::Borrowed("#")
            },
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, events);
    out
}

/// The words of a Markdown text without its marks (`**rich**` → `rich`, `# Title` →
/// `Title`, a link → its text), whitespace collapsed to single spaces.
pub fn plain_text(markdown: &str) -> String {
    let mut words = String::with_capacity(markdown.len());
    for event in Parser::new_ext(markdown, options()) {
        match event {
            Event::Text(text)
            | Event::Code(text)
            | Event::InlineMath(text)
            | Event::DisplayMath(text) => words.push_str(&text),
            // Inline marks join what they wrap to its neighbours (`**a**.` → `a.`).
            Event::End(
                TagEnd::Emphasis
                | TagEnd::Strong
                | TagEnd::Strikethrough
                | TagEnd::Link
                | TagEnd::Image,
            ) => {}
            // Line breaks and the ends of blocks separate words; raw HTML is dropped whole
            // (a tag is no word).
            Event::SoftBreak | Event::HardBreak | Event::End(_) => words.push(' '),
            _ => {}
        }
    }
    words.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_code_tables_and_emphasis() {
        let page = to_html(
            "Some **bold** and `code`.\n\n```rust\nfn main() { 1 < 2 }\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
        );
        assert!(page.contains("<strong>bold</strong>"), "{page}");
        assert!(page.contains("<code>code</code>"), "{page}");
        assert!(
            page.contains("<pre><code class=\"language-rust\">fn main() { 1 &lt; 2 }"),
            "{page}"
        );
        assert!(page.contains("<table>"), "{page}");
        assert!(page.contains("<td>1</td>"), "{page}");
        assert!(!page.contains("```"), "{page}");
        assert!(!page.contains("|---|"), "{page}");
    }

    #[test]
    fn raw_html_and_script_links_stay_inert() {
        let page = to_html(
            "<script>alert(1)</script>\n\nhi <img src=x onerror=alert(1)> [click](javascript:alert(1)) [ok](https://example.com/a:b) ![pic](https://example.com/p.png)",
        );
        assert!(!page.contains("<script"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{page}"
        );
        assert!(page.contains("<a href=\"#\">click</a>"), "{page}");
        assert!(
            page.contains("<a href=\"https://example.com/a:b\">ok</a>"),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"https://example.com/p.png\">pic</a>"),
            "{page}"
        );
        assert!(!safe_url(" JavaScript:alert(1)"));
        assert!(!safe_url("data:text/html,x"));
        assert!(safe_url("/relative/path:x"));
        assert!(safe_url("#top"));
    }

    #[test]
    fn plain_text_drops_the_marks() {
        assert_eq!(plain_text("**rich** title"), "rich title");
        assert_eq!(plain_text("# Rust *lifetimes*"), "Rust lifetimes");
        assert_eq!(
            plain_text("Use `cargo` [now](https://x.y)"),
            "Use cargo now"
        );
        assert_eq!(plain_text("Rust 问题\n\n<b>x</b>"), "Rust 问题 x");
        assert_eq!(plain_text("C# vs C++"), "C# vs C++");
    }
}
