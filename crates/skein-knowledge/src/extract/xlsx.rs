//! Excel workbooks (Office Open XML): each sheet, in workbook order, as a heading with the
//! sheet's name and one table whose first non-empty row is the header — so the chunker cuts
//! big sheets between rows and repeats the header in every part, as for CSV. Cells are read
//! as Excel stores them: shared strings, inline strings, numbers and booleans as written
//! (formulas by their cached value); empty rows and columns left of the data are dropped.
//! Read within the same zip limits as Word files (a zip bomb is refused).

use std::collections::HashMap;

use skein_text::chunk::{Block, BlockKind};

use super::ooxml::{Archive, relationships};
use super::xml::{Event, Reader};
use super::{ExtractError, Format, Limits};

/// The most columns a row keeps (Excel's own limit is 16,384).
const MAX_COLUMNS: usize = 256;

/// The blocks of a workbook.
pub(crate) fn extract(bytes: &[u8], limits: Limits) -> Result<Vec<Block>, ExtractError> {
    let mut archive = Archive::open(bytes, Format::Xlsx, limits)?;
    let workbook = archive.required("xl/workbook.xml")?;
    let rels = relationships(&mut archive, "xl/workbook.xml")?;
    let by_id: HashMap<&str, &str> = rels
        .iter()
        .filter(|(_, kind, _)| kind == "worksheet")
        .map(|(id, _, target)| (id.as_str(), target.as_str()))
        .collect();
    // <sheet name="Rates" sheetId="1" r:id="rId1"/>: as for slides, the `id` that names a
    // relationship is the one.
    let sheets: Vec<(String, String)> = Reader::new(&workbook)
        .filter_map(|e| match &e {
            Event::Start {
                name: "sheet",
                attrs,
                ..
            } => {
                let target = attrs
                    .iter()
                    .filter(|(k, _)| *k == "id")
                    .find_map(|(_, v)| by_id.get(v.as_str()))?;
                Some((
                    e.attr("name").unwrap_or("Sheet").to_owned(),
                    (*target).to_owned(),
                ))
            }
            _ => None,
        })
        .collect();
    let shared = match archive.text("xl/sharedStrings.xml")? {
        Some(xml) => shared_strings(&xml),
        None => Vec::new(),
    };
    let mut blocks = Vec::new();
    for (name, part) in sheets {
        let Some(xml) = archive.text(&part)? else {
            continue;
        };
        let rows = sheet_rows(&xml, &shared);
        if rows.is_empty() {
            continue;
        }
        blocks.push(Block::heading(1, name));
        blocks.push(Block::new(BlockKind::Table(rows)));
    }
    Ok(blocks)
}

/// The shared strings table: `<si>` items, each the text of its `<t>` runs (phonetic
/// `<rPh>` runs left out).
fn shared_strings(xml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let (mut in_t, mut in_phonetic) = (false, false);
    for event in Reader::new(xml) {
        match event {
            Event::Start {
                name: "si", empty, ..
            } => {
                if empty {
                    out.push(String::new());
                } else {
                    current = Some(String::new());
                }
            }
            Event::End { name: "si" } => out.push(current.take().unwrap_or_default()),
            Event::Start {
                name: "rPh",
                empty: false,
                ..
            } => in_phonetic = true,
            Event::End { name: "rPh" } => in_phonetic = false,
            Event::Start {
                name: "t",
                empty: false,
                ..
            } => in_t = true,
            Event::End { name: "t" } => in_t = false,
            Event::Text(text) if in_t && !in_phonetic => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&text);
                }
            }
            _ => {}
        }
    }
    out
}

/// The column index of a cell reference ("C7" → 2).
fn column(reference: &str) -> Option<usize> {
    let letters: String = reference
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    if letters.is_empty() {
        return None;
    }
    letters
        .chars()
        .try_fold(0usize, |n, c| {
            let digit = (c.to_ascii_uppercase() as usize).checked_sub('A' as usize)? + 1;
            n.checked_mul(26)?.checked_add(digit)
        })
        .map(|n| n - 1)
}

/// A sheet's rows of cell texts, empty rows dropped and every row as wide as the widest.
fn sheet_rows(xml: &str, shared: &[String]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut row: Vec<String> = Vec::new();
    // The cell being read: (column, type), and its value/inline text so far.
    let mut cell: Option<(usize, String)> = None;
    let mut value = String::new();
    let mut in_value = false;
    for event in Reader::new(xml) {
        match &event {
            Event::Start {
                name: "row", empty, ..
            } => {
                row.clear();
                if *empty {
                    rows.push(Vec::new());
                }
            }
            Event::End { name: "row" } => rows.push(std::mem::take(&mut row)),
            Event::Start {
                name: "c", empty, ..
            } => {
                let at = event.attr("r").and_then(column).unwrap_or(row.len());
                let kind = event.attr("t").unwrap_or("n").to_owned();
                value.clear();
                if *empty {
                    cell = None;
                } else {
                    cell = Some((at, kind));
                }
            }
            Event::End { name: "c" } => {
                if let Some((at, kind)) = cell.take() {
                    let text = match kind.as_str() {
                        "s" => value
                            .trim()
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| shared.get(i).cloned())
                            .unwrap_or_default(),
                        "b" => if value.trim() == "1" { "TRUE" } else { "FALSE" }.to_owned(),
                        _ => value.clone(),
                    };
                    let text = super::squash(&text);
                    if at < MAX_COLUMNS && !text.is_empty() {
                        if row.len() <= at {
                            row.resize(at + 1, String::new());
                        }
                        row[at] = text;
                    }
                }
            }
            // <v> holds a value (a shared string's index for t="s"); <t> inside <is> an
            // inline string. A formula's <f> is skipped: its cached <v> is what Excel shows.
            Event::Start {
                name: "v" | "t",
                empty: false,
                ..
            } => in_value = cell.is_some(),
            Event::End { name: "v" | "t" } => in_value = false,
            Event::Text(text) if in_value => value.push_str(text),
            _ => {}
        }
    }
    let mut rows: Vec<Vec<String>> = rows
        .into_iter()
        .filter(|r| r.iter().any(|c| !c.is_empty()))
        .collect();
    // Columns left of the data (a sheet that starts at C3) are not part of the table.
    let first = rows
        .iter()
        .filter_map(|r| r.iter().position(|c| !c.is_empty()))
        .min()
        .unwrap_or(0);
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    for r in &mut rows {
        r.resize(width, String::new());
        r.drain(..first.min(r.len()));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_come_from_references() {
        assert_eq!(column("A1"), Some(0));
        assert_eq!(column("C7"), Some(2));
        assert_eq!(column("AA10"), Some(26));
        assert_eq!(column("17"), None);
    }

    #[test]
    fn cells_are_read_as_excel_shows_them() {
        let shared = shared_strings(
            r#"<sst><si><t>City</t></si><si><r><t>Li</t></r><r><t>mit</t></r><rPh><t>x</t></rPh></si><si/><si><t>北京</t></si></sst>"#,
        );
        assert_eq!(shared, ["City", "Limit", "", "北京"]);
        let rows = sheet_rows(
            r#"<worksheet><sheetData>
            <row r="2"><c r="B2" t="s"><v>0</v></c><c r="C2" t="s"><v>1</v></c></row>
            <row r="3"/>
            <row r="4"><c r="B4" t="s"><v>3</v></c><c r="C4"><f>SUM(A1)</f><v>650</v></c><c r="D4" t="b"><v>1</v></c></row>
            <row r="5"><c r="C5" t="inlineStr"><is><t>inline &amp; text</t></is></c></row>
            </sheetData></worksheet>"#,
            &shared,
        );
        assert_eq!(
            rows,
            [
                vec!["City", "Limit", ""],
                vec!["北京", "650", "TRUE"],
                vec!["", "inline & text", ""],
            ]
        );
    }
}
