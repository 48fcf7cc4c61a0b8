//! One function for every container name, so status, teardown and runtime lookups can never
//! disagree (the original derived three different names for `smtp_relay`).

use crate::model::DeckyName;

/// Which container of a decky.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerRole<'a> {
    /// The base container: owns the decky's IP, MAC and network namespace.
    Base,
    /// One honeypot service in the base's namespace.
    Service(&'a str),
}

/// `<decky>` for the base, `<decky>.<service>` for a service. Decky names never contain a dot,
/// so two deckies' containers can never collide.
pub fn container_name(decky: &DeckyName, role: ContainerRole<'_>) -> String {
    match role {
        ContainerRole::Base => decky.as_str().to_string(),
        ContainerRole::Service(svc) => format!("{decky}.{svc}"),
    }
}

/// The inverse of [`container_name`]: `(decky, Some(service))`, `(decky, None)` for a base,
/// `None` for names this project did not make.
pub fn parse_container_name(name: &str) -> Option<(DeckyName, Option<String>)> {
    let name = name.strip_prefix('/').unwrap_or(name);
    match name.split_once('.') {
        None => DeckyName::new(name).ok().map(|d| (d, None)),
        Some((decky, svc)) if !svc.is_empty() => DeckyName::new(decky)
            .ok()
            .map(|d| (d, Some(svc.to_string()))),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let d = DeckyName::new("decky-01").unwrap();
        for (role, expect) in [
            (ContainerRole::Base, "decky-01"),
            (ContainerRole::Service("ssh"), "decky-01.ssh"),
            (ContainerRole::Service("smtp_relay"), "decky-01.smtp_relay"),
            (ContainerRole::Service("docker_api"), "decky-01.docker_api"),
        ] {
            let name = container_name(&d, role);
            assert_eq!(name, expect);
            let (back, svc) = parse_container_name(&format!("/{name}")).unwrap();
            assert_eq!(back, d);
            assert_eq!(
                svc.as_deref(),
                match role {
                    ContainerRole::Base => None,
                    ContainerRole::Service(s) => Some(s),
                }
            );
        }
        assert_eq!(parse_container_name("Decky"), None);
        assert_eq!(parse_container_name("decky-01."), None);
    }
}
