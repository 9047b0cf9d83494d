//! What history is sent upstream: token counting with a real tokenizer, the context window of
//! each model, and trimming the active path to fit the window minus the answer's reserve —
//! always keeping the system prompt and the newest turn.

use crate::config::ChatConfig;
pub use skein_text::tokens::count_tokens;

/// Tokens a chat message costs beyond its text (role and framing), as OpenAI documents for its
/// chat models.
const PER_MESSAGE: usize = 4;

/// Tokens an image part is counted as when trimming (a low-detail image is 85; the budget
/// errs on the side of keeping the window).
const PER_IMAGE: usize = 765;

/// Built-in context windows by model-name prefix, longest prefix first. Dated 2026-11; an
/// admin adds or overrides models with `chat.context_windows`.
const WINDOWS: &[(&str, u32)] = &[
    ("gpt-4o-mini", 128_000),
    ("gpt-4o", 128_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-4-turbo", 128_000),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo", 16_385),
    ("gpt-5", 400_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("claude", 200_000),
    ("gemini-1.5-pro", 2_097_152),
    ("gemini", 1_048_576),
    ("deepseek", 128_000),
    ("qwen", 131_072),
    ("glm", 128_000),
    ("moonshot", 128_000),
    ("kimi", 128_000),
    ("doubao", 128_000),
];

/// The context window of `model`: the configured one, else the built-in table, else the
/// configured default.
pub fn window(config: &ChatConfig, model: &str) -> u32 {
    if let Some(window) = config.context_windows.get(model) {
        return *window;
    }
    let lower = model.to_ascii_lowercase();
    WINDOWS
        .iter()
        .filter(|(prefix, _)| lower.starts_with(prefix))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, window)| *window)
        .unwrap_or(config.default_context_window)
}

/// A turn of history as the trimmer sees it.
pub struct Turn<'a> {
    /// `user` or `assistant`.
    pub role: &'a str,
    /// Its text.
    pub content: &'a str,
    /// How many images it carries.
    pub images: usize,
    /// Tokens of the tool calls and results it carries (see [`tool_call_tokens`]).
    pub tools: usize,
}

/// Tokens a turn costs.
pub fn turn_tokens(turn: &Turn<'_>) -> usize {
    PER_MESSAGE + count_tokens(turn.content) + turn.images * PER_IMAGE + turn.tools
}

/// Tokens a replayed tool call costs: its name, arguments and result, with the framing of
/// the call and of the `tool` message that answers it.
pub fn tool_call_tokens(name: &str, arguments: &str, result: &str) -> usize {
    2 * PER_MESSAGE + count_tokens(name) + count_tokens(arguments) + count_tokens(result)
}

/// How many of the oldest `turns` must be left out so that the rest, plus `fixed` tokens
/// (system prompt, summary), fit `budget`. The newest turn is always kept, even alone over
/// budget (the upstream then says so). `limit` caps the turns kept.
pub fn trim(turns: &[Turn<'_>], fixed: usize, budget: usize, limit: Option<usize>) -> usize {
    let mut used = fixed;
    let mut kept = 0;
    for turn in turns.iter().rev() {
        let cost = turn_tokens(turn);
        if kept > 0 && (used + cost > budget || limit.is_some_and(|l| kept >= l)) {
            break;
        }
        used += cost;
        kept += 1;
    }
    turns.len() - kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tokenizer_counts_real_tokens_not_bytes() {
        assert_eq!(count_tokens(""), 0);
        assert_eq!(count_tokens("hello world"), 2);
        // Chinese: a few characters per token, far fewer tokens than UTF-8 bytes.
        let zh = "你好，世界！今天天气很好。";
        let n = count_tokens(zh);
        assert!(
            n > 0 && n < zh.len() / 2,
            "{n} tokens for {} bytes",
            zh.len()
        );
    }

    #[test]
    fn long_runs_are_counted_in_slices_quickly_and_close_to_the_truth() {
        let prose = "The quick brown fox jumps over the lazy dog. ".repeat(2000);
        let whole = skein_text::tokens::exact_for_tests(&prose);
        let counted = count_tokens(&prose);
        assert!(
            counted >= whole && counted <= whole + whole / 50,
            "{counted} vs {whole}"
        );
        // A 100,000-character run of one character, the tokenizer's worst case, is counted.
        let run = "_".repeat(100_000);
        assert!(count_tokens(&run) > 0);
        let zh = "汉字".repeat(5000);
        assert!(count_tokens(&zh) > 0);
    }

    #[test]
    fn windows_come_from_config_then_the_table_then_the_default() {
        let mut config = ChatConfig::default();
        assert_eq!(window(&config, "gpt-4o-mini-2024-07-18"), 128_000);
        assert_eq!(window(&config, "gpt-4"), 8_192);
        assert_eq!(window(&config, "claude-sonnet-4"), 200_000);
        assert_eq!(window(&config, "my-model"), config.default_context_window);
        config.context_windows.insert("gpt-4".into(), 32_000);
        assert_eq!(window(&config, "gpt-4"), 32_000);
    }

    #[test]
    fn trimming_drops_the_oldest_turns_and_keeps_the_newest() {
        let long = "word ".repeat(100);
        let turns: Vec<Turn<'_>> = (0..10)
            .map(|i| Turn {
                role: if i % 2 == 0 { "user" } else { "assistant" },
                content: &long,
                images: 0,
                tools: 0,
            })
            .collect();
        let each = turn_tokens(&turns[0]);
        // Room for three turns beside a 50-token system prompt.
        assert_eq!(trim(&turns, 50, 50 + 3 * each, None), 7);
        // Everything fits.
        assert_eq!(trim(&turns, 0, 100 * each, None), 0);
        // Nothing fits: the newest turn is still sent.
        assert_eq!(trim(&turns, 0, 1, None), 9);
        // A history limit caps what fits.
        assert_eq!(trim(&turns, 0, 100 * each, Some(4)), 6);
    }
}
