//! Contact confirmation: the code (and link) that confirms an email address, the text
//! message that confirms a mobile number, and the notices an old address or the account
//! gets when a confirmed one is replaced.

use super::letter::Link;
use super::Mailer;
use crate::i18n::Lang;
use crate::routes::Route;
use crate::store::{Millis, StoreResult, User};

impl Mailer {
    /// The 6-digit code and single-use link confirming `to` (the account's address, or the
    /// new one it asked for, which would then replace `replaces`), in `lang`.
    pub async fn contact_code(
        &self,
        lang: Lang,
        to: &str,
        replaces: Option<&str>,
        code: &str,
        token: &str,
        now: Millis,
    ) -> StoreResult<()> {
        let t = lang.tr();
        let minutes = self.code_minutes();
        let mut l = self.letter(lang, "mail-contact-subject");
        l.paragraphs = vec![t.with("mail-contact-intro", &self.args(to))];
        if let Some(current) = replaces {
            // Whoever reads it can tell whether it was them asking.
            l.paragraphs
                .push(t.with("mail-contact-replaces", &[("current", current.to_string())]));
        }
        l.paragraphs.extend([
            t.with("mail-contact-enter", &[("minutes", minutes.to_string())]),
            code.to_string(),
        ]);
        l.action = Some(Link {
            label: t.get("mail-contact-action"),
            url: self.link(&Route::Contact.with_query(&[("token", token)])),
        });
        l.footer = t.get("mail-ignore");
        self.queue("contact_code", to, l, now).await
    }

    /// To the address a member just replaced: where their account's mail goes now.
    pub async fn email_changed(&self, member: &User, old: &str, now: Millis) -> StoreResult<()> {
        let lang = self.lang_of(member);
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-email-changed-subject");
        l.paragraphs = vec![t.with(
            "mail-email-changed-intro",
            &[
                ("site", self.site()),
                ("old", old.to_string()),
                ("new", member.email.clone()),
            ],
        )];
        l.links = vec![Link {
            label: t.get("mail-code-notme"),
            url: self.link(Route::PasswordForgot.path()),
        }];
        l.footer = t.get("mail-changed-footer");
        self.queue("email_changed", old, l, now).await
    }

    /// To the account's address: its confirmed mobile number was replaced.
    pub async fn mobile_changed(&self, member: &User, now: Millis) -> StoreResult<()> {
        let lang = self.lang_of(member);
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-mobile-changed-subject");
        let new = member.contact.mobile.clone().unwrap_or_default();
        l.paragraphs = vec![t.with(
            "mail-mobile-changed-intro",
            &[
                ("site", self.site()),
                ("email", member.email.clone()),
                ("mobile", new),
            ],
        )];
        l.links = vec![Link {
            label: t.get("mail-code-notme"),
            url: self.link(Route::PasswordForgot.path()),
        }];
        l.footer = t.get("mail-changed-footer");
        self.queue("mobile_changed", &member.email, l, now).await
    }

    /// The text message confirming `to`: one GSM-7 segment in both languages.
    pub async fn sms_code(&self, lang: Lang, to: &str, code: &str, now: Millis) -> StoreResult<()> {
        let text = sms_code_text(lang, &self.host(), code, self.code_minutes());
        self.queue_sms("contact_code", to, text, now).await
    }

    pub(super) fn code_minutes(&self) -> u64 {
        self.config.file.contact.code_ttl.as_secs().div_ceil(60)
    }
}

/// The confirmation text. Words from the catalog; the site's host is cut so the whole
/// stays one segment.
pub fn sms_code_text(lang: Lang, site: &str, code: &str, minutes: u64) -> String {
    let site: String = site.chars().take(40).collect();
    lang.tr().with(
        "sms-contact-code",
        &[
            ("site", site),
            ("code", code.to_string()),
            ("minutes", minutes.to_string()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_text_is_one_segment_with_the_code_once() {
        for lang in [Lang::Fr, Lang::En] {
            let site = "a-rather-long-host-name.courses.example.com";
            let text = sms_code_text(lang, site, "042137", 10);
            assert_eq!(crate::sms::gsm7_segments(&text), 1, "{text}");
            assert_eq!(text.matches("042137").count(), 1, "{text}");
            assert!(text.contains("10 minutes"), "{text}");
        }
        let one = sms_code_text(Lang::En, "x.example", "123456", 1);
        assert!(one.ends_with("(valid 1 minute)."), "{one}");
    }
}
