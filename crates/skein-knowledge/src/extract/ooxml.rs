//! Word and PowerPoint files (Office Open XML: a zip of XML parts), and the bounded zip reader
//! EPUB shares.
//!
//! DOCX: the body's paragraphs with headings recognised by style (the style's name, or its
//! outline level, so "标题 1" in a Chinese Word counts like "Heading 1"), tables as tables,
//! deleted revisions and field codes left out, page breaks Word recorded kept as page numbers.
//! PPTX: one page per slide in presentation order, the title as a heading, text boxes as
//! paragraphs, tables as tables, and the speaker notes after the slide.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use skein_text::chunk::{Block, BlockKind};

use super::xml::{Event, Reader};
use super::{ExtractError, Format, Limits, squash};

/// A zip archive read within [`Limits`].
pub(crate) struct Archive<'a> {
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    format: Format,
    limits: Limits,
    inflated: u64,
}

impl<'a> Archive<'a> {
    /// Opens `bytes` as a zip archive of a `format` document.
    pub(crate) fn open(
        bytes: &'a [u8],
        format: Format,
        limits: Limits,
    ) -> Result<Archive<'a>, ExtractError> {
        if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
            // An OLE compound file: Office stores password-protected OOXML this way, and it is
            // also the legacy .doc/.ppt format.
            if contains_utf16(bytes, "EncryptionInfo") {
                return Err(ExtractError::Encrypted {
                    format: format.as_str(),
                });
            }
            return Err(ExtractError::corrupt(
                format,
                "a legacy binary Office file (.doc/.ppt), not Office Open XML",
            ));
        }
        let zip = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| ExtractError::corrupt(format, e))?;
        if zip.len() > limits.members {
            return Err(ExtractError::TooLarge {
                format: format.as_str(),
                limit_bytes: limits.total_bytes,
            });
        }
        Ok(Archive {
            zip,
            format,
            limits,
            inflated: 0,
        })
    }

    /// The member's bytes, `None` when the archive has no such member.
    pub(crate) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let format = self.format;
        let mut file = match self.zip.by_name(name) {
            Ok(file) => file,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(zip::result::ZipError::UnsupportedArchive(reason))
                if reason.to_ascii_lowercase().contains("password") =>
            {
                return Err(ExtractError::Encrypted {
                    format: format.as_str(),
                });
            }
            Err(e) => return Err(ExtractError::corrupt(format, e)),
        };
        if file.encrypted() {
            return Err(ExtractError::Encrypted {
                format: format.as_str(),
            });
        }
        let allowed = self
            .limits
            .member_bytes
            .min(self.limits.total_bytes.saturating_sub(self.inflated));
        // The declared size may lie; `take` enforces the limit on what actually inflates.
        let mut out = Vec::new();
        (&mut file)
            .take(allowed + 1)
            .read_to_end(&mut out)
            .map_err(|e| ExtractError::corrupt(format, e))?;
        let read = out.len() as u64;
        if read > allowed {
            return Err(ExtractError::TooLarge {
                format: format.as_str(),
                limit_bytes: if allowed == self.limits.member_bytes {
                    self.limits.member_bytes
                } else {
                    self.limits.total_bytes
                },
            });
        }
        self.inflated += read;
        Ok(Some(out))
    }

    /// The member as text (XML parts are UTF-8 or UTF-16 with a BOM).
    pub(crate) fn text(&mut self, name: &str) -> Result<Option<String>, ExtractError> {
        Ok(self.read(name)?.map(|b| super::text::decode(&b)))
    }

    /// The member as text, or a corrupt-file error naming it when it is missing.
    pub(crate) fn required(&mut self, name: &str) -> Result<String, ExtractError> {
        self.text(name)?
            .ok_or_else(|| ExtractError::corrupt(self.format, format!("{name} is missing")))
    }

    /// Every member's name.
    pub(crate) fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .filter_map(Result::ok)
            .map(|name| name.into_owned())
            .collect()
    }
}

fn contains_utf16(haystack: &[u8], needle: &str) -> bool {
    let pattern: Vec<u8> = needle.encode_utf16().flat_map(u16::to_le_bytes).collect();
    haystack.windows(pattern.len()).any(|w| w == pattern)
}

/// Resolves a relationship target against the folder of the part that names it
/// (`ppt/slides` + `../notesSlides/n1.xml` → `ppt/notesSlides/n1.xml`).
pub(crate) fn resolve(base_dir: &str, target: &str) -> String {
    let target = percent_decode(target);
    let mut parts: Vec<&str> = if let Some(absolute) = target.strip_prefix('/') {
        return absolute.to_owned();
    } else {
        base_dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The relationships of a part: id → target, resolved to member names.
pub(crate) fn relationships(
    archive: &mut Archive,
    part: &str,
) -> Result<Vec<(String, String, String)>, ExtractError> {
    let (dir, file) = part.rsplit_once('/').unwrap_or(("", part));
    let rels = format!(
        "{}{}_rels/{file}.rels",
        dir,
        if dir.is_empty() { "" } else { "/" }
    );
    let Some(xml) = archive.text(&rels)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for event in Reader::new(&xml) {
        if let Event::Start {
            name: "Relationship",
            ..
        } = &event
            && let (Some(id), Some(target)) = (event.attr("Id"), event.attr("Target"))
        {
            let kind = event.attr("Type").unwrap_or("");
            let kind = kind.rsplit('/').next().unwrap_or("").to_owned();
            out.push((id.to_owned(), kind, resolve(dir, target)));
        }
    }
    Ok(out)
}

/// The blocks of a Word document.
pub(crate) fn docx(bytes: &[u8], limits: Limits) -> Result<Vec<Block>, ExtractError> {
    let mut archive = Archive::open(bytes, Format::Docx, limits)?;
    let document = archive.required("word/document.xml")?;
    let styles = archive
        .text("word/styles.xml")?
        .map(|s| heading_styles(&s))
        .unwrap_or_default();
    Ok(docx_body(&document, &styles))
}

/// Style id → heading level, from the style's name ("heading 2", "Title") or outline level.
fn heading_styles(xml: &str) -> HashMap<String, u8> {
    let mut out = HashMap::new();
    let mut current: Option<String> = None;
    for event in Reader::new(xml) {
        match &event {
            Event::Start { name: "style", .. } => {
                current = event.attr("styleId").map(str::to_owned);
            }
            Event::Start { name: "name", .. } => {
                if let (Some(id), Some(name)) = (&current, event.attr("val")) {
                    let name = name.to_ascii_lowercase();
                    if name == "title" {
                        out.insert(id.clone(), 1);
                    } else if let Some(n) = name.strip_prefix("heading ")
                        && let Ok(level) = n.trim().parse::<u8>()
                    {
                        out.insert(id.clone(), level.clamp(1, 6));
                    }
                }
            }
            Event::Start {
                name: "outlineLvl", ..
            } => {
                if let (Some(id), Some(level)) = (&current, event.attr("val"))
                    && let Ok(level) = level.parse::<u8>()
                    && level < 9
                {
                    out.entry(id.clone()).or_insert((level + 1).min(6));
                }
            }
            Event::End { name: "style" } => current = None,
            _ => {}
        }
    }
    out
}

fn docx_body(xml: &str, styles: &HashMap<String, u8>) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut page = 1u32;
    let mut paged = false;
    let mut text = String::new();
    let mut level: Option<u8> = None;
    let mut in_text = false;
    // Deleted revisions and field instructions are not the document's text.
    let mut hidden = 0usize;
    let mut tables: Vec<Vec<Vec<String>>> = Vec::new();
    for event in Reader::new(xml) {
        match &event {
            Event::Start { name, empty, .. } => match *name {
                "del" | "instrText" | "delText" if !empty => hidden += 1,
                "p" if !empty => {
                    text.clear();
                    level = None;
                }
                "pStyle" => {
                    level = event.attr("val").and_then(|id| {
                        styles.get(id).copied().or_else(|| {
                            let id = id.to_ascii_lowercase();
                            id.strip_prefix("heading")
                                .and_then(|n| n.parse::<u8>().ok())
                                .map(|n| n.clamp(1, 6))
                                .or(if id == "title" { Some(1) } else { None })
                        })
                    });
                }
                "outlineLvl" => {
                    if let Some(l) = event.attr("val").and_then(|v| v.parse::<u8>().ok())
                        && l < 9
                    {
                        level = Some((l + 1).min(6));
                    }
                }
                "t" if !empty => in_text = true,
                "tab" if hidden == 0 => text.push('\t'),
                "br" | "cr" if hidden == 0 => {
                    if event.attr("type") == Some("page") {
                        page += 1;
                        paged = true;
                    } else {
                        text.push('\n');
                    }
                }
                "lastRenderedPageBreak" => {
                    page += 1;
                    paged = true;
                }
                "tbl" if !empty => tables.push(Vec::new()),
                "tr" if !empty => {
                    if let Some(rows) = tables.last_mut() {
                        rows.push(Vec::new());
                    }
                }
                "tc" if !empty => {
                    if tables.len() == 1
                        && let Some(row) = tables.last_mut().and_then(|r| r.last_mut())
                    {
                        row.push(String::new());
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_text && hidden == 0 => text.push_str(t),
            Event::Text(_) => {}
            Event::End { name } => match *name {
                "del" | "instrText" | "delText" => hidden = hidden.saturating_sub(1),
                "t" => in_text = false,
                "p" => {
                    let para = squash(&text);
                    text.clear();
                    if para.is_empty() {
                        continue;
                    }
                    if let Some(rows) = tables.first_mut() {
                        // Paragraphs of a cell (nested tables flatten into the outer cell).
                        if let Some(cell) = rows.last_mut().and_then(|r| r.last_mut()) {
                            if !cell.is_empty() {
                                cell.push(' ');
                            }
                            cell.push_str(&para);
                        }
                        continue;
                    }
                    let kind = match level {
                        Some(l) => BlockKind::Heading {
                            level: l,
                            text: para,
                        },
                        None => BlockKind::Paragraph(para),
                    };
                    blocks.push(Block {
                        kind,
                        page: Some(page),
                    });
                }
                "tbl" => {
                    if let Some(rows) = tables.pop()
                        && tables.is_empty()
                    {
                        let rows: Vec<Vec<String>> = rows
                            .into_iter()
                            .filter(|r| r.iter().any(|c| !c.is_empty()))
                            .collect();
                        if !rows.is_empty() {
                            blocks.push(Block {
                                kind: BlockKind::Table(rows),
                                page: Some(page),
                            });
                        }
                    }
                }
                _ => {}
            },
        }
    }
    if !paged {
        for block in &mut blocks {
            block.page = None;
        }
    }
    blocks
}

/// The blocks of a PowerPoint deck: per slide, its title, text, tables, then its notes.
pub(crate) fn pptx(bytes: &[u8], limits: Limits) -> Result<Vec<Block>, ExtractError> {
    let mut archive = Archive::open(bytes, Format::Pptx, limits)?;
    let presentation = archive.required("ppt/presentation.xml")?;
    let rels = relationships(&mut archive, "ppt/presentation.xml")?;
    let by_id: HashMap<&str, &str> = rels
        .iter()
        .filter(|(_, kind, _)| kind == "slide")
        .map(|(id, _, target)| (id.as_str(), target.as_str()))
        .collect();
    // A slide's entry is <p:sldId id="256" r:id="rId2"/>: both attributes have the local
    // name "id"; the one that names a relationship is the slide's.
    let mut slides: Vec<String> = Reader::new(&presentation)
        .filter_map(|e| match e {
            Event::Start {
                name: "sldId",
                attrs,
                ..
            } => attrs
                .iter()
                .filter(|(k, _)| *k == "id")
                .find_map(|(_, v)| by_id.get(v.as_str()).map(|t| (*t).to_owned())),
            _ => None,
        })
        .collect();
    if slides.is_empty() {
        // No usable order: slide1, slide2, ... by number.
        let mut numbered: Vec<(u32, String)> = archive
            .names()
            .into_iter()
            .filter_map(|n| {
                let num = n
                    .strip_prefix("ppt/slides/slide")?
                    .strip_suffix(".xml")?
                    .parse()
                    .ok()?;
                Some((num, n))
            })
            .collect();
        numbered.sort();
        slides = numbered.into_iter().map(|(_, n)| n).collect();
    }
    let mut blocks = Vec::new();
    for (i, slide) in slides.iter().enumerate() {
        let page = u32::try_from(i + 1).ok();
        let Some(xml) = archive.text(slide)? else {
            continue;
        };
        let mut slide_blocks = shapes(&xml, false);
        let has_title = matches!(
            slide_blocks.first(),
            Some(Block {
                kind: BlockKind::Heading { .. },
                ..
            })
        );
        if !has_title {
            slide_blocks.insert(0, Block::heading(1, format!("Slide {}", i + 1)));
        }
        let notes = relationships(&mut archive, slide)?
            .into_iter()
            .find(|(_, kind, _)| kind == "notesSlide")
            .map(|(_, _, target)| target);
        if let Some(notes) = notes
            && let Some(xml) = archive.text(&notes)?
        {
            let notes = shapes(&xml, true);
            if !notes.is_empty() {
                slide_blocks.push(Block::heading(2, "Speaker notes"));
                slide_blocks.extend(notes);
            }
        }
        blocks.extend(slide_blocks.into_iter().map(|b| b.on_page(page)));
    }
    Ok(blocks)
}

/// The text of a slide's (or notes page's) shapes in document order: a title placeholder as a
/// heading, other text as paragraphs, tables as tables. On a notes page only the body
/// placeholder is read (the rest is the slide image and the page number).
fn shapes(xml: &str, notes: bool) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut placeholder: Option<String> = None;
    let mut in_shape = false;
    let mut shape_paragraphs: Vec<String> = Vec::new();
    let mut para = String::new();
    let mut in_text = false;
    let mut table: Option<Vec<Vec<String>>> = None;
    let mut title: Option<String> = None;
    for event in Reader::new(xml) {
        match &event {
            Event::Start { name, empty, .. } => match *name {
                "sp" if !empty => {
                    in_shape = true;
                    placeholder = None;
                    shape_paragraphs.clear();
                }
                "ph" => placeholder = Some(event.attr("type").unwrap_or("body").to_owned()),
                "p" if !empty => para.clear(),
                "t" if !empty => in_text = true,
                "br" => para.push('\n'),
                "tbl" if !empty => table = Some(Vec::new()),
                "tr" if !empty => {
                    if let Some(rows) = table.as_mut() {
                        rows.push(Vec::new());
                    }
                }
                "tc" if !empty => {
                    if let Some(row) = table.as_mut().and_then(|r| r.last_mut()) {
                        row.push(String::new());
                    }
                }
                _ => {}
            },
            Event::Text(t) if in_text => para.push_str(t),
            Event::Text(_) => {}
            Event::End { name } => match *name {
                "t" => in_text = false,
                "p" => {
                    let text = squash(&para);
                    para.clear();
                    if text.is_empty() {
                        continue;
                    }
                    if let Some(cell) = table
                        .as_mut()
                        .and_then(|r| r.last_mut())
                        .and_then(|r| r.last_mut())
                    {
                        if !cell.is_empty() {
                            cell.push(' ');
                        }
                        cell.push_str(&text);
                    } else if in_shape {
                        shape_paragraphs.push(text);
                    }
                }
                "tbl" => {
                    if let Some(rows) = table.take() {
                        let rows: Vec<Vec<String>> = rows
                            .into_iter()
                            .filter(|r| r.iter().any(|c| !c.is_empty()))
                            .collect();
                        if !notes && !rows.is_empty() {
                            blocks.push(Block::new(BlockKind::Table(rows)));
                        }
                    }
                }
                "sp" => {
                    in_shape = false;
                    let kind = placeholder.take();
                    let paragraphs = std::mem::take(&mut shape_paragraphs);
                    if notes {
                        if kind.as_deref() == Some("body") {
                            blocks.extend(paragraphs.into_iter().map(Block::paragraph));
                        }
                        continue;
                    }
                    match kind.as_deref() {
                        Some("title" | "ctrTitle") if title.is_none() => {
                            title = Some(paragraphs.join(" "));
                        }
                        Some("sldNum" | "dt" | "ftr") => {}
                        _ => blocks.extend(paragraphs.into_iter().map(Block::paragraph)),
                    }
                }
                _ => {}
            },
        }
    }
    if let Some(title) = title.filter(|t| !t.is_empty()) {
        blocks.insert(0, Block::heading(1, title));
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relationship_targets_resolve() {
        assert_eq!(
            resolve("ppt/slides", "../notesSlides/notesSlide1.xml"),
            "ppt/notesSlides/notesSlide1.xml"
        );
        assert_eq!(
            resolve("OEBPS", "text/ch%201.xhtml"),
            "OEBPS/text/ch 1.xhtml"
        );
        assert_eq!(resolve("a", "/word/x.xml"), "word/x.xml");
    }

    #[test]
    fn docx_headings_by_localised_style_tables_and_revisions() {
        let styles = r#"<w:styles><w:style w:styleId="1"><w:name w:val="heading 1"/></w:style>
<w:style w:styleId="a5"><w:name w:val="标题样式"/><w:pPr><w:outlineLvl w:val="1"/></w:pPr></w:style></w:styles>"#;
        let body = r#"<w:document><w:body>
<w:p><w:pPr><w:pStyle w:val="1"/></w:pPr><w:r><w:t>员工手册</w:t></w:r></w:p>
<w:p><w:pPr><w:pStyle w:val="a5"/></w:pPr><w:r><w:t>年假</w:t></w:r></w:p>
<w:p><w:r><w:t xml:space="preserve">每年 </w:t></w:r><w:del><w:r><w:delText>十</w:delText></w:r></w:del><w:r><w:t>十五天</w:t></w:r><w:r><w:fldChar/><w:instrText>PAGE</w:instrText></w:r></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>城市</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>补贴</w:t></w:r></w:p></w:tc></w:tr>
<w:tr><w:tc><w:p><w:r><w:t>北京</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>300</w:t></w:r></w:p><w:p><w:r><w:t>元</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
<w:p><w:r><w:br w:type="page"/><w:t>Next page</w:t></w:r></w:p>
</w:body></w:document>"#;
        let blocks = docx_body(body, &heading_styles(styles));
        assert_eq!(
            blocks,
            [
                Block::heading(1, "员工手册").on_page(Some(1)),
                Block::heading(2, "年假").on_page(Some(1)),
                Block::paragraph("每年 十五天").on_page(Some(1)),
                Block::new(BlockKind::Table(vec![
                    vec!["城市".into(), "补贴".into()],
                    vec!["北京".into(), "300 元".into()],
                ]))
                .on_page(Some(1)),
                Block::paragraph("Next page").on_page(Some(2)),
            ]
        );
    }

    #[test]
    fn slide_title_text_and_table() {
        let slide = r#"<p:sld><p:cSld><p:spTree>
<p:sp><p:nvSpPr><p:nvPr><p:ph type="body" idx="1"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>First point</a:t></a:r></a:p></p:txBody></p:sp>
<p:sp><p:nvSpPr><p:nvPr><p:ph type="title"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>Q3 </a:t></a:r><a:r><a:t>results</a:t></a:r></a:p></p:txBody></p:sp>
<p:graphicFrame><a:graphic><a:graphicData><a:tbl><a:tr><a:tc><a:txBody><a:p><a:r><a:t>Region</a:t></a:r></a:p></a:txBody></a:tc><a:tc><a:txBody><a:p><a:r><a:t>Sales</a:t></a:r></a:p></a:txBody></a:tc></a:tr>
<a:tr><a:tc><a:txBody><a:p><a:r><a:t>East</a:t></a:r></a:p></a:txBody></a:tc><a:tc><a:txBody><a:p><a:r><a:t>12</a:t></a:r></a:p></a:txBody></a:tc></a:tr></a:tbl></a:graphicData></a:graphic></p:graphicFrame>
<p:sp><p:nvSpPr><p:nvPr><p:ph type="sldNum"/></p:nvPr></p:nvSpPr><p:txBody><a:p><a:r><a:t>3</a:t></a:r></a:p></p:txBody></p:sp>
</p:spTree></p:cSld></p:sld>"#;
        assert_eq!(
            shapes(slide, false),
            [
                Block::heading(1, "Q3 results"),
                Block::paragraph("First point"),
                Block::new(BlockKind::Table(vec![
                    vec!["Region".into(), "Sales".into()],
                    vec!["East".into(), "12".into()],
                ])),
            ]
        );
    }
}
