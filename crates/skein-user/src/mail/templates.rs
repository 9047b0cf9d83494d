//! The mail Skein sends, in English and Chinese, each with a plain-text and an HTML part.
//! Everything a user typed (names) is escaped in the HTML part.

/// The language of a message: the recipient's UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Simplified Chinese.
    Zh,
}

impl Lang {
    /// From a profile's `language` (`zh-CN` or anything else).
    pub fn from_profile(language: &str) -> Lang {
        if language.starts_with("zh") {
            Lang::Zh
        } else {
            Lang::En
        }
    }
}

/// A message to send.
#[derive(Debug, Clone)]
pub enum Template {
    /// "Confirm your email address" with a one-time link.
    VerifyEmail {
        /// The recipient's shown name.
        name: String,
        /// The link to open.
        link: String,
        /// How many hours it works.
        hours: i64,
    },
    /// "Reset your password" with a one-time link.
    PasswordReset {
        /// The recipient's shown name.
        name: String,
        /// The link to open.
        link: String,
        /// How many minutes it works.
        minutes: i64,
    },
    /// Someone asked to move another account to this address, which already has one. Sent in
    /// place of a verification link, so the answer to the request reveals nothing.
    AddressInUse {
        /// Where this address can sign in, or reset its password.
        sign_in_link: String,
    },
    /// A message another service wrote (a monthly statement), in both languages.
    Notice {
        /// The recipient's shown name.
        name: String,
        /// What to say (boxed: it is much larger than the other messages).
        mail: Box<skein_core::api::UserMail>,
        /// The web app's address, that the button's page is joined to.
        base_url: String,
    },
}

/// A rendered message.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// Subject line.
    pub subject: String,
    /// Plain-text part.
    pub text: String,
    /// HTML part.
    pub html: String,
}

impl Template {
    /// A short name for logs and the queue.
    pub fn kind(&self) -> &'static str {
        match self {
            Template::VerifyEmail { .. } => "verify_email",
            Template::PasswordReset { .. } => "password_reset",
            Template::AddressInUse { .. } => "address_in_use",
            Template::Notice { .. } => "notice",
        }
    }

    /// The message in `lang`.
    pub fn render(&self, lang: Lang) -> Rendered {
        let (subject, greeting, lines, button, link, footer) = match (self, lang) {
            (
                Template::Notice {
                    name,
                    mail,
                    base_url,
                },
                lang,
            ) => return notice(name, mail, base_url, lang),
            (Template::VerifyEmail { name, link, hours }, Lang::En) => (
                "Confirm your email address".to_string(),
                format!("Hello {name},"),
                vec!["Open the link below to confirm that this address is yours.".to_string()],
                "Confirm my address",
                link.clone(),
                format!("The link works once, for {hours} hours. If you did not ask for it, ignore this mail."),
            ),
            (Template::VerifyEmail { name, link, hours }, Lang::Zh) => (
                "请验证您的邮箱地址".to_string(),
                format!("{name}，您好："),
                vec!["请打开下面的链接，确认此邮箱地址属于您。".to_string()],
                "验证邮箱",
                link.clone(),
                format!("该链接仅可使用一次，{hours} 小时内有效。如果这不是您的操作，请忽略本邮件。"),
            ),
            (Template::PasswordReset { name, link, minutes }, Lang::En) => (
                "Reset your password".to_string(),
                format!("Hello {name},"),
                vec!["Someone (we hope you) asked to reset the password of your account. Open the link below to choose a new one; every device signed in to the account will be signed out.".to_string()],
                "Choose a new password",
                link.clone(),
                format!("The link works once, for {minutes} minutes. If you did not ask for it, ignore this mail: your password stays as it is."),
            ),
            (Template::PasswordReset { name, link, minutes }, Lang::Zh) => (
                "重置您的密码".to_string(),
                format!("{name}，您好："),
                vec!["有人（希望是您本人）申请重置您账号的密码。请打开下面的链接设置新密码；设置后，所有已登录的设备都会退出登录。".to_string()],
                "设置新密码",
                link.clone(),
                format!("该链接仅可使用一次，{minutes} 分钟内有效。如果这不是您的操作，请忽略本邮件，您的密码不会改变。"),
            ),
            (Template::AddressInUse { sign_in_link }, Lang::En) => (
                "Someone tried to use your email address".to_string(),
                "Hello,".to_string(),
                vec!["Someone asked to move another account to this email address, but an account with this address already exists, so nothing was changed.".to_string(), "If you forgot the password of your account, you can reset it from the sign-in page.".to_string()],
                "Sign in",
                sign_in_link.clone(),
                "If this was not you, there is nothing to do.".to_string(),
            ),
            (Template::AddressInUse { sign_in_link }, Lang::Zh) => (
                "有人尝试使用您的邮箱地址".to_string(),
                "您好：".to_string(),
                vec!["有人申请把另一个账号的邮箱改为此地址，但此地址已有账号，因此没有做任何更改。".to_string(), "如果您忘记了账号密码，可以在登录页面重置。".to_string()],
                "登录",
                sign_in_link.clone(),
                "如果这不是您的操作，无需处理。".to_string(),
            ),
        };
        let text = format!(
            "{greeting}\n\n{}\n\n{link}\n\n{footer}\n\n-- Skein\n",
            lines.join("\n\n")
        );
        let paragraphs: String = lines
            .iter()
            .map(|l| format!("<p>{}</p>", escape(l)))
            .collect();
        let html = format!(
            "<!doctype html><html><body style=\"font-family:system-ui,sans-serif;color:#222;max-width:560px;margin:0 auto;padding:24px\">\
             <p>{}</p>{paragraphs}\
             <p><a href=\"{}\" style=\"display:inline-block;background:#2563eb;color:#fff;padding:10px 18px;border-radius:6px;text-decoration:none\">{}</a></p>\
             <p style=\"font-size:13px;color:#555\">{}<br><a href=\"{}\">{}</a></p>\
             <p style=\"font-size:13px;color:#555\">{}</p><p style=\"font-size:13px;color:#888\">Skein</p></body></html>",
            escape(&greeting),
            escape(&link),
            escape(button),
            if lang == Lang::Zh {
                "按钮无法打开时，请复制此链接到浏览器："
            } else {
                "If the button does not work, copy this link into your browser:"
            },
            escape(&link),
            escape(&link),
            escape(&footer),
        );
        Rendered {
            subject,
            text,
            html,
        }
    }
}

/// A [`Template::Notice`] in `lang`: the greeting, the service's paragraphs, and its button.
fn notice(name: &str, mail: &skein_core::api::UserMail, base_url: &str, lang: Lang) -> Rendered {
    let (text, greeting) = match lang {
        Lang::En => (&mail.en, format!("Hello {name},")),
        Lang::Zh => (&mail.zh, format!("{name}，您好：")),
    };
    let link = text.link.as_ref().map(|(label, path)| {
        (
            label.clone(),
            format!(
                "{}/{}",
                base_url.trim_end_matches('/'),
                path.trim_start_matches('/')
            ),
        )
    });
    let mut plain = format!("{greeting}\n\n{}\n\n", text.lines.join("\n"));
    if let Some((_, url)) = &link {
        plain.push_str(url);
        plain.push_str("\n\n");
    }
    plain.push_str("-- Skein\n");
    let paragraphs: String = text
        .lines
        .iter()
        .map(|l| format!("<p style=\"margin:4px 0\">{}</p>", escape(l)))
        .collect();
    let button = link
        .map(|(label, url)| {
            format!(
                "<p><a href=\"{}\" style=\"display:inline-block;background:#2563eb;color:#fff;padding:10px 18px;border-radius:6px;text-decoration:none\">{}</a></p>",
                escape(&url),
                escape(&label)
            )
        })
        .unwrap_or_default();
    let html = format!(
        "<!doctype html><html><body style=\"font-family:system-ui,sans-serif;color:#222;max-width:560px;margin:0 auto;padding:24px\">\
         <p>{}</p>{paragraphs}{button}<p style=\"font-size:13px;color:#888\">Skein</p></body></html>",
        escape(&greeting)
    );
    Rendered {
        subject: text.subject.clone(),
        text: plain,
        html,
    }
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_html_and_kept_in_text() {
        let t = Template::VerifyEmail {
            name: "<b>Eve</b>".into(),
            link: "https://x.test/verify-email?token=a&b".into(),
            hours: 24,
        };
        let r = t.render(Lang::En);
        assert!(r.text.contains("Hello <b>Eve</b>,"));
        assert!(r.html.contains("&lt;b&gt;Eve&lt;/b&gt;"));
        assert!(!r.html.contains("<b>Eve"));
        assert!(r.html.contains("token=a&amp;b"));
        let zh = t.render(Lang::Zh);
        assert_eq!(zh.subject, "请验证您的邮箱地址");
        assert!(zh.text.contains("24 小时"));
    }
}
