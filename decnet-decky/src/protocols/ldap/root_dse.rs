//! The rootDSE of the persona's Active Directory domain controller (MS-ADTS 3.1.1.3.2).

use crate::protocols::ntlm::Identity;

/// `acme.corp` → `DC=acme,DC=corp`.
pub fn domain_dn(domain: &str) -> String {
    domain
        .split('.')
        .filter(|l| !l.is_empty())
        .map(|l| format!("DC={l}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The rootDSE attributes of the persona's domain controller.
pub fn root_dse(id: &Identity, now: &str) -> Vec<(&'static str, Vec<String>)> {
    let base = domain_dn(&id.dns_domain);
    let config = format!("CN=Configuration,{base}");
    let host = &id.nb_computer;
    let server = format!("CN={host},CN=Servers,CN=Default-First-Site-Name,CN=Sites,{config}");
    let one = |s: String| vec![s];
    vec![
        ("currentTime", one(now.to_owned())),
        (
            "subschemaSubentry",
            one(format!("CN=Aggregate,CN=Schema,{config}")),
        ),
        ("dsServiceName", one(format!("CN=NTDS Settings,{server}"))),
        (
            "namingContexts",
            vec![
                base.clone(),
                config.clone(),
                format!("CN=Schema,{config}"),
                format!("DC=DomainDnsZones,{base}"),
                format!("DC=ForestDnsZones,{base}"),
            ],
        ),
        ("defaultNamingContext", one(base.clone())),
        ("schemaNamingContext", one(format!("CN=Schema,{config}"))),
        ("configurationNamingContext", one(config.clone())),
        ("rootDomainNamingContext", one(base.clone())),
        (
            "supportedControl",
            [
                "1.2.840.113556.1.4.319",
                "1.2.840.113556.1.4.801",
                "1.2.840.113556.1.4.473",
                "1.2.840.113556.1.4.528",
                "1.2.840.113556.1.4.417",
                "1.2.840.113556.1.4.619",
                "1.2.840.113556.1.4.841",
                "1.2.840.113556.1.4.529",
                "1.2.840.113556.1.4.805",
                "1.2.840.113556.1.4.521",
                "1.2.840.113556.1.4.970",
                "1.2.840.113556.1.4.1338",
                "1.2.840.113556.1.4.474",
                "1.2.840.113556.1.4.1339",
                "1.2.840.113556.1.4.1340",
                "1.2.840.113556.1.4.1413",
                "2.16.840.1.113730.3.4.9",
                "2.16.840.1.113730.3.4.10",
                "1.2.840.113556.1.4.1504",
                "1.2.840.113556.1.4.1852",
                "1.2.840.113556.1.4.802",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ("supportedLDAPVersion", vec!["3".into(), "2".into()]),
        (
            "supportedLDAPPolicies",
            [
                "MaxPoolThreads",
                "MaxPercentDirSyncRequests",
                "MaxDatagramRecv",
                "MaxReceiveBuffer",
                "InitRecvTimeout",
                "MaxConnections",
                "MaxConnIdleTime",
                "MaxPageSize",
                "MaxQueryDuration",
                "MaxResultSetSize",
                "MaxValRange",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ("highestCommittedUSN", one("94210".into())),
        (
            "supportedSASLMechanisms",
            ["GSSAPI", "GSS-SPNEGO", "EXTERNAL", "DIGEST-MD5"]
                .map(String::from)
                .to_vec(),
        ),
        ("dnsHostName", one(id.dns_computer.clone())),
        (
            "ldapServiceName",
            one(format!(
                "{}:{}$@{}",
                id.dns_domain,
                host.to_ascii_lowercase(),
                id.dns_domain.to_ascii_uppercase()
            )),
        ),
        ("serverName", one(server)),
        (
            "supportedCapabilities",
            [
                "1.2.840.113556.1.4.800",
                "1.2.840.113556.1.4.1670",
                "1.2.840.113556.1.4.1791",
                "1.2.840.113556.1.4.1935",
                "1.2.840.113556.1.4.2080",
                "1.2.840.113556.1.4.2237",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ("isSynchronized", one("TRUE".into())),
        ("isGlobalCatalogReady", one("TRUE".into())),
        ("domainFunctionality", one("7".into())),
        ("forestFunctionality", one("7".into())),
        ("domainControllerFunctionality", one("7".into())),
    ]
}
