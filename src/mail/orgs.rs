//! The organisation mails: the link to continue a company registration (or, for a taken
//! address, a notice to its owner) and an organisation's invitation (or, for an address
//! that has an account, a notice to its owner).

use super::letter::Link;
use super::Mailer;
use crate::edge::email::Email;
use crate::i18n::Lang;
use crate::routes::Route;
use crate::store::{Millis, StoreResult, User};

impl Mailer {
    /// Step 1 of a company registration: the single-use link to steps 2 and 3.
    pub async fn org_register_link(
        &self,
        email: &Email,
        lang: Lang,
        token: &str,
        now: Millis,
    ) -> StoreResult<()> {
        let t = lang.tr();
        let hours = self.config.file.orgs.step_link_ttl.as_secs().div_ceil(3600);
        let mut l = self.letter(lang, "mail-org-link-subject");
        l.paragraphs = vec![
            t.with("mail-org-link-intro", &self.args(email.as_str())),
            t.with("mail-org-link-validity", &[("hours", hours.to_string())]),
        ];
        l.action = Some(Link {
            label: t.get("mail-org-link-action"),
            url: self.link(&Route::Register.with_query(&[("token", token)])),
        });
        l.footer = t.get("mail-ignore");
        self.queue("org_register_link", email.as_str(), l, now)
            .await
    }

    /// Someone started a company registration with an address that has an account.
    pub async fn org_register_taken(&self, owner: &User, now: Millis) -> StoreResult<()> {
        let lang = self.lang_of(owner);
        let t = lang.tr();
        let mut l = self.letter(lang, "mail-org-taken-subject");
        l.paragraphs = vec![
            t.with("mail-org-taken-intro", &self.args(&owner.email)),
            t.get("mail-attempt-nothing"),
        ];
        l.action = Some(Link {
            label: t.get("mail-attempt-login"),
            url: self.link(Route::Login.path()),
        });
        l.footer = t.get("mail-attempt-footer");
        self.queue("org_register_taken", &owner.email, l, now).await
    }

    /// An organisation invites this address: the link to set a password and join.
    pub async fn org_invitation(
        &self,
        email: &Email,
        lang: Lang,
        company: &str,
        token: &str,
        now: Millis,
    ) -> StoreResult<()> {
        let t = lang.tr();
        let days = self
            .config
            .file
            .signup
            .invite_ttl
            .as_secs()
            .div_ceil(86_400);
        let args = [
            ("site", self.site()),
            ("email", email.to_string()),
            ("company", company.to_string()),
        ];
        let mut l = self.letter(lang, "mail-org-invite-subject");
        l.subject = t.with("mail-org-invite-subject", &args);
        l.paragraphs = vec![
            t.with("mail-org-invite-intro", &args),
            t.with("mail-invite-validity", &[("days", days.to_string())]),
        ];
        l.action = Some(Link {
            label: t.with("mail-org-invite-action", &args),
            url: self.link(&Route::OrgJoin.with_query(&[("token", token)])),
        });
        l.footer = t.get("mail-ignore");
        self.queue("org_invitation", email.as_str(), l, now).await
    }

    /// An organisation invited an address that already has an account: its owner hears,
    /// and nothing changes.
    pub async fn org_invite_taken(
        &self,
        owner: &User,
        company: &str,
        now: Millis,
    ) -> StoreResult<()> {
        let lang = self.lang_of(owner);
        let t = lang.tr();
        let args = [
            ("site", self.site()),
            ("email", owner.email.clone()),
            ("company", company.to_string()),
        ];
        let mut l = self.letter(lang, "mail-org-invite-subject");
        l.subject = t.with("mail-org-invite-subject", &args);
        l.paragraphs = vec![
            t.with("mail-org-invite-taken-intro", &args),
            t.with("mail-org-invite-taken-nothing", &args),
        ];
        l.action = Some(Link {
            label: t.get("mail-attempt-login"),
            url: self.link(Route::Login.path()),
        });
        self.queue("org_invite_taken", &owner.email, l, now).await
    }
}
