//! Second factors: the sign-in code by mail or text, and the notices a member gets when a
//! recovery code is spent or an admin removed their factors.

use super::letter::Link;
use super::Mailer;
use crate::i18n::Lang;
use crate::routes::Route;
use crate::store::{Millis, StoreResult, User};

impl Mailer {
    /// The 6-digit sign-in code (second step of a login, or enrolling this address).
    pub async fn second_factor_code(
        &self,
        lang: Lang,
        to: &str,
        code: &str,
        now: Millis,
    ) -> StoreResult<()> {
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-2fa-subject");
        l.paragraphs = vec![
            t.with("mail-2fa-intro", &self.args(to)),
            t.with(
                "mail-2fa-enter",
                &[("minutes", self.code_minutes().to_string())],
            ),
            code.to_string(),
        ];
        l.footer = t.get("mail-2fa-footer");
        self.queue("twofactor_code", to, l, now).await
    }

    /// The same code by text message: one GSM-7 segment.
    pub async fn second_factor_sms(
        &self,
        lang: Lang,
        to: &str,
        code: &str,
        now: Millis,
    ) -> StoreResult<()> {
        let site: String = self.host().chars().take(40).collect();
        let text = lang.tr().with(
            "sms-2fa-code",
            &[
                ("site", site),
                ("code", code.to_string()),
                ("minutes", self.code_minutes().to_string()),
            ],
        );
        self.queue_sms("twofactor_code", to, text, now).await
    }

    /// A recovery code was used to sign in: the member learns it (and how many are left).
    pub async fn recovery_code_used(
        &self,
        member: &User,
        left: usize,
        now: Millis,
    ) -> StoreResult<()> {
        let lang = self.lang_of(member);
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-recovery-used-subject");
        l.paragraphs = vec![t.with(
            "mail-recovery-used-intro",
            &[("site", self.site()), ("left", left.to_string())],
        )];
        l.action = Some(Link {
            label: t.get("mail-2fa-manage"),
            url: self.link(Route::AccountTwoFactor.path()),
        });
        l.footer = t.get("mail-changed-footer");
        self.queue("recovery_code_used", &member.email, l, now)
            .await
    }

    /// A second factor was added to or removed from the member's account: if it was not
    /// them, someone holds their session and password.
    pub async fn twofactor_changed(
        &self,
        member: &User,
        added: bool,
        method_key: &str,
        now: Millis,
    ) -> StoreResult<()> {
        let lang = self.lang_of(member);
        let t = lang.tr();
        let (subject, intro, kind) = if added {
            (
                "mail-2fa-added-subject",
                "mail-2fa-added-intro",
                "twofactor_added",
            )
        } else {
            (
                "mail-2fa-removed-subject",
                "mail-2fa-removed-intro",
                "twofactor_removed",
            )
        };
        let mut l = self.letter(lang, subject);
        l.paragraphs = vec![t.with(
            intro,
            &[("site", self.site()), ("method", t.get(method_key))],
        )];
        l.action = Some(Link {
            label: t.get("mail-2fa-manage"),
            url: self.link(Route::AccountTwoFactor.path()),
        });
        l.footer = t.get("mail-changed-footer");
        self.queue(kind, &member.email, l, now).await
    }

    /// An admin removed every second factor of the member (a lost phone, say).
    pub async fn twofactor_reset(&self, member: &User, now: Millis) -> StoreResult<()> {
        let lang = self.lang_of(member);
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-2fa-reset-subject");
        l.paragraphs = vec![t.with("mail-2fa-reset-intro", &[("site", self.site())])];
        l.action = Some(Link {
            label: t.get("mail-2fa-manage"),
            url: self.link(Route::AccountTwoFactor.path()),
        });
        l.footer = t.get("mail-changed-footer");
        self.queue("twofactor_reset", &member.email, l, now).await
    }
}

#[cfg(test)]
mod tests {
    use crate::i18n::Lang;

    #[test]
    fn the_sign_in_text_is_one_segment() {
        for lang in [Lang::Fr, Lang::En] {
            let text = lang.tr().with(
                "sms-2fa-code",
                &[
                    ("site", "a-rather-long-host-name.courses.example.c".into()),
                    ("code", "042137".into()),
                    ("minutes", "10".into()),
                ],
            );
            assert_eq!(crate::sms::gsm7_segments(&text), 1, "{text}");
            assert_eq!(text.matches("042137").count(), 1, "{text}");
        }
    }
}
