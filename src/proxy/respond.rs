//! Writes a [`Reply`] downstream: the only place Vigile builds a response itself.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use crate::i18n::Lang;
use crate::pages::{render, Reply};

pub async fn write(session: &mut Session, reply: Reply) -> pingora::Result<()> {
    let head_only = session.req_header().method == http::Method::HEAD;
    let mut header = ResponseHeader::build(reply.status, Some(reply.headers.len() + 1))?;
    for (name, value) in reply.headers {
        header.append_header(name, value)?;
    }
    header.insert_header(http::header::CONTENT_LENGTH, reply.body.len().to_string())?;
    let empty = reply.body.is_empty() || head_only;
    session
        .write_response_header(Box::new(header), empty)
        .await?;
    if !empty {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

pub fn bad_gateway(lang: Lang) -> Reply {
    render::message(
        http::StatusCode::BAD_GATEWAY,
        lang,
        "bad-gateway-title",
        "bad-gateway-message",
        None,
    )
}
