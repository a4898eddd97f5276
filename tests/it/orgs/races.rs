//! Racing completions: 20 browsers pressing "Sign in" on step 3 of one link at once, and
//! two links mailed to one address completed together, each create exactly one
//! organisation and one account; the others are told the link is spent or the address
//! has an account now.

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::PW;
use crate::common::http::client;

/// 20 browsers opened the same link and reached step 3; all press "Sign in" at once.
async fn twenty_racing_completions_create_one_org(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    step1_ok(&client(), &gw, OWNER).await;
    let link = step_link(&s, OWNER).await;
    let mut ready = Vec::new();
    for _ in 0..20 {
        let c = client();
        let (form, _) = step3_form(&c, &gw, &link, &ACME).await;
        ready.push((c, form));
    }
    let posts: Vec<_> = ready
        .into_iter()
        .map(|(c, form)| {
            let gw = gw.clone();
            tokio::spawn(async move {
                let resp = step3(&c, &gw, &form, PW).await;
                (resp.status().as_u16(), sets_session(&resp), c)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut winners = Vec::new();
    for p in posts {
        let (status, signed_in, c) = p.await.unwrap();
        statuses.push(status);
        if status == 303 {
            assert!(signed_in, "the winner is signed in");
            winners.push(c);
        } else {
            assert!(!signed_in, "a {status} signed someone in");
        }
    }
    statuses.sort_unstable();
    let mut expected = vec![303];
    expected.extend([410; 19]);
    assert_eq!(statuses, expected);

    let store = open_store(&s);
    let orgs = store.org_list().await.unwrap();
    assert_eq!(orgs.len(), 1, "{orgs:?}");
    assert_eq!(org_list_lines(&s, COMPANY).await.len(), 1);
    assert_eq!(store.org_members(&orgs[0].id).await.unwrap().len(), 1);
    assert_eq!(store.user_list().await.unwrap().len(), 1);
    let me = api_me(&winners[0], &gw).await;
    assert_eq!(me["org"].as_str(), Some(orgs[0].id.as_str()), "{me}");
}
both_backends!(twenty_racing_completions_create_one_org);

/// Two step-1 mails for one address (two links), both completed at once: one account;
/// the other is told the address has an account now.
async fn two_links_for_one_address_create_one_account(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    step1_ok(&client(), &gw, OWNER).await;
    step1_ok(&client(), &gw, OWNER).await;
    let links = step_links(&s, OWNER, 2).await;
    assert_ne!(links[0], links[1]);
    let mut posts = Vec::new();
    for (i, link) in links.iter().enumerate() {
        let c = client();
        let company = Company {
            company: if i == 0 { "First Ltd" } else { "Second Ltd" },
            ..ACME
        };
        let (form, _) = step3_form(&c, &gw, link, &company).await;
        let gw = gw.clone();
        posts.push(tokio::spawn(async move {
            text(step3(&c, &gw, &form, PW).await).await
        }));
    }
    let mut answers = Vec::new();
    for p in posts {
        answers.push(p.await.unwrap());
    }
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(answers[0].0, 303, "{answers:?}");
    assert_eq!(answers[1].0, 409, "{}", answers[1].1);
    assert!(
        answers[1].1.contains("already has an account"),
        "{}",
        answers[1].1
    );
    let store = open_store(&s);
    assert_eq!(store.org_list().await.unwrap().len(), 1);
    assert_eq!(store.user_list().await.unwrap().len(), 1);
}
both_backends!(two_links_for_one_address_create_one_account);
