//! Terms for lexical (BM25) search in Chinese, English and text that mixes them.
//!
//! Neither SQLite FTS5's tokenizers nor PostgreSQL's parser split Chinese into words: a
//! sentence of Han characters becomes one token (or none), so a Chinese keyword never matches.
//! Skein segments text itself, the same way when a chunk is indexed and when a query is asked,
//! and hands the database space-separated terms.
//!
//! [`Analyzer::Words`] cuts runs of Han characters into words with jieba (search mode, which
//! also emits the shorter words inside a long one, so "知识库" matches a query for "知识");
//! kana and hangul runs become overlapping character pairs; everything else is split into
//! runs of letters and digits, lower-cased, with English plurals folded ("policies" →
//! "policy"). [`Analyzer::Bigrams`] replaces jieba with character pairs, and
//! [`Analyzer::Whitespace`] is the naive split on spaces that other platforms use — kept as
//! the baseline the evaluation compares against.

use std::sync::OnceLock;

/// How text becomes search terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Analyzer {
    /// Han runs cut into words by jieba; other scripts as described in the module doc.
    Words {
        /// Drop common function words ("the", "的", "what", "什么") from the terms.
        stopwords: bool,
    },
    /// Han runs as overlapping character pairs (no dictionary); the rest as [`Analyzer::Words`].
    Bigrams {
        /// Drop common function words.
        stopwords: bool,
    },
    /// Split on whitespace only, lower-cased, punctuation trimmed from each end: the baseline
    /// that fails on Chinese, kept for comparison.
    Whitespace,
}

impl Default for Analyzer {
    fn default() -> Self {
        Analyzer::Words { stopwords: true }
    }
}

impl Analyzer {
    /// The terms of `text`, in order, repeats kept (term frequency counts for BM25).
    pub fn terms(self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        match self {
            Analyzer::Whitespace => {
                for word in text.split_whitespace() {
                    let word = word.trim_matches(|c: char| !c.is_alphanumeric());
                    if !word.is_empty() {
                        out.push(word.to_lowercase());
                    }
                }
            }
            Analyzer::Words { stopwords } => split_runs(text, true, stopwords, &mut out),
            Analyzer::Bigrams { stopwords } => split_runs(text, false, stopwords, &mut out),
        }
        out
    }

    /// The terms of `text` joined by single spaces: what the index stores.
    pub fn segmented(self, text: &str) -> String {
        self.terms(text).join(" ")
    }
}

/// What kind of character this is, for cutting text into runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A Han ideograph (Chinese, and kanji).
    Han,
    /// Kana or hangul: no spaces between words, no dictionary here, so character pairs.
    OtherCjk,
    /// A letter or digit of any other script.
    Word,
    /// Anything else separates terms.
    Separator,
}

fn class(c: char) -> Class {
    let u = u32::from(c);
    if matches!(u, 0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x323AF | 0xF900..=0xFAFF | 0x3007)
    {
        Class::Han
    } else if matches!(u, 0x3040..=0x30FF | 0x31F0..=0x31FF | 0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F)
    {
        // The prolonged sound mark and middle dot sit in the kana block but are punctuation.
        if matches!(u, 0x30FB | 0x30A0) {
            Class::Separator
        } else {
            Class::OtherCjk
        }
    } else if c.is_alphanumeric() {
        Class::Word
    } else {
        Class::Separator
    }
}

fn split_runs(text: &str, jieba: bool, stopwords: bool, out: &mut Vec<String>) {
    let mut start = 0;
    let mut current: Option<Class> = None;
    for (i, c) in text.char_indices() {
        let k = class(c);
        if Some(k) != current {
            if let Some(prev) = current {
                emit(&text[start..i], prev, jieba, stopwords, out);
            }
            start = i;
            current = Some(k);
        }
    }
    if let Some(prev) = current {
        emit(&text[start..], prev, jieba, stopwords, out);
    }
}

fn emit(run: &str, class: Class, jieba: bool, stopwords: bool, out: &mut Vec<String>) {
    match class {
        Class::Separator => {}
        Class::Word => {
            let word = run.to_lowercase();
            if !(stopwords && is_stopword(&word)) {
                out.push(stem(&word));
            }
        }
        Class::Han if jieba => match segmenter() {
            Some(j) => {
                for token in j.cut_for_search(run, true) {
                    if !(stopwords && is_stopword(token.word)) {
                        out.push(token.word.to_owned());
                    }
                }
            }
            None => bigrams(run, stopwords, out),
        },
        Class::Han | Class::OtherCjk => bigrams(run, stopwords, out),
    }
}

/// Overlapping character pairs of a run ("知识库" → "知识", "识库"); a lone character is
/// its own term.
fn bigrams(run: &str, stopwords: bool, out: &mut Vec<String>) {
    let chars: Vec<char> = run.chars().collect();
    if chars.len() == 1 {
        let one = chars[0].to_string();
        if !(stopwords && is_stopword(&one)) {
            out.push(one);
        }
        return;
    }
    for pair in chars.windows(2) {
        out.push(pair.iter().collect());
    }
}

fn segmenter() -> Option<&'static jieba_rs::Jieba> {
    static JIEBA: OnceLock<jieba_rs::Jieba> = OnceLock::new();
    // Loading the dictionary takes a moment; it happens once per process.
    Some(JIEBA.get_or_init(jieba_rs::Jieba::new))
}

/// Folds English plurals to the singular ("policies" → "policy", "classes" → "class",
/// "files" → "file"): light enough never to merge unrelated words, which a full Porter
/// stemmer sometimes does ("university" / "universe").
fn stem(word: &str) -> String {
    if word.len() <= 3 || !word.is_ascii() {
        return word.to_owned();
    }
    if let Some(base) = word.strip_suffix("ies")
        && !word.ends_with("eies")
        && !word.ends_with("aies")
    {
        return format!("{base}y");
    }
    for suffix in ["sses", "xes", "ches", "shes", "zzes"] {
        if word.ends_with(suffix) {
            return word[..word.len() - 2].to_owned();
        }
    }
    if let Some(base) = word.strip_suffix('s')
        && !word.ends_with("ss")
        && !word.ends_with("us")
        && !word.ends_with("is")
    {
        return base.to_owned();
    }
    word.to_owned()
}

fn is_stopword(term: &str) -> bool {
    STOPWORDS.binary_search(&term).is_ok()
}

/// Function words and question words in both languages, sorted (binary search). Questions
/// carry many of them ("what is the …", "…是什么"), and matching them says nothing.
const STOPWORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "an", "and", "any", "are", "as", "at", "be", "been",
    "but", "by", "can", "could", "did", "do", "does", "doing", "for", "from", "had", "has", "have",
    "how", "i", "if", "in", "into", "is", "it", "its", "may", "me", "my", "no", "not", "of", "on",
    "or", "our", "shall", "should", "so", "than", "that", "the", "their", "them", "then", "there",
    "these", "they", "this", "those", "to", "us", "was", "we", "were", "what", "when", "where",
    "which", "who", "whom", "why", "will", "with", "would", "you", "your", "一个", "个", "么",
    "也", "了", "什么", "从", "他", "以", "们", "但", "何", "你", "吗", "吧", "呢", "和", "哪",
    "哪个", "哪些", "在", "多少", "如何", "它", "对", "就", "并", "怎么", "怎样", "或", "把", "是",
    "有", "的", "着", "而", "被", "该", "还", "这", "这个", "那", "都",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopwords_are_sorted_for_binary_search() {
        let mut sorted = STOPWORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, STOPWORDS);
    }

    #[test]
    fn chinese_is_cut_into_words_and_english_lowercased() {
        let terms = Analyzer::Words { stopwords: false }.terms("知识库支持PDF文件和Markdown");
        assert!(terms.contains(&"知识".to_owned()), "{terms:?}");
        assert!(terms.contains(&"知识库".to_owned()), "{terms:?}");
        assert!(terms.contains(&"pdf".to_owned()), "{terms:?}");
        assert!(terms.contains(&"markdown".to_owned()), "{terms:?}");
        assert!(terms.contains(&"文件".to_owned()), "{terms:?}");
    }

    #[test]
    fn whitespace_leaves_a_chinese_sentence_whole() {
        let terms = Analyzer::Whitespace.terms("员工每年享有十五天带薪年假。 Annual leave!");
        assert_eq!(terms, ["员工每年享有十五天带薪年假", "annual", "leave"]);
    }

    #[test]
    fn bigrams_cover_a_han_run() {
        let terms = Analyzer::Bigrams { stopwords: false }.terms("年假天数");
        assert_eq!(terms, ["年假", "假天", "天数"]);
    }

    #[test]
    fn plurals_fold_and_stopwords_drop() {
        let terms = Analyzer::default().terms("What are the policies for files and classes?");
        assert_eq!(terms, ["policy", "file", "class"]);
        let terms = Analyzer::default().terms("退款政策是什么？");
        assert_eq!(terms, ["退款", "政策"]);
    }

    #[test]
    fn kana_and_hangul_become_pairs() {
        let terms = Analyzer::default().terms("カタカナ 한국어");
        assert_eq!(terms, ["カタ", "タカ", "カナ", "한국", "국어"]);
    }

    #[test]
    fn no_input_panics_or_yields_empty_terms() {
        for text in ["", "   ", "。！？", "\u{0}\u{FFFF}", "𠀀𠀁", "a\u{300}b"] {
            for analyzer in [
                Analyzer::default(),
                Analyzer::Bigrams { stopwords: true },
                Analyzer::Whitespace,
            ] {
                assert!(analyzer.terms(text).iter().all(|t| !t.is_empty()));
            }
        }
    }
}
