//! Users and roles at head office reach exactly the store documents they should: a real
//! server, its database file read back, and a connected node receiving the changes.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use caja_shared::auth::Permission;
use caja_shared::auth::secrets::{self, Secret};
use caja_shared::docs::DocId;
use caja_sync_server::{NewUser, ServerError, UserPatch};
use caja_tests::harness::hq::{staff, stored_store_doc};
use caja_tests::harness::quic::*;
use caja_tests::harness::{eventually, spawn_hq_in};

fn new_user(username: &str, stores: &[&str]) -> NewUser {
    NewUser {
        username: username.into(),
        display_name: format!("{username} display"),
        password: Some(Secret::new("correct horse battery")),
        pin: Some(Secret::new("80417263")),
        roles: vec!["cashier".into()],
        stores: stores.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

#[tokio::test]
async fn users_and_roles_reach_exactly_their_stores() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    for s in ["a", "b", "c"] {
        run.server
            .create_store(&caja_sync_server::Actor::local(), s.parse().unwrap(), s)
            .await
            .unwrap();
    }
    let me = enroll(&run, "a").await;
    let node = RawNode::start(&run, &me, MemHost::default()).await;

    let ana = run
        .server
        .create_user(&caja_sync_server::Actor::local(), new_user("ana", &["a", "b"]))
        .await
        .unwrap();
    assert!(ana.has_password && ana.has_pin);
    let in_a = staff(dir.path(), "a");
    assert_eq!(in_a.len(), 1);
    assert_eq!(staff(dir.path(), "b").len(), 1);
    assert!(staff(dir.path(), "c").is_empty());
    let u = &in_a[0];
    assert_eq!((u.id.as_str(), u.username.as_str()), (ana.id.as_str(), "ana"));
    let (pw, pin) = (u.password_hash.clone().unwrap(), u.pin_hash.clone().unwrap());
    assert!(pw.starts_with("$argon2id$") && pin.starts_with("$argon2id$"));
    assert!(secrets::verify("correct horse battery", &pw).unwrap());
    assert!(secrets::verify("80417263", &pin).unwrap());
    let raw = format!("{:?}", stored_store_doc(dir.path(), "a").unwrap().save());
    assert!(!raw.contains("correct horse battery"));

    // The connected node of store a receives the change.
    let doc = DocId::Store {
        store: "a".parse().unwrap(),
    };
    let want = stored_store_doc(dir.path(), "a").unwrap().get_heads();
    let want: Vec<String> = {
        let mut v: Vec<String> = want.iter().map(|h| hex::encode(h.0)).collect();
        v.sort();
        v
    };
    eventually("node has ana", Duration::from_secs(5), || async {
        node.doc_heads(&doc) == want
    })
    .await;

    // Move ana from b to c, make her a manager, then disable her.
    let patch = UserPatch {
        stores: Some(vec!["a".parse().unwrap(), "c".parse().unwrap()]),
        roles: Some(vec!["manager".into()]),
        ..UserPatch::default()
    };
    run.server
        .update_user(&caja_sync_server::Actor::local(), &ana.id, patch)
        .await
        .unwrap();
    assert!(
        staff(dir.path(), "b").is_empty(),
        "removed from the store she left"
    );
    assert_eq!(staff(dir.path(), "c")[0].roles, vec!["manager".to_string()]);
    let disable = UserPatch {
        disabled: Some(true),
        ..UserPatch::default()
    };
    assert!(
        run.server
            .update_user(&caja_sync_server::Actor::local(), &ana.id, disable)
            .await
            .unwrap()
            .disabled
    );
    assert!(staff(dir.path(), "a")[0].disabled && staff(dir.path(), "c")[0].disabled);
    run.server
        .revoke_user_sessions(&caja_sync_server::Actor::local(), &ana.id)
        .await
        .unwrap();
    assert!(staff(dir.path(), "a")[0].sessions_valid_after > 0);

    // A custom role reaches every store, and can then be granted.
    let perms: BTreeSet<Permission> = [Permission::ReportRead].into();
    run.server
        .define_role(&caja_sync_server::Actor::local(), "auditor", perms)
        .await
        .unwrap();
    for s in ["a", "b", "c"] {
        let d = stored_store_doc(dir.path(), s).unwrap();
        assert_eq!(
            caja_shared::docs::store::roles(&d).unwrap()["auditor"],
            vec!["report.read".to_string()]
        );
    }
    let mut bo = new_user("bo", &["b"]);
    bo.roles = vec!["auditor".into()];
    run.server
        .create_user(&caja_sync_server::Actor::local(), bo)
        .await
        .unwrap();
    // A store created later gets the custom roles and no users.
    run.server
        .create_store(&caja_sync_server::Actor::local(), "d".parse().unwrap(), "D")
        .await
        .unwrap();
    let d = stored_store_doc(dir.path(), "d").unwrap();
    assert!(
        caja_shared::docs::store::roles(&d)
            .unwrap()
            .contains_key("auditor")
    );
    assert!(staff(dir.path(), "d").is_empty());

    let kinds: Vec<String> = run
        .server
        .audit(Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in [
        "user.created",
        "user.updated",
        "user.roles_changed",
        "user.disabled",
        "role.defined",
        "user.sessions_revoked",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} not audited: {kinds:?}");
    }
    node.close().await;
    run.stop().await;
}

#[tokio::test]
async fn bad_users_and_roles_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    run.server
        .create_store(&caja_sync_server::Actor::local(), "a".parse().unwrap(), "A")
        .await
        .unwrap();
    fn field<T: std::fmt::Debug>(r: Result<T, ServerError>) -> &'static str {
        match r {
            Err(ServerError::InvalidField { field, .. }) => field,
            other => panic!("{other:?}"),
        }
    }
    type Change = Box<dyn Fn(&mut NewUser)>;
    let cases: Vec<(&str, Change)> = vec![
        ("username", Box::new(|u| u.username = "Bad Name".into())),
        ("username", Box::new(|u| u.username = String::new())),
        ("display_name", Box::new(|u| u.display_name = " ".into())),
        ("display_name", Box::new(|u| u.display_name = "x".repeat(101))),
        ("password", Box::new(|u| u.password = Some(Secret::new("short")))),
        (
            "password",
            Box::new(|u| {
                u.password = None;
                u.pin = None;
            }),
        ),
        ("pin", Box::new(|u| u.pin = Some(Secret::new("12a4")))),
        ("pin", Box::new(|u| u.pin = Some(Secret::new("123")))),
        ("roles", Box::new(|u| u.roles = vec![])),
        ("roles", Box::new(|u| u.roles = vec!["root".into()])),
        ("stores", Box::new(|u| u.stores = vec!["zz".parse().unwrap()])),
    ];
    for (expected, change) in cases {
        let mut u = new_user("ana", &["a"]);
        change(&mut u);
        assert_eq!(
            field(run.server.create_user(&caja_sync_server::Actor::local(), u).await),
            expected
        );
    }
    assert!(
        run.server.users().await.unwrap().is_empty(),
        "nothing was created"
    );
    run.server
        .create_user(&caja_sync_server::Actor::local(), new_user("ana", &["a"]))
        .await
        .unwrap();
    assert!(matches!(
        run.server
            .create_user(&caja_sync_server::Actor::local(), new_user("ana", &[]))
            .await,
        Err(ServerError::Conflict(_))
    ));
    assert!(matches!(
        run.server
            .update_user(&caja_sync_server::Actor::local(), "nope", UserPatch::default())
            .await,
        Err(ServerError::NotFound(_))
    ));
    let ana = run.server.users().await.unwrap()[0].id.clone();
    let both = UserPatch {
        pin: Some(Secret::new("4821")),
        remove_pin: true,
        ..UserPatch::default()
    };
    assert_eq!(
        field(
            run.server
                .update_user(&caja_sync_server::Actor::local(), &ana, both)
                .await
        ),
        "pin"
    );
    for bad in ["admin", "Bad Role", ""] {
        assert_eq!(
            field(
                run.server
                    .define_role(&caja_sync_server::Actor::local(), bad, BTreeSet::new())
                    .await
            ),
            "name"
        );
    }
    run.stop().await;
}
