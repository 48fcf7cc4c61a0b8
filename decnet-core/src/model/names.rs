//! Newtypes validated once at the boundary. Inside the core a `DeckyName` is always valid.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::FieldError;

/// A rule a name must follow. Decky and host names share it: `^[a-z0-9][a-z0-9-]{0,62}$`.
/// No dots (names are bus topic segments and container-name prefixes), no upper case.
pub const NAME_RULE: &str =
    "must match ^[a-z0-9][a-z0-9-]{0,62}$ (lowercase letters, digits, '-'; no dots)";

fn check_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

macro_rules! name_newtype {
    ($(#[$meta:meta])* $name:ident, $field:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates `s` against [`NAME_RULE`].
            pub fn new(s: impl Into<String>) -> Result<Self, FieldError> {
                let s = s.into();
                if check_name(&s) {
                    Ok(Self(s))
                } else {
                    Err(FieldError::new($field, &s, NAME_RULE))
                }
            }

            /// The validated name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = FieldError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

name_newtype!(
    /// A decky's name: unique fleet-wide, a bus topic segment and the base container's name.
    DeckyName,
    "name"
);
name_newtype!(
    /// A worker host's name (its certificate CN). `decnet-master` is reserved.
    HostName,
    "name"
);

impl HostName {
    /// The CN of the master's certificate; no worker may take it.
    pub const RESERVED: &'static str = "decnet-master";

    /// The name that stands for this master's own (unihost) deckies, in lists and bus topics;
    /// no worker may take it either.
    pub const LOCAL: &'static str = "local";

    /// Like [`HostName::new`], and refuses the reserved names.
    pub fn new_worker(s: impl Into<String>) -> Result<Self, FieldError> {
        let name = Self::new(s)?;
        if name.0 == Self::RESERVED {
            return Err(FieldError::new(
                "name",
                &name.0,
                "is reserved for the master's certificate",
            ));
        }
        if name.0 == Self::LOCAL {
            return Err(FieldError::new(
                "name",
                &name.0,
                "is reserved for the master's own deckies",
            ));
        }
        Ok(name)
    }
}

/// A worker host's UUID (assigned at enrollment).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HostUuid(pub uuid::Uuid);

impl HostUuid {
    /// The master itself, for unihost deckies' shards (the nil UUID; bus topics say `local`).
    pub const LOCAL: HostUuid = HostUuid(uuid::Uuid::nil());

    /// A fresh random id, as enrollment assigns one.
    pub fn new_v4() -> Self {
        Self(uuid::Uuid::new_v4())
    }

    /// True for [`HostUuid::LOCAL`], the master's own unihost deckies.
    pub fn is_local(&self) -> bool {
        self.0.is_nil()
    }

    /// `local` for [`HostUuid::LOCAL`], else the UUID: the form bus topics use.
    pub fn topic_segment(&self) -> String {
        if self.is_local() {
            "local".to_string()
        } else {
            self.0.to_string()
        }
    }
}

impl fmt::Display for HostUuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for HostUuid {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| FieldError::new("host_uuid", s, "is not a UUID"))
    }
}

/// An IPv4 subnet in CIDR form. Serialised as `"a.b.c.d/n"`, like the original.
///
/// New input must name the network address (`10.0.0.0/24`, not `10.0.0.5/24`);
/// [`Subnet::lenient`] clears host bits for state files written by other tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subnet(Ipv4Net);

impl Subnet {
    /// The subnet of `net`, with host bits cleared.
    pub fn new(net: Ipv4Net) -> Self {
        Self(net.trunc())
    }

    /// Parses `s` as a CIDR, requiring host bits to be clear.
    pub fn parse(field: &str, s: &str) -> Result<Self, FieldError> {
        let net: Ipv4Net = s.trim().parse().map_err(|_| {
            FieldError::new(
                field,
                s,
                "is not an IPv4 CIDR (expected e.g. 192.168.1.0/24)",
            )
        })?;
        if net.trunc() != net {
            return Err(FieldError::new(
                field,
                s,
                format!("has host bits set (did you mean {}?)", net.trunc()),
            ));
        }
        Ok(Self(net))
    }

    /// Parses `s` as a CIDR, clearing host bits (as Python's `strict=False`).
    pub fn lenient(field: &str, s: &str) -> Result<Self, FieldError> {
        let net: Ipv4Net = s
            .trim()
            .parse()
            .map_err(|_| FieldError::new(field, s, "is not an IPv4 CIDR"))?;
        Ok(Self(net.trunc()))
    }

    /// The subnet as an [`Ipv4Net`].
    pub fn net(&self) -> Ipv4Net {
        self.0
    }

    /// True when `ip` lies in the subnet (network and broadcast addresses included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.0.contains(&ip)
    }

    /// The network address (`192.168.1.0` for `192.168.1.0/24`).
    pub fn network(&self) -> Ipv4Addr {
        self.0.network()
    }

    /// The broadcast address (`192.168.1.255` for `192.168.1.0/24`).
    pub fn broadcast(&self) -> Ipv4Addr {
        self.0.broadcast()
    }

    /// The prefix length, `0..=32`.
    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    /// The first usable host address (`.1` of a /24); used as a fallback gateway.
    pub fn first_host(&self) -> Ipv4Addr {
        let n = u32::from(self.network());
        if self.prefix_len() >= 31 {
            Ipv4Addr::from(n)
        } else {
            Ipv4Addr::from(n + 1)
        }
    }
}

impl From<Ipv4Net> for Subnet {
    fn from(net: Ipv4Net) -> Self {
        Self::new(net)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Subnet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Subnet {
    /// Lenient, because state files from the original never validated their subnet.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::lenient("subnet", &s).map_err(serde::de::Error::custom)
    }
}

/// Parses an IPv4 address for `field`, with an error that names it.
pub fn parse_ipv4(field: &str, s: &str) -> Result<Ipv4Addr, FieldError> {
    s.trim()
        .parse()
        .map_err(|_| FieldError::new(field, s, "is not an IPv4 address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decky_names() {
        let ok = ["decky-01", "a", "0", "web-server-3", &"a".repeat(63)];
        for s in ok {
            assert!(DeckyName::new(s).is_ok(), "{s} should be valid");
        }
        let bad = ["", "-a", "Decky", "a.b", "a_b", "a b", &"a".repeat(64), "é"];
        for s in bad {
            let err = DeckyName::new(s).unwrap_err();
            assert_eq!(err.field, "name");
            assert!(err.to_string().contains("must match"), "{err}");
        }
    }

    #[test]
    fn reserved_host_name() {
        assert!(HostName::new("decnet-master").is_ok());
        let err = HostName::new_worker("decnet-master").unwrap_err();
        assert!(err.to_string().contains("reserved"));
        let err = HostName::new_worker("local").unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
        assert!(HostName::new_worker("worker-1").is_ok());
    }

    #[test]
    fn subnets() {
        assert_eq!(
            Subnet::parse("subnet", "10.0.0.0/24").unwrap().to_string(),
            "10.0.0.0/24"
        );
        let err = Subnet::parse("subnet", "10.0.0.5/24").unwrap_err();
        assert!(
            err.to_string().contains("did you mean 10.0.0.0/24"),
            "{err}"
        );
        assert!(Subnet::parse("subnet", "10.0.0.0").is_err());
        assert!(Subnet::parse("subnet", "300.0.0.0/8").is_err());
        assert_eq!(
            Subnet::lenient("subnet", "10.0.0.5/24")
                .unwrap()
                .to_string(),
            "10.0.0.0/24"
        );
        let s = Subnet::parse("subnet", "192.168.1.0/24").unwrap();
        assert_eq!(s.first_host(), Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            "\"192.168.1.0/24\"".to_string()
        );
    }
}
