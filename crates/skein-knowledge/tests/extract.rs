//! Extraction of real files (fixtures made by `data/fixtures/make_fixtures.py`) and of hostile
//! ones: every format answers blocks or a typed error, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use proptest::prelude::*;
use skein_knowledge::extract::{
    ExtractError, Format, Limits, extract, extract_pdf_file, extract_with, pdftoppm_available,
    pdftotext_available, tesseract_available,
};
use skein_text::chunk::{Block, BlockKind};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn table(rows: &[&[&str]]) -> BlockKind {
    BlockKind::Table(
        rows.iter()
            .map(|r| r.iter().map(|c| c.to_string()).collect())
            .collect(),
    )
}

#[test]
fn docx_headings_paragraphs_and_tables() {
    let blocks = extract(Format::Docx, &fixture("sample.docx")).unwrap();
    assert_eq!(
        blocks,
        [
            Block::heading(1, "Travel Policy"),
            Block::heading(1, "Hotels"),
            Block::paragraph("Book hotels through the portal; the nightly limit is 150 euros."),
            Block::paragraph("Tabs and breaks stay words & text."),
            Block::new(table(&[&["City", "Limit"], &["Paris", "180"]])),
            Block::heading(2, "差旅住宿"),
            Block::paragraph("上海每晚不超过六百元。"),
        ]
    );
}

#[test]
fn pptx_slides_in_order_with_tables_and_notes() {
    let blocks = extract(Format::Pptx, &fixture("sample.pptx")).unwrap();
    assert_eq!(
        blocks,
        [
            Block::heading(1, "季度回顾").on_page(Some(1)),
            Block::paragraph("收入增长百分之十二。").on_page(Some(1)),
            Block::heading(1, "Results").on_page(Some(2)),
            Block::new(table(&[&["Quarter", "Revenue"], &["Q3", "4.2 M"]])).on_page(Some(2)),
            Block::heading(2, "Speaker notes").on_page(Some(2)),
            Block::paragraph("Mention the new Berlin office.").on_page(Some(2)),
        ]
    );
}

#[test]
fn epub_chapters_in_spine_order() {
    let blocks = extract(Format::Epub, &fixture("sample.epub")).unwrap();
    assert_eq!(
        blocks,
        [
            Block::heading(1, "Chapter One"),
            Block::paragraph("The lighthouse keeper counted ships."),
            Block::heading(1, "第二章 归途"),
            Block::paragraph("船在黎明时靠岸。"),
        ]
    );
}

#[test]
fn pdf_text_by_page_without_running_headers() {
    let blocks = extract(Format::Pdf, &fixture("sample.pdf")).unwrap();
    let texts: Vec<(String, Option<u32>)> = blocks.iter().map(|b| (b.text(), b.page)).collect();
    assert_eq!(
        texts,
        [
            ("Annual leave is fifteen days a year.".to_owned(), Some(1)),
            ("Expenses are filed within sixty days.".to_owned(), Some(2)),
            (
                "Laptops are replaced every three years.".to_owned(),
                Some(3)
            ),
        ]
    );
}

#[test]
fn pdf_chinese_through_to_unicode() {
    let blocks = extract(Format::Pdf, &fixture("sample-cjk.pdf")).unwrap();
    let text: String = blocks.iter().map(Block::text).collect();
    assert_eq!(text.split_whitespace().collect::<String>(), "年假十五天");
}

#[test]
fn a_pdf_without_a_text_layer_has_no_text() {
    assert_eq!(
        extract(Format::Pdf, &fixture("no-text.pdf")),
        Err(ExtractError::NoText { format: "pdf" })
    );
}

/// A PDF read from disk by poppler a range of pages at a time (the path large PDFs take) gives
/// the blocks, pages and errors the in-memory reader gives: on a text PDF, a Chinese one, one
/// without text, a scanned one read by OCR, and a damaged file. Where poppler is missing the
/// disk path stands aside (`None`) and the worker reads the file into memory instead.
#[test]
fn pdfs_read_from_disk_match_pdfs_read_from_memory() {
    let squash = |blocks: &[Block]| -> Vec<(String, Option<u32>)> {
        blocks
            .iter()
            .map(|b| (b.text().split_whitespace().collect::<String>(), b.page))
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let on_disk = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        extract_pdf_file(&path)
    };
    if !pdftotext_available() {
        assert!(on_disk("sample.pdf", &fixture("sample.pdf")).is_none());
        return;
    }
    for name in ["sample.pdf", "sample-cjk.pdf"] {
        let from_disk = on_disk(name, &fixture(name)).unwrap().unwrap();
        let from_memory = extract(Format::Pdf, &fixture(name)).unwrap();
        assert_eq!(squash(&from_disk), squash(&from_memory), "{name}");
    }
    assert_eq!(
        on_disk("no-text.pdf", &fixture("no-text.pdf")).unwrap(),
        Err(ExtractError::NoText { format: "pdf" })
    );
    let sample = fixture("sample.pdf");
    assert!(matches!(
        on_disk("cut.pdf", &sample[..40]).unwrap(),
        Err(ExtractError::Corrupt { .. })
    ));
    // The scanned page: rendered from the file and read by OCR, page number kept.
    let scan = std::fs::read(format!(
        "{}/tests/data/eval/docs/zh-library-closure-scan.pdf",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    match on_disk("scan.pdf", &scan).unwrap() {
        Ok(blocks) => {
            assert!(tesseract_available() && pdftoppm_available());
            let text: String = blocks.iter().map(Block::text).collect();
            assert!(text.contains("自助还书箱"), "{text}");
            assert!(blocks.iter().all(|b| b.page == Some(1)), "{blocks:?}");
        }
        Err(error) => {
            assert!(!tesseract_available(), "{error:?}");
            assert_eq!(error, ExtractError::OcrUnavailable { format: "pdf" });
        }
    }
}

#[test]
fn a_zip_bomb_stops_at_the_limit() {
    let limits = Limits {
        member_bytes: 1 << 20,
        ..Limits::default()
    };
    assert_eq!(
        extract_with(Format::Docx, &fixture("bomb.docx"), limits),
        Err(ExtractError::TooLarge {
            format: "docx",
            limit_bytes: 1 << 20
        })
    );
}

#[test]
fn password_protected_office_files_say_so() {
    assert_eq!(
        extract(Format::Docx, &fixture("encrypted.docx")),
        Err(ExtractError::Encrypted { format: "docx" })
    );
}

#[test]
fn truncated_files_are_corrupt_or_read_as_far_as_they_go() {
    for (format, name) in [
        (Format::Docx, "sample.docx"),
        (Format::Pptx, "sample.pptx"),
        (Format::Epub, "sample.epub"),
        (Format::Pdf, "sample.pdf"),
    ] {
        let bytes = fixture(name);
        let cut = &bytes[..bytes.len() / 2];
        match extract(format, cut) {
            Err(ExtractError::Corrupt { .. } | ExtractError::NoText { .. }) => {}
            // lopdf rebuilds a lost cross-reference table: what survived is read.
            Ok(blocks) if format == Format::Pdf => {
                assert!(blocks[0].text().contains("Annual leave is fifteen days"));
            }
            other => panic!("{name} cut in half: {other:?}"),
        }
    }
    // A DOCX that is a zip without a document.
    assert!(matches!(
        extract(Format::Docx, &fixture("sample.epub")),
        Err(ExtractError::Corrupt { .. })
    ));
}

const ALL: [Format; 9] = [
    Format::Text,
    Format::Markdown,
    Format::Html,
    Format::Csv,
    Format::Json,
    Format::Docx,
    Format::Pptx,
    Format::Epub,
    Format::Pdf,
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any bytes, as any format: blocks or a typed error, and never an empty block.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        for format in ALL {
            if let Ok(blocks) = extract(format, &bytes) {
                prop_assert!(blocks.iter().all(|b| !b.is_empty()));
            }
        }
    }

    /// Real files with bytes flipped (what a damaged download looks like).
    #[test]
    fn damaged_files_never_panic(
        which in 0usize..5,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
    ) {
        let (format, name) = [
            (Format::Docx, "sample.docx"),
            (Format::Pptx, "sample.pptx"),
            (Format::Epub, "sample.epub"),
            (Format::Pdf, "sample.pdf"),
            (Format::Pdf, "sample-cjk.pdf"),
        ][which];
        let mut bytes = fixture(name);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = extract(format, &bytes);
    }

    /// Markup-shaped text: tag soup for the HTML and Markdown readers.
    #[test]
    fn tag_soup_never_panics(text in "[<>/a-z#|`*_\\[\\]()&;:!=\"' \n年假-]{0,400}") {
        for format in [Format::Html, Format::Markdown, Format::Csv, Format::Text] {
            let _ = extract(format, text.as_bytes());
        }
    }
}
