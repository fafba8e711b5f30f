//! gpupatrol: watch long training runs on rented GPU boxes.
pub mod duration;
pub mod error;
pub mod exit_codes;
pub mod profile;
pub mod shell;
pub mod decide;
pub mod probe;
pub mod report;
pub mod state;
pub mod transport;
pub mod triage;
pub mod verdict;
