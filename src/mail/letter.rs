//! The shape every mail shares (greeting, paragraphs, one action, secondary links,
//! footer, the support address when the site has one), rendered into a text part and an HTML part by one template pair. Each mail's
//! words come from the catalogs (`locales/*/mail.ftl`), never from Rust or templates.

use askama::Template;

use crate::i18n::{Lang, Tr};

pub struct Link {
    pub label: String,
    pub url: String,
}

/// A mail before rendering.
pub struct Letter {
    pub lang: Lang,
    pub site: String,
    pub subject: String,
    pub paragraphs: Vec<String>,
    /// The main button (and the raw link under it, for mail clients that hide buttons).
    pub action: Option<Link>,
    pub links: Vec<Link>,
    pub footer: String,
    /// `site.support_email`: a "Contact us" line under the footer (a mailto link in the
    /// HTML part); `None` shows nothing.
    pub support: Option<Support>,
}

/// The support address and its `mailto:` link.
pub struct Support {
    pub email: String,
    pub mailto: String,
}

#[derive(Template)]
#[template(path = "mail/letter.html")]
struct Html<'a> {
    lang: &'static str,
    site: &'a str,
    subject: &'a str,
    greeting: String,
    paragraphs: &'a [String],
    action: &'a Option<Link>,
    copy_hint: String,
    links: &'a [Link],
    footer: &'a str,
    support: &'a Option<Support>,
    support_label: String,
}

#[derive(Template)]
#[template(path = "mail/letter.txt")]
struct Text<'a> {
    site: &'a str,
    greeting: String,
    paragraphs: &'a [String],
    action: &'a Option<Link>,
    links: &'a [Link],
    footer: &'a str,
    support: &'a Option<Support>,
    support_label: String,
}

/// Subject, text part, HTML part.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Letter {
    pub fn tr(&self) -> Tr {
        self.lang.tr()
    }

    pub fn render(&self) -> Result<Rendered, askama::Error> {
        let t = self.tr();
        let text = Text {
            site: &self.site,
            greeting: t.get("mail-hello"),
            paragraphs: &self.paragraphs,
            action: &self.action,
            links: &self.links,
            footer: &self.footer,
            support: &self.support,
            support_label: t.get("mail-support-contact"),
        }
        .render()?;
        let html = Html {
            lang: self.lang.code(),
            site: &self.site,
            subject: &self.subject,
            greeting: t.get("mail-hello"),
            paragraphs: &self.paragraphs,
            action: &self.action,
            copy_hint: t.get("mail-copy-link"),
            links: &self.links,
            footer: &self.footer,
            support: &self.support,
            support_label: t.get("mail-support-contact"),
        }
        .render()?;
        Ok(Rendered {
            subject: self.subject.clone(),
            text,
            html,
        })
    }
}
