//! Bait the API honeypots hand out: the Kubernetes secrets of the `k8s` persona and the
//! documents of the `elasticsearch` persona's indices. Plain data; the decky renders it.
//!
//! Values are templates. `{host}` is the decky's host name; `{KIND:LEN:LABEL}` is a token of
//! `LEN` characters that the decky derives from its host name, the object's name and the
//! placeholder (so one decky always hands out the same token, two deckies never the same, and
//! a token seen in the wild names the decky it was read from). `KIND` is the alphabet:
//!
//! | kind    | characters                   | looks like                          |
//! |---------|------------------------------|-------------------------------------|
//! | `alnum` | `A-Za-z0-9`                  | passwords, API keys                 |
//! | `lower` | `a-z0-9`                     | bootstrap token ids and secrets     |
//! | `upper` | `A-Z2-7`                     | AWS access key ids (after `AKIA`)   |
//! | `b64`   | `A-Za-z0-9+/`                | AWS secret keys                     |
//! | `b64url`| `A-Za-z0-9-_`                | JWT segments                        |
//! | `hex`   | `0-9a-f`                     | hashes, ids                         |
//! | `bcrypt`| `./A-Za-z0-9`                | the 53 characters after `$2y$10$`   |
//!
//! Nothing here is a real credential: every token is derived, never copied.

/// One Kubernetes secret: namespace, name, `type`, and its `data` (plain text; the API
/// base64-encodes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaitSecret {
    /// Its namespace.
    pub namespace: &'static str,
    /// Its name (a template).
    pub name: &'static str,
    /// The secret's `type`.
    pub kind: &'static str,
    /// Key and value templates of its `data`.
    pub data: &'static [(&'static str, &'static str)],
}

/// The secrets of the `k8s` persona, in the order `kubectl get secrets -A` lists them.
pub static K8S_SECRETS: &[BaitSecret] = &[
    BaitSecret {
        namespace: "default",
        name: "aws-credentials",
        kind: "Opaque",
        data: &[
            ("AWS_ACCESS_KEY_ID", "AKIA{upper:16:id}"),
            ("AWS_SECRET_ACCESS_KEY", "{b64:40:key}"),
            ("AWS_DEFAULT_REGION", "us-east-1"),
        ],
    },
    BaitSecret {
        namespace: "default",
        name: "db-credentials",
        kind: "Opaque",
        data: &[
            ("POSTGRES_USER", "app"),
            ("POSTGRES_PASSWORD", "{alnum:24:pw}"),
            (
                "DATABASE_URL",
                "postgresql://app:{alnum:24:pw}@postgres.default.svc.cluster.local:5432/app",
            ),
        ],
    },
    BaitSecret {
        namespace: "default",
        name: "registry-pull",
        kind: "kubernetes.io/dockerconfigjson",
        data: &[(
            ".dockerconfigjson",
            "{\"auths\":{\"registry.{host}:5000\":{\"username\":\"ci-deploy\",\"password\":\"{alnum:32:pw}\"}}}",
        )],
    },
    BaitSecret {
        namespace: "kube-system",
        name: "bootstrap-token-{lower:6:id}",
        kind: "bootstrap.kubernetes.io/token",
        data: &[
            ("token-id", "{lower:6:id}"),
            ("token-secret", "{lower:16:secret}"),
            ("usage-bootstrap-authentication", "true"),
            ("usage-bootstrap-signing", "true"),
            ("auth-extra-groups", "system:bootstrappers:kubeadm:default-node-token"),
        ],
    },
    BaitSecret {
        namespace: "kube-system",
        name: "cluster-admin-token",
        kind: "kubernetes.io/service-account-token",
        data: &[
            ("namespace", "kube-system"),
            (
                "token",
                "eyJhbGciOiJSUzI1NiIsImtpZCI6I{b64url:57:kid}.{b64url:310:claims}.{b64url:342:sig}",
            ),
        ],
    },
];

/// One Elasticsearch index: name, document count and size as `_cat/indices` shows them, and
/// the documents a search returns (JSON templates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BaitIndex {
    /// The index name.
    pub name: &'static str,
    /// `docs.count` in `_cat/indices` (and a search's total).
    pub docs: u64,
    /// `store.size` in `_cat/indices`.
    pub size: &'static str,
    /// The documents a search returns (JSON templates).
    pub documents: &'static [&'static str],
}

/// The indices of the `elasticsearch` persona.
pub static ES_INDICES: &[BaitIndex] = &[
    BaitIndex {
        name: "customers",
        docs: 152_340,
        size: "48.2mb",
        documents: &[
            r#"{"customer_id":100231,"name":"Maria Gonzalez","email":"maria.gonzalez@gmail.com","phone":"+1-415-555-0142","card_last4":"4242","billing_zip":"94107","created":"2024-03-11T09:21:44Z"}"#,
            r#"{"customer_id":100232,"name":"Daniel Okafor","email":"d.okafor@outlook.com","phone":"+1-312-555-0199","card_last4":"1881","billing_zip":"60611","created":"2024-03-11T10:02:13Z"}"#,
            r#"{"customer_id":100233,"name":"Yuki Tanaka","email":"ytanaka@yahoo.co.jp","phone":"+81-3-5555-0107","card_last4":"0005","billing_zip":"150-0002","created":"2024-03-12T01:47:09Z"}"#,
        ],
    },
    BaitIndex {
        name: "orders",
        docs: 1_204_117,
        size: "391.5mb",
        documents: &[
            r#"{"order_id":"ORD-2026-118402","customer_id":100231,"total":249.99,"currency":"USD","status":"shipped","payment_token":"tok_{alnum:24:o1}"}"#,
            r#"{"order_id":"ORD-2026-118403","customer_id":100232,"total":74.5,"currency":"USD","status":"paid","payment_token":"tok_{alnum:24:o2}"}"#,
        ],
    },
    BaitIndex {
        name: "users",
        docs: 8_211,
        size: "2.1mb",
        documents: &[
            r#"{"id":1,"username":"admin","email":"admin@{host}.internal","role":"superuser","password_hash":"$2y$10${bcrypt:53:admin}","api_key":"sk_live_{alnum:32:admin}","last_login":"2026-11-30T08:12:44Z"}"#,
            r#"{"id":17,"username":"svc_backup","email":"backup@{host}.internal","role":"service","password_hash":"$2y$10${bcrypt:53:backup}","api_key":"sk_live_{alnum:32:backup}","last_login":"2026-12-02T02:00:03Z"}"#,
            r#"{"id":42,"username":"jdoe","email":"john.doe@{host}.internal","role":"editor","password_hash":"$2y$10${bcrypt:53:jdoe}","last_login":"2026-12-01T17:45:10Z"}"#,
        ],
    },
    BaitIndex {
        name: "logs-2026",
        docs: 5_019_442,
        size: "1.2gb",
        documents: &[
            r#"{"@timestamp":"2026-12-01T03:14:07.221Z","level":"ERROR","service":"billing-worker","host":"{host}","message":"db connect failed, retrying: postgresql://svc_backup:{alnum:20:pw}@db01:5432/billing"}"#,
            r#"{"@timestamp":"2026-12-01T03:14:09.904Z","level":"INFO","service":"auth-api","host":"{host}","message":"issued token for admin from 10.0.4.17"}"#,
        ],
    },
];

/// The alphabet of a placeholder kind (see the module docs); `None` for an unknown kind.
pub fn token_alphabet(kind: &str) -> Option<&'static [u8]> {
    Some(match kind {
        "alnum" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        "lower" => b"abcdefghijklmnopqrstuvwxyz0123456789",
        "upper" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567",
        "b64" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        "b64url" => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
        "hex" => b"0123456789abcdef",
        "bcrypt" => b"./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        _ => return None,
    })
}

/// A placeholder of a template: `{host}` or `{KIND:LEN:LABEL}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placeholder<'a> {
    /// `{host}`.
    Host,
    /// `{KIND:LEN:LABEL}`.
    Token {
        /// The whole `KIND:LEN:LABEL` text (what the derivation is keyed on).
        key: &'a str,
        /// The characters it is drawn from.
        alphabet: &'static [u8],
        /// How many.
        len: usize,
    },
}

/// Renders `template`, asking `token` for each token placeholder's characters; text in braces
/// that is no placeholder (JSON's own braces) is kept as it is. Pure.
pub fn render(
    template: &str,
    host: &str,
    token: &mut dyn FnMut(Placeholder<'_>) -> String,
) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = after
            .find(['}', '{', '"'])
            .filter(|&j| after.as_bytes()[j] == b'}')
        else {
            out.push('{');
            rest = after;
            continue;
        };
        let inner = &after[..j];
        match parse_placeholder(inner) {
            Some(Placeholder::Host) => out.push_str(host),
            Some(p) => out.push_str(&token(p)),
            None => {
                out.push('{');
                out.push_str(inner);
                out.push('}');
            }
        }
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    out
}

fn parse_placeholder(inner: &str) -> Option<Placeholder<'_>> {
    if inner == "host" {
        return Some(Placeholder::Host);
    }
    let mut parts = inner.splitn(3, ':');
    let alphabet = token_alphabet(parts.next()?)?;
    let len: usize = parts.next()?.parse().ok().filter(|&n| n > 0 && n <= 512)?;
    parts.next()?;
    Some(Placeholder::Token {
        key: inner,
        alphabet,
        len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(t: &str) -> String {
        render(t, "web-01", &mut |p| match p {
            Placeholder::Token { alphabet, len, .. } => {
                String::from_utf8(vec![alphabet[0]; len]).expect("ascii")
            }
            Placeholder::Host => unreachable!("host is rendered by render"),
        })
    }

    #[test]
    fn render_placeholders_and_keeps_json_braces() {
        assert_eq!(fill("AKIA{upper:4:id}"), "AKIAAAAA");
        assert_eq!(
            fill("{\"a\":{\"b\":\"{host}\"}}"),
            "{\"a\":{\"b\":\"web-01\"}}"
        );
        assert_eq!(
            fill("{nope:3:x} {hex:0:x} {hex:2}"),
            "{nope:3:x} {hex:0:x} {hex:2}"
        );
        assert_eq!(fill("{ {"), "{ {");
    }

    #[test]
    fn every_template_renders_to_what_it_claims() {
        for idx in ES_INDICES {
            assert!(!idx.documents.is_empty(), "{}", idx.name);
            for d in idx.documents {
                let text = fill(d);
                assert!(
                    !text.contains("{alnum") && !text.contains("{host}"),
                    "{text}"
                );
                let v: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{} document is not JSON ({e}): {text}", idx.name));
                assert!(v.is_object(), "{text}");
            }
        }
        let mut names = std::collections::HashSet::new();
        for s in K8S_SECRETS {
            assert!(names.insert((s.namespace, s.name)), "duplicate {}", s.name);
            for (k, v) in s.data {
                let text = fill(v);
                assert!(
                    !text.contains(":id}") && !text.contains(":pw}"),
                    "{k}: {text}"
                );
                if *k == ".dockerconfigjson" {
                    let _: serde_json::Value = serde_json::from_str(&text).expect("json");
                }
            }
        }
    }
}
