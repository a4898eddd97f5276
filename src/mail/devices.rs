//! The device-cap mails: the member's code, and the notice to the site's admins.

use std::net::IpAddr;

use super::letter::Link;
use super::Mailer;
use crate::edge::email::Email;
use crate::i18n::Lang;
use crate::routes::Route;
use crate::store::{Millis, StoreResult, User};

/// A login past the device cap, as the mails describe it.
pub struct Overflow<'a> {
    pub member: &'a User,
    /// "Chrome on Windows" (already in the reader's language when generic).
    pub device: &'a str,
    pub ip: IpAddr,
    /// Devices signed in when the login was stopped, and the member's limit.
    pub active: u64,
    pub max: u32,
}

impl Mailer {
    /// The 6-digit code a member enters on the verify page to replace a device.
    pub async fn device_code(
        &self,
        o: &Overflow<'_>,
        code: &str,
        minutes: u64,
        now: Millis,
    ) -> StoreResult<()> {
        let lang = self.lang_of(o.member);
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-code-subject");
        l.paragraphs = vec![
            t.with(
                "mail-code-intro",
                &[
                    ("site", self.site()),
                    ("email", o.member.email.clone()),
                    ("device", o.device.to_string()),
                    ("ip", o.ip.to_string()),
                ],
            ),
            t.with(
                "mail-code-limit",
                &[("max", o.max.to_string()), ("active", o.active.to_string())],
            ),
            t.with("mail-code-enter", &[("minutes", minutes.to_string())]),
            code.to_string(),
        ];
        l.links = vec![Link {
            label: t.get("mail-code-notme"),
            url: self.link(Route::PasswordForgot.path()),
        }];
        l.footer = t.get("mail-code-footer");
        self.queue("device_code", &o.member.email, l, now).await
    }

    /// Tells one admin (or `mail.admin_notify` address) that a member went over the cap:
    /// who (name and address), a link to the member's admin page and a `mailto:` link to
    /// write to them.
    pub async fn device_overflow_notice(
        &self,
        to: &str,
        lang: Option<Lang>,
        o: &Overflow<'_>,
        now: Millis,
    ) -> StoreResult<()> {
        let lang = lang.unwrap_or(self.config.default_lang);
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-overflow-subject");
        l.subject = t.with(
            "mail-overflow-subject",
            &[("email", o.member.email.clone()), ("site", self.site())],
        );
        let member = &o.member.email;
        // The verified address first; the name is the member's own free text, so it is
        // quoted and cut short, and cannot pass for the notice's own words.
        let who = match o.member.name.trim() {
            "" => member.clone(),
            name => t.with(
                "mail-overflow-who",
                &[("name", short_name(name)), ("email", member.clone())],
            ),
        };
        l.paragraphs = vec![
            t.with(
                "mail-overflow-intro",
                &[
                    ("member", who),
                    ("site", self.site()),
                    ("device", o.device.to_string()),
                    ("ip", o.ip.to_string()),
                ],
            ),
            t.with(
                "mail-overflow-count",
                &[("max", o.max.to_string()), ("active", o.active.to_string())],
            ),
            t.get("mail-overflow-next"),
        ];
        l.action = Some(Link {
            label: t.get("mail-overflow-action"),
            url: self.link(&Route::AdminMember.with_query(&[("email", member)])),
        });
        // Stored addresses were parsed when they entered (older ones are lower-case
        // ASCII); one that no longer parses gets no mailto link rather than a broken one.
        if let Ok(address) = Email::parse(member) {
            l.links = vec![Link {
                label: t.with("mail-overflow-write", &[("email", member.clone())]),
                url: address.mailto(),
            }];
        }
        l.footer = t.get("mail-overflow-footer");
        self.queue("device_overflow", to, l, now).await
    }
}

/// Longest part of a member's name quoted in an admin's mail, in characters.
const NAME_QUOTED: usize = 60;

fn short_name(name: &str) -> String {
    let mut out: String = name.chars().take(NAME_QUOTED).collect();
    if name.chars().count() > NAME_QUOTED {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_long_name_is_cut_short_for_the_admins() {
        assert_eq!(super::short_name("Ann Lee"), "Ann Lee");
        let long = "Boss (boss@example.com) signed in. ACTION REQUIRED: re-verify at https://evil.example/x";
        let quoted = super::short_name(long);
        assert_eq!(quoted.chars().count(), super::NAME_QUOTED + 1);
        assert!(quoted.ends_with('…') && !quoted.contains("evil.example"));
    }
}
