//! A monthly statement as a PDF, in English or Chinese, written by hand (PDF 1.4, a few
//! objects, no dependency).
//!
//! Chinese text uses the PDF's predefined Adobe-GB1 font `STSong-Light` with the
//! `UniGB-UCS2-H` encoding (text as UTF-16BE), the standard way to put Chinese in a PDF
//! without embedding a font: every conforming reader (Acrobat, pdf.js, poppler with
//! poppler-data, Preview) maps it to a Song/Ming font it has, and text extraction gives the
//! characters back. Embedding a subset of a CJK font instead would need a font on the server
//! and a font-subsetting crate; the trade-off is written down in `docs/BILLING.md`. Text in
//! plain ASCII (numbers, ids, English) uses Helvetica, whose digit widths right-align the
//! figures.

use skein_core::i18n::Lang;

use crate::statement::Statement;

/// A4, in points.
const PAGE_W: f64 = 595.0;
const PAGE_H: f64 = 842.0;
const LEFT: f64 = 50.0;
const RIGHT: f64 = 545.0;
const COUNT_RIGHT: f64 = 400.0;
const TOP: f64 = 790.0;
const BOTTOM: f64 = 60.0;

/// The statement `s` as a PDF in `lang`; `quota_per_usd` turns quota into dollars.
pub fn render(s: &Statement, lang: Lang, quota_per_usd: i64) -> Vec<u8> {
    let l = Labels::of(lang);
    let mut doc = Pages::default();
    doc.text(LEFT, 16.0, true, l.title);
    doc.down(22.0);
    doc.row(l.month, None, &s.month, 10.0);
    doc.row(
        l.period,
        None,
        &format!("{} – {}", s.period_start, s.period_end),
        10.0,
    );
    doc.row(l.account, None, &s.user_id, 10.0);
    doc.row(
        l.unit,
        None,
        &format!("{} = 1 USD", group(quota_per_usd)),
        10.0,
    );
    doc.down(8.0);
    doc.heading(l.summary);
    for (label, value, strong) in [
        (l.opening, s.opening_balance, true),
        (l.credits, s.credits, false),
        (l.debits, -s.debits, false),
        (l.top_ups, s.top_ups, false),
        (l.consumption, -s.consumption, false),
        (l.refunds, -s.refunds, false),
        (l.closing, s.closing_balance, true),
    ] {
        if strong {
            doc.strong_row(label, &group(value));
        } else {
            doc.row(label, None, &group(value), 10.0);
        }
    }
    doc.heading(l.by_kind);
    doc.columns(l.kind_col, l.entries_col, l.amount_col);
    for k in &s.by_kind {
        doc.row(
            kind_name(&k.kind, lang),
            Some(&group(k.entries)),
            &group(k.amount),
            10.0,
        );
    }
    if !s.by_model.is_empty() {
        doc.heading(l.by_model);
        doc.columns(l.model_col, l.requests_col, l.amount_col);
        for m in &s.by_model {
            doc.row(
                m.name.as_deref().unwrap_or("-"),
                Some(&group(m.requests)),
                &group(m.amount),
                10.0,
            );
        }
    }
    if !s.by_key.is_empty() || s.unattributed != 0 {
        doc.heading(l.by_key);
        doc.columns(l.key_col, l.requests_col, l.amount_col);
        for k in &s.by_key {
            doc.row(
                k.name.as_deref().unwrap_or(l.no_key),
                Some(&group(k.requests)),
                &group(k.amount),
                10.0,
            );
        }
        if s.unattributed != 0 {
            doc.row(l.unattributed, None, &group(s.unattributed), 10.0);
        }
    }
    if !s.orders.is_empty() {
        doc.heading(l.orders);
        for o in &s.orders {
            let paid = format!(
                "{} {}",
                o.currency,
                crate::payment::format_minor(o.amount_minor)
            );
            doc.row(
                &format!(
                    "{}  {}  {}",
                    &o.paid_at[..10.min(o.paid_at.len())],
                    o.provider,
                    o.id
                ),
                Some(&paid),
                &group(o.quota),
                9.0,
            );
        }
    }
    doc.down(10.0);
    doc.text(LEFT, 8.0, false, l.footer);
    doc.finish()
}

/// `1234567` as `1,234,567`.
pub(crate) fn group(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// The words of one language.
struct Labels {
    title: &'static str,
    month: &'static str,
    period: &'static str,
    account: &'static str,
    unit: &'static str,
    summary: &'static str,
    opening: &'static str,
    credits: &'static str,
    debits: &'static str,
    top_ups: &'static str,
    consumption: &'static str,
    refunds: &'static str,
    closing: &'static str,
    by_kind: &'static str,
    by_model: &'static str,
    by_key: &'static str,
    orders: &'static str,
    kind_col: &'static str,
    model_col: &'static str,
    key_col: &'static str,
    entries_col: &'static str,
    requests_col: &'static str,
    amount_col: &'static str,
    no_key: &'static str,
    unattributed: &'static str,
    footer: &'static str,
}

impl Labels {
    fn of(lang: Lang) -> Labels {
        match lang {
            Lang::En => Labels {
                title: "Skein monthly statement",
                month: "Month",
                period: "Period (UTC)",
                account: "Account",
                unit: "Amounts in quota units",
                summary: "Summary",
                opening: "Opening balance",
                credits: "Credits",
                debits: "Debits",
                top_ups: "Top-ups",
                consumption: "Consumption",
                refunds: "Refunds",
                closing: "Closing balance",
                by_kind: "By ledger kind",
                by_model: "Consumption by model",
                by_key: "Consumption by API key",
                orders: "Orders paid (date, provider, order; paid; quota)",
                kind_col: "Kind",
                model_col: "Model",
                key_col: "API key",
                entries_col: "Entries",
                requests_col: "Requests",
                amount_col: "Amount",
                no_key: "(no key: web chat)",
                unattributed: "(unattributed)",
                footer: "Computed from the ledger: closing = opening + credits - debits.",
            },
            Lang::Zh => Labels {
                title: "Skein 月度账单",
                month: "月份",
                period: "账期（UTC）",
                account: "账户",
                unit: "金额单位：额度",
                summary: "汇总",
                opening: "期初余额",
                credits: "收入",
                debits: "支出",
                top_ups: "充值",
                consumption: "消费",
                refunds: "退款",
                closing: "期末余额",
                by_kind: "按账目类型",
                by_model: "按模型消费",
                by_key: "按 API 密钥消费",
                orders: "已支付订单（日期、渠道、订单号；支付金额；额度）",
                kind_col: "类型",
                model_col: "模型",
                key_col: "API 密钥",
                entries_col: "笔数",
                requests_col: "请求数",
                amount_col: "金额",
                no_key: "（无密钥：网页对话）",
                unattributed: "（未归属）",
                footer: "根据账本计算：期末余额 = 期初余额 + 收入 - 支出。",
            },
        }
    }
}

/// A ledger kind's name in `lang`.
fn kind_name(kind: &str, lang: Lang) -> &str {
    let names: &[(&str, &str, &str)] = &[
        ("topup", "Top-up", "充值"),
        ("consume", "Consumption", "消费"),
        ("refund", "Refund", "退款"),
        ("refund_reversal", "Refund turned down", "退款被拒退回"),
        ("subscription", "Subscription", "订阅"),
        ("redeem", "Code redeemed", "兑换码"),
        ("admin_adjust", "Adjustment", "管理员调整"),
        ("signup_grant", "Sign-up grant", "注册赠送"),
        ("invite_reward", "Invite reward", "邀请奖励"),
    ];
    names
        .iter()
        .find(|(k, _, _)| *k == kind)
        .map_or(kind, |(_, en, zh)| match lang {
            Lang::En => en,
            Lang::Zh => zh,
        })
}

/// Helvetica's advance widths (per 1000) of the characters right-aligned figures use;
/// other ASCII is taken as a digit's width.
fn helvetica_width(c: char) -> f64 {
    match c {
        ' ' | ',' | '.' | ':' => 278.0,
        '-' => 333.0,
        'C' | 'D' | 'N' | 'U' => 722.0,
        'S' | 'Y' => 667.0,
        _ => 556.0,
    }
}

/// Pages being written: each page's content stream.
#[derive(Default)]
struct Pages {
    done: Vec<String>,
    current: String,
    y: f64,
    started: bool,
}

impl Pages {
    fn page(&mut self) {
        if self.started {
            let page = std::mem::take(&mut self.current);
            self.done.push(page);
        }
        self.started = true;
        self.y = TOP;
    }

    /// Moves down by `dy`, starting a page when the room runs out.
    fn down(&mut self, dy: f64) {
        if !self.started {
            self.page();
        }
        self.y -= dy;
        if self.y < BOTTOM {
            self.page();
        }
    }

    /// Writes `text` at (`x`, the current line).
    fn text(&mut self, x: f64, size: f64, bold: bool, text: &str) {
        if !self.started {
            self.page();
        }
        let (font, encoded) = if text.is_ascii() {
            (if bold { "F2" } else { "F1" }, literal(text))
        } else {
            ("F3", utf16_hex(text))
        };
        self.current.push_str(&format!(
            "BT /{font} {size} Tf {x:.2} {:.2} Td {encoded} Tj ET\n",
            self.y
        ));
    }

    /// Writes `text` ending at `right`.
    fn text_right(&mut self, right: f64, size: f64, bold: bool, text: &str) {
        let width: f64 = if text.is_ascii() {
            text.chars().map(helvetica_width).sum::<f64>() * size / 1000.0
        } else {
            text.chars()
                .map(|c| if c.is_ascii() { 0.5 } else { 1.0 })
                .sum::<f64>()
                * size
        };
        self.text(right - width, size, bold, text);
    }

    fn heading(&mut self, title: &str) {
        self.down(22.0);
        self.text(LEFT, 12.0, true, title);
        self.down(4.0);
        self.rule();
    }

    fn columns(&mut self, name: &str, count: &str, amount: &str) {
        self.down(14.0);
        self.text(LEFT, 9.0, true, name);
        self.text_right(COUNT_RIGHT, 9.0, true, count);
        self.text_right(RIGHT, 9.0, true, amount);
    }

    fn row(&mut self, label: &str, count: Option<&str>, amount: &str, size: f64) {
        self.down(size + 5.0);
        self.text(LEFT, size, false, label);
        if let Some(count) = count {
            self.text_right(COUNT_RIGHT, size, false, count);
        }
        self.text_right(RIGHT, size, false, amount);
    }

    fn strong_row(&mut self, label: &str, amount: &str) {
        self.down(15.0);
        self.text(LEFT, 10.0, true, label);
        self.text_right(RIGHT, 10.0, true, amount);
    }

    fn rule(&mut self) {
        self.current.push_str(&format!(
            "0.6 G 0.5 w {LEFT} {y:.2} m {RIGHT} {y:.2} l S 0 G\n",
            y = self.y
        ));
    }

    /// The PDF file.
    fn finish(mut self) -> Vec<u8> {
        self.page();
        let pages = self.done;
        // Objects: 1 catalog, 2 page tree, 3-7 fonts (Helvetica, Helvetica-Bold, the Type0
        // Chinese font, its CIDFont and descriptor), then a page and its content each.
        let mut objects: Vec<String> = vec![
            "<< /Type /Catalog /Pages 2 0 R >>".into(),
            String::new(),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                .into(),
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>"
                .into(),
            "<< /Type /Font /Subtype /Type0 /BaseFont /STSong-Light /Encoding /UniGB-UCS2-H /DescendantFonts [6 0 R] >>"
                .into(),
            "<< /Type /Font /Subtype /CIDFontType0 /BaseFont /STSong-Light /CIDSystemInfo << /Registry (Adobe) /Ordering (GB1) /Supplement 2 >> /FontDescriptor 7 0 R /DW 1000 /W [1 95 500] >>"
                .into(),
            "<< /Type /FontDescriptor /FontName /STSong-Light /Flags 6 /FontBBox [-25 -254 1000 880] /ItalicAngle 0 /Ascent 880 /Descent -120 /CapHeight 880 /StemV 93 >>"
                .into(),
        ];
        let mut kids = Vec::new();
        for content in &pages {
            let page_id = objects.len() + 1;
            kids.push(format!("{page_id} 0 R"));
            objects.push(format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] /Resources << /Font << /F1 3 0 R /F2 4 0 R /F3 5 0 R >> >> /Contents {} 0 R >>",
                page_id + 1
            ));
            objects.push(format!(
                "<< /Length {} >>\nstream\n{content}endstream",
                content.len()
            ));
        }
        objects[1] = format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            pages.len()
        );
        let mut out: Vec<u8> = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
        let mut offsets = Vec::with_capacity(objects.len());
        for (i, body) in objects.iter().enumerate() {
            offsets.push(out.len());
            out.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = out.len();
        out.extend_from_slice(
            format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
        );
        for offset in offsets {
            out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        out.extend_from_slice(
            format!(
                "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
                objects.len() + 1
            )
            .as_bytes(),
        );
        out
    }
}

/// An ASCII string as a PDF literal string.
fn literal(text: &str) -> String {
    let mut out = String::from("(");
    for c in text.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push(')');
    out
}

/// Text as a hex string of UTF-16BE code units (UCS-2: characters beyond the BMP become `?`).
fn utf16_hex(text: &str) -> String {
    let mut out = String::from("<");
    for c in text.chars() {
        let unit = u16::try_from(u32::from(c)).unwrap_or(u16::from(b'?'));
        out.push_str(&format!("{unit:04X}"));
    }
    out.push('>');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_are_grouped_and_text_encoded() {
        assert_eq!(group(0), "0");
        assert_eq!(group(1_234_567), "1,234,567");
        assert_eq!(group(-1_000), "-1,000");
        assert_eq!(literal("a (b) \\c"), "(a \\(b\\) \\\\c)");
        assert_eq!(utf16_hex("账A"), "<8D260041>");
    }

    #[test]
    fn the_file_has_a_valid_cross_reference_table() {
        let mut pages = Pages::default();
        for i in 0..80 {
            pages.row(&format!("line {i}"), None, "1", 10.0);
        }
        let pdf = pages.finish();
        let text = String::from_utf8_lossy(&pdf);
        assert!(text.starts_with("%PDF-1.4"));
        assert!(text.contains("/Count 2"), "80 lines take two pages");
        // Every offset in the table points at its object.
        let xref_at: usize = text
            .rsplit("startxref\n")
            .next()
            .and_then(|t| t.lines().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        let table = String::from_utf8_lossy(&pdf[xref_at..]);
        for (i, line) in table
            .lines()
            .skip(3)
            .take_while(|l| l.ends_with(" n "))
            .enumerate()
        {
            let offset: usize = line[..10].parse().unwrap_or_default();
            assert!(
                pdf[offset..].starts_with(format!("{} 0 obj", i + 1).as_bytes()),
                "object {}",
                i + 1
            );
        }
    }
}
