//! Cutting a structured document into token-sized chunks for retrieval.
//!
//! A document arrives as [`Block`]s (what the extractors make of PDF, DOCX, HTML, ...): headings,
//! paragraphs, code and tables, each with the page it came from. The chunker keeps the
//! structure a reader relies on:
//! - a heading starts a new chunk, and every chunk carries the path of headings above it
//!   (so a citation can say "Leave policy › Annual leave", and search sees the section's name);
//! - a chunk never exceeds `max_tokens` (counted with the o200k tokenizer, the unit the
//!   embedding models and context windows are measured in — characters would make a Chinese
//!   document a handful of huge chunks);
//! - a paragraph too long for one chunk is cut between sentences (Chinese ends 。！？；
//!   as well as . ! ?), and a sentence too long is cut by tokens as the last resort;
//! - code blocks and tables stay whole when they fit; a table too big is cut between rows,
//!   each part repeating the header row; a code block too big is cut between lines;
//! - consecutive chunks of one section overlap by up to `overlap_tokens` of whole sentences,
//!   so a fact that straddles a cut is whole in one of them.
//!
//! Each chunk records the pages it spans and its byte range in [`render`]'s text of the
//! document, which is what a citation points to.

use crate::tokens::count_tokens;

/// One structural piece of an extracted document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// What it is.
    pub kind: BlockKind,
    /// The page (PDF), slide (PPTX) or sheet it came from, counted from 1, when the format has
    /// pages.
    pub page: Option<u32>,
}

/// The kinds of [`Block`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    /// A heading; level 1 is the outermost.
    Heading {
        /// 1 to 6.
        level: u8,
        /// The heading's text.
        text: String,
    },
    /// Running text: a paragraph or a list item.
    Paragraph(String),
    /// Preformatted text kept line by line.
    Code {
        /// The language, when the source named one.
        lang: Option<String>,
        /// The code.
        text: String,
    },
    /// Rows of cells; the first row is the header.
    Table(Vec<Vec<String>>),
}

impl Block {
    /// A block of `kind` on no particular page.
    pub fn new(kind: BlockKind) -> Block {
        Block { kind, page: None }
    }

    /// This block on `page`.
    pub fn on_page(mut self, page: Option<u32>) -> Block {
        self.page = page;
        self
    }

    /// A heading.
    pub fn heading(level: u8, text: impl Into<String>) -> Block {
        Block::new(BlockKind::Heading {
            level: level.clamp(1, 6),
            text: text.into(),
        })
    }

    /// A paragraph.
    pub fn paragraph(text: impl Into<String>) -> Block {
        Block::new(BlockKind::Paragraph(text.into()))
    }

    /// The block as plain text: a table as `a | b` lines, a heading as its text.
    pub fn text(&self) -> String {
        match &self.kind {
            BlockKind::Heading { text, .. } | BlockKind::Paragraph(text) => text.clone(),
            BlockKind::Code { text, .. } => text.clone(),
            BlockKind::Table(rows) => rows
                .iter()
                .map(|r| table_row(r))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }

    /// Whether the block holds no visible text.
    pub fn is_empty(&self) -> bool {
        match &self.kind {
            BlockKind::Heading { text, .. }
            | BlockKind::Paragraph(text)
            | BlockKind::Code { text, .. } => text.trim().is_empty(),
            BlockKind::Table(rows) => rows.iter().flatten().all(|c| c.trim().is_empty()),
        }
    }
}

fn table_row(cells: &[String]) -> String {
    cells
        .iter()
        .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The whole document as text, blocks separated by a blank line: the text a chunk's byte
/// range points into.
pub fn render(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        if !out.is_empty() {
            out.push_str(SEPARATOR);
        }
        out.push_str(&block.text());
    }
    out
}

const SEPARATOR: &str = "\n\n";

/// How big chunks are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkConfig {
    /// The most tokens a chunk may hold (at least 16).
    pub max_tokens: usize,
    /// Tokens of whole sentences repeated from the end of the previous chunk of the same
    /// section (at most half of `max_tokens`).
    pub overlap_tokens: usize,
}

impl Default for ChunkConfig {
    fn default() -> Self {
        ChunkConfig {
            max_tokens: 512,
            overlap_tokens: 64,
        }
    }
}

/// One piece of a document, ready to index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk's text (its units joined by newlines).
    pub text: String,
    /// Tokens in `text`, by the o200k tokenizer.
    pub tokens: usize,
    /// The headings above the chunk, outermost first.
    pub headings: Vec<String>,
    /// The first and last page the chunk's text comes from, when the document has pages.
    pub pages: Option<(u32, u32)>,
    /// The byte range of the chunk's first to last unit in [`render`]'s text (with overlap,
    /// ranges of neighbours overlap).
    pub start: usize,
    /// See `start`.
    pub end: usize,
}

impl Chunk {
    /// The text to index and embed: the heading path on a line of its own, then the text, so
    /// a question that names the section finds its chunks.
    pub fn indexed_text(&self) -> String {
        if self.headings.is_empty() {
            return self.text.clone();
        }
        format!("{}\n{}", self.headings.join(" › "), self.text)
    }
}

/// Cuts `blocks` into chunks (see the module doc for the rules).
pub fn chunk(blocks: &[Block], config: ChunkConfig) -> Vec<Chunk> {
    let max = config.max_tokens.max(16);
    let overlap = config.overlap_tokens.min(max / 2);
    let mut builder = Builder {
        max,
        overlap,
        chunks: Vec::new(),
        current: Vec::new(),
        current_tokens: 0,
        carried: 0,
        headings: Vec::new(),
        block: 0,
        glue: false,
        block_end: 0,
    };
    let mut offset = 0;
    for (i, block) in blocks.iter().enumerate() {
        if i > 0 {
            offset += SEPARATOR.len();
        }
        let text = block.text();
        let start = offset;
        offset += text.len();
        builder.block = i;
        builder.block_end = offset;
        builder.glue = matches!(block.kind, BlockKind::Paragraph(_) | BlockKind::Code { .. });
        match &block.kind {
            BlockKind::Heading { level, text } => {
                builder.flush(false);
                let level = usize::from(*level).clamp(1, 6);
                builder.headings.truncate(level - 1);
                while builder.headings.len() < level - 1 {
                    builder.headings.push(String::new());
                }
                builder.headings.push(text.trim().to_owned());
            }
            BlockKind::Paragraph(_) => {
                for (range, sentence) in sentences(&text) {
                    builder.add_text(sentence, start + range.start, block.page, true);
                }
            }
            BlockKind::Code { .. } => {
                if count_tokens(&text) <= max {
                    builder.add(unit(text.clone(), start, block.page, false));
                } else {
                    for (range, line) in lines(&text) {
                        builder.add_text(line, start + range.start, block.page, false);
                    }
                }
            }
            BlockKind::Table(rows) => builder.add_table(rows, start, block.page),
        }
    }
    builder.flush(false);
    builder.chunks
}

/// An atom of a chunk: a sentence, a line of code, a whole table or code block, a row group.
#[derive(Debug, Clone)]
struct Unit {
    text: String,
    tokens: usize,
    page: Option<u32>,
    start: usize,
    end: usize,
    /// Whether the unit may be repeated as overlap (sentences yes; tables and code no).
    overlaps: bool,
    /// The block it came from, and whether it continues the previous unit of that block
    /// directly (sentences of a paragraph, lines of code) rather than on a new line.
    block: usize,
    glue: bool,
}

fn unit(text: String, start: usize, page: Option<u32>, overlaps: bool) -> Unit {
    let tokens = count_tokens(&text);
    let end = start + text.len();
    Unit {
        text,
        tokens,
        page,
        start,
        end,
        overlaps,
        block: 0,
        glue: false,
    }
}

struct Builder {
    max: usize,
    overlap: usize,
    chunks: Vec<Chunk>,
    current: Vec<Unit>,
    current_tokens: usize,
    /// How many units at the front of `current` repeat the previous chunk (overlap).
    carried: usize,
    headings: Vec<String>,
    /// The index of the block being added, and whether its pieces join without a newline.
    block: usize,
    glue: bool,
    /// Where the block being added ends in the rendered text: no unit's range goes past it.
    block_end: usize,
}

impl Builder {
    /// Adds a piece of text, cut by tokens first if it is longer than a chunk.
    fn add_text(&mut self, text: &str, start: usize, page: Option<u32>, overlaps: bool) {
        if text.trim().is_empty() {
            return;
        }
        let mut rest = text;
        let mut at = start;
        while !rest.is_empty() {
            let cut = longest_prefix_within(rest, self.max);
            let (piece, tail) = rest.split_at(cut);
            self.add(unit(piece.to_owned(), at, page, overlaps));
            at += cut;
            rest = tail;
        }
    }

    fn add_table(&mut self, rows: &[Vec<String>], start: usize, page: Option<u32>) {
        let lines: Vec<String> = rows.iter().map(|r| table_row(r)).collect();
        let whole = lines.join("\n");
        if count_tokens(&whole) <= self.max || lines.len() < 2 {
            self.add_text(&whole, start, page, false);
            return;
        }
        // Row groups, each led by the header so every part reads as a table.
        let header = &lines[0];
        let header_tokens = count_tokens(header) + 1;
        let mut at = start + header.len() + 1;
        let mut group = String::new();
        let mut group_start = at;
        let mut group_tokens = header_tokens;
        for line in &lines[1..] {
            let tokens = count_tokens(line) + 1;
            if !group.is_empty() && group_tokens + tokens > self.max {
                let text = format!("{header}\n{group}");
                if count_tokens(&text) <= self.max {
                    let mut part = unit(text, group_start, page, false);
                    part.end = at.saturating_sub(1);
                    self.add(part);
                } else {
                    self.add_text(&text, group_start, page, false);
                }
                group.clear();
                group_tokens = header_tokens;
                group_start = at;
            }
            if !group.is_empty() {
                group.push('\n');
            }
            group.push_str(line);
            group_tokens += tokens;
            at += line.len() + 1;
        }
        if !group.is_empty() {
            let text = format!("{header}\n{group}");
            if count_tokens(&text) <= self.max {
                self.add(unit(text, group_start, page, false));
            } else {
                self.add_text(&text, group_start, page, false);
            }
        }
    }

    fn add(&mut self, mut unit: Unit) {
        unit.block = self.block;
        unit.glue = self.glue;
        // A table part's text repeats the header, which sits earlier in the document: its
        // range runs from its first row and never past its block.
        unit.end = unit.end.min(self.block_end);
        unit.start = unit.start.min(unit.end);
        if !self.current.is_empty() && !self.fits(&unit) {
            if self.current.len() == self.carried {
                // Only overlap so far, and the unit does not fit beside it: drop the overlap
                // rather than emit a chunk that repeats its predecessor.
                self.current.clear();
                self.current_tokens = 0;
                self.carried = 0;
            } else {
                self.flush(true);
                if !self.current.is_empty() && !self.fits(&unit) {
                    self.current.clear();
                    self.current_tokens = 0;
                    self.carried = 0;
                }
            }
        }
        self.current_tokens += unit.tokens + usize::from(!self.current.is_empty());
        self.current.push(unit);
    }

    /// Whether `unit` fits beside the current units. The running sum of unit tokens (plus one
    /// per join) is an estimate: BPE can merge across a join either way, so near the limit the
    /// joined text is counted exactly.
    fn fits(&self, unit: &Unit) -> bool {
        let estimate = self.current_tokens + unit.tokens + 1;
        if estimate * 10 < self.max * 9 {
            return true;
        }
        let mut units = self.current.clone();
        units.push(unit.clone());
        count_tokens(&joined(&units)) <= self.max
    }

    /// Closes the current chunk; `carry` keeps its last sentences as the next one's overlap.
    fn flush(&mut self, carry: bool) {
        let only_overlap = self.current.len() == self.carried;
        self.carried = 0;
        if self.current.is_empty() || only_overlap {
            self.current.clear();
            self.current_tokens = 0;
            return;
        }
        let units = std::mem::take(&mut self.current);
        self.current_tokens = 0;
        let text = joined(&units);
        let pages = units
            .iter()
            .filter_map(|u| u.page)
            .fold(None, |acc: Option<(u32, u32)>, p| match acc {
                None => Some((p, p)),
                Some((a, b)) => Some((a.min(p), b.max(p))),
            });
        // Min and max, not first and last: parts of an oversized table row group are placed
        // approximately and may not be in order.
        let start = units.iter().map(|u| u.start).min().unwrap_or(0);
        let end = units.iter().map(|u| u.end).max().unwrap_or(start);
        self.chunks.push(Chunk {
            tokens: count_tokens(&text),
            text,
            headings: self
                .headings
                .iter()
                .filter(|h| !h.is_empty())
                .cloned()
                .collect(),
            pages,
            start,
            end,
        });
        if carry && self.overlap > 0 {
            let mut kept = Vec::new();
            let mut tokens = 0;
            for u in units.iter().rev() {
                if !u.overlaps || tokens + u.tokens + 1 > self.overlap {
                    break;
                }
                tokens += u.tokens + 1;
                kept.push(u.clone());
            }
            kept.reverse();
            self.current_tokens = tokens.saturating_sub(1);
            self.carried = kept.len();
            self.current = kept;
        }
    }
}

/// The units' text: pieces of one block glued as they were, blocks on lines of their own.
fn joined(units: &[Unit]) -> String {
    let mut text = String::new();
    let mut previous: Option<usize> = None;
    for u in units {
        if previous.is_some() && !(u.glue && previous == Some(u.block)) {
            text.truncate(text.trim_end().len());
            text.push('\n');
        }
        text.push_str(&u.text);
        previous = Some(u.block);
    }
    text.trim().to_owned()
}

/// The byte length of the longest prefix of `text` (cut on a char boundary, after
/// whitespace where possible) that fits in `max` tokens; at least one char.
fn longest_prefix_within(text: &str, max: usize) -> usize {
    if count_tokens(text) <= max {
        return text.len();
    }
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
    // Binary search over char boundaries for the last prefix that fits.
    let (mut lo, mut hi) = (0usize, bounds.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if count_tokens(&text[..bounds[mid - 1]]) <= max {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let Some(&cut) = lo.checked_sub(1).and_then(|i| bounds.get(i)) else {
        return text
            .chars()
            .next()
            .map(char::len_utf8)
            .unwrap_or(text.len());
    };
    // Prefer a cut after whitespace in the last fifth, so words stay whole.
    match text[..cut].rfind(char::is_whitespace) {
        Some(space) if space > cut * 4 / 5 => {
            space
                + text[space..]
                    .chars()
                    .next()
                    .map(char::len_utf8)
                    .unwrap_or(1)
        }
        _ => cut,
    }
}

/// The sentences of a paragraph with their byte ranges: cut after 。！？；!? and after a
/// period followed by whitespace, and at line breaks; closing quotes and brackets stay with
/// their sentence.
pub fn sentences(text: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let end_here = match c {
            '。' | '！' | '？' | '；' | '!' | '?' | '\n' => true,
            '.' => chars.peek().is_none_or(|(_, n)| n.is_whitespace()),
            _ => false,
        };
        if !end_here {
            continue;
        }
        let mut end = i + c.len_utf8();
        while let Some(&(j, n)) = chars.peek() {
            if matches!(
                n,
                '”' | '’' | '"' | '\'' | ')' | '）' | '」' | '』' | '】' | ' ' | '\t'
            ) {
                end = j + n.len_utf8();
                chars.next();
            } else {
                break;
            }
        }
        if !text[start..end].trim().is_empty() {
            out.push((start..end, &text[start..end]));
        }
        start = end;
    }
    if start < text.len() && !text[start..].trim().is_empty() {
        out.push((start..text.len(), &text[start..]));
    }
    out
}

fn lines(text: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        out.push((start..start + line.len(), line));
        start += line.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max: usize, overlap: usize) -> ChunkConfig {
        ChunkConfig {
            max_tokens: max,
            overlap_tokens: overlap,
        }
    }

    #[test]
    fn chinese_sentences_end_at_full_width_marks() {
        let s: Vec<&str> = sentences("第一句。第二句！第三句？“引号。”第四；尾")
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(
            s,
            [
                "第一句。",
                "第二句！",
                "第三句？",
                "“引号。”",
                "第四；",
                "尾"
            ]
        );
    }

    #[test]
    fn english_sentences_keep_decimals_whole() {
        let s: Vec<&str> = sentences("Version 3.5 is out. It is fast! Really?")
            .into_iter()
            .map(|(_, s)| s)
            .collect();
        assert_eq!(s, ["Version 3.5 is out. ", "It is fast! ", "Really?"]);
    }

    #[test]
    fn headings_start_chunks_and_make_the_path() {
        let blocks = vec![
            Block::heading(1, "Handbook"),
            Block::paragraph("Intro text."),
            Block::heading(2, "Leave"),
            Block::paragraph("Fifteen days a year."),
            Block::heading(2, "Travel"),
            Block::paragraph("Book through the portal."),
        ];
        let chunks = chunk(&blocks, ChunkConfig::default());
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[1].headings, ["Handbook", "Leave"]);
        assert_eq!(chunks[2].headings, ["Handbook", "Travel"]);
        assert_eq!(chunks[2].text, "Book through the portal.");
        assert_eq!(
            chunks[1].indexed_text(),
            "Handbook › Leave\nFifteen days a year."
        );
        let text = render(&blocks);
        assert_eq!(
            &text[chunks[1].start..chunks[1].end],
            "Fifteen days a year."
        );
    }

    #[test]
    fn long_chinese_text_is_cut_by_tokens_with_sentence_overlap() {
        let paragraph: String = (0..60)
            .map(|i| format!("第{i}条规定员工必须按时提交报销单据。"))
            .collect();
        let chunks = chunk(&[Block::paragraph(paragraph.clone())], config(100, 30));
        assert!(chunks.len() >= 5, "{} chunks", chunks.len());
        for c in &chunks {
            assert!(c.tokens <= 100, "{} tokens", c.tokens);
            assert!(c.text.ends_with('。'), "cut inside a sentence: {}", c.text);
        }
        // Every sentence is somewhere, in order, and neighbours share a sentence.
        for i in 0..60 {
            let s = format!("第{i}条规定");
            assert!(chunks.iter().any(|c| c.text.contains(&s)), "lost {s}");
        }
        for pair in chunks.windows(2) {
            let first = pair[1].text.split_inclusive('。').next().unwrap();
            assert!(
                pair[0].text.ends_with(first) || pair[0].text.contains(&format!("{first}第")),
                "no overlap between chunks: {pair:?}"
            );
            assert!(
                !pair[1].text.contains('\n'),
                "sentences of a paragraph stay on one line"
            );
        }
    }

    #[test]
    fn a_sentence_longer_than_a_chunk_is_cut_by_tokens() {
        let run = "知识".repeat(400);
        let chunks = chunk(&[Block::paragraph(run.clone())], config(50, 0));
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.tokens <= 50));
        assert_eq!(
            chunks.iter().map(|c| c.text.as_str()).collect::<String>(),
            run
        );
    }

    #[test]
    fn tables_stay_whole_or_split_by_rows_with_the_header() {
        let small = vec![
            vec!["Plan".to_owned(), "Price".to_owned()],
            vec!["Basic".to_owned(), "10".to_owned()],
        ];
        let chunks = chunk(
            &[Block::new(BlockKind::Table(small))],
            ChunkConfig::default(),
        );
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].text, "Plan | Price\nBasic | 10");

        let mut big = vec![vec!["城市".to_owned(), "补贴".to_owned()]];
        for i in 0..80 {
            big.push(vec![format!("城市{i}"), format!("{i}00元")]);
        }
        let chunks = chunk(&[Block::new(BlockKind::Table(big))], config(60, 20));
        assert!(chunks.len() > 3);
        for c in &chunks {
            assert!(c.text.starts_with("城市 | 补贴\n"), "{}", c.text);
            assert!(c.tokens <= 60);
        }
        // Tables are never repeated as overlap.
        let rows: usize = chunks.iter().map(|c| c.text.lines().count() - 1).sum();
        assert_eq!(rows, 80);
    }

    #[test]
    fn code_stays_whole_when_it_fits() {
        let code = "fn main() {\n    println!(\"hi\");\n}\n";
        let blocks = vec![
            Block::paragraph("Before."),
            Block::new(BlockKind::Code {
                lang: Some("rust".into()),
                text: code.into(),
            }),
        ];
        let chunks = chunk(&blocks, config(64, 0));
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].text.contains("println!(\"hi\");\n}"));
    }

    #[test]
    fn pages_are_kept() {
        let blocks = vec![
            Block::paragraph("One.").on_page(Some(1)),
            Block::paragraph("Two.").on_page(Some(2)),
        ];
        let chunks = chunk(&blocks, ChunkConfig::default());
        assert_eq!(chunks[0].pages, Some((1, 2)));
    }
}
