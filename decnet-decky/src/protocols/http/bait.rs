//! The registry's bait ([`decnet_core::registry::bait`]) rendered for one decky: Kubernetes
//! secrets and Elasticsearch documents whose tokens are derived from the decky's host name
//! (stable per decky, different between deckies, so a leaked token names its decky).

use decnet_core::registry::bait::{self, BaitIndex, BaitSecret, Placeholder};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use crate::protocols::ssh::hostkey::b64;

/// Renders `template` of object `object` for the decky `host`.
pub fn render(host: &str, object: &str, template: &str) -> String {
    bait::render(template, host, &mut |p| match p {
        Placeholder::Token { key, alphabet, len } => token(host, object, key, alphabet, len),
        Placeholder::Host => host.to_owned(),
    })
}

/// `len` characters of `alphabet`, derived from (host, object, key).
fn token(host: &str, object: &str, key: &str, alphabet: &[u8], len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut round = 0u32;
    while out.len() < len {
        let digest = Sha256::new()
            .chain_update(host.as_bytes())
            .chain_update([0])
            .chain_update(object.as_bytes())
            .chain_update([0])
            .chain_update(key.as_bytes())
            .chain_update(round.to_be_bytes())
            .finalize();
        for b in digest {
            if out.len() == len {
                break;
            }
            out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
        }
        round += 1;
    }
    out
}

/// A secret's rendered name.
pub fn secret_name(host: &str, s: &BaitSecret) -> String {
    render(host, s.name, s.name)
}

/// The secrets of `namespace` (all with `None`).
pub fn secrets<'a>(namespace: Option<&'a str>) -> impl Iterator<Item = &'static BaitSecret> + 'a {
    bait::K8S_SECRETS
        .iter()
        .filter(move |s| namespace.is_none_or(|n| n == s.namespace))
}

/// A secret as kube-apiserver serves it; `item`: inside a list (no `kind`/`apiVersion`).
pub fn secret_json(host: &str, s: &BaitSecret, item: bool) -> Value {
    let name = secret_name(host, s);
    let mut data = Map::new();
    for (k, v) in s.data {
        data.insert(
            (*k).to_owned(),
            Value::from(b64(render(host, s.name, v).as_bytes(), true)),
        );
    }
    let uid = token(host, s.name, "uid", b"0123456789abcdef", 32);
    let mut v = json!({
        "metadata": {
            "name": name, "namespace": s.namespace,
            "uid": format!("{}-{}-{}-{}-{}", &uid[..8], &uid[8..12], &uid[12..16], &uid[16..20], &uid[20..]),
            "resourceVersion": "4117", "creationTimestamp": "2026-10-14T09:32:51Z"
        },
        "data": data,
        "type": s.kind,
    });
    if !item {
        v["kind"] = json!("Secret");
        v["apiVersion"] = json!("v1");
    }
    v
}

/// The index named `name`.
pub fn index(name: &str) -> Option<&'static BaitIndex> {
    bait::ES_INDICES.iter().find(|i| i.name == name)
}

/// The hits of a search over `indices`, at most `size`.
pub fn hits(host: &str, indices: &[&'static BaitIndex], size: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for idx in indices {
        for (i, d) in idx.documents.iter().enumerate() {
            if out.len() >= size {
                return out;
            }
            let source: Value =
                serde_json::from_str(&render(host, idx.name, d)).unwrap_or_default();
            out.push(json!({
                "_index": idx.name,
                "_type": "_doc",
                "_id": token(host, idx.name, &i.to_string(), bait::token_alphabet("b64url").unwrap_or(b"x"), 20),
                "_score": 1.0,
                "_source": source,
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_per_decky_and_differ_between_deckies() {
        let s = &bait::K8S_SECRETS[0];
        let a = secret_json("web-01", s, false);
        assert_eq!(a, secret_json("web-01", s, false));
        assert_ne!(a["data"], secret_json("web-02", s, false)["data"]);
        let key = crate::util::b64_decode(a["data"]["AWS_ACCESS_KEY_ID"].as_str().unwrap_or(""))
            .expect("base64");
        let key = String::from_utf8(key).expect("utf8");
        assert!(key.starts_with("AKIA") && key.len() == 20, "{key}");
        assert!(key[4..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)));
        // One placeholder renders the same wherever it appears in an object.
        let db = secrets(Some("default"))
            .find(|s| s.name == "db-credentials")
            .expect("db");
        let pw = render("web-01", db.name, db.data[1].1);
        assert!(render("web-01", db.name, db.data[2].1).contains(&format!(":{pw}@")));
        let boot = secrets(Some("kube-system")).next().expect("bootstrap");
        let name = secret_name("web-01", boot);
        let id = render("web-01", boot.name, boot.data[0].1);
        assert_eq!(name, format!("bootstrap-token-{id}"));
    }

    #[test]
    fn search_hits_are_bounded_documents() {
        let users = index("users").expect("users");
        let h = hits("web-01", &[users], 2);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0]["_source"]["username"], "admin");
        assert_eq!(h[0]["_source"]["email"], "admin@web-01.internal");
        let hash = h[0]["_source"]["password_hash"].as_str().expect("hash");
        assert!(hash.starts_with("$2y$10$") && hash.len() == 60, "{hash}");
    }
}
