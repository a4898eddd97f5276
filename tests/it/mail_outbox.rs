//! The durable outbox through the real binary: with the SMTP server down, sign-ups still
//! succeed and their mails arrive once it is back, also across a gateway restart; two
//! instances on one store send each mail once.

use crate::common::backend::{activation_mail, open_store, Backend};
use crate::common::consts::PW;
use crate::common::http::{client, signup};
use crate::common::poll_until;
use crate::{both_backends, every_store};

/// Failed attempts the gateway has counted so far.
async fn retries(gw: &crate::common::gateway::Gateway) -> f64 {
    let text = gw.metrics_text().await;
    text.lines()
        .filter(|l| l.starts_with("vigile_mail_total{") && l.contains("result=\"retry\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn smtp_down_then_up_loses_nothing(backend: Backend) {
    let mut s = backend.stack("").await;
    let gw = s.gw.url();
    s.smtp.stop();
    for email in ["a@example.com", "b@example.com"] {
        let resp = signup(&client(), &gw, email, PW, PW, "en").await;
        assert_eq!(resp.status(), 200, "sign-up works while mail is down");
    }
    poll_until("a failed send attempt", 400, || async {
        retries(&s.gw).await >= 2.0
    })
    .await;
    assert_eq!(
        open_store(&s).outbox_list().await.unwrap().len(),
        2,
        "kept in the outbox"
    );

    s.smtp.start_again().await;
    for email in ["a@example.com", "b@example.com"] {
        let (_, link) = activation_mail(&s, email, "Activate your account").await;
        assert!(link.contains("token="));
    }
    poll_until("outbox drained", 400, || async {
        open_store(&s).outbox_list().await.unwrap().is_empty()
    })
    .await;
    assert_eq!(s.smtp.count_to("a@example.com"), 1);
}
both_backends!(smtp_down_then_up_loses_nothing);

async fn queued_mail_survives_a_gateway_restart(backend: Backend) {
    let mut s = backend.stack("").await;
    let gw = s.gw.url();
    s.smtp.stop();
    assert_eq!(
        signup(&client(), &gw, "c@example.com", PW, PW, "en")
            .await
            .status(),
        200
    );
    poll_until("a failed send attempt", 400, || async {
        retries(&s.gw).await >= 1.0
    })
    .await;
    s.gw.kill();
    s.smtp.start_again().await;
    s.gw.restart().await;
    let (_, link) = activation_mail(&s, "c@example.com", "Activate your account").await;
    assert_eq!(
        crate::common::http::get(&client(), &link, true)
            .await
            .status(),
        302,
        "the link mailed after the restart works"
    );
}
both_backends!(queued_mail_survives_a_gateway_restart);

async fn two_instances_send_each_mail_once(backend: Backend) {
    let s = backend.stack("").await;
    let second = s.second_instance("").await;
    let emails: Vec<String> = (0..6).map(|i| format!("m{i}@example.com")).collect();
    for (i, email) in emails.iter().enumerate() {
        let gw = if i % 2 == 0 { s.gw.url() } else { second.url() };
        assert_eq!(
            signup(&client(), &gw, email, PW, PW, "en").await.status(),
            200
        );
    }
    for email in &emails {
        activation_mail(&s, email, "Activate your account").await;
    }
    poll_until("outbox drained", 400, || async {
        open_store(&s).outbox_list().await.unwrap().is_empty()
    })
    .await;
    for email in &emails {
        assert_eq!(s.smtp.count_to(email), 1, "{email} got one mail");
    }
}
every_store!(two_instances_send_each_mail_once);
