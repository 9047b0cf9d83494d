//! The market's search index: the words of each published card (name, description, tags) as
//! rows of `agent_terms`, so a search looks up a few index entries instead of scanning every
//! assistant's text with `LIKE`.
//!
//! Words are runs of letters and digits; Chinese, Japanese and Korean text has no spaces, so
//! each of its characters and each pair of neighbours is a term (a query of any length then
//! needs only its pairs). A query word matches words it begins ("lang" finds "language");
//! the `LIKE` on the card's text still runs on the few candidates, so punctuation and the
//! exact substring are checked as before.

use std::collections::BTreeSet;

/// Longest word kept (longer ones are cut; a query word is cut the same way).
const MAX_WORD: usize = 32;

/// Bumped when [`terms_of`] changes, so the service re-indexes every card at start.
pub const TERMS_VERSION: i64 = 1;

/// Whether `c` belongs to a script written without spaces between words.
fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30ff}'   // hiragana, katakana
        | '\u{3400}'..='\u{4dbf}' // CJK extension A
        | '\u{4e00}'..='\u{9fff}' // CJK unified ideographs
        | '\u{ac00}'..='\u{d7af}' // hangul syllables
        | '\u{f900}'..='\u{faff}' // CJK compatibility ideographs
        | '\u{20000}'..='\u{2fa1f}')
}

/// A run of the text: letters and digits, or CJK characters.
enum Run {
    Word(String),
    Cjk(Vec<char>),
}

fn runs(text: &str) -> Vec<Run> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut cjk = Vec::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if is_cjk(c) {
            if !word.is_empty() {
                out.push(Run::Word(std::mem::take(&mut word)));
            }
            cjk.push(c);
        } else if c.is_alphanumeric() {
            if !cjk.is_empty() {
                out.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(Run::Word(std::mem::take(&mut word)));
            }
            if !cjk.is_empty() {
                out.push(Run::Cjk(std::mem::take(&mut cjk)));
            }
        }
    }
    if !word.is_empty() {
        out.push(Run::Word(word));
    }
    if !cjk.is_empty() {
        out.push(Run::Cjk(cjk));
    }
    out
}

fn cut(word: &str) -> String {
    word.chars().take(MAX_WORD).collect()
}

/// The index terms of a card's text: each word, and each CJK character and pair.
pub fn terms_of(text: &str) -> BTreeSet<String> {
    let mut terms = BTreeSet::new();
    for run in runs(text) {
        match run {
            Run::Word(w) => {
                terms.insert(cut(&w));
            }
            Run::Cjk(chars) => {
                for (i, c) in chars.iter().enumerate() {
                    terms.insert(c.to_string());
                    if let Some(next) = chars.get(i + 1) {
                        terms.insert([*c, *next].iter().collect());
                    }
                }
            }
        }
    }
    terms
}

/// One lookup a query term needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A term equal to this (a CJK character or pair).
    Exact(String),
    /// A term beginning with this (a word).
    Prefix(String),
}

impl Lookup {
    /// The condition on `t.term` (of `agent_terms t`) it needs, its parameters numbered by
    /// `param`: equality, or the range `[prefix, prefix + U+10FFFF)` in byte order (SQLite's
    /// default, and the column's `COLLATE "C"` on PostgreSQL).
    pub fn condition(&self, mut param: impl FnMut(String) -> String) -> String {
        match self {
            Lookup::Exact(t) => format!("t.term = {}", param(t.clone())),
            Lookup::Prefix(t) => {
                let from = param(t.clone());
                let to = param(format!("{t}\u{10ffff}"));
                format!("t.term >= {from} AND t.term < {to}")
            }
        }
    }
}

/// The lookups every card matching the search term `term` has; none when the term has no
/// letters, digits or CJK characters (then only the `LIKE` decides).
pub fn lookups(term: &str) -> Vec<Lookup> {
    let mut out = Vec::new();
    for run in runs(term) {
        match run {
            Run::Word(w) => out.push(Lookup::Prefix(cut(&w))),
            Run::Cjk(chars) if chars.len() == 1 => out.push(Lookup::Exact(chars[0].to_string())),
            Run::Cjk(chars) => {
                for pair in chars.windows(2) {
                    out.push(Lookup::Exact(pair.iter().collect()));
                }
            }
        }
    }
    out.dedup();
    out
}

/// Whether every card found through [`lookups`] of `term` contains `term` itself, so the
/// `LIKE` that checks the exact text can be left out: a term that is one word (of at most
/// [`MAX_WORD`] characters; a word it begins contains it), or one or two CJK characters.
pub fn lookups_suffice(term: &str) -> bool {
    if !term.chars().all(|c| c.is_alphanumeric()) {
        return false;
    }
    match runs(term).as_slice() {
        [Run::Word(w)] => w.chars().count() <= MAX_WORD && w.as_str() == term,
        [Run::Cjk(chars)] => chars.len() <= 2 && chars.iter().collect::<String>() == term,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_are_indexed_by_words_and_cjk_characters_and_pairs() {
        let terms = terms_of("翻译助手\nReviews 100% of your_code");
        for t in [
            "翻", "译", "助", "手", "翻译", "译助", "助手", "reviews", "100", "of", "your", "code",
        ] {
            assert!(terms.contains(t), "{t} in {terms:?}");
        }
        assert!(!terms.contains("翻译助手"));
        assert!(!terms.contains("%"));
    }

    #[test]
    fn a_query_needs_its_words_as_prefixes_and_its_cjk_pairs() {
        assert_eq!(lookups("翻译"), [Lookup::Exact("翻译".into())]);
        assert_eq!(
            lookups("互译地道"),
            [
                Lookup::Exact("互译".into()),
                Lookup::Exact("译地".into()),
                Lookup::Exact("地道".into())
            ]
        );
        assert_eq!(lookups("译"), [Lookup::Exact("译".into())]);
        assert_eq!(
            lookups("Lang翻"),
            [Lookup::Prefix("lang".into()), Lookup::Exact("翻".into())]
        );
        assert!(lookups("%_\\").is_empty());
        // Every lookup of a term is among the terms of any text containing it.
        let text = "中英文互译，地道自然 language";
        let terms = terms_of(text);
        for q in ["互译", "地道自然", "lang", "英文"] {
            for l in lookups(q) {
                let found = match &l {
                    Lookup::Exact(t) => terms.contains(t),
                    Lookup::Prefix(p) => terms.iter().any(|t| t.starts_with(p.as_str())),
                };
                assert!(found, "{q}: {l:?} in {terms:?}");
            }
        }
        let mut n = 0;
        let sql = Lookup::Prefix("lang".into()).condition(|_| {
            n += 1;
            format!("${n}")
        });
        assert_eq!(sql, "t.term >= $1 AND t.term < $2");
    }

    #[test]
    fn the_exact_text_is_checked_unless_the_lookups_imply_it() {
        for term in ["translator", "翻译", "译", "100"] {
            assert!(lookups_suffice(term), "{term}");
        }
        // Pairs found apart, punctuation, mixed scripts, upper case (never sent: terms are
        // lower-cased first) all need the text itself.
        for term in ["地道自然", "your_code", "100%", "lang翻", "Translator", ""] {
            assert!(!lookups_suffice(term), "{term}");
        }
    }
}
