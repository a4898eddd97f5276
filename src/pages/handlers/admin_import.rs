//! `/_vigile/admin/import`: members from a CSV file, in two steps. The upload (multipart)
//! is previewed: every row with what would become of it, nothing written. The preview's
//! form posts the file back to `/_vigile/admin/import/confirm`, which checks it again from
//! scratch and does it, as `vigile user import` would, the admin named in the audit log.
//!
//! Admins only (a member gets 403, a visitor the login page) before anything is read;
//! both POSTs check the CSRF token before any work.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::StatusCode;

use super::{Ctx, PageResult};
use crate::auth::admin::Admin;
use crate::auth::import::{self, Options, Report};
use crate::pages::console_import::{self, ImportPage, MAX_BODY, MAX_FILE, MAX_ROWS};
use crate::pages::{render, Reply};
use crate::routes::Route;

/// The form's fields other than the file: anything longer is not what the form sends.
const MAX_FIELD: u64 = 4096;

/// What the upload form sent.
#[derive(Debug, Default)]
struct Upload {
    csrf: String,
    invite: bool,
    confirmed: bool,
    /// The chosen file's bytes; `None` when no file was chosen.
    file: Option<Bytes>,
    /// A part was larger than its limit.
    too_large: bool,
    /// Not a multipart body, or not one this form makes.
    broken: bool,
}

/// Reads the multipart upload (with multer: limits per field and for the whole body).
async fn read_upload(ctx: &Ctx<'_, '_>) -> Upload {
    let mut up = Upload::default();
    let boundary = ctx
        .req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok());
    let Some(boundary) = boundary else {
        up.broken = true;
        return up;
    };
    let body = ctx.req.body.clone();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let limits = multer::SizeLimit::new()
        .whole_stream(u64::try_from(MAX_BODY).unwrap_or(u64::MAX))
        .per_field(MAX_FIELD)
        .for_field("file", u64::try_from(MAX_FILE).unwrap_or(u64::MAX));
    let constraints = multer::Constraints::new()
        .allowed_fields(vec!["csrf", "mode", "confirmed", "file"])
        .size_limit(limits);
    let mut parts = multer::Multipart::with_constraints(stream, boundary, constraints);
    loop {
        let field = match parts.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                up.too_large = too_large(&e);
                up.broken = !up.too_large;
                break;
            }
        };
        let name = field.name().unwrap_or_default().to_string();
        let chosen = field.file_name().is_some_and(|n| !n.is_empty());
        let value = match field.bytes().await {
            Ok(v) => v,
            Err(e) => {
                up.too_large = too_large(&e);
                up.broken = !up.too_large;
                break;
            }
        };
        let text = || String::from_utf8_lossy(&value).into_owned();
        match name.as_str() {
            "csrf" => up.csrf = text(),
            "mode" => up.invite = value.as_ref() == b"invite",
            "confirmed" => up.confirmed = !value.is_empty(),
            // A file input with no file chosen sends an empty part with an empty name.
            "file" if chosen || !value.is_empty() => up.file = Some(value),
            _ => {}
        }
    }
    up
}

fn too_large(e: &multer::Error) -> bool {
    matches!(
        e,
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. }
    )
}

fn options(invite: bool, confirmed: bool) -> Options {
    Options {
        invite,
        confirmed,
        max_rows: Some(MAX_ROWS),
    }
}

/// The upload form, with an error (`key` in the catalogs, or text already worded).
fn form(
    ctx: &Ctx<'_, '_>,
    status: StatusCode,
    invite: bool,
    confirmed: bool,
    error: Option<String>,
) -> PageResult {
    let page = ImportPage::form(
        ctx.chrome(Route::AdminImport.path()),
        invite,
        confirmed,
        error,
    );
    Ok(render::page(status, &page))
}

/// The file is over the console's limit.
fn too_big(ctx: &Ctx<'_, '_>, invite: bool, confirmed: bool) -> PageResult {
    let t = ctx.lang().tr();
    let text = t.with(
        "import-file-too-large",
        &[("max", console_import::max_file_label())],
    );
    form(
        ctx,
        StatusCode::PAYLOAD_TOO_LARGE,
        invite,
        confirmed,
        Some(text),
    )
}

/// The report, as a preview or as what was done.
fn report(
    ctx: &Ctx<'_, '_>,
    report: &Report,
    opts: Options,
    data: String,
    done: bool,
) -> PageResult {
    let c = ctx.chrome(Route::AdminImport.path());
    let mut page = ImportPage::report(c, ctx.lang(), report, opts.invite, opts.confirmed, done);
    page.data = data;
    Ok(render::page(StatusCode::OK, &page))
}

pub async fn get(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
    form(ctx, StatusCode::OK, false, false, None)
}

/// `GET /admin/import/confirm` (a bookmark, a reload after a result): back to the form.
pub async fn confirm_get(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
    Ok(Reply::see_other(Route::AdminImport.path()))
}

/// Step 1: the upload, previewed.
pub async fn preview(ctx: &Ctx<'_, '_>) -> PageResult {
    ctx.admin()?;
    if ctx.req.body_too_large {
        // Nothing of the form was kept to check a token against; nothing is done either.
        return too_big(ctx, false, false);
    }
    let up = read_upload(ctx).await;
    ctx.check_csrf(&up.csrf)?;
    let (invite, confirmed) = (up.invite, up.confirmed);
    let t = ctx.lang().tr();
    if up.too_large {
        return too_big(ctx, invite, confirmed);
    }
    if up.broken {
        let text = Some(t.get("import-form-broken"));
        return form(ctx, StatusCode::BAD_REQUEST, invite, confirmed, text);
    }
    let Some(file) = up.file else {
        let text = Some(t.get("import-file-missing"));
        return form(ctx, StatusCode::BAD_REQUEST, invite, confirmed, text);
    };
    let opts = options(invite, confirmed);
    match import::preview(&ctx.app.deps, &file, opts, ctx.now).await? {
        Ok(r) => report(ctx, &r, opts, URL_SAFE_NO_PAD.encode(&file), false),
        Err(e) => {
            let text = Some(console_import::file_error(t, &e));
            form(ctx, StatusCode::BAD_REQUEST, invite, confirmed, text)
        }
    }
}

/// Step 2: the previewed file, checked again and imported.
pub async fn confirm(ctx: &Ctx<'_, '_>) -> PageResult {
    let id = ctx.admin()?;
    if ctx.req.body_too_large {
        return too_big(ctx, false, false);
    }
    let f = ctx.req.form();
    ctx.check_csrf(f.get("csrf"))?;
    let (invite, confirmed) = (f.get("mode") == "invite", !f.get("confirmed").is_empty());
    let t = ctx.lang().tr();
    let Ok(file) = URL_SAFE_NO_PAD.decode(f.get("data")) else {
        let text = Some(t.get("import-form-broken"));
        return form(ctx, StatusCode::BAD_REQUEST, invite, confirmed, text);
    };
    if file.len() > MAX_FILE {
        return too_big(ctx, invite, confirmed);
    }
    let opts = options(invite, confirmed);
    let by = Admin::Page {
        user: &id.user_id,
        ip: ctx.req.client_ip,
    };
    let clock = ctx.app.clock.as_ref();
    match import::apply(&ctx.app.deps, &file, opts, by, clock).await? {
        Ok(r) => report(ctx, &r, opts, String::new(), true),
        Err(e) => {
            let text = Some(console_import::file_error(t, &e));
            form(ctx, StatusCode::BAD_REQUEST, invite, confirmed, text)
        }
    }
}
