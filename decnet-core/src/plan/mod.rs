//! Pure planners: IP allocation, relocalization, container naming. Facts in, decisions out.

pub mod alloc;
pub mod naming;
pub mod relocalize;

pub use alloc::{allocate_ips, host_range, ips_to_range, AllocError, AllocRequest};
pub use naming::{container_name, parse_container_name, ContainerRole};
pub use relocalize::{local_gateway, relocalize};
pub mod converge;

pub use converge::{plan_converge, shape_hash, ConvergePlan, DeckySteps, Desired, Observed, Role};
pub mod shards;

pub use shards::{merge_probe, merge_probe_of, plan_shards, Probed};
pub mod mutate;

pub use mutate::{due_mutations, pick_new_services, DueMutations};
