//! Delimited text (RFC 4180 quoting; comma, semicolon or tab, whichever the first line uses
//! most) as one table whose first row is the header. The chunker cuts a big table between
//! rows and repeats the header in every part.

use skein_text::chunk::{Block, BlockKind};

/// The table in `source`.
pub(crate) fn extract(source: &str) -> Vec<Block> {
    let first_line = source.lines().next().unwrap_or("");
    let delimiter = [',', '\t', ';', '|']
        .into_iter()
        .max_by_key(|d| first_line.matches(*d).count())
        .unwrap_or(',');
    let rows: Vec<Vec<String>> = parse(source, delimiter)
        .into_iter()
        .filter(|row| row.iter().any(|c| !c.trim().is_empty()))
        .collect();
    if rows.is_empty() {
        return Vec::new();
    }
    vec![Block::new(BlockKind::Table(rows))]
}

fn parse(source: &str, delimiter: char) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = source.trim_start_matches('\u{FEFF}').chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    cell.push('"');
                    chars.next();
                }
                '"' => quoted = false,
                _ => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.trim().is_empty() => {
                cell.clear();
                quoted = true;
            }
            '\r' => {}
            '\n' => {
                row.push(std::mem::take(&mut cell).trim().to_owned());
                rows.push(std::mem::take(&mut row));
            }
            c if c == delimiter => row.push(std::mem::take(&mut cell).trim().to_owned()),
            _ => cell.push(c),
        }
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell.trim().to_owned());
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_delimiters() {
        let blocks =
            extract("城市,补贴,备注\n北京,300,\"含\"\"交通\"\", 餐饮\"\n\n上海,280,\"多\n行\"\n");
        assert_eq!(
            blocks,
            [Block::new(BlockKind::Table(vec![
                vec!["城市".into(), "补贴".into(), "备注".into()],
                vec!["北京".into(), "300".into(), "含\"交通\", 餐饮".into()],
                vec!["上海".into(), "280".into(), "多\n行".into()],
            ]))]
        );
        let tabs = extract("a\tb\n1\t2");
        assert_eq!(
            tabs,
            [Block::new(BlockKind::Table(vec![
                vec!["a".into(), "b".into()],
                vec!["1".into(), "2".into()]
            ]))]
        );
    }
}
