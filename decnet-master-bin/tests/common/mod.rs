//! Fixtures shared by the master's integration tests.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use chrono::Utc;
use decnet_core::model::{ApiToken, Role};
use decnet_core::traits::Repository;
use decnet_master_bin::master::layout::{new_api_token, token_hash, DataDir};
use decnet_tls::pki::{write_private, Ca, LeafSpec};

/// Writes a fresh CA and master certificate into a master's data dir, as `decnet init` would.
pub fn write_pki(layout: &DataDir) -> Ca {
    let ca = Ca::generate("DECNET test CA").unwrap();
    std::fs::write(layout.ca_cert(), ca.cert_pem()).unwrap();
    write_private(&layout.ca_key(), ca.key_pem().as_bytes()).unwrap();
    let m = ca.issue_keypair(&LeafSpec::master(vec![])).unwrap();
    std::fs::write(layout.master_cert(), &m.cert_pem).unwrap();
    write_private(&layout.master_key(), m.key_pem.as_bytes()).unwrap();
    ca
}

/// Stores a new API token of `role` and returns its text.
pub async fn api_token(repo: &Arc<dyn Repository>, role: Role) -> String {
    let token = new_api_token();
    repo.insert_api_token(&ApiToken {
        id: uuid::Uuid::new_v4(),
        hash: token_hash(&token),
        role,
        created_at: Utc::now(),
    })
    .await
    .unwrap();
    token
}

/// Host network facts of a machine on `eth0` in `10.<net>.0.0/24` (gateway `.1`, this host
/// `.250`), for a master's planning.
pub fn lan_facts(net: u8) -> decnet_core::traits::MockHostNetwork {
    let mut hn = decnet_core::traits::MockHostNetwork::new();
    hn.expect_facts().returning(move |_| {
        Ok(decnet_core::traits::LocalNetFacts {
            interface: "eth0".into(),
            subnet: format!("10.{net}.0.0/24").parse().unwrap(),
            host_ip: std::net::Ipv4Addr::new(10, net, 0, 250),
            gateway: Some(std::net::Ipv4Addr::new(10, net, 0, 1)),
        })
    });
    hn.expect_interfaces().returning(|| Ok(vec![]));
    hn
}
