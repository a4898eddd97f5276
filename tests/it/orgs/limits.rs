//! Step 2's rules at their edges: lengths (company 1..200, address 1..500, "other" 1..100),
//! a SIRET of 13 digits, a French VAT number whose key is wrong, another country's VAT
//! shape; and national phone numbers read in `site.phone_region`.

use super::*;
use crate::both_backends;
use crate::common::backend::{open_store, Backend};
use crate::common::consts::PW;
use crate::common::http::client;

async fn step2_rules_at_their_edges(backend: Backend) {
    let s = backend.stack("").await;
    let gw = s.gw.url();
    let c = client();
    step1_ok(&c, &gw, OWNER).await;
    let link = step_link(&s, OWNER).await;
    let (c200, c201) = ("C".repeat(200), "C".repeat(201));
    let (a500, a501) = ("A".repeat(500), "A".repeat(501));
    let (o100, o101) = ("O".repeat(100), "O".repeat(101));

    let refused = [
        (
            Company {
                company: &c201,
                ..ACME
            },
            "company",
        ),
        (
            Company {
                company: "",
                ..ACME
            },
            "company",
        ),
        (
            Company {
                address: &a501,
                ..ACME
            },
            "address",
        ),
        (
            Company {
                id_type: "other",
                id_number: &o101,
                ..ACME
            },
            "id_number",
        ),
        (
            Company {
                id_type: "other",
                id_number: "",
                ..ACME
            },
            "id_number",
        ),
        (
            Company {
                id_type: "vat",
                id_number: "FR45732829320",
                ..ACME
            },
            "id_number",
        ),
        (
            Company {
                id_number: "732 829 320 0007",
                ..ACME
            },
            "id_number",
        ),
    ];
    for (typed, field) in refused {
        let (status, page) = text(step2(&c, &gw, &link, &typed).await).await;
        assert_eq!(status, 400, "{field} of {typed:?}:\n{page}");
        assert!(
            error_next_to(&page, field),
            "{field} of {typed:?}:\n{}",
            field_block(&page, field)
        );
    }

    let accepted = [
        Company {
            company: &c200,
            ..ACME
        },
        Company {
            address: &a500,
            ..ACME
        },
        Company {
            id_type: "other",
            id_number: &o100,
            ..ACME
        },
        Company {
            id_type: "vat",
            id_number: "DE123456789",
            ..ACME
        },
    ];
    for typed in accepted {
        let (status, page) = text(step2(&c, &gw, &link, &typed).await).await;
        assert_eq!(status, 200, "{typed:?}:\n{page}");
    }
    assert!(open_store(&s).org_list().await.unwrap().is_empty());
}
both_backends!(step2_rules_at_their_edges);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_region_decides_national_numbers() {
    let s = Backend::Sqlite
        .stack("[site]\nphone_region = \"BE\"\n")
        .await;
    let gw = s.gw.url();
    for (email, typed, stored) in [
        ("be@example.com", "0470 12 34 56", "+32470123456"),
        ("fr@example.com", "+33 6 12 34 56 78", PHONE_E164),
    ] {
        let c = client();
        step1_ok(&c, &gw, email).await;
        let link = step_link(&s, email).await;
        let company = Company {
            phone: typed,
            ..ACME
        };
        let (form, _) = step3_form(&c, &gw, &link, &company).await;
        assert_eq!(redirect(step3(&c, &gw, &form, PW).await).await.0, 303);
        let page = crate::common::http::decode_entities(&org_page(&c, &gw).await);
        assert!(page.contains(stored), "{typed} is not {stored}:\n{page}");
    }
}
