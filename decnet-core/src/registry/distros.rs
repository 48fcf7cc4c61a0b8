//! Distro personas (DECNET 1.2 `decnet/distros.py`): what OS image a decky claims to run and
//! how its host name looks.
//!
//! `image` and `build_base` are persona metadata only; the deployer never pulls them (the
//! original pinned them by digest because it built service images on top of them).

use std::fmt;

use rand::Rng;

/// How a distro's machines are usually named.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostnameStyle {
    /// Debian/Ubuntu estate: `SRV-WORD-42`.
    Generic,
    /// RHEL family: `word42.localdomain`.
    Rhel,
    /// Small images: `word-42`.
    Minimal,
    /// Rolling releases: `word-word`.
    Rolling,
}

/// A distro persona.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Distro {
    /// The slug used in configs (`debian`, `rocky9`, …).
    pub slug: &'static str,
    /// The image tag the persona claims (e.g. `debian:bookworm-slim`); never pulled.
    pub image: &'static str,
    /// Human-readable name.
    pub display_name: &'static str,
    /// How its host names look.
    pub hostname_style: HostnameStyle,
    /// The apt-based image the original built service images on (persona metadata only).
    pub build_base: &'static str,
}

const DEBIAN_IMAGE: &str = "debian:bookworm-slim";

/// In the reference's insertion order.
static DISTROS: [Distro; 9] = [
    Distro {
        slug: "debian",
        image: DEBIAN_IMAGE,
        display_name: "Debian 12 (Bookworm)",
        hostname_style: HostnameStyle::Generic,
        build_base: DEBIAN_IMAGE,
    },
    Distro {
        slug: "ubuntu22",
        image: "ubuntu:22.04",
        display_name: "Ubuntu 22.04 LTS (Jammy)",
        hostname_style: HostnameStyle::Generic,
        build_base: "ubuntu:22.04",
    },
    Distro {
        slug: "ubuntu20",
        image: "ubuntu:20.04",
        display_name: "Ubuntu 20.04 LTS (Focal)",
        hostname_style: HostnameStyle::Generic,
        build_base: "ubuntu:20.04",
    },
    Distro {
        slug: "rocky9",
        image: "rockylinux:9-minimal",
        display_name: "Rocky Linux 9",
        hostname_style: HostnameStyle::Rhel,
        build_base: DEBIAN_IMAGE,
    },
    Distro {
        slug: "centos7",
        image: "centos:7",
        display_name: "CentOS 7",
        hostname_style: HostnameStyle::Rhel,
        build_base: DEBIAN_IMAGE,
    },
    Distro {
        slug: "alpine",
        image: "alpine:3.19",
        display_name: "Alpine Linux 3.19",
        hostname_style: HostnameStyle::Minimal,
        build_base: DEBIAN_IMAGE,
    },
    Distro {
        slug: "fedora",
        image: "fedora:39",
        display_name: "Fedora 39",
        hostname_style: HostnameStyle::Rhel,
        build_base: DEBIAN_IMAGE,
    },
    Distro {
        slug: "kali",
        image: "kalilinux/kali-rolling",
        display_name: "Kali Linux (Rolling)",
        hostname_style: HostnameStyle::Rolling,
        build_base: "kalilinux/kali-rolling",
    },
    Distro {
        slug: "arch",
        image: "archlinux:latest",
        display_name: "Arch Linux",
        hostname_style: HostnameStyle::Rolling,
        build_base: DEBIAN_IMAGE,
    },
];

/// Every distro, in the reference's order (the order fleet builders cycle through).
pub fn distros() -> &'static [Distro] {
    &DISTROS
}

/// The distro of that slug.
pub fn distro(slug: &str) -> Option<&'static Distro> {
    DISTROS.iter().find(|d| d.slug == slug)
}

/// A distro slug that is not in the registry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown distro {0:?} (known: {known})", known = SortedSlugs(distros().iter().map(|d| d.slug)))]
pub struct UnknownDistro(pub String);

/// Displays slugs sorted and comma-separated.
pub(crate) struct SortedSlugs<I>(pub I);

impl<I: Iterator<Item = &'static str> + Clone> fmt::Display for SortedSlugs<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut slugs: Vec<&str> = self.0.clone().collect();
        slugs.sort_unstable();
        f.write_str(&slugs.join(", "))
    }
}

/// The 25 words host names are made of.
pub const HOSTNAME_WORDS: [&str; 25] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
    "kilo", "lima", "mike", "nova", "oscar", "prod", "web", "db", "mail", "proxy", "dev", "stage",
    "backup", "monitor", "files",
];

/// A plausible host name in the style of the distro (an unknown slug gets the generic style):
/// `SRV-PROD-42`, `prod42.localdomain`, `prod-42` or `prod-mail`. Always a valid RFC 1123
/// host name.
pub fn random_hostname(distro_slug: &str, rng: &mut impl Rng) -> String {
    let style = distro(distro_slug).map_or(HostnameStyle::Generic, |d| d.hostname_style);
    let word = HOSTNAME_WORDS[rng.gen_range(0..HOSTNAME_WORDS.len())];
    let n: u8 = rng.gen_range(10..=99);
    match style {
        HostnameStyle::Generic => format!("SRV-{}-{n}", word.to_ascii_uppercase()),
        HostnameStyle::Rhel => format!("{word}{n}.localdomain"),
        HostnameStyle::Minimal => format!("{word}-{n}"),
        HostnameStyle::Rolling => {
            let word2 = HOSTNAME_WORDS[rng.gen_range(0..HOSTNAME_WORDS.len())];
            format!("{word}-{word2}")
        }
    }
}

/// Whether `name` is a valid RFC 1123 host name: at most 253 characters of dot-separated
/// labels, each 1–63 ASCII letters, digits or hyphens, not starting or ending with a hyphen.
pub fn is_valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn table_of_the_reference() {
        use HostnameStyle::*;
        let cases = [
            (
                "debian",
                "debian:bookworm-slim",
                "Debian 12 (Bookworm)",
                Generic,
                "debian:bookworm-slim",
            ),
            (
                "ubuntu22",
                "ubuntu:22.04",
                "Ubuntu 22.04 LTS (Jammy)",
                Generic,
                "ubuntu:22.04",
            ),
            (
                "ubuntu20",
                "ubuntu:20.04",
                "Ubuntu 20.04 LTS (Focal)",
                Generic,
                "ubuntu:20.04",
            ),
            (
                "rocky9",
                "rockylinux:9-minimal",
                "Rocky Linux 9",
                Rhel,
                "debian:bookworm-slim",
            ),
            (
                "centos7",
                "centos:7",
                "CentOS 7",
                Rhel,
                "debian:bookworm-slim",
            ),
            (
                "alpine",
                "alpine:3.19",
                "Alpine Linux 3.19",
                Minimal,
                "debian:bookworm-slim",
            ),
            (
                "fedora",
                "fedora:39",
                "Fedora 39",
                Rhel,
                "debian:bookworm-slim",
            ),
            (
                "kali",
                "kalilinux/kali-rolling",
                "Kali Linux (Rolling)",
                Rolling,
                "kalilinux/kali-rolling",
            ),
            (
                "arch",
                "archlinux:latest",
                "Arch Linux",
                Rolling,
                "debian:bookworm-slim",
            ),
        ];
        assert_eq!(distros().len(), cases.len());
        for (d, (slug, image, display, style, base)) in distros().iter().zip(cases) {
            assert_eq!(
                (
                    d.slug,
                    d.image,
                    d.display_name,
                    d.hostname_style,
                    d.build_base
                ),
                (slug, image, display, style, base)
            );
            assert_eq!(distro(slug), Some(d));
        }
        assert_eq!(distro("gentoo"), None);
    }

    #[test]
    fn unknown_distro_message() {
        assert_eq!(
            UnknownDistro("gentoo".into()).to_string(),
            r#"unknown distro "gentoo" (known: alpine, arch, centos7, debian, fedora, kali, rocky9, ubuntu20, ubuntu22)"#
        );
    }

    /// Splits a host name into (word, number) by style, checking its shape.
    fn check_shape(slug: &str, name: &str) {
        assert!(is_valid_hostname(name), "{slug}: {name:?}");
        let word_ok = |w: &str| HOSTNAME_WORDS.contains(&w);
        let num_ok = |n: &str| matches!(n.parse::<u8>(), Ok(10..=99)) && n.len() == 2;
        match distro(slug).map_or(HostnameStyle::Generic, |d| d.hostname_style) {
            HostnameStyle::Generic => {
                let parts: Vec<&str> = name.split('-').collect();
                assert_eq!(parts.len(), 3, "{name}");
                assert_eq!(parts[0], "SRV");
                assert!(word_ok(&parts[1].to_ascii_lowercase()), "{name}");
                assert_eq!(parts[1], parts[1].to_ascii_uppercase());
                assert!(num_ok(parts[2]), "{name}");
            }
            HostnameStyle::Rhel => {
                let host = name.strip_suffix(".localdomain").expect(name);
                let (w, n) = host.split_at(host.len() - 2);
                assert!(word_ok(w) && num_ok(n), "{name}");
            }
            HostnameStyle::Minimal => {
                let (w, n) = name.split_once('-').expect(name);
                assert!(word_ok(w) && num_ok(n), "{name}");
            }
            HostnameStyle::Rolling => {
                let (w, w2) = name.split_once('-').expect(name);
                assert!(word_ok(w) && word_ok(w2), "{name}");
            }
        }
    }

    #[test]
    fn hostnames_follow_the_style() {
        let mut rng = StdRng::seed_from_u64(7);
        for slug in distros().iter().map(|d| d.slug).chain(["gentoo", ""]) {
            for _ in 0..200 {
                check_shape(slug, &random_hostname(slug, &mut rng));
            }
        }
    }

    #[test]
    fn hostnames_are_reproducible_from_a_seed() {
        let a = random_hostname("rocky9", &mut StdRng::seed_from_u64(1));
        let b = random_hostname("rocky9", &mut StdRng::seed_from_u64(1));
        assert_eq!(a, b);
    }

    #[test]
    fn word_list() {
        assert_eq!(HOSTNAME_WORDS[0], "alpha");
        assert_eq!(HOSTNAME_WORDS[24], "files");
        for w in [
            "prod", "web", "db", "mail", "proxy", "dev", "stage", "backup", "monitor",
        ] {
            assert!(HOSTNAME_WORDS.contains(&w), "{w}");
        }
    }

    #[test]
    fn hostname_validity() {
        let check = |name: &str, ok: bool| assert_eq!(is_valid_hostname(name), ok, "{name:?}");
        check("SRV-PROD-42", true);
        check("prod42.localdomain", true);
        check("a", true);
        check(&"a".repeat(63), true);
        check(&"a".repeat(64), false);
        check(&["abc"; 64].join("."), false);
        check("", false);
        check("-a", false);
        check("a-", false);
        check("a..b", false);
        check("a.b.", false);
        check("a_b", false);
        check("ünï", false);
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn every_seed_gives_a_valid_hostname(seed: u64, idx in 0usize..10) {
                let slug = distros().get(idx).map_or("unknown", |d| d.slug);
                let name = random_hostname(slug, &mut StdRng::seed_from_u64(seed));
                prop_assert!(is_valid_hostname(&name), "{}", name);
            }
        }
    }
}
