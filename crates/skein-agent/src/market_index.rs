//! The market in memory: every listed public card's sort keys and words, so a search
//! intersects a few posting lists and orders its matches without asking the database, and
//! only the page's rows are read. The tables stay the truth: this process updates a card here
//! after each change it makes (one row read back), and every [`RELOAD_EVERY`] it compares the
//! market's stamps (id, change time, counters) with what it holds, for changes other
//! instances made and the hourly trending scores, reading again only the cards that changed.
//!
//! A search that a common word matches thousands of cards for is a merge of sorted lists and
//! an ordering of those cards, where the SQL path read and sorted thousands of rows. Browsing
//! without words stays in SQL: the market's per-order indexes already read only the page.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use skein_db::{Db, DbResult};
use sqlx::FromRow;

use crate::search::{self, Lookup};
use crate::store::{MarketQuery, Sort};

/// How often the whole market is read again (changes made by other instances, trending).
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// What a search needs of a card.
#[derive(Debug, Clone, FromRow)]
struct CardRow {
    id: String,
    updated_at: i64,
    card_category: Option<String>,
    featured: i64,
    trend_score: i64,
    likes: i64,
    conversations: i64,
    published_at: Option<i64>,
    search_text: String,
}

/// The condition of a card in the market, as the market query and its indexes state it.
const LISTED: &str =
    "visibility = 'public' AND listed = 1 AND deleted_at IS NULL AND published_at IS NOT NULL";

const CARD_COLUMNS: &str = "id, updated_at, card_category, featured, trend_score, likes, conversations, published_at, search_text";

/// What changes without a new text: the periodic comparison reads only these.
#[derive(Debug, Clone, FromRow)]
struct Stamp {
    id: String,
    updated_at: i64,
    featured: i64,
    trend_score: i64,
    likes: i64,
    conversations: i64,
}

/// Cards read back per statement when many changed.
const CHANGED_PER_READ: usize = 200;

/// A listed card.
#[derive(Debug)]
struct Card {
    id: Box<str>,
    /// When its row last changed (a publish changes the text).
    updated_at: i64,
    category: Option<Box<str>>,
    featured: bool,
    trend: i64,
    likes: i64,
    conversations: i64,
    published_at: i64,
    /// Lower-cased name, description and tags: the exact-substring check of terms whose
    /// lookups do not imply it.
    text: Box<str>,
}

impl From<CardRow> for Card {
    fn from(r: CardRow) -> Self {
        Card {
            id: r.id.into(),
            updated_at: r.updated_at,
            category: r.card_category.map(Into::into),
            featured: r.featured == 1,
            trend: r.trend_score,
            likes: r.likes,
            conversations: r.conversations,
            published_at: r.published_at.unwrap_or(0),
            text: r.search_text.into(),
        }
    }
}

/// The market at one moment: cards by slot (a removed card leaves an empty slot until the
/// next reload) and, per term, the slots of the cards that have it, ascending.
#[derive(Debug, Default)]
struct Market {
    cards: Vec<Option<Card>>,
    slots: HashMap<Box<str>, u32>,
    postings: BTreeMap<Box<str>, Vec<u32>>,
}

impl Market {
    fn build(rows: Vec<CardRow>) -> Self {
        let mut market = Market::default();
        for row in rows {
            market.insert(Card::from(row));
        }
        market
    }

    /// Adds `card` at a new slot (the highest, so every posting list stays sorted by pushing).
    fn insert(&mut self, card: Card) {
        let Ok(slot) = u32::try_from(self.cards.len()) else {
            return;
        };
        for term in search::terms_of(&card.text) {
            self.postings.entry(term.into()).or_default().push(slot);
        }
        self.slots.insert(card.id.clone(), slot);
        self.cards.push(Some(card));
    }

    /// Builds the market again from its live cards once removed ones leave more empty slots
    /// than there are cards, so a process that runs for months does not keep every card's
    /// old text position.
    fn compact_if_sparse(&mut self) {
        let live = self.slots.len();
        if self.cards.len() - live <= live.max(1024) {
            return;
        }
        let cards: Vec<Card> = std::mem::take(&mut self.cards)
            .into_iter()
            .flatten()
            .collect();
        *self = Market::default();
        for card in cards {
            self.insert(card);
        }
    }

    /// Takes card `id` out of the market.
    fn remove(&mut self, id: &str) {
        let Some(slot) = self.slots.remove(id) else {
            return;
        };
        if let Some(card) = self.cards.get_mut(slot as usize).and_then(Option::take) {
            for term in search::terms_of(&card.text) {
                if let Some(list) = self.postings.get_mut(term.as_str()) {
                    if let Ok(i) = list.binary_search(&slot) {
                        list.remove(i);
                    }
                    if list.is_empty() {
                        self.postings.remove(term.as_str());
                    }
                }
            }
        }
    }

    /// Replaces card `id` with `card` (a changed text moves it to a new slot).
    fn upsert(&mut self, card: Card) {
        if let Some(&slot) = self.slots.get(&card.id)
            && let Some(Some(old)) = self.cards.get_mut(slot as usize)
            && old.text == card.text
        {
            *old = card;
            return;
        }
        self.remove(&card.id);
        self.insert(card);
    }

    /// The slots with a term `lookup` matches, ascending.
    fn matching(&self, lookup: &Lookup) -> Vec<u32> {
        match lookup {
            Lookup::Exact(term) => self
                .postings
                .get(term.as_str())
                .cloned()
                .unwrap_or_default(),
            Lookup::Prefix(prefix) => {
                let mut out: Vec<u32> = Vec::new();
                for (term, list) in self
                    .postings
                    .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
                {
                    if !term.starts_with(prefix.as_str()) {
                        break;
                    }
                    out.extend_from_slice(list);
                }
                out.sort_unstable();
                out.dedup();
                out
            }
        }
    }

    /// The page of ids `q` asks for, and how many cards match.
    fn search(&self, q: &MarketQuery<'_>) -> (Vec<String>, i64) {
        let mut lookups: Vec<Lookup> = Vec::new();
        for term in q.terms {
            for lookup in search::lookups(term) {
                if !lookups.contains(&lookup) {
                    lookups.push(lookup);
                }
            }
        }
        let texts: Vec<&String> = q
            .terms
            .iter()
            .filter(|t| !search::lookups_suffice(t))
            .collect();
        let keep = |card: &Card| {
            q.category
                .is_none_or(|c| card.category.as_deref() == Some(c))
                && (!q.featured || card.featured)
                && texts.iter().all(|t| card.text.contains(t.as_str()))
        };
        let mut matched: Vec<&Card> = if lookups.is_empty() {
            self.cards.iter().flatten().filter(|c| keep(c)).collect()
        } else {
            let mut lists: Vec<Vec<u32>> = lookups.iter().map(|l| self.matching(l)).collect();
            lists.sort_by_key(Vec::len);
            let mut slots = lists.first().cloned().unwrap_or_default();
            for list in lists.iter().skip(1) {
                slots.retain(|s| list.binary_search(s).is_ok());
                if slots.is_empty() {
                    break;
                }
            }
            slots
                .iter()
                .filter_map(|&s| self.cards.get(s as usize).and_then(Option::as_ref))
                .filter(|c| keep(c))
                .collect()
        };
        let total = i64::try_from(matched.len()).unwrap_or(i64::MAX);
        let offset = usize::try_from(q.offset.max(0)).unwrap_or(usize::MAX);
        let limit = usize::try_from(q.limit.max(0)).unwrap_or(0);
        let end = offset.saturating_add(limit).min(matched.len());
        if offset >= end {
            return (Vec::new(), total);
        }
        // The SQL order, word for word: the sort's keys descending, then the id descending.
        let key = |c: &Card| -> (bool, i64, i64) {
            match q.sort {
                Sort::Trending => (c.featured, c.trend, c.published_at),
                Sort::Newest => (false, c.published_at, 0),
                Sort::MostUsed => (false, c.conversations, c.published_at),
                Sort::MostLiked => (false, c.likes, c.published_at),
            }
        };
        let order = |a: &&Card, b: &&Card| key(b).cmp(&key(a)).then_with(|| b.id.cmp(&a.id));
        // Only the first `end` need ordering: select them, then sort those.
        if end < matched.len() {
            matched.select_nth_unstable_by(end - 1, order);
            matched.truncate(end);
        }
        matched.sort_unstable_by(order);
        let page = matched[offset..end]
            .iter()
            .map(|c| c.id.to_string())
            .collect();
        (page, total)
    }
}

/// The market in memory, once loaded.
#[derive(Debug, Default)]
pub struct MarketIndex {
    market: RwLock<Market>,
    loaded: AtomicBool,
}

impl MarketIndex {
    /// Reads the whole market again and swaps it in; how many cards it holds.
    pub async fn reload(&self, db: &Db) -> DbResult<usize> {
        let rows: Vec<CardRow> =
            sqlx::query_as(&format!("SELECT {CARD_COLUMNS} FROM agents WHERE {LISTED}"))
                .fetch_all(db.pool())
                .await?;
        let n = rows.len();
        // Built outside the lock: searches go on with the old market meanwhile.
        let fresh = Market::build(rows);
        if let Ok(mut market) = self.market.write() {
            *market = fresh;
            self.loaded.store(true, Ordering::Release);
        }
        Ok(n)
    }

    /// Brings the market in memory up to the tables: counters from the stamps, cards whose
    /// row changed (or that are new) read again, cards no longer listed taken out. The first
    /// call reads everything. How many cards were read again.
    pub async fn sync(&self, db: &Db) -> DbResult<usize> {
        if !self.loaded.load(Ordering::Acquire) {
            return self.reload(db).await;
        }
        let stamps: Vec<Stamp> = sqlx::query_as(&format!(
            "SELECT id, updated_at, featured, trend_score, likes, conversations FROM agents WHERE {LISTED}"
        ))
        .fetch_all(db.pool())
        .await?;
        let changed: Vec<String> = match self.market.read() {
            Ok(market) => stamps
                .iter()
                .filter(|st| {
                    market
                        .slots
                        .get(st.id.as_str())
                        .and_then(|&slot| market.cards.get(slot as usize))
                        .and_then(Option::as_ref)
                        .is_none_or(|card| card.updated_at != st.updated_at)
                })
                .map(|st| st.id.clone())
                .collect(),
            Err(_) => return Ok(0),
        };
        let mut rows: Vec<CardRow> = Vec::with_capacity(changed.len());
        for ids in changed.chunks(CHANGED_PER_READ) {
            let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT {CARD_COLUMNS} FROM agents WHERE id IN ({}) AND {LISTED}",
                placeholders.join(", ")
            );
            // One statement per batch size: not worth keeping prepared.
            let mut q = sqlx::query_as::<_, CardRow>(&sql).persistent(false);
            for id in ids {
                q = q.bind(id);
            }
            rows.extend(q.fetch_all(db.pool()).await?);
        }
        let read = rows.len();
        if let Ok(mut market) = self.market.write() {
            let listed: std::collections::HashSet<&str> =
                stamps.iter().map(|st| st.id.as_str()).collect();
            let gone: Vec<Box<str>> = market
                .slots
                .keys()
                .filter(|id| {
                    let id: &str = id;
                    !listed.contains(id)
                })
                .cloned()
                .collect();
            for id in gone {
                market.remove(&id);
            }
            for st in &stamps {
                if let Some(&slot) = market.slots.get(st.id.as_str())
                    && let Some(Some(card)) = market.cards.get_mut(slot as usize)
                {
                    card.featured = st.featured == 1;
                    card.trend = st.trend_score;
                    card.likes = st.likes;
                    card.conversations = st.conversations;
                }
            }
            for row in rows {
                market.upsert(Card::from(row));
            }
            market.compact_if_sparse();
        }
        Ok(read)
    }

    /// How many cards browsing without words finds (category and featured filters), or
    /// `None` before the first load.
    pub fn browse_total(&self, q: &MarketQuery<'_>) -> Option<i64> {
        if !self.loaded.load(Ordering::Acquire) {
            return None;
        }
        let market = self.market.read().ok()?;
        let n = market
            .cards
            .iter()
            .flatten()
            .filter(|c| {
                q.category
                    .is_none_or(|cat| c.category.as_deref() == Some(cat))
                    && (!q.featured || c.featured)
            })
            .count();
        i64::try_from(n).ok()
    }

    /// Reads card `id` back after this process changed it: in the market or out of it.
    pub async fn refresh(&self, db: &Db, id: &str) -> DbResult<()> {
        if !self.loaded.load(Ordering::Acquire) {
            return Ok(());
        }
        let row: Option<CardRow> = sqlx::query_as(&format!(
            "SELECT {CARD_COLUMNS} FROM agents WHERE id = $1 AND {LISTED}"
        ))
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
        if let Ok(mut market) = self.market.write() {
            match row {
                Some(row) => market.upsert(Card::from(row)),
                None => market.remove(id),
            }
            market.compact_if_sparse();
        }
        Ok(())
    }

    /// The page of ids the search `q` asks for and the total, or `None` before the first
    /// load and for browsing without words (the caller asks the database: its per-order
    /// indexes read only the page).
    pub fn search(&self, q: &MarketQuery<'_>) -> Option<(Vec<String>, i64)> {
        if !self.loaded.load(Ordering::Acquire) || q.terms.iter().all(|t| t.trim().is_empty()) {
            return None;
        }
        self.market.read().ok().map(|market| market.search(q))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, text: &str, likes: i64, published_at: i64) -> CardRow {
        CardRow {
            id: id.into(),
            updated_at: published_at,
            card_category: (likes % 2 == 0).then(|| "even".to_string()),
            featured: 0,
            trend_score: likes,
            likes,
            conversations: 0,
            published_at: Some(published_at),
            search_text: text.to_lowercase(),
        }
    }

    fn query<'a>(terms: &'a [String], sort: Sort) -> MarketQuery<'a> {
        MarketQuery {
            terms,
            category: None,
            featured: false,
            sort,
            limit: 2,
            offset: 0,
        }
    }

    #[test]
    fn searches_match_words_as_prefixes_and_cjk_pairs_in_the_sorts_order() {
        let mut market = Market::build(vec![
            row("a", "翻译助手 translator", 5, 1),
            row("b", "English translation coach", 9, 2),
            row("c", "诗歌 poetry", 7, 3),
            row("d", "中英翻译 transit", 1, 4),
        ]);
        let terms = vec!["transl".to_string()];
        assert_eq!(
            market.search(&query(&terms, Sort::MostLiked)),
            (vec!["b".into(), "a".into()], 2)
        );
        let terms = vec!["翻译".to_string()];
        assert_eq!(
            market.search(&query(&terms, Sort::Newest)),
            (vec!["d".into(), "a".into()], 2)
        );
        // Two words: both must match; a page past the end is empty but keeps the total.
        let terms = vec!["翻译".to_string(), "transit".to_string()];
        assert_eq!(
            market.search(&query(&terms, Sort::Newest)).0,
            vec!["d".to_string()]
        );
        let mut past = query(&terms, Sort::Newest);
        past.offset = 4;
        assert_eq!(market.search(&past), (Vec::new(), 1));
        // Browsing with a category; then a card leaves and another's text changes.
        let none: Vec<String> = Vec::new();
        let mut even = query(&none, Sort::MostLiked);
        even.category = Some("even");
        assert_eq!(market.search(&even).1, 0);
        market.remove("b");
        market.upsert(Card::from(row("c", "poetry translator", 7, 3)));
        let terms = vec!["translator".to_string()];
        assert_eq!(
            market.search(&query(&terms, Sort::MostLiked)),
            (vec!["c".into(), "a".into()], 2)
        );
        let terms = vec!["诗歌".to_string()];
        assert_eq!(market.search(&query(&terms, Sort::MostLiked)).1, 0);
        // Republishing a card many times leaves no trail of empty slots.
        for i in 0..3000 {
            market.upsert(Card::from(row(
                "a",
                &format!("翻译助手 translator v{i}"),
                5,
                1,
            )));
            market.compact_if_sparse();
        }
        assert!(
            market.cards.len() <= market.slots.len() + 1024 + 1,
            "{} slots",
            market.cards.len()
        );
        let terms = vec!["translator".to_string()];
        assert_eq!(
            market.search(&query(&terms, Sort::MostLiked)),
            (vec!["c".into(), "a".into()], 2)
        );
        // Punctuation is checked against the text itself.
        let terms = vec!["translator)".to_string()];
        assert_eq!(market.search(&query(&terms, Sort::MostLiked)).1, 0);
    }
}
