//! The traits adapters implement. Each has a mockall mock behind feature `test-util`.

pub mod agent;
pub mod bus;
pub mod clock;
pub mod deployer;
pub mod heartbeat;
pub mod hostnet;
pub mod issuer;
pub mod lifecycle;
pub mod logs;
pub mod repository;

pub use agent::{AgentClient, AgentConnector, AgentError, BoxError};
pub use bus::{Bus, BusEvent, StateTransition};
pub use clock::{Clock, FixedClock, SystemClock};
pub use deployer::{DeckyOutcome, DeployReport, Deployer, DeployerError};
pub use heartbeat::{EventAck, EventTransport, HeartbeatAck, HeartbeatTransport, TransportError};
pub use hostnet::{HostNetError, HostNetwork, InterfaceInfo, LocalNetFacts};
pub use issuer::{CertIssuer, IssueError, IssuedWorkerCert, WorkerCertRequest};
pub use lifecycle::{LifecycleSink, SinkError};
pub use logs::{OutputCollector, ServiceLogs};
pub use repository::{CertRenewal, ObserveOutcome, ObservedShard, RepoError, Repository};

#[cfg(any(test, feature = "test-util"))]
pub use {
    agent::{MockAgentClient, MockAgentConnector},
    bus::MockBus,
    clock::MockClock,
    deployer::MockDeployer,
    heartbeat::{MockEventTransport, MockHeartbeatTransport},
    hostnet::MockHostNetwork,
    issuer::MockCertIssuer,
    lifecycle::MockLifecycleSink,
    logs::MockServiceLogs,
    repository::MockRepository,
};
