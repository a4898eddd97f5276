//! PLACEHOLDER (lead): lets the crate compile while the mail module is being written.
//! The mail engineer replaces this whole file (and may reshape the App/lib wiring).

use crate::i18n::Lang;
use crate::store::{StoreResult, User};

#[derive(Default)]
pub struct Mailer;

impl Mailer {
    pub async fn activation(&self, _user: &User, _token: &str) -> StoreResult<()> {
        Ok(())
    }
    pub async fn account_created(&self, _user: &User) -> StoreResult<()> {
        Ok(())
    }
    pub async fn signup_attempt(&self, _user: &User) -> StoreResult<()> {
        Ok(())
    }
    pub async fn password_reset(&self, _user: &User, _token: &str) -> StoreResult<()> {
        Ok(())
    }
    pub async fn password_changed(&self, _user: &User) -> StoreResult<()> {
        Ok(())
    }
    pub async fn invitation(&self, _email: &str, _lang: Lang) -> StoreResult<()> {
        Ok(())
    }
}
