pub mod deploy;
pub mod listing;
