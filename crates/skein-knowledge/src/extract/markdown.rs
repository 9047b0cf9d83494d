//! Markdown's block structure (ATX and setext headings, fenced code, pipe tables, lists, quotes,
//! paragraphs), read line by line. Inline markup is reduced to its text: a link to its label,
//! emphasis and code marks dropped. Only the blocks matter to chunking and search, so a full
//! CommonMark parser would cost compile time for nothing.

use skein_text::chunk::{Block, BlockKind};

use super::text::join_lines;

/// The blocks of a Markdown document.
pub(crate) fn extract(source: &str) -> Vec<Block> {
    let lines: Vec<&str> = source.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut out = Vec::new();
    let mut paragraph: Vec<String> = Vec::new();
    let mut i = skip_front_matter(&lines);
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            flush(&mut paragraph, &mut out);
            i += 1;
            continue;
        }
        if indent < 4
            && let Some((fence, lang)) = fence_open(trimmed)
        {
            flush(&mut paragraph, &mut out);
            let mut code = Vec::new();
            i += 1;
            while i < lines.len() && !is_fence_close(lines[i].trim_start(), fence) {
                code.push(lines[i]);
                i += 1;
            }
            i += 1;
            out.push(Block::new(BlockKind::Code {
                lang,
                text: code.join("\n"),
            }));
            continue;
        }
        if indent < 4
            && let Some((level, text)) = atx_heading(trimmed)
        {
            flush(&mut paragraph, &mut out);
            out.push(Block::heading(level, inline(text)));
            i += 1;
            continue;
        }
        if !paragraph.is_empty() && is_setext_underline(trimmed) {
            let text = join_owned(&paragraph);
            paragraph.clear();
            out.push(Block::heading(
                if trimmed.starts_with('=') { 1 } else { 2 },
                text,
            ));
            i += 1;
            continue;
        }
        if trimmed.contains('|')
            && lines
                .get(i + 1)
                .is_some_and(|next| is_table_delimiter(next))
        {
            flush(&mut paragraph, &mut out);
            let mut rows = vec![table_cells(trimmed)];
            i += 2;
            while i < lines.len() && lines[i].contains('|') && !lines[i].trim().is_empty() {
                rows.push(table_cells(lines[i].trim()));
                i += 1;
            }
            out.push(Block::new(BlockKind::Table(rows)));
            continue;
        }
        if is_thematic_break(trimmed) {
            flush(&mut paragraph, &mut out);
            i += 1;
            continue;
        }
        if let Some(item) = list_item(trimmed) {
            // Each item is a paragraph of its own: items are usually separate facts.
            flush(&mut paragraph, &mut out);
            paragraph.push(inline(item));
            i += 1;
            continue;
        }
        let text = trimmed.trim_start_matches('>').trim_start();
        paragraph.push(inline(text));
        i += 1;
    }
    flush(&mut paragraph, &mut out);
    out
}

fn skip_front_matter(lines: &[&str]) -> usize {
    if lines.first().is_some_and(|l| l.trim() == "---")
        && let Some(end) = lines.iter().skip(1).position(|l| l.trim() == "---")
    {
        return end + 2;
    }
    0
}

fn flush(paragraph: &mut Vec<String>, out: &mut Vec<Block>) {
    if !paragraph.is_empty() {
        out.push(Block::paragraph(join_owned(paragraph)));
        paragraph.clear();
    }
}

fn join_owned(lines: &[String]) -> String {
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    join_lines(&refs)
}

fn fence_open(line: &str) -> Option<(&str, Option<String>)> {
    for fence in ["```", "~~~"] {
        if let Some(rest) = line.strip_prefix(fence) {
            let marker = fence.chars().next().unwrap_or('`');
            let extra = rest.chars().take_while(|&c| c == marker).count();
            let info = rest[extra..].trim();
            let lang = info
                .split_whitespace()
                .next()
                .filter(|l| !l.is_empty())
                .map(str::to_owned);
            return Some((&line[..fence.len() + extra], lang));
        }
    }
    None
}

fn is_fence_close(line: &str, fence: &str) -> bool {
    let marker = fence.chars().next().unwrap_or('`');
    let run = line.chars().take_while(|&c| c == marker).count();
    run >= fence.len() && line[run..].trim().is_empty()
}

fn atx_heading(line: &str) -> Option<(u8, &str)> {
    let level = line.chars().take_while(|&c| c == '#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    let text = rest.trim().trim_end_matches('#').trim_end();
    u8::try_from(level).ok().map(|l| (l, text))
}

fn is_setext_underline(line: &str) -> bool {
    let line = line.trim_end();
    !line.is_empty() && (line.chars().all(|c| c == '=') || line.chars().all(|c| c == '-'))
}

fn is_thematic_break(line: &str) -> bool {
    let compact: String = line.chars().filter(|c| !c.is_whitespace()).collect();
    compact.len() >= 3
        && ["-", "*", "_"]
            .iter()
            .any(|m| compact.chars().all(|c| c.to_string() == *m))
}

fn is_table_delimiter(line: &str) -> bool {
    let line = line.trim();
    if !line.contains('-') {
        return false;
    }
    let cells: Vec<&str> = line.trim_matches('|').split('|').collect();
    !cells.is_empty()
        && cells.iter().all(|cell| {
            let cell = cell.trim().trim_start_matches(':').trim_end_matches(':');
            !cell.is_empty() && cell.chars().all(|c| c == '-')
        })
}

fn table_cells(line: &str) -> Vec<String> {
    line.trim_matches('|')
        .split('|')
        .map(|cell| inline(cell.trim()))
        .collect()
}

fn list_item(line: &str) -> Option<&str> {
    for marker in ["- ", "* ", "+ "] {
        if let Some(rest) = line.strip_prefix(marker) {
            let rest = rest.trim_start();
            // A task list's box says nothing to search.
            let rest = rest
                .strip_prefix("[ ] ")
                .or_else(|| rest.strip_prefix("[x] "))
                .unwrap_or(rest);
            return Some(rest);
        }
    }
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if (1..=9).contains(&digits) {
        let rest = &line[digits..];
        if let Some(item) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return Some(item.trim_start());
        }
    }
    None
}

/// Inline markup reduced to text: `[label](url)` and `![alt](src)` to their label, emphasis,
/// strike and code marks dropped, backslash escapes resolved.
fn inline(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() && chars[i + 1].is_ascii_punctuation() => {
                out.push(chars[i + 1]);
                i += 2;
            }
            '!' if chars.get(i + 1) == Some(&'[') => i += 1,
            '[' => {
                // A link: keep the label, skip "(url)" right after "]".
                if let Some(close) = chars[i + 1..].iter().position(|&c| c == ']') {
                    let label_end = i + 1 + close;
                    out.extend(&chars[i + 1..label_end]);
                    i = label_end + 1;
                    if chars.get(i) == Some(&'(')
                        && let Some(end) = chars[i..].iter().position(|&c| c == ')')
                    {
                        i += end + 1;
                    }
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            '*' | '`' | '~' => i += 1,
            '_' if (i == 0 || !chars[i - 1].is_alphanumeric())
                || chars.get(i + 1).is_none_or(|n| !n.is_alphanumeric()) =>
            {
                i += 1
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_of_a_document() {
        let doc = "---\ntitle: x\n---\n# 员工手册\n\nIntro with **bold** and a [link](http://x).\nSecond line.\n\n## 年假\n\n- 每年十五天\n- 可结转五天\n\n| 城市 | 补贴 |\n|:---|---:|\n| 北京 | 300 |\n\n```rust\nfn main() {}\n```\n\nSetext\n======\n";
        let blocks = extract(doc);
        assert_eq!(
            blocks,
            [
                Block::heading(1, "员工手册"),
                Block::paragraph("Intro with bold and a link. Second line."),
                Block::heading(2, "年假"),
                Block::paragraph("每年十五天"),
                Block::paragraph("可结转五天"),
                Block::new(BlockKind::Table(vec![
                    vec!["城市".into(), "补贴".into()],
                    vec!["北京".into(), "300".into()]
                ])),
                Block::new(BlockKind::Code {
                    lang: Some("rust".into()),
                    text: "fn main() {}".into()
                }),
                Block::heading(1, "Setext"),
            ]
        );
    }

    #[test]
    fn an_unclosed_fence_runs_to_the_end() {
        let blocks = extract("```\ncode\n# not a heading");
        assert_eq!(blocks.len(), 1);
        assert!(matches!(&blocks[0].kind, BlockKind::Code { text, .. } if text.contains("# not")));
    }

    #[test]
    fn snake_case_keeps_its_underscores() {
        assert_eq!(inline("use max_tokens and _em_"), "use max_tokens and em");
    }
}
