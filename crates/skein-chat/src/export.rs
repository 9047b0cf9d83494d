//! Export: Markdown, standalone HTML, and JSON with the whole tree (which `import.rs` reads
//! back, with ChatGPT's `conversations.json`).

use std::collections::HashMap;

use serde_json::{Value, json};
use skein_core::ids;

use crate::active_path;
use crate::store::{ConversationRow, MessageRow};
use crate::tools::ToolRecord;
use crate::tree::Tree;

/// The `format` of one exported conversation.
pub const CONVERSATION_FORMAT: &str = "skein.conversation.v1";
/// The `format` of an export of every conversation.
pub const ARCHIVE_FORMAT: &str = "skein.archive.v1";

/// The images an export carries, by message id: `data:` URLs (stored images read back) and
/// `https:` URLs. Empty when the export leaves attachments out.
pub type Attachments = HashMap<String, Vec<String>>;

/// The tool calls stored with an answer (none for a row whose record does not read).
fn tool_calls(m: &MessageRow) -> Vec<ToolRecord> {
    m.tool_calls
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// A code fence longer than any run of backticks in `text`, so the text cannot close it.
fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat(longest.max(2) + 1)
}

fn title_or_default(c: &ConversationRow) -> &str {
    if c.title.is_empty() {
        "Untitled conversation"
    } else {
        &c.title
    }
}

/// The branch on screen as Markdown, images (when `attachments` has them) as inline images.
pub fn markdown(c: &ConversationRow, rows: &[MessageRow], attachments: &Attachments) -> String {
    let tree = Tree::new(rows);
    let mut out = format!("# {}\n\n", title_or_default(c).replace('\n', " "));
    if let Some(prompt) = &c.system_prompt {
        out.push_str("> **System:** ");
        out.push_str(&prompt.replace('\n', "\n> "));
        out.push_str("\n\n");
    }
    for m in active_path(&tree, c.active_leaf_id.as_deref()) {
        let who = match (m.role.as_str(), &m.model) {
            ("user", _) => "User".to_string(),
            (_, Some(model)) => format!("Assistant ({model})"),
            _ => "Assistant".to_string(),
        };
        out.push_str(&format!("## {who}\n\n"));
        for (n, url) in attachments.get(&m.id).into_iter().flatten().enumerate() {
            out.push_str(&format!(
                "![image {}]({})\n\n",
                n + 1,
                url.replace(' ', "%20")
                    .replace('(', "%28")
                    .replace(')', "%29")
            ));
        }
        for call in tool_calls(m) {
            let outcome = if call.is_error { "failed" } else { "returned" };
            let (a, r) = (fence(&call.arguments), fence(&call.result));
            out.push_str(&format!(
                "<details><summary>Tool: {}</summary>\n\n{a}json\n{}\n{a}\n\n{outcome}:\n\n{r}\n{}\n{r}\n\n</details>\n\n",
                escape(&call.name),
                call.arguments,
                call.result.trim_end(),
            ));
        }
        out.push_str(&format!("{}\n\n", m.content.trim_end()));
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// The branch on screen as one HTML page with no outside resources, shown as the chat shows
/// it: what the user typed as plain text, answers rendered from Markdown (code blocks,
/// tables, lists). Raw HTML is escaped, never interpreted, and the page's CSP allows no
/// script, so a hostile answer cannot run script in the page.
///
/// Images in `attachments` are embedded (`data:` URLs; the page still loads nothing from
/// outside), and `https:` images become links.
pub fn html(c: &ConversationRow, rows: &[MessageRow], attachments: &Attachments) -> String {
    let tree = Tree::new(rows);
    let title = escape(title_or_default(c));
    let mut body = String::new();
    if let Some(prompt) = &c.system_prompt {
        body.push_str(&format!(
            "<section class=\"system\"><h2>System</h2><div class=\"text\">{}</div></section>\n",
            escape(prompt)
        ));
    }
    for m in active_path(&tree, c.active_leaf_id.as_deref()) {
        let who = if m.role == "user" {
            "User"
        } else {
            "Assistant"
        };
        let model = m
            .model
            .as_deref()
            .map(|m| format!(" <small>{}</small>", escape(m)))
            .unwrap_or_default();
        let text = if m.role == "user" {
            format!("<div class=\"text\">{}</div>", escape(&m.content))
        } else {
            format!(
                "<div class=\"md\">{}</div>",
                crate::markdown::to_html(&m.content)
            )
        };
        let mut images = String::new();
        for (n, url) in attachments.get(&m.id).into_iter().flatten().enumerate() {
            let n = n + 1;
            if url.starts_with("data:image/") {
                images.push_str(&format!("<img src=\"{}\" alt=\"image {n}\">", escape(url)));
            } else {
                images.push_str(&format!(
                    "<a href=\"{}\" rel=\"noreferrer\">image {n}</a> ",
                    escape(url)
                ));
            }
        }
        if !images.is_empty() {
            images = format!("<div class=\"images\">{images}</div>");
        }
        let mut tools = String::new();
        for call in tool_calls(m) {
            let outcome = if call.is_error { "failed" } else { "returned" };
            tools.push_str(&format!(
                "<details class=\"tool\"><summary>Tool: {}</summary><pre>{}</pre><p>{outcome}:</p><pre>{}</pre></details>",
                escape(&call.name),
                escape(&call.arguments),
                escape(&call.result),
            ));
        }
        body.push_str(&format!(
            "<section class=\"{}\"><h2>{who}{model}</h2>{images}{tools}{text}</section>\n",
            escape(&m.role),
        ));
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
<title>{title}</title><style>\
body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;line-height:1.55;color:#1f2328;background:#fff}}\
@media (prefers-color-scheme: dark){{body{{color:#e6edf3;background:#0d1117}}section.user{{background:#161b22}}}}\
section{{padding:.75rem 1rem;border-radius:.5rem;margin:1rem 0}}section.user{{background:#f6f8fa}}\
h2{{font-size:.85rem;margin:0 0 .4rem;text-transform:uppercase;letter-spacing:.04em;opacity:.7}}\
.text{{white-space:pre-wrap;word-wrap:break-word}}\
details.tool{{margin:.4rem 0;font-size:.9em}}details.tool pre{{white-space:pre-wrap;word-wrap:break-word}}\
.images img{{max-width:100%;max-height:24rem;border-radius:.4rem;margin:0 .5rem .5rem 0}}\
.md>:first-child{{margin-top:0}}.md>:last-child{{margin-bottom:0}}.md p,.md ul,.md ol,.md pre,.md table,.md blockquote{{margin:.6rem 0}}\
pre{{overflow-x:auto;padding:.75rem;border-radius:.4rem;background:#f6f8fa}}code{{font-family:ui-monospace,monospace;font-size:.9em}}\
:not(pre)>code{{padding:.1rem .3rem;border-radius:.25rem;background:rgba(127,127,127,.15)}}\
table{{border-collapse:collapse;display:block;overflow-x:auto}}th,td{{border:1px solid rgba(127,127,127,.35);padding:.3rem .6rem}}\
blockquote{{border-left:3px solid rgba(127,127,127,.4);padding-left:.8rem;opacity:.85}}\
@media (prefers-color-scheme: dark){{pre{{background:#161b22}}a{{color:#58a6ff}}}}</style></head>\n<body><h1>{title}</h1>\n{body}</body></html>\n"
    )
}

/// The whole tree as JSON (every branch, with the active leaf), importable again; each
/// message's images when `attachments` has them.
pub fn json(c: &ConversationRow, rows: &[MessageRow], attachments: &Attachments) -> Value {
    json!({
        "format": CONVERSATION_FORMAT,
        "id": c.id,
        "title": c.title,
        "created_at": ids::ms_to_rfc3339(c.created_at),
        "updated_at": ids::ms_to_rfc3339(c.updated_at),
        "settings": {
            "model": c.model,
            "system_prompt": c.system_prompt,
            "temperature": c.temperature,
            "top_p": c.top_p,
            "max_tokens": c.max_tokens,
            "history_limit": c.history_limit,
        },
        "active_leaf_id": c.active_leaf_id,
        "messages": rows.iter().map(|m| {
            let mut message = json!({
                "id": m.id,
                "parent_id": m.parent_id,
                "role": m.role,
                "content": m.content,
                "reasoning": m.reasoning,
                "model": m.model,
                "status": m.status,
                "created_at": ids::ms_to_rfc3339(m.created_at),
            });
            if let Some(images) = attachments.get(&m.id) {
                message["images"] = json!(images);
            }
            let calls = tool_calls(m);
            if !calls.is_empty() {
                message["tool_calls"] = json!(calls);
            }
            message
        }).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_export_escapes_what_the_model_wrote() {
        let c = ConversationRow {
            active_leaf_id: Some("m".into()),
            ..ConversationRow::new("c", "u", "<b>t</b>", 0)
        };
        let m = MessageRow {
            id: "m".into(),
            conversation_id: "c".into(),
            user_id: "u".into(),
            parent_id: None,
            role: "assistant".into(),
            content: "<script>alert(1)</script><img src=x onerror=alert(1)>".into(),
            reasoning: None,
            images: None,
            status: crate::store::MessageStatus::Done,
            model: None,
            error: None,
            prompt_tokens: None,
            completion_tokens: None,
            cost: None,
            sources: None,
            tool_calls: None,
            finish_reason: None,
            created_at: 0,
            updated_at: 0,
        };
        let page = html(&c, std::slice::from_ref(&m), &Attachments::new());
        assert!(!page.contains("<script>alert"));
        assert!(!page.contains("<img"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.contains("&lt;b&gt;t&lt;/b&gt;"));

        // Tool calls are shown, escaped too, and carried whole by the JSON export.
        let record = ToolRecord {
            id: "call_1".into(),
            name: "fetch_page".into(),
            arguments: r#"{"url":"https://example.com"}"#.into(),
            result: "<script>x()</script> ```not a fence end".into(),
            is_error: false,
            citations: Vec::new(),
        };
        let m = MessageRow {
            content: "Done.".into(),
            tool_calls: Some(serde_json::to_string(&[&record]).unwrap()),
            ..m
        };
        let page = html(&c, std::slice::from_ref(&m), &Attachments::new());
        assert!(
            page.contains("<summary>Tool: fetch_page</summary>"),
            "{page}"
        );
        assert!(page.contains("&lt;script&gt;x()&lt;/script&gt;") && !page.contains("<script>x"));
        let text = markdown(&c, std::slice::from_ref(&m), &Attachments::new());
        assert!(
            text.contains("<details><summary>Tool: fetch_page</summary>\n\n```json\n{\"url\":\"https://example.com\"}\n```\n\nreturned:\n\n````\n<script>x()</script> ```not a fence end\n````\n\n</details>\n\nDone."),
            "{text}"
        );
        let doc = json(&c, &[m], &Attachments::new());
        let back: Vec<ToolRecord> =
            serde_json::from_value(doc["messages"][0]["tool_calls"].clone()).unwrap();
        assert_eq!(back, [record]);
    }
}
