pub mod demo;
pub mod deploy;
pub mod listing;
pub mod local;
