//! The deckies' Docker network: macvlan (parent = the interface), ipvlan L2, or bridge.
//! A matching network is reused; one is never removed while containers DECNET does not manage
//! are attached to it.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use bollard::models::{Ipam, IpamConfig, Network, NetworkCreateRequest};
use bollard::query_parameters::{
    InspectNetworkOptions, ListContainersOptions, ListNetworksOptions,
};
use bollard::Docker;
use decnet_core::model::{NetworkDriver, Subnet};
use decnet_core::plan::ips_to_range;

use crate::labels::{self, MANAGED};
use crate::retry::retry;
use crate::DockerError;

/// What the network must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    pub name: String,
    pub driver: NetworkDriver,
    pub parent: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// Addresses the deckies take (for the ip-range covering them).
    pub ips: Vec<Ipv4Addr>,
    /// The `decnet.host` label.
    pub host: String,
}

impl NetworkSpec {
    fn driver_name(&self) -> &'static str {
        self.driver.as_str()
    }

    fn options(&self) -> HashMap<String, String> {
        match self.driver {
            NetworkDriver::Macvlan => HashMap::from([("parent".into(), self.parent.clone())]),
            NetworkDriver::Ipvlan => HashMap::from([
                ("parent".into(), self.parent.clone()),
                ("ipvlan_mode".into(), "l2".into()),
            ]),
            NetworkDriver::Bridge => HashMap::new(),
        }
    }

    /// True when `existing` can carry these deckies: same driver, parent, subnet and gateway.
    /// The ip-range may differ: every decky's address is pinned explicitly, which Docker accepts
    /// anywhere in the subnet.
    pub fn matches(&self, existing: &Network) -> bool {
        let driver_ok = existing.driver.as_deref() == Some(self.driver_name());
        let parent_ok = match self.driver {
            NetworkDriver::Bridge => true,
            _ => {
                existing
                    .options
                    .as_ref()
                    .and_then(|o| o.get("parent"))
                    .map(String::as_str)
                    == Some(self.parent.as_str())
            }
        };
        let pool = existing
            .ipam
            .as_ref()
            .and_then(|i| i.config.as_ref())
            .and_then(|c| c.first());
        let subnet_ok = pool
            .and_then(|p| p.subnet.as_deref())
            .and_then(|s| s.parse::<ipnet::Ipv4Net>().ok())
            .is_some_and(|n| n.trunc() == self.subnet.net());
        let gw_ok = pool.and_then(|p| p.gateway.as_deref()) == Some(&*self.gateway.to_string());
        driver_ok && parent_ok && subnet_ok && gw_ok
    }

    fn request(&self) -> NetworkCreateRequest {
        let range = ips_to_range(&self.ips).map(|r| r.to_string());
        NetworkCreateRequest {
            name: self.name.clone(),
            driver: Some(self.driver_name().into()),
            options: Some(self.options()),
            ipam: Some(Ipam {
                driver: Some("default".into()),
                config: Some(vec![IpamConfig {
                    subnet: Some(self.subnet.to_string()),
                    gateway: Some(self.gateway.to_string()),
                    ip_range: range,
                    ..Default::default()
                }]),
                options: None,
            }),
            labels: Some(HashMap::from([
                (MANAGED.to_string(), "true".to_string()),
                (labels::HOST.to_string(), self.host.clone()),
            ])),
            ..Default::default()
        }
    }
}

/// The network named exactly `name` (Docker's name filter matches substrings).
pub async fn find(docker: &Docker, name: &str) -> Result<Option<Network>, DockerError> {
    let opts = ListNetworksOptions {
        filters: Some(HashMap::from([("name".into(), vec![name.to_string()])])),
    };
    let list = retry("list networks", || docker.list_networks(Some(opts.clone()))).await?;
    let Some(id) = list
        .into_iter()
        .find(|n| n.name.as_deref() == Some(name))
        .and_then(|n| n.id)
    else {
        return Ok(None);
    };
    let net = retry("inspect network", || {
        docker.inspect_network(&id, None::<InspectNetworkOptions>)
    })
    .await?;
    Ok(Some(net))
}

/// Names of containers attached to `net` that DECNET does not manage.
async fn foreign_containers(docker: &Docker, net: &Network) -> Result<Vec<String>, DockerError> {
    let Some(attached) = net.containers.as_ref().filter(|c| !c.is_empty()) else {
        return Ok(vec![]);
    };
    let all = retry("list containers", || {
        docker.list_containers(Some(ListContainersOptions {
            all: true,
            ..Default::default()
        }))
    })
    .await?;
    let mut foreign = Vec::new();
    for (id, ep) in attached {
        let managed = all.iter().any(|c| {
            c.id.as_deref() == Some(id.as_str())
                && c.labels
                    .as_ref()
                    .and_then(|l| l.get(MANAGED))
                    .is_some_and(|v| v == "true")
        });
        if !managed {
            foreign.push(ep.name.clone().unwrap_or_else(|| id.clone()));
        }
    }
    foreign.sort();
    Ok(foreign)
}

/// Makes sure the network exists as specified; reuses a matching one. A mismatching network is
/// replaced only when nothing is attached to it.
pub async fn ensure(docker: &Docker, spec: &NetworkSpec) -> Result<String, DockerError> {
    if let Some(existing) = find(docker, &spec.name).await? {
        let id = existing.id.clone().unwrap_or_default();
        if spec.matches(&existing) {
            tracing::debug!(network = %spec.name, "reusing network");
            return Ok(id);
        }
        let foreign = foreign_containers(docker, &existing).await?;
        if !foreign.is_empty() {
            return Err(DockerError::NetworkInUse {
                name: spec.name.clone(),
                containers: foreign,
            });
        }
        if existing.containers.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(DockerError::Invalid(format!(
                "network {:?} exists with another driver, parent, subnet or gateway and deckies are attached: tear them down first (decnet teardown --all)",
                spec.name
            )));
        }
        tracing::info!(network = %spec.name, "replacing mismatched network");
        retry("remove network", || docker.remove_network(&id)).await?;
    }
    let resp = retry("create network", || docker.create_network(spec.request())).await?;
    tracing::info!(network = %spec.name, driver = spec.driver_name(), parent = %spec.parent, "network created");
    Ok(resp.id)
}

/// Removes the network unless containers DECNET does not manage are attached (clear error).
pub async fn remove(docker: &Docker, name: &str) -> Result<(), DockerError> {
    let Some(net) = find(docker, name).await? else {
        return Ok(());
    };
    let foreign = foreign_containers(docker, &net).await?;
    if !foreign.is_empty() {
        return Err(DockerError::NetworkInUse {
            name: name.to_string(),
            containers: foreign,
        });
    }
    let id = net.id.unwrap_or_default();
    retry("remove network", || docker.remove_network(&id)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The request bodies and the reuse rule, per driver. This kernel has no ipvlan link type,
    //! so the ipvlan path is checked here as data; macvlan and bridge also run against the
    //! real daemon in the deployer's tests.
    use super::*;
    use bollard::models::{Ipam, IpamConfig, Network};

    fn spec(driver: NetworkDriver) -> NetworkSpec {
        NetworkSpec {
            name: "decnet_lan".into(),
            driver,
            parent: "eth1".into(),
            subnet: Subnet::parse("s", "10.9.0.0/24").unwrap(),
            gateway: "10.9.0.1".parse().unwrap(),
            ips: vec!["10.9.0.10".parse().unwrap(), "10.9.0.20".parse().unwrap()],
            host: "local".into(),
        }
    }

    fn existing(driver: &str, parent: Option<&str>, subnet: &str, gw: &str) -> Network {
        Network {
            driver: Some(driver.into()),
            options: parent.map(|p| HashMap::from([("parent".to_string(), p.to_string())])),
            ipam: Some(Ipam {
                config: Some(vec![IpamConfig {
                    subnet: Some(subnet.into()),
                    gateway: Some(gw.into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn requests_per_driver() {
        let r = spec(NetworkDriver::Ipvlan).request();
        assert_eq!(r.driver.as_deref(), Some("ipvlan"));
        let o = r.options.unwrap();
        assert_eq!(o["parent"], "eth1");
        assert_eq!(o["ipvlan_mode"], "l2");
        let pool = &r.ipam.unwrap().config.unwrap()[0];
        assert_eq!(pool.subnet.as_deref(), Some("10.9.0.0/24"));
        assert_eq!(
            pool.ip_range.as_deref(),
            Some("10.9.0.0/27"),
            "covers .10 to .20"
        );
        assert_eq!(r.labels.unwrap()["decnet.managed"], "true");
        let r = spec(NetworkDriver::Macvlan).request();
        assert_eq!(
            r.options.unwrap(),
            HashMap::from([("parent".to_string(), "eth1".to_string())])
        );
        let r = spec(NetworkDriver::Bridge).request();
        assert!(r.options.unwrap().is_empty());
    }

    #[test]
    fn reuse_rule() {
        let s = spec(NetworkDriver::Ipvlan);
        assert!(s.matches(&existing("ipvlan", Some("eth1"), "10.9.0.0/24", "10.9.0.1")));
        assert!(
            !s.matches(&existing(
                "macvlan",
                Some("eth1"),
                "10.9.0.0/24",
                "10.9.0.1"
            )),
            "driver"
        );
        assert!(
            !s.matches(&existing("ipvlan", Some("eth2"), "10.9.0.0/24", "10.9.0.1")),
            "parent"
        );
        assert!(
            !s.matches(&existing("ipvlan", Some("eth1"), "10.9.1.0/24", "10.9.0.1")),
            "subnet"
        );
        assert!(
            !s.matches(&existing(
                "ipvlan",
                Some("eth1"),
                "10.9.0.0/24",
                "10.9.0.254"
            )),
            "gateway"
        );
        assert!(spec(NetworkDriver::Bridge).matches(&existing(
            "bridge",
            None,
            "10.9.0.0/24",
            "10.9.0.1"
        )));
    }
}
