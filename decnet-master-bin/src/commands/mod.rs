pub mod demo;
pub mod deploy;
pub mod hosts;
pub mod init;
pub mod listing;
pub mod local;
pub mod serve;
pub mod tokens;
