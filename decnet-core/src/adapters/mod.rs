//! Adapters that do I/O with nothing but std: the state file.
pub mod state_file;
