//! The organisation part of the store contract ([`vigile::store::OrgStore`]) on both
//! backends: registration taking its link once (also under 20 racing completions from two
//! instances), roles and the single super-admin, invitations within the seats, joining,
//! and removing a member with their sessions and everything else that was theirs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use vigile::store::{
    AccountStatus, Channel, ContactCode, DeviceId, DynStore, Invited, Joined, Kept, Membership,
    Org, OrgId, OrgInvite, OrgProfile, OrgRole, OrgTerms, Registered, TokenHash, TokenKind,
    TokenRecord, User, UserId,
};

use vigile::store::shard::{self, Shard};

use crate::common::backend::StoreBackend;
use crate::common::consts::MINUTE;
use crate::common::records::{real_now, session, user};
use crate::every_store;

every_store!(
    registration_takes_its_link_once_and_never_a_taken_address,
    twenty_racing_completions_from_two_instances_create_one_organisation,
    roles_change_and_there_is_always_one_super_admin,
    invitations_stay_within_the_seats_and_join_once,
    removing_a_member_deletes_the_account_and_its_sessions,
    a_deleted_member_leaves_no_factors_devices_cap_or_code_behind,
    profile_and_terms_are_replaced_whole,
);

fn profile(company: &str) -> OrgProfile {
    OrgProfile {
        company: company.into(),
        id_type: "siret".into(),
        id_number: "73282932000074".into(),
        phone: "+33612345678".into(),
        address: "1 rue de la Paix, Paris".into(),
    }
}

/// An organisation and its founder, not stored yet.
fn draft(email: &str, now: i64) -> (Org, User) {
    // Drawn as registration draws it: beside the founder's address.
    let id = OrgId::random_in(Shard::of(email));
    let mut founder = user(email, now);
    founder.org = Some(Membership {
        org: id.clone(),
        role: OrgRole::SuperAdmin,
    });
    let org = Org {
        id,
        profile: profile("Acme"),
        terms: OrgTerms::default(),
        super_admin: founder.id.clone(),
        created_at: now,
    };
    (org, founder)
}

/// Mails a registration link (as step 1 does) and returns its hash.
async fn link(store: &DynStore, email: &str, expires_at: i64) -> TokenHash {
    let hash = TokenHash::of(&shard::token_in(Shard::of(email), 16));
    store
        .token_insert(&TokenRecord {
            kind: TokenKind::OrgRegistration,
            hash: hash.clone(),
            subject: email.into(),
            bind: String::new(),
            expires_at,
        })
        .await
        .unwrap();
    hash
}

/// A registered organisation and its founder.
pub(crate) async fn registered(store: &DynStore, email: &str, now: i64) -> (Org, User) {
    let (org, founder) = draft(email, now);
    let hash = link(store, email, now + MINUTE).await;
    let done = store
        .org_register(&org, &founder, &hash, now)
        .await
        .unwrap();
    assert_eq!(done, Registered::Created);
    (org, founder)
}

fn invite(org: &Org, email: &str, now: i64, ttl: i64) -> OrgInvite {
    OrgInvite {
        org: org.id.clone(),
        email: email.into(),
        token_hash: TokenHash::of(&shard::token_in(Shard::of(org.id.as_str()), 16)),
        invited_by: org.super_admin.clone(),
        created_at: now,
        expires_at: now + ttl,
    }
}

fn joiner(org: &Org, email: &str, now: i64) -> User {
    let mut u = user(email, now);
    // Drawn as joining draws it: beside the organisation.
    u.id = UserId::random_in(Shard::of(org.id.as_str()));
    u.org = Some(Membership {
        org: org.id.clone(),
        role: OrgRole::Member,
    });
    u
}

/// An invitation of `email` to `org`, stored, and two accounts that could join with it.
pub(crate) async fn invitation(
    store: &DynStore,
    org: &Org,
    email: &str,
    now: i64,
) -> (OrgInvite, User, User) {
    let inv = invite(org, email, now, MINUTE);
    assert_eq!(
        store.org_invite(&inv, 100, now).await.unwrap(),
        Invited::Invited
    );
    (inv, joiner(org, email, now), joiner(org, email, now))
}

/// Joins `email` to `org` through an invitation, and returns the account.
pub(crate) async fn member_of(store: &DynStore, org: &Org, email: &str, now: i64) -> User {
    let inv = invite(org, email, now, MINUTE);
    assert_eq!(
        store.org_invite(&inv, 100, now).await.unwrap(),
        Invited::Invited
    );
    let u = joiner(org, email, now);
    assert_eq!(
        store.org_join(&inv.token_hash, &u, now).await.unwrap(),
        Joined::Joined
    );
    u
}

async fn role_of(store: &DynStore, id: &UserId) -> Option<OrgRole> {
    store
        .user_by_id(id)
        .await
        .unwrap()
        .and_then(|u| u.org_role())
}

async fn registration_takes_its_link_once_and_never_a_taken_address(b: StoreBackend) {
    let store = b.open();
    let now = real_now();

    // An expired link, a link mailed to another address, a made-up link: nothing happens.
    let (org, founder) = draft("boss@acme.example", now);
    let expired = link(&store, &founder.email, now).await;
    let other = link(&store, "someone@else.example", now + MINUTE).await;
    for hash in [&expired, &other, &TokenHash::of("never")] {
        let done = store.org_register(&org, &founder, hash, now).await.unwrap();
        assert_eq!(done, Registered::LinkGone);
    }
    assert!(store.org_get(&org.id).await.unwrap().is_none());
    assert!(store.user_by_email(&founder.email).await.unwrap().is_none());

    // A pending sign-up on the address is replaced; the founder is active, super-admin.
    let pending = user(&founder.email, now);
    store
        .user_insert_pending(&pending, now + MINUTE)
        .await
        .unwrap();
    let good = link(&store, &founder.email, now + MINUTE).await;
    let done = store
        .org_register(&org, &founder, &good, now)
        .await
        .unwrap();
    assert_eq!(done, Registered::Created);
    assert!(store.user_by_id(&pending.id).await.unwrap().is_none());
    let stored = store.user_by_email(&founder.email).await.unwrap().unwrap();
    assert_eq!(stored.id, founder.id);
    assert_eq!(stored.status, AccountStatus::Active);
    assert_eq!(stored.org_role(), Some(OrgRole::SuperAdmin));
    assert_eq!(store.org_get(&org.id).await.unwrap().unwrap(), org);
    assert_eq!(store.org_members(&org.id).await.unwrap(), vec![stored]);

    // Used once.
    let (again, again_founder) = draft(&founder.email, now);
    let done = store
        .org_register(&again, &again_founder, &good, now)
        .await
        .unwrap();
    assert_eq!(done, Registered::LinkGone);

    // A taken address: nothing created, and the link is left for its holder.
    let member = user("member@acme.example", now);
    store.user_insert(&member).await.unwrap();
    let (taken, taken_founder) = draft(&member.email, now);
    let hash = link(&store, &member.email, now + MINUTE).await;
    let done = store
        .org_register(&taken, &taken_founder, &hash, now)
        .await
        .unwrap();
    assert_eq!(done, Registered::EmailTaken);
    assert!(store.org_get(&taken.id).await.unwrap().is_none());
    let left = store
        .token_peek(TokenKind::OrgRegistration, &hash, now)
        .await
        .unwrap();
    assert!(left.is_some());
    assert_eq!(store.org_list().await.unwrap().len(), 1);
}

async fn twenty_racing_completions_from_two_instances_create_one_organisation(b: StoreBackend) {
    let stores = [b.open(), b.open()];
    let now = real_now();
    let email = "race@acme.example";
    let hash = link(&stores[0], email, now + MINUTE).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = stores[i % 2].clone();
        let hash = hash.clone();
        tasks.push(tokio::spawn(async move {
            let (org, founder) = draft(email, now);
            store.org_register(&org, &founder, &hash, now).await
        }));
    }
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Registered::Created => created += 1,
            Registered::LinkGone => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(stores[1].org_list().await.unwrap().len(), 1);
    assert!(stores[1].user_by_email(email).await.unwrap().is_some());
}

async fn roles_change_and_there_is_always_one_super_admin(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let (org, boss) = registered(&store, "boss@roles.example", now).await;
    let ann = member_of(&store, &org, "ann@roles.example", now).await;
    let outsider = user("out@roles.example", now);
    store.user_insert(&outsider).await.unwrap();

    assert!(store
        .org_set_role(&org.id, &ann.id, OrgRole::Admin)
        .await
        .unwrap());
    assert_eq!(role_of(&store, &ann.id).await, Some(OrgRole::Admin));
    // Not through set_role: the super-admin's own role, super-admin itself, outsiders.
    for (who, role) in [
        (&boss.id, OrgRole::Member),
        (&ann.id, OrgRole::SuperAdmin),
        (&outsider.id, OrgRole::Admin),
    ] {
        assert!(!store.org_set_role(&org.id, who, role).await.unwrap());
    }
    assert_eq!(role_of(&store, &boss.id).await, Some(OrgRole::SuperAdmin));
    assert_eq!(role_of(&store, &outsider.id).await, None);

    // Transfer: only from the super-admin, only to a member.
    assert!(!store
        .org_transfer(&org.id, &ann.id, &boss.id)
        .await
        .unwrap());
    assert!(!store
        .org_transfer(&org.id, &boss.id, &outsider.id)
        .await
        .unwrap());
    assert!(store
        .org_transfer(&org.id, &boss.id, &ann.id)
        .await
        .unwrap());
    assert_eq!(role_of(&store, &ann.id).await, Some(OrgRole::SuperAdmin));
    assert_eq!(role_of(&store, &boss.id).await, Some(OrgRole::Admin));
    let stored = store.org_get(&org.id).await.unwrap().unwrap();
    assert_eq!(stored.super_admin, ann.id);
    let supers = store
        .org_members(&org.id)
        .await
        .unwrap()
        .iter()
        .filter(|u| u.org_role() == Some(OrgRole::SuperAdmin))
        .count();
    assert_eq!(supers, 1);
    // The former holder can no longer hand it on.
    assert!(!store
        .org_transfer(&org.id, &boss.id, &ann.id)
        .await
        .unwrap());
}

async fn invitations_stay_within_the_seats_and_join_once(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let (org, _boss) = registered(&store, "boss@seats.example", now).await;
    // Three seats: the founder and two invitations.
    let a = invite(&org, "a@seats.example", now, MINUTE);
    let c = invite(&org, "c@seats.example", now, MINUTE);
    assert_eq!(
        store.org_invite(&a, 3, now).await.unwrap(),
        Invited::Invited
    );
    assert_eq!(
        store.org_invite(&c, 3, now).await.unwrap(),
        Invited::Invited
    );
    let d = invite(&org, "d@seats.example", now, MINUTE);
    assert_eq!(store.org_invite(&d, 3, now).await.unwrap(), Invited::NoSeat);
    // Inviting an address again renews it without taking another seat; the old link dies.
    let a2 = invite(&org, "a@seats.example", now, MINUTE);
    assert_eq!(
        store.org_invite(&a2, 3, now).await.unwrap(),
        Invited::Invited
    );
    assert!(store
        .org_invite_by_token(&a.token_hash, now)
        .await
        .unwrap()
        .is_none());
    let pending: Vec<String> = store
        .org_invites(&org.id, now)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.email)
        .collect();
    assert_eq!(pending, ["a@seats.example", "c@seats.example"]);

    // Joining spends the invitation and keeps the seat; a second join of it finds nothing.
    let ua = joiner(&org, "a@seats.example", now);
    assert_eq!(
        store.org_join(&a.token_hash, &ua, now).await.unwrap(),
        Joined::Gone
    );
    assert_eq!(
        store.org_join(&a2.token_hash, &ua, now).await.unwrap(),
        Joined::Joined
    );
    let again = joiner(&org, "a@seats.example", now);
    assert_eq!(
        store.org_join(&a2.token_hash, &again, now).await.unwrap(),
        Joined::Gone
    );
    assert_eq!(store.org_member_count(&org.id).await.unwrap(), 2);
    assert_eq!(
        store
            .org_invite(&ua_invite(&org, now), 3, now)
            .await
            .unwrap(),
        Invited::AlreadyMember
    );
    // Still full (two members, one invitation); cancelling frees a seat.
    assert_eq!(store.org_invite(&d, 3, now).await.unwrap(), Invited::NoSeat);
    assert!(store
        .org_invite_cancel(&org.id, "c@seats.example")
        .await
        .unwrap());
    assert!(!store
        .org_invite_cancel(&org.id, "c@seats.example")
        .await
        .unwrap());
    assert!(store
        .org_invite_by_token(&c.token_hash, now)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store.org_invite(&d, 3, now).await.unwrap(),
        Invited::Invited
    );

    // An expired invitation holds no seat and cannot be joined.
    let later = now + 2 * MINUTE;
    assert!(store.org_invites(&org.id, later).await.unwrap().is_empty());
    let ud = joiner(&org, "d@seats.example", later);
    assert_eq!(
        store.org_join(&d.token_hash, &ud, later).await.unwrap(),
        Joined::Gone
    );
    let e = invite(&org, "e@seats.example", later, MINUTE);
    assert_eq!(
        store.org_invite(&e, 3, later).await.unwrap(),
        Invited::Invited
    );

    // The address got an account meanwhile: nothing created, the invitation is spent.
    let owner = user("e@seats.example", later);
    store.user_insert(&owner).await.unwrap();
    let ue = joiner(&org, "e@seats.example", later);
    assert_eq!(
        store.org_join(&e.token_hash, &ue, later).await.unwrap(),
        Joined::EmailTaken
    );
    assert!(store.user_by_id(&ue.id).await.unwrap().is_none());
    assert!(store.org_invites(&org.id, later).await.unwrap().is_empty());
}

fn ua_invite(org: &Org, now: i64) -> OrgInvite {
    invite(org, "a@seats.example", now, MINUTE)
}

async fn removing_a_member_deletes_the_account_and_its_sessions(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let (org, boss) = registered(&store, "boss@rm.example", now).await;
    let ann = member_of(&store, &org, "ann@rm.example", now).await;
    let (s, _) = session(&ann.id, now);
    store.session_insert(&s, None).await.unwrap();
    let (boss_session, _) = session(&boss.id, now);
    store.session_insert(&boss_session, None).await.unwrap();

    let (other_org, other_boss) = registered(&store, "boss@other.example", now).await;
    // Not from another organisation, never the super-admin.
    assert!(!store.org_remove(&other_org.id, &ann.id).await.unwrap());
    assert!(!store.org_remove(&org.id, &boss.id).await.unwrap());
    assert!(!store.org_remove(&org.id, &other_boss.id).await.unwrap());

    assert!(store.org_remove(&org.id, &ann.id).await.unwrap());
    assert!(store.user_by_id(&ann.id).await.unwrap().is_none());
    assert!(store.user_by_email(&ann.email).await.unwrap().is_none());
    assert!(store
        .session_by_token(&s.token_hash, now)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.org_member_count(&org.id).await.unwrap(), 1);
    assert!(store
        .session_by_token(&boss_session.token_hash, now)
        .await
        .unwrap()
        .is_some());
    // Deleting a member's account any other way also leaves the organisation's count right.
    let bob = member_of(&store, &org, "bob@rm.example", now).await;
    assert!(store.user_delete(&bob.id).await.unwrap());
    assert_eq!(store.org_member_count(&org.id).await.unwrap(), 1);
}

/// Gives `u` what a member accumulates: second factors, a known device, their own
/// session cap and a pending mobile code.
async fn lived_in(store: &DynStore, u: &User, now: i64) {
    let factors = Some(r#"{"totp":"secret"}"#);
    assert!(store
        .kept_put(Kept::Factors, u.id.as_str(), 0, factors, None, now)
        .await
        .unwrap());
    store
        .device_remember(&u.id, &DeviceId::from_string("laptop"))
        .await
        .unwrap();
    assert!(store.member_cap_set(&u.id, Some(5)).await.unwrap());
    let code = ContactCode {
        channel: Channel::Mobile,
        value: "+33612345678".into(),
        code_hash: TokenHash::of("123456"),
        link_hash: None,
        attempts: 0,
        expires_at: now + MINUTE,
    };
    assert!(store.contact_code_put(&u.id, &code).await.unwrap());
}

/// Nothing of it stays (a TOTP secret, passkeys, recovery codes least of all).
async fn assert_forgotten(store: &DynStore, u: &User, now: i64, how: &str) {
    let kept = store
        .kept_get(Kept::Factors, u.id.as_str(), now)
        .await
        .unwrap();
    assert!(kept.is_none(), "{how}: second factors kept");
    let device = DeviceId::from_string("laptop");
    assert!(
        !store.device_known(&u.id, &device).await.unwrap(),
        "{how}: device kept"
    );
    assert_eq!(
        store.member_cap(&u.id).await.unwrap(),
        None,
        "{how}: cap kept"
    );
    let code = store
        .contact_code_get(&u.id, Channel::Mobile, now)
        .await
        .unwrap();
    assert!(code.is_none(), "{how}: contact code kept");
}

/// Removed from their organisation, or deleted by an admin: the account's second factors,
/// known devices, own cap and pending codes go with it.
async fn a_deleted_member_leaves_no_factors_devices_cap_or_code_behind(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let (org, _) = registered(&store, "boss@gone.example", now).await;
    let ann = member_of(&store, &org, "ann@gone.example", now).await;
    lived_in(&store, &ann, now).await;
    assert!(store.org_remove(&org.id, &ann.id).await.unwrap());
    assert_forgotten(&store, &ann, now, "removed from the organisation").await;

    let bob = user("bob@gone.example", now);
    store.user_insert(&bob).await.unwrap();
    lived_in(&store, &bob, now).await;
    assert!(store.user_delete(&bob.id).await.unwrap());
    assert_forgotten(&store, &bob, now, "deleted").await;
}

async fn profile_and_terms_are_replaced_whole(b: StoreBackend) {
    let store = b.open();
    let now = real_now();
    let (org, _) = registered(&store, "boss@terms.example", now).await;
    let p = profile("Acme Learning");
    assert!(store.org_set_profile(&org.id, &p).await.unwrap());
    let t = OrgTerms {
        seats: Some(2),
        plan: Some("Pro".into()),
        max_devices: Some(1),
    };
    assert!(store.org_set_terms(&org.id, &t).await.unwrap());
    let stored = store.org_get(&org.id).await.unwrap().unwrap();
    assert_eq!((stored.profile, stored.terms.clone()), (p.clone(), t));
    assert_eq!(stored.super_admin, org.super_admin);
    assert!(store
        .org_set_terms(&org.id, &OrgTerms::default())
        .await
        .unwrap());
    let stored = store.org_get(&org.id).await.unwrap().unwrap();
    assert_eq!(stored.terms, OrgTerms::default());
    let missing = OrgId::random();
    assert!(!store.org_set_profile(&missing, &p).await.unwrap());
    assert!(!store
        .org_set_terms(&missing, &OrgTerms::default())
        .await
        .unwrap());
}
